"""The emulator answers the requests Microsoft documents, built the way its how-to builds them.

Each request below is our own rewriting of a documented one (plain HTTP for the BFL route,
the ``openai`` package for the Image API, the catalog's JSON post for schnell); only the
endpoint and key differ from what a user would send to Azure.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from openai import OpenAI

from conftest import SAMPLES, solid_image
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import KEY, b64, bearer, bfl_url, decode_image, sample_bytes, start_emulator
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.registry import MODELS, AspectRatioSize

HERON = "A watercolour of a grey heron standing in a misty marsh at dawn"


def openai_client(base: str, key: str = KEY) -> OpenAI:
    return OpenAI(base_url=f"{base}/openai", api_key=key, default_query={"api-version": "preview"}, max_retries=0)


# --- BFL provider route, as the how-to sends it ---------------------------------------------------


def test_flux2_pro_text_to_image(emu: Emulator, http: httpx.Client) -> None:
    payload = {"model": "FLUX.2-pro", "prompt": HERON, "width": 1024, "height": 1024, "output_format": "jpeg",
               "num_images": 1}
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=payload,
                  headers={"Content-Type": "application/json", **bearer()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"created", "data", "request_meta"}
    assert isinstance(body["created"], int)
    img = decode_image(body["data"][0]["b64_json"])
    assert (img.format, img.size) == ("JPEG", (1024, 1024))
    meta = body["request_meta"]
    # 0.03 $/MP × 1.048576 MP = 3.15 credits of $0.01; output_mp and total_pixels as the contract shows them.
    assert meta == {"cost": pytest.approx(3.15, abs=0.01), "input_mp": 0.0, "output_mp": 1.05,
                    "total_pixels": 1048576}
    entry = emu.requests()[-1]
    assert entry["route"] == "bfl" and entry["auth"] == "bearer-key" and entry["status"] == 200
    assert entry["params"] == {"model": "FLUX.2-pro", "width": 1024, "height": 1024, "output_format": "jpeg",
                               "num_images": 1}
    assert entry["prompt"] == HERON and entry["unknown_params"] == []


def test_flux2_pro_edit_with_two_references(emu: Emulator, http: httpx.Client) -> None:
    payload = {
        "model": "FLUX.2-pro",
        "prompt": "Light both photos like a rainy night in a neon-lit harbour",
        "output_format": "jpeg",
        "input_image": b64(sample_bytes("astronaut.png")),
        "input_image_2": b64(sample_bytes("rocket.jpg")),
    }
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=payload, headers=bearer())
    assert r.status_code == 200, r.text
    body = r.json()
    img = decode_image(body["data"][0]["b64_json"])
    # Without width/height the emulator sizes an edit from the first reference (512×512).
    assert (img.format, img.size) == ("JPEG", (512, 512))
    assert body["request_meta"]["input_mp"] == round((512 * 512 + 640 * 427) / 1e6, 2)
    refs = emu.requests()[-1]["references"]
    assert [(r["index"], r["field"], r["format"], r["width"], r["height"]) for r in refs] == [
        (1, "input_image", "PNG", 512, 512),
        (2, "input_image_2", "JPEG", 640, 427),
    ]
    assert "input_image" not in emu.requests()[-1]["params"]


def test_flux2_flex_with_guidance_and_steps(emu: Emulator, http: httpx.Client) -> None:
    payload = {"model": "FLUX.2-flex", "prompt": HERON, "width": 1024, "height": 1024, "seed": 42,
               "safety_tolerance": 2, "output_format": "jpeg", "guidance": 1.5, "steps": 10}
    r = http.post(bfl_url(emu.base_url, "flux-2-flex"), json=payload, headers=bearer())
    assert r.status_code == 200, r.text
    entry = emu.requests()[-1]
    assert entry["output"] == {"width": 1024, "height": 1024, "format": "jpeg", "seed": 42}
    assert entry["params"]["guidance"] == 1.5 and entry["params"]["steps"] == 10
    assert r.json()["request_meta"]["cost"] == pytest.approx(0.06 * 1.048576 * 100, abs=0.01)


def test_other_preview_api_version_and_n(emu: Emulator, http: httpx.Client) -> None:
    payload = {"model": "FLUX-1.1-pro", "prompt": HERON, "n": 1}
    r = http.post(bfl_url(emu.base_url, "flux-pro-1.1", "2025-04-01-preview"), json=payload, headers=bearer())
    assert r.status_code == 200, r.text
    img = decode_image(r.json()["data"][0]["b64_json"])
    assert (img.format, img.size) == ("JPEG", (1024, 768))  # 1.1-pro's documented default
    assert r.json()["request_meta"]["cost"] == 4.0  # $0.04 per image


def test_unknown_fields_are_ignored_but_logged(emu: Emulator, http: httpx.Client) -> None:
    payload = {"model": "FLUX.2-pro", "prompt": HERON, "aspect_ratio": "16:9", "guidance": 3, "colour": "teal"}
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=payload, headers=bearer())
    assert r.status_code == 200, r.text
    entry = emu.requests()[-1]
    # [seen] FLUX.2-pro ignores aspect_ratio: the output stays at the default 1024×1024.
    assert entry["unknown_params"] == ["aspect_ratio", "guidance", "colour"]
    assert entry["params"]["colour"] == "teal"
    assert (entry["output"]["width"], entry["output"]["height"]) == (1024, 1024)


def test_custom_deployment_name(http: httpx.Client) -> None:
    with Emulator(EmulatorConfig(api_key=KEY, deployments={"team-pro": "FLUX.2-pro"})) as emu:
        r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"model": "team-pro", "prompt": HERON},
                      headers=bearer())
        assert r.status_code == 200, r.text
        entry = emu.requests()[-1]
        assert (entry["deployment"], entry["model"]) == ("team-pro", "FLUX.2-pro")


# --- Image API through the openai package ---------------------------------------------------------


def test_openai_generate_kontext(emu: Emulator) -> None:
    result = openai_client(emu.base_url).images.generate(
        model="FLUX.1-Kontext-pro", prompt=HERON, n=1, size="1024x1024"
    )
    item = result.data[0]
    assert item.url is None
    img = decode_image(item.b64_json or "")
    assert (img.format, img.size) == ("PNG", (1024, 1024))  # Kontext's default output_format is png
    entry = emu.requests()[-1]
    assert (entry["route"], entry["path"], entry["auth"]) == (
        "images/generations", "/openai/images/generations", "bearer-key")
    raw = result.model_dump()["data"][0]
    assert set(raw["content_filter_results"]) == {"sexual", "violence", "hate", "self_harm", "profanity", "jailbreak"}


def test_openai_edit_kontext(emu: Emulator) -> None:
    client = openai_client(emu.base_url)
    with (SAMPLES / "rocket.jpg").open("rb") as image_file:
        result = client.images.edit(model="FLUX.1-Kontext-pro", image=image_file,
                                    prompt="Move the rocket to a snowy mountain valley", n=1, size="1024x1024")
    img = decode_image(result.data[0].b64_json or "")
    assert img.size == (1024, 1024)
    entry = emu.requests()[-1]
    assert entry["route"] == "images/edits"
    assert [(r["field"], r["format"], r["width"], r["height"]) for r in entry["references"]] == [
        ("image", "JPEG", 640, 427)]
    assert entry["params"]["n"] == "1" and entry["params"]["size"] == "1024x1024"


def test_openai_url_results_download(emu: Emulator, http: httpx.Client) -> None:
    emu.configure(image_api_result="url")
    result = openai_client(emu.base_url).images.generate(model="FLUX-1.1-pro", prompt=HERON, n=1, size="1024x768")
    item = result.data[0]
    assert item.b64_json is None and item.url
    assert item.url.startswith(emu.base_url + "/_emulator/delivery/")
    download = http.get(item.url)
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/jpeg"
    assert decode_image(download.content).size == (1024, 768)


def test_image_api_deployment_path_with_api_key_header(emu: Emulator, http: httpx.Client) -> None:
    url = f"{emu.base_url}/openai/deployments/FLUX-1.1-pro/images/generations?api-version=preview"
    r = http.post(url, json={"prompt": HERON, "n": 1, "size": "1024x768", "output_format": "png"},
                  headers={"api-key": KEY})
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    assert item["url"] is None and item["revised_prompt"] is None
    assert decode_image(item["b64_json"]).format == "PNG"
    entry = emu.requests()[-1]
    assert (entry["auth"], entry["deployment"]) == ("api-key", "FLUX-1.1-pro")


def test_image_api_edit_by_deployment_path_with_image_array(emu: Emulator, http: httpx.Client) -> None:
    url = f"{emu.base_url}/openai/deployments/FLUX.1-Kontext-pro/images/edits?api-version=preview"
    r = http.post(url, data={"prompt": "make it night", "n": "1"}, headers=bearer(),
                  files={"image[]": ("red.png", solid_image((200, 0, 0), (300, 200)), "image/png")})
    assert r.status_code == 200, r.text
    img = decode_image(r.json()["data"][0]["b64_json"])
    # No size: Kontext keeps the input's 3:2 ratio at about 1 MP, on the 32 grid.
    assert img.width > img.height and img.width % 32 == 0 and img.height % 32 == 0
    assert emu.requests()[-1]["references"][0]["field"] == "image[]"


# --- FLUX.1-schnell on Azure ML -------------------------------------------------------------------


def test_schnell_png_as_the_catalog_sends_it(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/score", json={"inputs": "A paper boat on a puddle, seen from above"},
                  headers={**bearer(), "Accept": "image/png", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = decode_image(r.content)
    assert (img.format, img.size) == ("PNG", (1024, 1024))
    assert emu.requests()[-1]["route"] == "aml"


@pytest.mark.parametrize(("accept", "fmt"), [("image/jpeg", "JPEG"), ("image/webp", "WEBP")])
def test_schnell_other_formats_and_floor(emu: Emulator, http: httpx.Client, accept: str, fmt: str) -> None:
    body = {"inputs": "a lighthouse", "parameters": {"width": 1000, "height": 600, "num_inference_steps": 4,
                                                     "guidance_scale": 0, "seed": 5}}
    r = http.post(f"{emu.base_url}/score", json=body, headers={**bearer(), "Accept": accept})
    assert r.status_code == 200, r.text
    img = decode_image(r.content)
    assert (img.format, img.size) == (fmt, (992, 592))


@pytest.mark.parametrize("accept", [None, "application/json"])
def test_schnell_json_answer(emu: Emulator, http: httpx.Client, accept: str | None) -> None:
    headers = bearer() | ({"Accept": accept} if accept else {})
    r = http.post(f"{emu.base_url}/score", json={"inputs": "a lighthouse", "parameters": {"seed": 9}},
                  headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["content_type"] == "image/png" and body["seed"] == 9
    assert decode_image(base64.b64decode(body["b64_json"])).size == (body["width"], body["height"])


def test_health_routes(emu: Emulator, http: httpx.Client) -> None:
    for path in ("/", "/health"):
        r = http.get(emu.base_url + path)
        assert (r.status_code, r.text) == (200, "Ok")


# --- sizes ---------------------------------------------------------------------------------------


def _bfl_size(http: httpx.Client, base: str, path: str, model: str, **fields: object) -> httpx.Response:
    return http.post(bfl_url(base, path), json={"model": model, "prompt": HERON, **fields}, headers=bearer())


def test_flux2_floors_to_16(emu: Emulator, http: httpx.Client) -> None:
    r = _bfl_size(http, emu.base_url, "flux-2-flex", "FLUX.2-flex", width=1000, height=1000, output_format="png")
    assert r.status_code == 200
    assert decode_image(r.json()["data"][0]["b64_json"]).size == (992, 992)
    assert emu.requests()[-1]["notes"][:1] == ["width 1000 floored to 992 (a multiple of 16)"]


def test_flux2_takes_exactly_4_mp(emu: Emulator, http: httpx.Client) -> None:
    r = _bfl_size(http, emu.base_url, "flux-2-pro", "FLUX.2-pro", width=2048, height=2048)
    assert r.status_code == 200
    assert decode_image(r.json()["data"][0]["b64_json"]).size == (2048, 2048)


def test_flux_1_1_pro_size_rules(emu: Emulator, http: httpx.Client) -> None:
    ok = _bfl_size(http, emu.base_url, "flux-pro-1.1", "FLUX-1.1-pro", width=1440, height=256)
    assert decode_image(ok.json()["data"][0]["b64_json"]).size == (1440, 256)
    bad = _bfl_size(http, emu.base_url, "flux-pro-1.1", "FLUX-1.1-pro", width=1000, height=768)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "width"]


def test_kontext_aspect_ratio(emu: Emulator, http: httpx.Client) -> None:
    r = _bfl_size(http, emu.base_url, "flux-kontext-pro", "FLUX.1-Kontext-pro", aspect_ratio="16:9")
    assert r.status_code == 200
    w, h = decode_image(r.json()["data"][0]["b64_json"]).size
    assert w > h and w % 32 == 0 and h % 32 == 0
    assert 0.9 * 1_048_576 <= w * h <= 1_048_576
    assert abs(w / h - 16 / 9) < 0.05
    tall = _bfl_size(http, emu.base_url, "flux-kontext-pro", "FLUX.1-Kontext-pro", aspect_ratio="9:21")
    tw, th = decode_image(tall.json()["data"][0]["b64_json"]).size
    assert th > 2 * tw
    refused = _bfl_size(http, emu.base_url, "flux-kontext-pro", "FLUX.1-Kontext-pro", aspect_ratio="22:9")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "aspect_ratio"]


def test_kontext_without_aspect_ratio(emu: Emulator, http: httpx.Client) -> None:
    square = _bfl_size(http, emu.base_url, "flux-kontext-pro", "FLUX.1-Kontext-pro")
    assert decode_image(square.json()["data"][0]["b64_json"]).size == (1024, 1024)
    # A 30:10 input is wider than 21:9, so the output is clamped to 21:9.
    wide = _bfl_size(http, emu.base_url, "flux-kontext-pro", "FLUX.1-Kontext-pro",
                     input_image=b64(solid_image((0, 90, 0), (300, 100))))
    rule = MODELS["FLUX.1-Kontext-pro"].size
    assert isinstance(rule, AspectRatioSize)
    assert decode_image(wide.json()["data"][0]["b64_json"]).size == rule.size_for((21, 9))


def test_image_api_sizes(emu: Emulator, http: httpx.Client) -> None:
    client = openai_client(emu.base_url)
    result = client.images.generate(model="FLUX.1-Kontext-pro", prompt=HERON, n=1, size="1536x1024")
    w, h = decode_image(result.data[0].b64_json or "").size
    assert (w, h) == (1248, 832)  # 3:2 at Kontext's ~1 MP budget
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX-1.1-pro", "prompt": HERON, "size": "1000x1000"}, headers=bearer())
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "size"


def test_emulator_starts_quickly_and_many_can_run() -> None:
    import time

    started = time.perf_counter()
    emulators = [start_emulator() for _ in range(3)]
    elapsed = time.perf_counter() - started
    try:
        assert len({e.base_url for e in emulators}) == 3
        for e in emulators:
            assert httpx.get(e.base_url + "/health").text == "Ok"
    finally:
        for e in emulators:
            e.stop()
    assert elapsed < 3.0  # well under 1 s each on an idle machine; generous for a loaded CI
