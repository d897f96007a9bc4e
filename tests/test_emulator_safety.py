"""The emulator's Content Safety routes over loopback HTTP: shapes, limits, api-version, auth,
deterministic verdicts (configured words, blocklists, the renderer's marker), faults and the log."""

from __future__ import annotations

import io
import random

import httpx
import pytest
from PIL import Image

from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import KEY, b64, bearer, bfl_url, decode_image, own_emulator
from flux_ui.emulator import Emulator, EmulatorConfig, Fault
from flux_ui.emulator.auth import make_entra_token
from flux_ui.emulator.content_safety import API_VERSION, KEY_HEADER, safety_fault
from flux_ui.emulator.render import RenderRequest, render_image
from flux_ui.emulator.requestlog import SCRUBBED
from flux_ui.emulator.safety_marker import has_marker, marker_box

CATEGORIES = ["Hate", "SelfHarm", "Sexual", "Violence"]


def analyze(http: httpx.Client, emu: Emulator, what: str, body: dict[str, object],
            headers: dict[str, str] | None = None, version: str | None = API_VERSION) -> httpx.Response:
    query = f"?api-version={version}" if version else ""
    return http.post(f"{emu.base_url}/contentsafety/{what}:analyze{query}", json=body,
                     headers={KEY_HEADER: KEY} if headers is None else headers)


def severities(response: httpx.Response) -> dict[str, int]:
    assert response.status_code == 200, response.text
    return {item["category"]: item["severity"] for item in response.json()["categoriesAnalysis"]}


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def rendered(prompt: str, size: tuple[int, int] = (512, 384), seed: int = 1) -> Image.Image:
    return render_image(RenderRequest("FLUX.2-pro", "FLUX.2 [pro]", prompt, seed, *size, "png", (),
                                      "safety-marker" in prompt))


# --- text:analyze -------------------------------------------------------------------------------------------


def test_a_clean_text_is_safe_in_every_category(emu: Emulator, http: httpx.Client) -> None:
    answer = analyze(http, emu, "text", {"text": "a lighthouse at dusk", "outputType": "FourSeverityLevels"})
    assert severities(answer) == dict.fromkeys(CATEGORIES, 0) and answer.json()["blocklistsMatch"] == []


def test_a_configured_word_gives_its_category_and_severity(emu: Emulator, http: httpx.Client) -> None:
    assert severities(analyze(http, emu, "text", {"text": "a SAFETY-VIOLENCE scene"}))["Violence"] == 6
    assert severities(analyze(http, emu, "text", {"text": "mild-violence and safety-hate"})) == {
        "Hate": 6, "SelfHarm": 0, "Sexual": 0, "Violence": 2}
    only = analyze(http, emu, "text", {"text": "safety-hate", "categories": ["Violence", "Hate"]})
    assert severities(only) == {"Violence": 0, "Hate": 6}  # the categories asked for, in that order


def test_four_levels_round_down_and_eight_levels_keep_the_severity(http: httpx.Client) -> None:
    with own_emulator(api_key=KEY, safety_words={"odd-word": ("SelfHarm", 5)}) as emu:
        assert severities(analyze(http, emu, "text", {"text": "odd-word"}))["SelfHarm"] == 4
        eight = analyze(http, emu, "text", {"text": "odd-word", "outputType": "EightSeverityLevels"})
        assert severities(eight)["SelfHarm"] == 5


def test_blocklists_match_by_name_and_can_halt_the_analysis(emu: Emulator, http: httpx.Client) -> None:
    body = {"text": "a Blocked-Term and safety-sexual", "blocklistNames": ["flux-ui-demo"]}
    hit = analyze(http, emu, "text", body).json()
    assert [(m["blocklistName"], m["blocklistItemText"]) for m in hit["blocklistsMatch"]] == [
        ("flux-ui-demo", "blocked-term")]
    assert hit["blocklistsMatch"][0]["blocklistItemId"] and len(hit["categoriesAnalysis"]) == 4
    halted = analyze(http, emu, "text", {**body, "haltOnBlocklistHit": True}).json()
    assert halted["blocklistsMatch"] and halted["categoriesAnalysis"] == []
    missing = analyze(http, emu, "text", {"text": "x", "blocklistNames": ["no-such-list"]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    assert missing.headers["x-ms-error-code"] == "BlocklistNotFound" and "no-such-list" in missing.text


@pytest.mark.parametrize(("body", "says"), [
    ({"text": "x" * 10_001}, "10,001 characters"),
    ({"text": ""}, "text is required"),
    ({"categories": ["Hate"]}, "text is required"),
    ({"text": "x", "categories": ["Gore"]}, "categories must be"),
    ({"text": "x", "outputType": "TwoLevels"}, "outputType"),
    ({"text": "x", "blocklistNames": "flux-ui-demo"}, "blocklistNames"),
])
def test_a_text_request_the_service_would_refuse_is_a_400(emu: Emulator, http: httpx.Client,
                                                          body: dict[str, object], says: str) -> None:
    answer = analyze(http, emu, "text", body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidRequestBody"
    assert says in answer.json()["error"]["message"]


def test_ten_thousand_characters_are_taken(emu: Emulator, http: httpx.Client) -> None:
    assert analyze(http, emu, "text", {"text": "é" * 10_000}).status_code == 200  # code points, not bytes


def test_the_api_version_is_required_and_must_be_2024_09_01(emu: Emulator, http: httpx.Client) -> None:
    missing = analyze(http, emu, "text", {"text": "x"}, version=None)
    assert missing.status_code == 404 and "api-version" in missing.json()["error"]["message"]
    older = analyze(http, emu, "text", {"text": "x"}, version="2023-10-01")
    assert older.status_code == 400 and API_VERSION in older.json()["error"]["message"]


# --- auth -------------------------------------------------------------------------------------------------


def test_the_key_goes_in_the_subscription_header_and_entra_as_bearer(emu: Emulator, http: httpx.Client) -> None:
    assert analyze(http, emu, "text", {"text": "x"}).status_code == 200
    entra = {"Authorization": f"Bearer {make_entra_token()}"}
    assert analyze(http, emu, "text", {"text": "x"}, headers=entra).status_code == 200
    refused = [analyze(http, emu, "text", {"text": "x"}, headers=h) for h in (
        {KEY_HEADER: "not-the-key"}, bearer(KEY), {}, {"Authorization": f"Bearer {make_entra_token(expires_in=-5)}"},
        {"Authorization": f"Bearer {make_entra_token(audience='https://ml.azure.com')}"})]
    assert [r.status_code for r in refused] == [401] * 5
    assert "expired" in refused[3].json()["error"]["message"]
    assert [e["auth"] for e in emu.requests()] == ["subscription-key", "entra", "bad", "bad", "none", "bad", "bad"]


def test_a_content_safety_key_of_its_own_is_taken_there_only_and_scrubbed_from_the_log(http: httpx.Client) -> None:
    cs_key = "content-safety-key-0f9e8d7c6b5a"
    with own_emulator(api_key=KEY, content_safety_key=cs_key) as emu:
        assert analyze(http, emu, "text", {"text": "x"}).status_code == 401  # the Foundry key is not it
        leaked = analyze(http, emu, "text", {"text": f"a prompt holding {cs_key}"}, headers={KEY_HEADER: cs_key})
        assert leaked.status_code == 200
        foundry = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"model": "FLUX.2-pro", "prompt": "x"},
                            headers=bearer(cs_key))
        assert foundry.status_code == 401
        log = emu.requests()
    assert log[1]["prompt"] == f"a prompt holding {SCRUBBED}" and cs_key not in str(log)


# --- image:analyze ----------------------------------------------------------------------------------------


def test_an_image_with_the_marker_gets_the_configured_severity(emu: Emulator, http: httpx.Client) -> None:
    marked = analyze(http, emu, "image", {"image": {"content": b64(png(rendered("a cat safety-marker")))}})
    assert severities(marked) == {"Hate": 0, "SelfHarm": 0, "Sexual": 6, "Violence": 0}
    plain = analyze(http, emu, "image", {"image": {"content": b64(png(rendered("a cat")))}})
    assert severities(plain) == dict.fromkeys(CATEGORIES, 0)
    outputs = [e["output"] for e in emu.requests()]
    assert [o["marker"] for o in outputs] == [True, False] and outputs[0]["width"] == 512


def test_the_renderer_draws_the_marker_when_a_prompt_asks_and_it_survives_resizing_and_jpeg(
        emu: Emulator, http: httpx.Client) -> None:
    body = {"model": "FLUX.2-pro", "prompt": "a harbour, safety-marker", "width": 1024, "height": 768,
            "output_format": "png"}
    made = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer())
    image = decode_image(made.json()["data"][0]["b64_json"])
    assert has_marker(image)
    for size, quality in (((256, 192), 40), ((3000, 2250), 60), ((120, 90), 75)):
        shrunk = jpeg(image.resize(size, Image.Resampling.LANCZOS), quality)
        answer = analyze(http, emu, "image", {"image": {"content": b64(shrunk)}})
        assert severities(answer)["Sexual"] == 6, (size, quality)


def test_no_ordinary_render_carries_the_marker() -> None:
    found = [seed for seed in range(150) if has_marker(rendered(f"prompt {seed}", (256, 256), seed))]
    assert found == []
    left, top, right, bottom = marker_box(1024, 768)
    assert right - left == bottom - top == 192 and right < 1024 and bottom < 768


def test_the_marker_verdict_is_configurable(http: httpx.Client) -> None:
    with own_emulator(api_key=KEY, safety_marker_verdict=("Violence", 4), safety_marker_word="paint-it") as emu:
        image = render_image(RenderRequest("FLUX.2-pro", "FLUX.2 [pro]", "x", 1, 300, 300, "png", (), True))
        assert severities(analyze(http, emu, "image", {"image": {"content": b64(png(image))}}))["Violence"] == 4
        made = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"model": "FLUX.2-pro", "prompt": "PAINT-IT now",
                                                                     "width": 256, "height": 256}, headers=bearer())
        assert has_marker(decode_image(made.json()["data"][0]["b64_json"]))


@pytest.mark.parametrize(("content", "inner"), [
    (b64(png(Image.new("RGB", (7300, 60)))), "InvalidImageSize"),
    (b64(png(Image.new("RGB", (49, 200)))), "InvalidImageSize"),
    (b64(b"GIF89a not really" + bytes(100)), "InvalidImageFormat"),
    (b64(b"%PDF-1.7 " + bytes(100)), "InvalidImageFormat"),
    ("not base64!", "InvalidImage"),
])
def test_an_image_outside_the_limits_is_refused(emu: Emulator, http: httpx.Client, content: str, inner: str) -> None:
    answer = analyze(http, emu, "image", {"image": {"content": content}})
    assert answer.status_code == 400 and answer.headers["x-ms-error-code"] == inner
    assert answer.json()["error"]["innererror"]["code"] == inner


def test_an_image_over_4_mb_is_refused(emu: Emulator, http: httpx.Client) -> None:
    data = png(Image.frombytes("RGB", (1400, 1400), random.Random(4).randbytes(1400 * 1400 * 3)))
    assert len(data) > 4 * 1024 * 1024
    answer = analyze(http, emu, "image", {"image": {"content": b64(data)}})
    assert answer.status_code == 400 and "bytes; the most is 4,194,304" in answer.json()["error"]["message"]


def test_an_image_request_needs_content_and_four_levels(emu: Emulator, http: httpx.Client) -> None:
    small = b64(png(Image.new("RGB", (64, 64))))
    assert analyze(http, emu, "image", {"image": {"blobUrl": "https://x.blob.core.windows.net/a.png"}}
                   ).status_code == 400
    assert analyze(http, emu, "image", {"image": {"content": small}, "outputType": "EightSeverityLevels"}
                   ).status_code == 400
    assert analyze(http, emu, "image", {"image": {"content": small}}).status_code == 200


# --- faults and the log -------------------------------------------------------------------------------------


def test_faults_play_on_the_content_safety_routes_when_named(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("*", [Fault("status", status=503)])  # generation routes only: not Content Safety
    assert analyze(http, emu, "text", {"text": "x"}).status_code == 200
    emu.set_faults("content-safety", [safety_fault("status", status=500, count=1)])
    failed = analyze(http, emu, "text", {"text": "x"})
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "InternalError"
    assert failed.headers["x-ms-error-code"] == "InternalError"
    assert analyze(http, emu, "image", {"image": {"content": b64(png(Image.new("RGB", (64, 64))))}}).status_code == 200
    emu.set_faults("content-safety", [safety_fault("status", status=429, retry_after_s=7, routes=("image:analyze",))])
    assert analyze(http, emu, "text", {"text": "x"}).status_code == 200
    limited = analyze(http, emu, "image", {"image": {"content": b64(png(Image.new("RGB", (64, 64))))}})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.json()["error"]["code"] == "TooManyRequests"
    assert [e["fault"] for e in emu.requests()] == [None, "status:500", None, None, "status:429"]


def test_malformed_latency_and_drop_faults(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("content-safety", [safety_fault("malformed", count=1)])
    with pytest.raises(ValueError):
        analyze(http, emu, "text", {"text": "x"}).json()
    emu.set_faults("content-safety", [safety_fault("latency", seconds=1.0, count=1)])
    with pytest.raises(httpx.ReadTimeout):
        http.post(f"{emu.base_url}/contentsafety/text:analyze?api-version={API_VERSION}", json={"text": "x"},
                  headers={KEY_HEADER: KEY}, timeout=0.3)
    emu.set_faults("content-safety", [safety_fault("drop", count=1)])
    with pytest.raises(httpx.RemoteProtocolError):
        analyze(http, emu, "text", {"text": "x"})


def test_faults_arm_through_the_control_route_too(emu: Emulator, http: httpx.Client) -> None:
    armed = http.put(f"{emu.base_url}/_emulator/faults/content-safety", headers=emu.control_headers(),
                     json=[{"kind": "status", "status": 500, "routes": ["text:analyze"], "count": 1}])
    assert armed.status_code == 200
    assert analyze(http, emu, "text", {"text": "x"}).status_code == 500


def test_the_request_log_records_what_was_asked_and_answered(emu: Emulator, http: httpx.Client) -> None:
    analyze(http, emu, "text", {"text": "safety-selfharm", "blocklistNames": ["flux-ui-demo"],
                                "outputType": "FourSeverityLevels"})
    analyze(http, emu, "image", {"image": {"content": b64(png(Image.new("RGB", (80, 60))))}})
    analyze(http, emu, "text", {"text": "x"}, headers={KEY_HEADER: "wrong-key-123456"})
    text, image, refused = emu.requests()
    assert (text["route"], text["path"], text["status"], text["prompt"]) == (
        "text:analyze", "/contentsafety/text:analyze", 200, "safety-selfharm")
    assert text["params"] == {"blocklistNames": ["flux-ui-demo"], "outputType": "FourSeverityLevels"}
    assert {"category": "SelfHarm", "severity": 6} in text["output"]["categoriesAnalysis"]
    assert image["route"] == "image:analyze" and image["output"]["format"] == "PNG"
    assert (image["output"]["width"], image["output"]["height"]) == (80, 60)
    assert (refused["status"], refused["auth"]) == (401, "bad") and "wrong-key" not in str(refused)


def test_bad_safety_options_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="Hate, SelfHarm, Sexual, Violence"):
        EmulatorConfig(safety_words={"x": ("Gore", 6)})
    with pytest.raises(ValueError, match="severity 0-7"):
        EmulatorConfig(safety_marker_verdict=("Sexual", 9))

