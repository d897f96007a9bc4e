"""Content safety wired into a running flux-ui (``FLUX_UI_SAFETY=emulator``): prompts checked before anything
is sent to FLUX or waits for quota, results before History or the page, each image of a fan-out on its own,
outages failing closed (open only where configured), the quarantine never served, the banner and the
start-up lines saying which service checks, and the guard closed with the runtime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gradio_client import Client

from app import safety_line, startup_lines
from app_fixtures import AppUnderTest, raw_get, running_app
from conftest import FAST
from flux_ui.client import COMMITTED_STAGES, ProgressEvent
from flux_ui.emulator import Emulator, EmulatorConfig, Fault
from flux_ui.emulator.content_safety import safety_fault
from flux_ui.errors import SafetyBlockedError, SafetyStatusError, SafetyUnavailableError, ValidationError
from flux_ui.history import History
from flux_ui.identity import LOCAL, User
from flux_ui.pacing import Quota
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.safety import SafetyGuard
from flux_ui.settings import load_settings
from flux_ui.ui import banner, handlers, quarantine_line, quota_view
from flux_ui.ui.fanout import Fanout, Slot, run_fanout

PRO = "FLUX.2-pro"
SMALL = {"width": 256, "height": 256}
NOTHING_SENT = "Nothing was sent, so nothing is billed."
SAFE = {"FLUX_UI_SAFETY": "emulator"}


def routes(emu: Emulator) -> list[str]:
    return [e["route"] for e in emu.requests()]


async def started(outputs: Path, env: dict[str, str] | None = None, public: bool = False,
                  quotas: dict[str, Quota] | None = None) -> Runtime:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(outputs), **SAFE, **(env or {})}, dotenv_path=None)
    return start_runtime(settings, EmulatorConfig(rng_seed=3), {**FAST, **(quotas or {})}, public=public)


@pytest.fixture
async def safe(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime whose content safety runs against its own emulator, FLUX.2 [pro] allowed one request a minute."""
    running = await started(tmp_path / "outputs", quotas={PRO: Quota(1, 60.0)})
    yield running
    await running.aclose()


def emu_of(runtime: Runtime) -> Emulator:
    assert runtime.emulator is not None
    return runtime.emulator


def kept_records(runtime: Runtime) -> list[dict[str, Any]]:
    assert runtime.safety is not None
    return [json.loads(k.record.read_text()) for k in runtime.safety.quarantine.kept()]


# --- prompts -------------------------------------------------------------------------------------------------


async def test_a_refused_prompt_sends_nothing_and_takes_no_quota_slot(safe: Runtime) -> None:
    with pytest.raises(SafetyBlockedError) as refused:
        await handlers.generate(safe, PRO, "a knight at dawn, safety-violence", SMALL)
    err = refused.value
    assert "Violence" in str(err) and NOTHING_SENT in str(err) and (err.sent, err.billed) == (False, "no")
    assert routes(emu_of(safe)) == ["text:analyze"]  # no FLUX request at all
    pacing = safe.client.pacing(PRO)
    assert pacing is not None and pacing.available == 1  # the deployment's one slot is still free
    made = await handlers.generate(safe, PRO, "a knight at dawn", SMALL)
    assert made.saved and made.result.timings.paced_s < 1.0  # sent at once, in that slot
    assert routes(emu_of(safe)) == ["text:analyze", "text:analyze", "bfl", "image:analyze"]
    assert [e.prompt for e in safe.history.list()] == ["a knight at dawn"]


async def test_a_prompt_the_client_would_refuse_costs_no_check(safe: Runtime) -> None:
    with pytest.raises(ValidationError, match="The prompt is empty"):
        await handlers.generate(safe, PRO, " ", SMALL)
    assert routes(emu_of(safe)) == []


# --- results -------------------------------------------------------------------------------------------------


async def test_a_blocked_result_is_quarantined_with_its_verdict_and_never_saved(safe: Runtime) -> None:
    prompt = "a cat on a sofa, safety-marker"
    with pytest.raises(SafetyBlockedError) as blocked:
        await handlers.generate(safe, PRO, prompt, {**SMALL, "seed": 41})
    err = blocked.value
    assert "flagged the result for Sexual" in str(err) and "billed" in str(err)
    assert (err.sent, err.billed) == (True, "yes") and err.quarantined is not None and err.quarantined.is_file()
    assert routes(emu_of(safe)) == ["text:analyze", "bfl", "image:analyze"]
    assert safe.history.list() == [] and safe.styles.recent("text-to-image") == []  # not even a recent prompt
    [record] = kept_records(safe)
    assert record["reason"] == "blocked" and record["verdict"]["blocked_by"] == ["Sexual"]
    assert record["verdict"]["categories"]["Sexual"] == 6
    made_of = {"prompt": prompt, "model": PRO, "seed": 41, "tab": "text-to-image", "user": "local"}
    assert record["about"] | made_of == record["about"]
    assert safe.safety is not None and safe.safety.quarantined() == 1
    assert "**Quarantine** (only owners see this): 1 result blocked by Content Safety" in quarantine_line(safe, LOCAL)
    assert quarantine_line(safe, User("visitor-1", "visitor", anonymous=True)) == ""
    refresh = quota_view(safe)  # the quota panel's timer: as the person asking
    assert "Quarantine" in refresh(None) and "Quarantine" not in refresh(SimpleNamespace(username="bob"))
    assert History(safe.settings.output_dir).list() == []  # reopened: recovery does not adopt it either


async def test_a_result_that_arrives_after_stop_is_still_checked(safe: Runtime) -> None:
    emu = emu_of(safe)
    emu.set_faults(PRO, [Fault("latency", seconds=0.6)])
    events: list[ProgressEvent] = []
    task = asyncio.create_task(handlers.generate(safe, PRO, "a late owl, safety-marker", SMALL,
                                                 on_event=events.append))
    for _ in range(100):  # until the request is with the service
        if any(e.stage in COMMITTED_STAGES for e in events):
            break
        await asyncio.sleep(0.01)
    task.cancel()  # Stop: the wait ends, the billed request is still awaited by its job
    with pytest.raises(asyncio.CancelledError):
        await task
    await safe.jobs.wait(10)
    assert routes(emu)[-1] == "image:analyze" and safe.history.list() == []
    assert [r["about"]["prompt"] for r in kept_records(safe)] == ["a late owl, safety-marker"]


async def test_each_image_of_a_fanout_is_checked_on_its_own(safe: Runtime) -> None:
    prompts = ["a fox in snow", "a fox in snow", "a fox in snow, safety-marker", "a fox in snow"]
    run = Fanout([Slot("FLUX.2-flex", p, {**SMALL, "seed": i}) for i, p in enumerate(prompts)])
    async for _ in run_fanout(safe, run, "grid"):
        pass
    failed = [i for i, s in enumerate(run.slots) if s.error]
    assert failed == [2] and "flagged the result for Sexual" in (run.slots[2].error or "")
    assert run.images == 3 and len(safe.history.list()) == 3
    logged = routes(emu_of(safe))
    assert logged.count("image:analyze") == 4  # every image
    assert logged.count("text:analyze") == 2  # one check per distinct prompt, shared by the slots asking at once
    assert len(kept_records(safe)) == 1


# --- outages -------------------------------------------------------------------------------------------------


async def test_an_outage_fails_closed_for_prompts_and_results(safe: Runtime) -> None:
    emu = emu_of(safe)
    emu.set_faults("content-safety", [safety_fault("status", status=500)])
    with pytest.raises(SafetyStatusError) as refused:
        await handlers.generate(safe, PRO, "a calm lake", SMALL)
    message = str(refused.value)
    assert "Content Safety answered text:analyze with 500" in message and "did not send" in message
    assert NOTHING_SENT in message and "bfl" not in routes(emu)
    emu.set_faults("content-safety", [safety_fault("status", status=500, routes=("image:analyze",))])
    with pytest.raises(SafetyStatusError) as unchecked:
        await handlers.generate(safe, PRO, "a calm lake", SMALL)
    assert unchecked.value.billed == "yes" and "shows no result it could not check" in str(unchecked.value)
    assert safe.history.list() == [] and [r["reason"] for r in kept_records(safe)] == ["unchecked"]


@pytest.mark.parametrize(("public", "through"), [(False, True), (True, False)])
async def test_fail_open_private_lets_through_on_a_private_instance_only(tmp_path: Path, public: bool,
                                                                       through: bool) -> None:
    runtime = await started(tmp_path, {"FLUX_UI_SAFETY_FAIL_OPEN": "private"}, public=public)
    try:
        emu_of(runtime).set_faults("content-safety", [safety_fault("status", status=503)])
        if through:
            made = await handlers.generate(runtime, PRO, "a calm lake", SMALL)
            assert made.saved and "bfl" in routes(emu_of(runtime))
        else:
            with pytest.raises(SafetyUnavailableError):
                await handlers.generate(runtime, PRO, "a calm lake", SMALL)
            assert "bfl" not in routes(emu_of(runtime))
    finally:
        await runtime.aclose()


# --- the guard's shared prompt checks ------------------------------------------------------------------------


async def test_a_prompt_check_is_shared_and_remembered_for_a_minute(safe: Runtime) -> None:
    now = [0.0]
    guard = SafetyGuard.from_settings(safe.settings, public=True, clock=lambda: now[0])
    assert guard is not None
    emu = emu_of(safe)
    verdicts = await asyncio.gather(*(guard.screen_prompt("a quiet harbour") for _ in range(4)))
    assert all(v.checked and not v.blocked for v in verdicts) and routes(emu) == ["text:analyze"]
    await guard.screen_prompt("a quiet harbour")
    for _ in range(2):
        with pytest.raises(SafetyBlockedError, match="Hate"):
            await guard.screen_prompt("a harbour, safety-hate")
    assert routes(emu) == ["text:analyze"] * 2  # each remembered, the refusal too
    now[0] = 61.0
    await guard.screen_prompt("a quiet harbour")
    assert len(routes(emu)) == 3  # a minute on, asked again
    emu.set_faults("content-safety", [safety_fault("status", status=400, count=1)])
    with pytest.raises(SafetyStatusError):
        await guard.screen_prompt("a storm")
    assert (await guard.screen_prompt("a storm")).checked  # an outage is not remembered
    await guard.aclose()


async def test_the_runtime_closes_its_guard(tmp_path: Path) -> None:
    runtime = await started(tmp_path)
    assert runtime.safety is not None and runtime.settings.safety.endpoint == emu_of(runtime).base_url
    await runtime.aclose()
    assert runtime.safety.client._http.is_closed


# --- the launched app ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def safe_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    with running_app(tmp_path_factory.mktemp("outputs"), env=SAFE) as running:
        yield running


def test_a_blocked_result_is_never_served_by_the_launched_app(safe_app: AppUnderTest) -> None:
    client = Client(safe_app.url, verbose=False)
    prompt = "a red kite over hills, safety-marker"
    path, _, status, _ = client.predict(model=PRO, prompt=prompt, api_name="/generate", **SMALL)
    assert "⚠️" in status and "flagged the result for Sexual" in status and "billed" in status
    assert path is None
    [kept] = [k for k in safe_app.runtime.safety.quarantine.kept()  # type: ignore[union-attr]
              if json.loads(k.record.read_text())["about"]["prompt"] == prompt]
    for served in (kept.image, kept.record):
        status_code, body = raw_get(safe_app, f"/gradio_api/file={served}")
        assert status_code == 404 and body != served.read_bytes()
    entries, _ = client.predict(api_name="/history")
    assert prompt not in [e["prompt"] for e in entries]
    made = [e for e in safe_app.emulator.requests() if e["route"] == "bfl" and e["prompt"] == prompt]
    assert len(made) == 1 and made[0]["status"] == 200  # it was made (and billed), just not shown


def test_a_refused_prompt_through_the_api_sends_nothing(safe_app: AppUnderTest) -> None:
    client = Client(safe_app.url, verbose=False)
    prompt = "a harbour at night, safety-selfharm"
    _, _, status, _ = client.predict(model=PRO, prompt=prompt, api_name="/generate", **SMALL)
    assert status.startswith("⚠️") and "Self-harm" in status and NOTHING_SENT in status
    assert [e["route"] for e in safe_app.emulator.requests() if e["prompt"] == prompt] == ["text:analyze"]
    path, _, status, _ = client.predict(model=PRO, prompt="a harbour at night", api_name="/generate", **SMALL)
    assert status == "" and Path(path).is_file()  # a clean prompt still works


def test_the_banner_says_which_service_checks(safe_app: AppUnderTest, tmp_path: Path) -> None:
    said = banner(safe_app.runtime)
    assert "Content safety on" in said and "local emulator&#x27;s Content Safety" in said
    status, page = raw_get(safe_app, "/")
    assert status == 200 and b"Content safety on" in page
    key = "cs-banner-key-51f0c2d9e8a7b6"
    with Emulator(EmulatorConfig(content_safety_key=key)) as emu, running_app(tmp_path, env={
            "CONTENT_SAFETY_ENDPOINT": emu.base_url, "CONTENT_SAFETY_KEY": key}) as app:
        said = banner(app.runtime)
        _, page = raw_get(app, "/")
    host = emu.base_url.removeprefix("http://")
    assert f"Azure AI Content Safety at {host} (signed in with a key)" in said and key not in said
    assert host.encode() in page and key.encode() not in page
    with running_app(tmp_path / "off") as app:
        assert app.runtime.safety is None and "Content safety" not in banner(app.runtime)


def test_the_start_up_lines_say_what_checks_and_what_an_outage_does(tmp_path: Path) -> None:
    base = {"FLUX_OUTPUT_DIR": str(tmp_path)}
    off = load_settings(base, dotenv_path=None)
    assert safety_line(off, public=False) == "Content safety: off."
    assert "set CONTENT_SAFETY_ENDPOINT" in safety_line(off, public=True)
    key = "cs-startup-key-0a9b8c7d6e5f"
    on = load_settings({**base, "CONTENT_SAFETY_ENDPOINT": "https://my-safety.cognitiveservices.azure.com",
                        "CONTENT_SAFETY_KEY": key, "FLUX_UI_SAFETY_FAIL_OPEN": "private"}, dotenv_path=None)
    lines = startup_lines(on, "http://127.0.0.1:7860/", None, False, public=False)
    assert lines[-1] == ("Content safety: on, prompts and results checked by Azure AI Content Safety at "
                         "my-safety.cognitiveservices.azure.com (signed in with a key); while it cannot answer, "
                         "prompts and results are let through unchecked (FLUX_UI_SAFETY_FAIL_OPEN=private).")
    assert "are refused" in safety_line(on, public=True) and all(key not in line for line in lines)
