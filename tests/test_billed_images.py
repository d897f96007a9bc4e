"""No billed image is ever discarded: every answer the service billed ends in History or in the person's hands,
and every message says whether anything was sent or billed.

- the deadline drill: a burst on a tight quota with latency near the deadline, so some requests would
  leave with little time left. Those are not sent (and say so); those sent are awaited past the deadline
  and saved; the emulator's 200s are counted against History: 0 lost.
- the disk-full drill: a full disk is simulated (``shutil.disk_usage`` reports little free space, or writes
  into the outputs folder fail with ENOSPC, the way a full filesystem fails them; a real tiny tmpfs would
  need mount rights these tests do not have). With too little space nothing is sent; when the write
  itself fails, the image is offered from memory, says why it is not in History, leaves no ``.tmp``
  behind, and goes into History with the next image saved there.
- Stop after sending: the wait ends, the exchange and the save do not.
- the client's own accounts: not sent for lack of quota (fake clock), accepted but not fetched.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import FAST, FakeClock, FakeService, bfl_ok, foundry_env, solid_image
from flux_ui import durable
from flux_ui import errors as e
from flux_ui.client import FoundryClient, GenerationRequest
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.history import History
from flux_ui.pacing import Quota
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import handlers, progress

SMALL = {"width": 256, "height": 256}
Outcome = handlers.Generated | e.FluxError


async def click(runtime: Runtime, prompt: str, model: str = "FLUX.2-pro") -> Outcome:
    """What a tab's run ends with: the image the stream yields last, or the error it raised."""
    last: Any = None
    try:
        async for step in progress.stream(runtime, model, prompt, dict(SMALL)):
            last = step
    except e.FluxError as err:
        return err
    assert isinstance(last, handlers.Generated)
    return last


@contextmanager
def own_runtime(tmp_path: Path, config: EmulatorConfig, quotas: dict[str, Quota] | None = None,
                **client: object) -> Iterator[Runtime]:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None)
    runtime = start_runtime(settings, config, {**FAST, **(quotas or {})}, **client)
    try:
        yield runtime
    finally:
        runtime.close_sync()


def answered(runtime: Runtime) -> list[str]:
    """Prompts of the generation requests the emulator answered 200, with an image: each one is billed."""
    assert runtime.emulator is not None
    return [r["prompt"] for r in runtime.emulator.requests() if r["route"] == "bfl" and r["status"] == 200
            and r["output"]]


def kept(runtime: Runtime) -> list[str]:
    """Prompts of the images flux-ui kept: in History, or held for the person to download."""
    return [x.prompt for x in runtime.history.list()] + [u.result.prompt for u in runtime.unsaved.items()]


# --- the deadline drill -------------------------------------------------------------------------------------------

async def test_deadline_drill_loses_no_billed_image(tmp_path: Path) -> None:
    """12 at once on 4 per 0.5 s with a 1.3 s deadline and answers taking 0.5–1.2 s: the first wave answers in
    time, the second leaves with about 0.6 s left and mostly answers after the deadline, the third would leave
    with too little left. The client's floor is the least the emulator takes, 0.5 s."""
    config = EmulatorConfig(rng_seed=4, faults={"FLUX.2-pro": [Fault("latency", seconds=0.5, jitter_s=0.7)]})
    with own_runtime(tmp_path, config, {"FLUX.2-pro": Quota(4, 0.5)}, deadline_s=1.3, send_floor_s=0.5) as runtime:
        outcomes = await asyncio.gather(*(click(runtime, f"burst {i}") for i in range(12)))
        await runtime.jobs.wait(5.0)  # the late answers land
        billed, saved = answered(runtime), kept(runtime)
    images = [o for o in outcomes if isinstance(o, handlers.Generated)]
    errors = [o for o in outcomes if isinstance(o, e.FluxError)]
    late = [err for err in errors if err.sent]
    not_sent = [err for err in errors if not err.sent]
    lost = len(set(billed) - set(saved))
    print(f"\ndeadline drill: {len(outcomes)} clicks, {len(billed)} answered 200, {len(images)} shown in time, "
          f"{len(late)} answered after the deadline and saved, {len(not_sent)} not sent, {lost} billed images lost")

    assert lost == 0 and sorted(billed) == sorted(saved)
    assert len(images) >= 3 and late and not_sent  # every case of the drill happened
    for err in late:
        assert isinstance(err, e.ServiceTimeoutError) and err.billed == "maybe"
        assert "No image from FLUX.2 [pro] within 1.3 s" in str(err)
        assert "saves it to History when it arrives" in str(err)
    for err in not_sent:
        assert err.billed == "no" and "not sent" in str(err) and "Nothing was sent, so nothing is billed." in str(err)
    assert len(billed) == len(images) + len(late)  # what was not sent never reached the emulator


# --- the disk-full drill ------------------------------------------------------------------------------------------

async def test_no_request_is_sent_when_the_outputs_disk_is_nearly_full(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=10 * 1_048_576))
    with own_runtime(tmp_path, EmulatorConfig(rng_seed=1)) as runtime:
        outcome = await click(runtime, "a full disk")
        assert runtime.emulator is not None and runtime.emulator.requests() == []
    assert isinstance(outcome, e.NoRoomError) and (outcome.sent, outcome.billed) == (False, "no")
    text = str(outcome)
    assert text.startswith("Not sent") and str(tmp_path / "outputs") in text and "10 MB free" in text
    assert "wants 64 MB" in text and "Nothing was sent, so nothing is billed." in text


@contextmanager
def disk_full_in(folder: Path) -> Iterator[None]:
    """Writes into ``folder`` fail with ENOSPC after their first bytes, as on a full filesystem (elsewhere,
    such as the temp folder the download copy goes to, they work)."""
    real_open = builtins.open

    class Full:
        def __init__(self, file: Any) -> None:
            self._file = file

        def write(self, data: bytes) -> int:
            self._file.write(data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._file, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self._file.close()

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        opened = real_open(file, mode, *args, **kwargs)
        return Full(opened) if "w" in mode and Path(file).resolve().is_relative_to(folder.resolve()) else opened

    durable.open = full_open  # type: ignore[attr-defined]  # the module's own name, not builtins
    try:
        yield
    finally:
        del durable.open  # type: ignore[attr-defined]


async def test_an_image_the_disk_refuses_is_offered_from_memory_and_saved_later(tmp_path: Path) -> None:
    with own_runtime(tmp_path, EmulatorConfig(rng_seed=2)) as runtime:
        outputs = runtime.history.folder
        with disk_full_in(outputs):
            outcomes = await asyncio.gather(*(click(runtime, f"refused {i}") for i in range(3)))
        assert all(isinstance(o, handlers.Generated) for o in outcomes), outcomes
        assert runtime.history.list() == [] and sorted(answered(runtime)) == sorted(kept(runtime))
        assert list(outputs.rglob("*.tmp")) == []  # no partial file left behind
        for shown in outcomes:
            assert isinstance(shown, handlers.Generated) and not shown.saved
            offered = Path(shown.path)
            assert offered.is_file() and not offered.is_relative_to(outputs) and offered.read_bytes()
            caption = handlers.caption(shown.result)
            assert f"could not be saved in the outputs folder {outputs} (No space left on device)" in caption
            assert "so it is not in History" in caption and "Download it now" in caption
        after = await click(runtime, "room again")  # the disk has room again: that save takes the others along
        assert isinstance(after, handlers.Generated) and after.saved
        assert sorted(x.prompt for x in runtime.history.list()) == ["refused 0", "refused 1", "refused 2", "room again"]
        assert len(runtime.unsaved) == 0 and not any(Path(o.path).exists() for o in outcomes  # type: ignore[union-attr]
                                                    if isinstance(o, handlers.Generated))
        assert list(outputs.rglob("*.tmp")) == []


def test_a_failed_write_leaves_no_temporary(tmp_path: Path) -> None:
    history = History(tmp_path)
    try:
        with disk_full_in(tmp_path), pytest.raises(OSError):
            durable.write_whole(tmp_path / "x.png", b"\x89PNG" * 100)
    finally:
        history.close()
    assert list(tmp_path.rglob("*.tmp")) == [] and not (tmp_path / "x.png").exists()


# --- Stop after sending -------------------------------------------------------------------------------------------

async def test_an_image_sent_before_stop_lands_in_history(tmp_path: Path) -> None:
    """Stop is the stream closed (what Gradio's cancel does); the service answers only after it."""
    gate, arrived = asyncio.Event(), asyncio.Event()
    requests: list[httpx.Request] = []

    async def service(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        arrived.set()
        await gate.wait()
        return bfl_ok(solid_image(size=(256, 256)))

    settings = load_settings(foundry_env(), dotenv_path=None)
    client = FoundryClient(settings, transport=httpx.MockTransport(service))
    runtime = Runtime(settings, client, History(tmp_path / "outputs"))
    try:
        stream = progress.stream(runtime, "FLUX.2-pro", "stopped after sending", dict(SMALL))
        assert "sent to FLUX.2 [pro]" in await anext(stream)
        await arrived.wait()
        await stream.aclose()  # Stop
        assert runtime.history.list() == [] and len(runtime.jobs) == 1  # the wait is over, the exchange is not
        gate.set()
        await runtime.jobs.wait(5.0)
        assert [x.prompt for x in runtime.history.list()] == ["stopped after sending"] and len(requests) == 1
    finally:
        await runtime.aclose()


# --- the client's accounts of what was sent and billed ------------------------------------------------------------

async def test_a_request_the_quota_cannot_send_in_time_is_not_sent(fake: FakeService) -> None:
    """On a fake clock: the quota's next slot is 60 s away and the deadline 30 s, so the second request is
    refused at once, instead of being sent when its answer could no longer be awaited."""
    clock = FakeClock()
    settings = load_settings(foundry_env(FLUX_DEPLOYMENTS="FLUX.2-pro:1/60s"), dotenv_path=None)
    async with FoundryClient(settings, transport=fake.transport, sleep=clock.sleep, clock=clock,
                             deadline_s=30) as client:
        await client.generate(GenerationRequest("FLUX.2-pro", "first", (), dict(SMALL)))
        with pytest.raises(e.ServiceTimeoutError) as caught:
            await client.generate(GenerationRequest("FLUX.2-pro", "second", (), dict(SMALL)))
    assert len(fake.requests) == 1 and clock.waits == []
    assert (caught.value.sent, caught.value.billed) == (False, "no")
    assert "The request was not sent to FLUX.2 [pro]" in str(caught.value) and "had no free slot in time" in str(
        caught.value)


async def test_a_result_that_cannot_be_fetched_says_it_is_billed(fake: FakeService) -> None:
    link = "https://x.blob.core.windows.net/r.jpg?se=1"
    fake.queue = [httpx.Response(200, json={"data": [{"url": link}]}), *[httpx.Response(503)] * 3]
    clock = FakeClock()
    settings = load_settings(foundry_env(), dotenv_path=None)
    async with FoundryClient(settings, transport=fake.transport, sleep=clock.sleep, clock=clock) as client:
        with pytest.raises(e.ServiceError) as caught:
            await client.generate(GenerationRequest("FLUX.2-pro", "fetched never", (), dict(SMALL)))
    assert [r.method for r in fake.requests] == ["POST", "GET", "GET", "GET"]  # fetched again, never regenerated
    assert (caught.value.sent, caught.value.billed) == (True, "yes")
    assert "The service accepted the request, so it is billed" in str(caught.value)
    assert "Generate again to get one; that is billed again." in str(caught.value)


async def test_an_error_answer_says_nothing_is_billed(fake: FakeService) -> None:
    fake.handler = lambda r: httpx.Response(400, json={"error": {"code": "bad", "message": "no such parameter"}})
    async with FoundryClient(load_settings(foundry_env(), dotenv_path=None), transport=fake.transport) as client:
        with pytest.raises(e.BadRequestError) as caught:
            await client.generate(GenerationRequest("FLUX.2-pro", "bad", (), dict(SMALL)))
    assert (caught.value.sent, caught.value.billed) == (True, "no")
    assert str(caught.value).endswith("The service answered with an error and made no image, so nothing is billed.")
