"""Every error shape the contract records, on the route that uses it."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import solid_image
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import KEY, b64, bearer, bfl_url, start_emulator
from flux_ui.emulator import Emulator, Fault
from flux_ui.emulator.auth import make_entra_token
from flux_ui.registry import MODELS, SEED_MAX

PROMPT = "a lighthouse at dusk"
ACCESS_DENIED = "Access denied due to invalid subscription key or wrong API endpoint."
PATHS = {spec.id: spec.bfl_path for spec in MODELS.values() if spec.bfl_path}


def post_bfl(http: httpx.Client, base: str, model: str, headers: dict[str, str] | None = None,
             api_version: str | None = "preview", **fields: object) -> httpx.Response:
    body = {"model": model, "prompt": PROMPT, **fields}
    return http.post(bfl_url(base, PATHS[model], api_version), json=body,
                     headers=bearer() if headers is None else headers)


def assert_401(r: httpx.Response) -> None:
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "401"
    assert error["message"].startswith(ACCESS_DENIED)


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [bearer("wrong-key-0000000000"), {"api-key": "wrong-key-0000000000"}, {},
                                     {"Authorization": KEY}], ids=["bearer", "api-key", "none", "no-scheme"])
def test_401_for_a_wrong_or_missing_key(emu: Emulator, http: httpx.Client, headers: dict[str, str]) -> None:
    assert_401(post_bfl(http, emu.base_url, "FLUX.2-pro", headers=headers))
    assert emu.requests()[-1]["auth"] == ("none" if not headers else "bad")


def test_api_key_header_works(emu: Emulator, http: httpx.Client) -> None:
    assert post_bfl(http, emu.base_url, "FLUX.2-pro", headers={"api-key": KEY}).status_code == 200
    assert emu.requests()[-1]["auth"] == "api-key"


def test_401_on_the_image_api(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX-1.1-pro", "prompt": PROMPT}, headers={"api-key": "nope-nope-nope"})
    assert_401(r)


def test_entra_tokens(emu: Emulator, http: httpx.Client) -> None:
    good = make_entra_token()
    slash = make_entra_token("https://cognitiveservices.azure.com/")
    expired = make_entra_token(expires_in=-60)
    wrong_audience = make_entra_token("https://management.azure.com")
    assert post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer(good)).status_code == 200
    assert emu.requests()[-1]["auth"] == "entra"
    assert post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer(slash)).status_code == 200
    for token in (expired, wrong_audience, "not.a.jwt"):
        r = post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer(token))
        assert_401(r)
    assert "expired" in post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer(expired)).text


def test_entra_can_be_switched_off(emu: Emulator, http: httpx.Client) -> None:
    emu.configure(accept_entra=False)
    assert_401(post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer(make_entra_token())))


def test_401_after_key_rotation(http: httpx.Client) -> None:
    emu = start_emulator()
    try:
        assert post_bfl(http, emu.base_url, "FLUX.2-pro").status_code == 200
        ctl = emu.control_headers()  # the route itself is under test
        r = http.post(f"{emu.base_url}/_emulator/rotate-key", json={"key": "the-new-key-after-rotation"}, headers=ctl)
        assert r.status_code == 200 and "key" not in r.json()
        assert_401(post_bfl(http, emu.base_url, "FLUX.2-pro"))
        new_key = bearer("the-new-key-after-rotation")
        assert post_bfl(http, emu.base_url, "FLUX.2-pro", headers=new_key).status_code == 200
        # schnell follows the Foundry key unless it has its own.
        r = http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer())
        assert r.status_code == 401
        generated = http.post(f"{emu.base_url}/_emulator/rotate-key", headers=ctl).json()["key"]
        assert generated == emu.api_key
        assert post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer(generated)).status_code == 200
    finally:
        emu.stop()


def test_separate_schnell_key(http: httpx.Client) -> None:
    emu = start_emulator(schnell_key="schnell-only-key-123")
    try:
        ok = http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer("schnell-only-key-123"))
        assert ok.status_code == 200
        bad = http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer())
        assert bad.status_code == 401 and isinstance(bad.json()["error"], str)
        assert post_bfl(http, emu.base_url, "FLUX.2-pro", headers=bearer("schnell-only-key-123")).status_code == 401
    finally:
        emu.stop()


# --- routing, api-version and model --------------------------------------------------------------


def test_400_without_model(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"prompt": PROMPT}, headers=bearer())
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "no_model_name"


def test_404_without_api_version(emu: Emulator, http: httpx.Client) -> None:
    r = post_bfl(http, emu.base_url, "FLUX.2-pro", api_version=None)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "DeploymentNotFound"
    r = http.post(f"{emu.base_url}/openai/images/generations", json={"model": "FLUX-1.1-pro", "prompt": PROMPT},
                  headers=bearer())
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"


@pytest.mark.parametrize("model", ["flux-2-pro", "FLUX.2-flex", "gpt-image-1"])
def test_404_for_a_model_the_path_does_not_serve(emu: Emulator, http: httpx.Client, model: str) -> None:
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"model": model, "prompt": PROMPT}, headers=bearer())
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "DeploymentNotFound"


def test_flux2_is_not_on_the_image_api(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/openai/deployments/FLUX.2-pro/images/generations?api-version=preview",
                  json={"prompt": PROMPT}, headers=bearer())
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"


def test_flux_1_1_pro_has_no_edits(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/openai/images/edits?api-version=preview", data={"model": "FLUX-1.1-pro",
                  "prompt": PROMPT}, files={"image": ("a.png", solid_image((1, 2, 3)), "image/png")}, headers=bearer())
    assert r.status_code == 400 and r.json()["error"]["code"] == "OperationNotSupported"


def test_unknown_path_is_404_and_logged(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/providers/blackforestlabs/v1/flux-3-ultra?api-version=preview",
                  json={"model": "x", "prompt": PROMPT}, headers=bearer())
    assert r.status_code == 404 and "error" in r.json()
    r = http.post(f"{emu.base_url}/images/generations", json={})
    assert r.status_code == 404
    assert emu.requests()[-1]["route"] == "other"


# --- references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "allowed"), [(m.id, m.max_references) for m in MODELS.values() if m.bfl_path])
def test_reference_count_per_model(emu: Emulator, http: httpx.Client, model: str, allowed: int) -> None:
    image = b64(solid_image((10, 20, 30), (32, 32)))
    fields = {("input_image" if i == 1 else f"input_image_{i}"): image for i in range(1, allowed + 2)}
    r = post_bfl(http, emu.base_url, model, **fields)
    assert r.status_code == 422
    over = "input_image" if allowed == 0 else f"input_image_{allowed + 1}"
    assert r.json()["detail"][0]["loc"] == ["body", over]
    fields.pop(over)
    if allowed:
        ok = post_bfl(http, emu.base_url, model, **fields)
        assert ok.status_code == 200, ok.text
        assert len(emu.requests()[-1]["references"]) == allowed


@pytest.mark.parametrize(("value", "fragment"), [
    ("not base64 at all!", "not valid base64"),
    (b64(solid_image((1, 1, 1)))[:-1], "not valid base64"),
    ("data:image/png;base64," + b64(solid_image((1, 1, 1))), "data: URL"),
    (b64(b"just some text, not an image"), "not an image"),
    (b64(solid_image((1, 1, 1))[:-30]), "not a complete image"),
], ids=["garbage", "cut-base64", "data-url", "text", "cut-png"])
def test_400_for_an_unreadable_reference(emu: Emulator, http: httpx.Client, value: str, fragment: str) -> None:
    r = post_bfl(http, emu.base_url, "FLUX.2-pro", input_image=b64(solid_image((0, 0, 0))), input_image_2=value)
    assert r.status_code == 400
    error = r.json()["error"]
    assert "input_image_2" in error["message"] and fragment in error["message"]


def test_400_for_an_oversized_reference(emu: Emulator, http: httpx.Client) -> None:
    huge_pixels = b64(solid_image((5, 5, 5), (5000, 4300)))  # 21.5 MP, a small file
    r = post_bfl(http, emu.base_url, "FLUX.2-flex", input_image=huge_pixels)
    assert r.status_code == 400 and "20 megapixels" in r.json()["error"]["message"]
    huge_bytes = "A" * (28 * 1024 * 1024)  # decodes to 21 MB
    r = post_bfl(http, emu.base_url, "FLUX.2-flex", input_image=huge_bytes)
    assert r.status_code == 400 and "20 MB" in r.json()["error"]["message"]


def test_400_for_a_bad_upload_on_edits(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/openai/images/edits?api-version=preview",
                  data={"model": "FLUX.1-Kontext-pro", "prompt": PROMPT},
                  files={"image": ("a.png", b"GIF89a not really", "image/png")}, headers=bearer())
    assert r.status_code == 400 and "image" in r.json()["error"]["message"]
    two = [("image[]", ("a.png", solid_image((1, 1, 1)), "image/png")),
           ("image[]", ("b.png", solid_image((2, 2, 2)), "image/png"))]
    r = http.post(f"{emu.base_url}/openai/images/edits?api-version=preview",
                  data={"model": "FLUX.1-Kontext-pro", "prompt": PROMPT}, files=two, headers=bearer())
    assert r.status_code == 400


# --- parameter validation -----------------------------------------------------------------------


@pytest.mark.parametrize(("model", "fields", "field"), [
    ("FLUX.2-flex", {"guidance": 1.4}, "guidance"),
    ("FLUX.2-flex", {"guidance": 10.5}, "guidance"),
    ("FLUX.2-flex", {"steps": 0}, "steps"),
    ("FLUX.2-flex", {"steps": 51}, "steps"),
    ("FLUX.2-flex", {"steps": 10.5}, "steps"),
    ("FLUX.2-flex", {"prompt_upsampling": "yes"}, "prompt_upsampling"),
    ("FLUX.2-pro", {"safety_tolerance": 6}, "safety_tolerance"),
    ("FLUX.2-pro", {"output_format": "gif"}, "output_format"),
    ("FLUX.2-pro", {"seed": -1}, "seed"),
    ("FLUX.2-pro", {"seed": SEED_MAX + 1}, "seed"),
    ("FLUX.2-pro", {"seed": "42"}, "seed"),
    ("FLUX.2-pro", {"width": 48}, "width"),
    ("FLUX.2-pro", {"width": 2048, "height": 2064}, "width"),
    ("FLUX.2-pro", {"num_images": 2}, "num_images"),
    ("FLUX.1-Kontext-pro", {"safety_tolerance": 7}, "safety_tolerance"),
    ("FLUX.1-Kontext-pro", {"aspect_ratio": "wide"}, "aspect_ratio"),
    ("FLUX-1.1-pro", {"width": 1472}, "width"),
    ("FLUX-1.1-pro", {"height": 224}, "height"),
    ("FLUX-1.1-pro", {"prompt_upsampling": 1}, "prompt_upsampling"),
])
def test_422_for_a_bad_parameter(emu: Emulator, http: httpx.Client, model: str, fields: dict[str, object],
                                 field: str) -> None:
    r = post_bfl(http, emu.base_url, model, **fields)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", field]
    assert detail[0]["msg"] and detail[0]["type"]
    assert emu.requests()[-1]["output"] is None


def test_kontext_safety_tolerance_is_stricter_for_edits(emu: Emulator, http: httpx.Client) -> None:
    assert post_bfl(http, emu.base_url, "FLUX.1-Kontext-pro", safety_tolerance=3).status_code == 200
    r = post_bfl(http, emu.base_url, "FLUX.1-Kontext-pro", safety_tolerance=3,
                 input_image=b64(solid_image((9, 9, 9))))
    assert r.status_code == 422
    assert "when an input image is sent" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("prompt", [None, "", "   ", 42])
def test_422_for_a_missing_or_empty_prompt(emu: Emulator, http: httpx.Client, prompt: object) -> None:
    body: dict[str, object] = {"model": "FLUX.2-pro"}
    if prompt is not None:
        body["prompt"] = prompt
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "prompt"]


def test_422_for_a_body_that_is_not_json(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(bfl_url(emu.base_url, "flux-2-pro"), content=b"{model: FLUX", headers=bearer())
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_prompt_length_limits(emu: Emulator, http: httpx.Client) -> None:
    # FLUX.2: about bytes/4 tokens, 32 000 at most.
    assert post_bfl(http, emu.base_url, "FLUX.2-pro", prompt="word " * 25_600).status_code == 200
    r = post_bfl(http, emu.base_url, "FLUX.2-pro", prompt="x" * 128_004)
    assert r.status_code == 400 and r.json()["error"]["code"] == "prompt_too_long"
    # Kontext and 1.1-pro: about chars/4 + 2 T5 tokens, 5 000 at most.
    assert post_bfl(http, emu.base_url, "FLUX-1.1-pro", prompt="y" * 19_992).status_code == 200
    assert post_bfl(http, emu.base_url, "FLUX-1.1-pro", prompt="y" * 19_993).status_code == 400
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX.1-Kontext-pro", "prompt": "z" * 20_000}, headers=bearer())
    assert r.status_code == 400 and r.json()["error"]["code"] == "prompt_too_long"


# --- content refusals -----------------------------------------------------------------------------


def test_refusal_on_the_bfl_route(emu: Emulator, http: httpx.Client) -> None:
    r = post_bfl(http, emu.base_url, "FLUX.2-pro", prompt="please REFUSE-ME now")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "content_filter" and "BingBlockList_Prompt" in error["message"]
    assert emu.requests()[-1]["output"] is None


def test_refusal_on_the_image_api(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX.1-Kontext-pro", "prompt": "refuse-me"}, headers=bearer())
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "contentFilter"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"


def test_refusal_as_finish_reason(emu: Emulator, http: httpx.Client) -> None:
    emu.configure(refuse_style="finish_reason")
    r = post_bfl(http, emu.base_url, "FLUX.2-flex", prompt="refuse-me")
    assert r.status_code == 200
    item = r.json()["data"][0]
    assert item["finish_reason"] == "content_filter" and "b64_json" not in item
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX-1.1-pro", "prompt": "refuse-me"}, headers=bearer())
    item = r.json()["data"][0]
    assert r.status_code == 200 and item["finish_reason"] == "content_filter" and item["b64_json"] is None


def test_refusal_fault_on_schnell(emu: Emulator, http: httpx.Client) -> None:
    # The schnell pipeline has no content filter, so refuse words pass; a refuse fault plays one.
    ok = http.post(f"{emu.base_url}/score", json={"inputs": "refuse-me"}, headers=bearer())
    assert ok.status_code == 200
    emu.set_faults("FLUX.1-schnell", [Fault("refuse", count=1)])
    r = http.post(f"{emu.base_url}/score", json={"inputs": "a cat"}, headers=bearer())
    assert r.status_code == 400 and isinstance(r.json()["error"], str)


# --- FLUX.1-schnell: every error is 400 {"error": "<message>"} ------------------------------------


@pytest.mark.parametrize(("body", "accept", "fragment"), [
    ({"inputs": "x", "parameters": {"scheduler": "EulerDiscreteScheduler"}}, None, "scheduler"),
    ({"inputs": "x", "parameters": {"strength": 0.5}}, None, "strength"),
    ({"inputs": "x", "parameters": {"width": "big"}}, None, "width"),
    ({"inputs": "x", "parameters": {"width": 128}}, None, "width"),
    ({"inputs": "x", "parameters": {"seed": -3}}, None, "seed"),
    ({"parameters": {}}, None, "inputs"),
    ([1, 2, 3], None, "object"),
    ({"inputs": "x"}, "image/gif", "Accept"),
    (b"not json", None, "JSON"),
])
def test_schnell_answers_every_error_with_400(emu: Emulator, http: httpx.Client, body: object, accept: str | None,
                                              fragment: str) -> None:
    headers = bearer() | ({"Accept": accept} if accept else {})
    if isinstance(body, bytes):
        r = http.post(f"{emu.base_url}/score", content=body, headers=headers)
    else:
        r = http.post(f"{emu.base_url}/score", json=body, headers=headers)
    assert r.status_code == 400
    payload = r.json()
    assert set(payload) == {"error"} and isinstance(payload["error"], str)
    assert fragment in payload["error"]


def test_schnell_never_refuses_a_long_prompt(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/score", json={"inputs": "very long " * 2000}, headers=bearer())
    assert r.status_code == 200
    assert any("cut" in note for note in emu.requests()[-1]["notes"])


def test_schnell_square_only_switch(emu: Emulator, http: httpx.Client) -> None:
    body = {"inputs": "x", "parameters": {"width": 1024, "height": 768}}
    assert http.post(f"{emu.base_url}/score", json=body, headers=bearer()).status_code == 200
    emu.configure(schnell_square_only=True)
    r = http.post(f"{emu.base_url}/score", json=body, headers=bearer())
    assert r.status_code == 400 and re.search(r"square", r.json()["error"])
    square = {"inputs": "x", "parameters": {"width": 768, "height": 768}}
    assert http.post(f"{emu.base_url}/score", json=square, headers=bearer()).status_code == 200


def test_schnell_401_for_a_bad_key(emu: Emulator, http: httpx.Client) -> None:
    r = http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer("wrong-wrong-wrong"))
    assert r.status_code == 401
