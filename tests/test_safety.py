"""Content safety against the emulator on loopback: prompts checked before sending, results before
showing, images fitted to the API's limits, outages failing closed (or open when configured), both
kinds of auth, the quarantine (kept whole, counted, never served), and the settings' messages."""

from __future__ import annotations

import asyncio
import io
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from app_fixtures import raw_get, running_app
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from flux_ui.emulator import Emulator
from flux_ui.emulator.auth import make_entra_token
from flux_ui.emulator.content_safety import safety_fault
from flux_ui.emulator.render import RenderRequest, render_image
from flux_ui.errors import (
    SafetyBlockedError,
    SafetyConnectionError,
    SafetyStatusError,
    SafetyTimeoutError,
    SafetyUnavailableError,
)
from flux_ui.history import History
from flux_ui.safety import SafetyGuard, Verdict, fit_for_analysis, instance_is_public, split_text
from flux_ui.safety.images import MAX_BYTES, MAX_SIDE, MIN_SIDE
from flux_ui.settings import SettingsError, load_settings, variables
from flux_ui.settings_safety import SafetySettings

NOTHING_SENT = "Nothing was sent, so nothing is billed."


def guard_for(emu: Emulator, outputs: Path, public: bool = True, key: str | None = None,
              **env: str) -> SafetyGuard:
    """A guard on the emulator: by FLUX_UI_SAFETY=emulator, or as an endpoint (Entra when ``key`` is "")."""
    options: dict[str, Any] = {k: env.pop(k) for k in ("timeout_s", "credential") if k in env}
    base = {"FLUX_OUTPUT_DIR": str(outputs), **env}
    if key is None:
        settings = load_settings({"FLUX_UI_SAFETY": "emulator", **base}, dotenv_path=None)
        settings = settings.with_emulator(emu.base_url, emu.api_key)
    else:
        settings = load_settings({"CONTENT_SAFETY_ENDPOINT": emu.base_url, "CONTENT_SAFETY_KEY": key,
                                  "FLUX_EMULATOR": "on", **base}, dotenv_path=None)
    guard = SafetyGuard.from_settings(settings, public=public, **options)
    assert guard is not None
    return guard


def picture(prompt: str, size: tuple[int, int] = (512, 384), fmt: str = "PNG", noise: bool = False) -> bytes:
    """What the emulator's renderer makes for ``prompt`` (the marker when it asks), as a file."""
    img = render_image(RenderRequest("FLUX.2-pro", "FLUX.2 [pro]", prompt, 1, *size, "png", (),
                                     "safety-marker" in prompt))
    if noise:  # fine grain that PNG cannot pack, away from the marker's corner
        half = (size[0], size[1] // 2)
        img.paste(Image.frombytes("RGB", half, random.Random(3).randbytes(half[0] * half[1] * 3)), (0, 0))
    out = io.BytesIO()
    img.save(out, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
    return out.getvalue()


def logged(emu: Emulator, route: str) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["route"] == route]


# --- prompts ---------------------------------------------------------------------------------------------


async def test_a_prompt_with_the_configured_word_is_refused_with_its_category(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path)
    with pytest.raises(SafetyBlockedError) as blocked:
        await guard.screen_prompt("a knight, safety-violence, at dawn")
    await guard.aclose()
    err = blocked.value
    assert "Violence (high: severity 6, over this instance's limit of 2)" in str(err) and NOTHING_SENT in str(err)
    assert (err.sent, err.billed, err.quarantined) == (False, "no", None)
    assert err.verdict.blocked_by == ("Violence",) and err.verdict.target == "prompt"
    assert [e["route"] for e in emu.requests()] == ["text:analyze"]  # only Content Safety was asked


async def test_a_clean_prompt_passes_with_its_verdict(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path)
    verdict = await guard.screen_prompt("a quiet harbour in the fog")
    await guard.aclose()
    assert verdict.checked and not verdict.blocked and verdict.message() == ""
    assert {s.category: s.severity for s in verdict.categories} == {"Hate": 0, "SelfHarm": 0, "Sexual": 0,
                                                                    "Violence": 0}
    sent = logged(emu, "text:analyze")[0]
    assert sent["params"]["outputType"] == "FourSeverityLevels" and sent["auth"] == "subscription-key"


async def test_limits_apply_per_category(emu: Emulator, tmp_path: Path) -> None:
    lenient = guard_for(emu, tmp_path)
    assert not (await lenient.screen_prompt("some mild-violence")).blocked  # severity 2 is let through
    strict = guard_for(emu, tmp_path, FLUX_UI_SAFETY_MAX_SEVERITY="4,Violence=0")
    with pytest.raises(SafetyBlockedError, match="limit of 0"):
        await strict.screen_prompt("some mild-violence")
    with pytest.raises(SafetyBlockedError, match=r"Hate .*limit of 4"):
        await strict.screen_prompt("safety-hate")
    await lenient.aclose()
    await strict.aclose()


async def test_a_blocklist_hit_names_the_list_but_not_the_term(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path, FLUX_UI_SAFETY_BLOCKLISTS="flux-ui-demo")
    with pytest.raises(SafetyBlockedError) as blocked:
        await guard.screen_prompt("a poster with the blocked-term on it")
    assert "a term on the blocklist flux-ui-demo" in str(blocked.value) and "blocked-term" not in str(blocked.value)
    assert blocked.value.verdict.blocklist_hits[0].text == "blocked-term"  # kept for the owner
    assert logged(emu, "text:analyze")[0]["params"]["blocklistNames"] == ["flux-ui-demo"]
    missing = guard_for(emu, tmp_path, FLUX_UI_SAFETY_BLOCKLISTS="no-such-list")
    with pytest.raises(SafetyStatusError) as refused:
        await missing.screen_prompt("anything")
    assert refused.value.status == 404 and "FLUX_UI_SAFETY_BLOCKLISTS" in str(refused.value)
    await guard.aclose()
    await missing.aclose()


async def test_a_long_prompt_is_checked_in_parts(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path)
    words = " ".join(f"word{i}" for i in range(4_000))  # about 32,000 characters
    verdict = await guard.screen_prompt(words)
    parts = [e["prompt"] for e in logged(emu, "text:analyze")]
    assert verdict.parts == len(parts) == 4 and all(len(p) <= 10_000 for p in parts)
    assert " ".join(parts) == words  # cut at spaces: nothing lost, nothing doubled
    emu.clear()
    with pytest.raises(SafetyBlockedError):
        await guard.screen_prompt(words + " safety-selfharm")
    assert len(logged(emu, "text:analyze")) == 4  # the word was in the last part
    await guard.aclose()


def test_a_term_cut_by_a_hard_split_is_whole_in_one_part() -> None:
    text = "x" * 9_990 + "safety-hate" + "y" * 12_000  # no whitespace: parts are cut by count
    parts = split_text(text)
    assert all(len(p) <= 10_000 for p in parts) and any("safety-hate" in p for p in parts)
    assert split_text("short") == ["short"] and len(split_text("a " * 5_000)) == 1


# --- results ---------------------------------------------------------------------------------------------


async def test_a_result_with_the_marker_is_quarantined_with_its_verdict(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path)
    image = picture("a cat safety-marker")
    with pytest.raises(SafetyBlockedError) as blocked:
        await guard.screen_image(image, about={"model": "FLUX.2-pro", "prompt": "a cat safety-marker", "user": "ana"})
    err = blocked.value
    assert "flagged the result for Sexual (high" in str(err) and "billed" in str(err)
    assert (err.sent, err.billed) == (True, "yes") and err.quarantined is not None
    assert err.quarantined.read_bytes() == image and err.quarantined.parent == tmp_path / "quarantine"
    record = json.loads(err.quarantined.with_suffix(".json").read_text())
    assert record["reason"] == "blocked" and record["verdict"]["blocked_by"] == ["Sexual"]
    assert record["about"]["user"] == "ana" and record["bytes"] == len(image)
    assert oct(err.quarantined.stat().st_mode & 0o777) == "0o600"
    assert guard.quarantined() == 1
    assert not (await guard.screen_image(picture("a cat"))).blocked and guard.quarantined() == 1
    await guard.aclose()


async def test_the_marker_is_found_after_downscaling_and_jpeg(emu: Emulator, tmp_path: Path) -> None:
    """Too wide for the API (7,600 px) and too big (noise): fitted, re-encoded, and still blocked."""
    guard = guard_for(emu, tmp_path)
    image = picture("a wide safety-marker panorama", size=(7_600, 1_200), noise=True)
    assert len(image) > MAX_BYTES
    with pytest.raises(SafetyBlockedError) as blocked:
        await guard.screen_image(image)
    sent = logged(emu, "image:analyze")[0]["output"]
    assert (sent["width"], sent["format"], sent["marker"]) == (MAX_SIDE, "JPEG", True)
    record = json.loads(Path(blocked.value.quarantined).with_suffix(".json").read_text())
    assert record["analysed_as"].startswith("resized from 7600×1200 to 7200×1137")
    await guard.aclose()


def test_an_8000_by_100_image_is_resized_within_the_limits() -> None:
    fitted = fit_for_analysis(picture("a strip", size=(8_000, 100)))
    assert fitted.size == (7_200, 90) and fitted.original == (8_000, 100) and fitted.changed
    assert Image.open(io.BytesIO(fitted.data)).size == (7_200, 90) and len(fitted.data) <= MAX_BYTES


@pytest.mark.parametrize(("size", "expected"), [((30, 20), (75, 50)), ((8_000, 5), (7_200, MIN_SIDE)),
                                                ((512, 384), (512, 384))])
def test_small_and_elongated_images_are_brought_within_the_limits(size: tuple[int, int],
                                                                  expected: tuple[int, int]) -> None:
    data = picture("x", size=size)
    fitted = fit_for_analysis(data)
    assert fitted.size == expected and Image.open(io.BytesIO(fitted.data)).size == expected
    assert (fitted.data == data) is (size == expected)  # one that fits is sent as it was


async def test_resized_images_are_taken_by_the_emulator(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path)
    for size in ((8_000, 100), (30, 20), (8_000, 5)):
        assert not (await guard.screen_image(picture("clean", size=size))).blocked
    assert [e["status"] for e in logged(emu, "image:analyze")] == [200, 200, 200]
    await guard.aclose()


# --- outages ---------------------------------------------------------------------------------------------


async def test_a_500_fails_closed_with_a_message(emu: Emulator, tmp_path: Path) -> None:
    emu.set_faults("content-safety", [safety_fault("status", status=500)])
    guard = guard_for(emu, tmp_path)
    with pytest.raises(SafetyStatusError) as refused:
        await guard.screen_prompt("a calm lake")
    message = str(refused.value)
    assert "Content Safety answered text:analyze with 500 InternalError" in message and NOTHING_SENT in message
    assert "FLUX_UI_SAFETY_FAIL_OPEN" in message and refused.value.status == 500
    assert [e["status"] for e in emu.requests()] == [500, 500]  # tried once more, then refused
    with pytest.raises(SafetyStatusError) as unchecked:
        await guard.screen_image(picture("a calm lake"))
    assert unchecked.value.billed == "yes" and unchecked.value.quarantined is not None
    assert json.loads(unchecked.value.quarantined.with_suffix(".json").read_text())["reason"] == "unchecked"
    await guard.aclose()


@pytest.mark.parametrize(("fail_open", "public", "through"), [
    ("yes", True, True), ("private", False, True), ("private", True, False), ("no", False, False)])
async def test_fail_open_when_configured(emu: Emulator, tmp_path: Path, fail_open: str, public: bool,
                                         through: bool) -> None:
    emu.set_faults("content-safety", [safety_fault("status", status=503)])
    guard = guard_for(emu, tmp_path, public=public, FLUX_UI_SAFETY_FAIL_OPEN=fail_open)
    if through:
        verdict = await guard.screen_prompt("a calm lake")
        assert not verdict.checked and "503" in (verdict.error or "")
        assert not (await guard.screen_image(picture("x"))).checked and guard.quarantined() == 0
    else:
        with pytest.raises(SafetyUnavailableError):
            await guard.screen_prompt("a calm lake")
    await guard.aclose()


async def test_a_short_429_is_waited_out_once(emu: Emulator, tmp_path: Path) -> None:
    emu.set_faults("content-safety", [safety_fault("status", status=429, retry_after_s=0.05, count=1)])
    guard = guard_for(emu, tmp_path)
    assert (await guard.screen_prompt("a calm lake")).checked
    assert [e["status"] for e in emu.requests()] == [429, 200]
    await guard.aclose()


async def test_a_timeout_a_malformed_answer_and_no_connection_are_typed(emu: Emulator, tmp_path: Path) -> None:
    emu.set_faults("content-safety", [safety_fault("latency", seconds=1.0, count=1)])
    guard = guard_for(emu, tmp_path, timeout_s=0.2)  # type: ignore[arg-type]
    with pytest.raises(SafetyTimeoutError, match=r"did not answer within 0\.2 s"):
        await guard.screen_prompt("a calm lake")
    emu.set_faults("content-safety", [safety_fault("malformed", count=1)])
    with pytest.raises(SafetyUnavailableError, match="not JSON"):
        await guard.screen_prompt("a calm lake")
    await guard.aclose()
    closed = load_settings({"CONTENT_SAFETY_ENDPOINT": "http://127.0.0.1:9", "CONTENT_SAFETY_KEY": "k" * 16,
                            "FLUX_OUTPUT_DIR": str(tmp_path)}, dotenv_path=None)
    nowhere = SafetyGuard.from_settings(closed, public=True)
    assert nowhere is not None
    with pytest.raises(SafetyConnectionError, match="CONTENT_SAFETY_ENDPOINT"):
        await nowhere.screen_prompt("a calm lake")
    await nowhere.aclose()


# --- auth ------------------------------------------------------------------------------------------------


class Credential:
    """DefaultAzureCredential's stand-in: tokens the emulator accepts, the first already expired."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: object) -> SimpleNamespace:
        self.scopes.append(scopes)
        return SimpleNamespace(token=make_entra_token(expires_in=-60 if len(self.scopes) == 1 else 3600),
                               expires_on=9e9)


async def test_entra_id_without_a_key(emu: Emulator, tmp_path: Path) -> None:
    credential = Credential()
    guard = guard_for(emu, tmp_path, key="", credential=credential)  # type: ignore[arg-type]
    assert guard.settings.auth == "entra"
    assert (await guard.screen_prompt("a calm lake")).checked
    await guard.aclose()
    assert [e["auth"] for e in emu.requests()] == ["bad", "entra"]  # the expired token, then a fresh one
    assert credential.scopes == [("https://cognitiveservices.azure.com/.default",)] * 2


async def test_a_key_as_an_endpoint_setting_and_a_wrong_key(emu: Emulator, tmp_path: Path) -> None:
    guard = guard_for(emu, tmp_path, key=emu.api_key)
    assert (await guard.screen_prompt("a calm lake")).checked
    await guard.aclose()
    wrong = guard_for(emu, tmp_path, key="not-the-content-safety-key")
    with pytest.raises(SafetyStatusError, match="Check CONTENT_SAFETY_KEY") as refused:
        await wrong.screen_prompt("a calm lake")
    await wrong.aclose()
    assert refused.value.status == 401 and "not-the-content-safety-key" not in str(refused.value)
    assert [e["auth"] for e in emu.requests()] == ["subscription-key", "bad"]  # a 401 is not retried


async def test_a_failed_sign_in_says_how_to_fix_it_for_content_safety(emu: Emulator, tmp_path: Path) -> None:
    class NoSignIn:
        def get_token(self, *scopes: str, **_: object) -> object:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    guard = guard_for(emu, tmp_path, key="", credential=NoSignIn())  # type: ignore[arg-type]
    with pytest.raises(SafetyUnavailableError) as refused:
        await guard.screen_prompt("a calm lake")
    await guard.aclose()
    assert "failed to retrieve a token" in str(refused.value) and "CONTENT_SAFETY_KEY" in str(refused.value)
    assert "AZURE_API_KEY" not in str(refused.value) and emu.requests() == []


# --- the quarantine is never served ----------------------------------------------------------------------


def test_a_quarantined_result_is_never_served_nor_listed(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    with running_app(outputs, env={"FLUX_UI_SAFETY": "emulator"}) as app:
        guard = SafetyGuard.from_settings(app.runtime.settings, public=False)
        assert guard is not None and app.runtime.settings.safety.endpoint == app.emulator.base_url

        async def screen() -> SafetyBlockedError:
            try:
                with pytest.raises(SafetyBlockedError) as blocked:
                    await guard.screen_image(picture("a cat safety-marker"))
                return blocked.value
            finally:
                await guard.aclose()

        kept = asyncio.run(screen()).quarantined
        assert kept is not None and kept.is_file()
        for path in (kept, kept.with_suffix(".json")):
            status, body = raw_get(app, f"/gradio_api/file={path}")
            assert status == 404 and body != path.read_bytes()
        assert logged(app.emulator, "image:analyze")[0]["auth"] == "subscription-key"
    reopened = History(outputs)  # recovery adopts stray images from its day folders only
    assert reopened.list() == [] and kept.is_file()


# --- settings ------------------------------------------------------------------------------------------


def test_safety_is_off_until_configured_and_its_variables_are_documented() -> None:
    assert load_settings({}, dotenv_path=None).safety == SafetySettings()
    names = [row[0] for row in variables()]
    assert {"CONTENT_SAFETY_ENDPOINT", "CONTENT_SAFETY_KEY", "FLUX_UI_SAFETY", "FLUX_UI_SAFETY_MAX_SEVERITY",
            "FLUX_UI_SAFETY_BLOCKLISTS", "FLUX_UI_SAFETY_FAIL_OPEN"} <= set(names)
    service = load_settings({"CONTENT_SAFETY_ENDPOINT": "https://cs.cognitiveservices.azure.com/",
                             "FLUX_UI_SAFETY_MAX_SEVERITY": "Sexual=0, violence=4", "FLUX_UI_SAFETY_BLOCKLISTS":
                             "a,b,a"}, dotenv_path=None).safety
    assert (service.mode, service.endpoint, service.auth, service.blocklists) == (
        "service", "https://cs.cognitiveservices.azure.com", "entra", ("a", "b"))
    assert dict(service.max_severity) == {"Hate": 2, "SelfHarm": 2, "Sexual": 0, "Violence": 4}
    assert load_settings({"CONTENT_SAFETY_ENDPOINT": "https://cs.example", "FLUX_UI_SAFETY": "off"},
                         dotenv_path=None).safety.mode == "off"


@pytest.mark.parametrize(("env", "says"), [
    ({"FLUX_UI_SAFETY": "sometimes"}, "FLUX_UI_SAFETY='sometimes' is not auto, on, off or emulator"),
    ({"FLUX_UI_SAFETY": "on"}, "FLUX_UI_SAFETY=on needs CONTENT_SAFETY_ENDPOINT"),
    ({"FLUX_UI_SAFETY_MAX_SEVERITY": "7"}, "FLUX_UI_SAFETY_MAX_SEVERITY: '7' is neither a severity from 0 to 6"),
    ({"FLUX_UI_SAFETY_MAX_SEVERITY": "Gore=2"}, "'Gore' is not a Content Safety category (use Hate, SelfHarm"),
    ({"FLUX_UI_SAFETY_MAX_SEVERITY": "Sexual=high"}, "'Sexual=high' is not a severity from 0 to 6"),
    ({"FLUX_UI_SAFETY_BLOCKLISTS": "brand terms"}, "FLUX_UI_SAFETY_BLOCKLISTS: 'brand terms' is not a blocklist"),
    ({"FLUX_UI_SAFETY_FAIL_OPEN": "sometimes"}, "FLUX_UI_SAFETY_FAIL_OPEN='sometimes' is not no, private or yes"),
    ({"CONTENT_SAFETY_KEY": "abc"}, "CONTENT_SAFETY_KEY is set but CONTENT_SAFETY_ENDPOINT is not"),
    ({"CONTENT_SAFETY_ENDPOINT": "http://cs.example.com"}, "CONTENT_SAFETY_ENDPOINT must use https"),
    ({"CONTENT_SAFETY_ENDPOINT": "https://cs.example", "FLUX_UI_SAFETY": "emulator"},
     "FLUX_UI_SAFETY=emulator checks against the local emulator, but CONTENT_SAFETY_ENDPOINT is set too"),
    ({"FLUX_UI_SAFETY": "emulator", "AZURE_ENDPOINT": "https://r.services.ai.azure.com", "AZURE_API_KEY": "k" * 12},
     "FLUX_UI_SAFETY=emulator needs flux-ui itself on the local emulator"),
])
def test_a_bad_safety_setting_names_the_variable_and_the_fix(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(env, dotenv_path=None)
    assert says in str(refused.value) and "for example" in str(refused.value)


def test_the_outage_policy_and_who_counts_as_public() -> None:
    assert [SafetySettings(fail_open=f).fails_open(p) for f in ("no", "private", "yes") for p in (False, True)] == [
        False, False, True, False, True, True]
    loopback = load_settings({}, dotenv_path=None)
    team = load_settings({"FLUX_UI_USERS": "ana:long-passphrase-1"}, dotenv_path=None)
    assert not instance_is_public(loopback, "127.0.0.1", share=False)
    assert instance_is_public(team, "127.0.0.1", share=False) and instance_is_public(loopback, "0.0.0.0", False)
    assert instance_is_public(loopback, "127.0.0.1", share=True)
    on = {"FLUX_UI_SAFETY": "emulator", "FLUX_UI_SAFETY_FAIL_OPEN": "true"}
    assert load_settings(on, dotenv_path=None).safety.fail_open == "yes"


def test_a_verdict_over_several_categories_says_each() -> None:
    from flux_ui.safety.verdict import Analysis, CategoryScore

    verdict = Verdict.of("image", Analysis((CategoryScore("Hate", 4), CategoryScore("SelfHarm", 6))),
                         {"Hate": 2, "SelfHarm": 2})
    assert verdict.blocked_by == ("SelfHarm", "Hate")
    assert verdict.reason() == ("Self-harm (high: severity 6, over this instance's limit of 2) and Hate (medium: "
                                "severity 4, over this instance's limit of 2)")
