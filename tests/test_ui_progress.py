"""The status line while waiting, the caption under the image, and the quota panel, read as a person reads them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app_fixtures import running_app
from flux_ui.client.core import ProgressEvent
from flux_ui.client.retry import retry_line
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.pacing import PacerStatus, Quota
from flux_ui.registry import Route
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers, progress
from flux_ui.ui.handlers import Generated


def test_status_lines_say_where_the_request_is() -> None:
    assert "preparing" in progress.status_line("FLUX.2-pro", None, 0.2)
    paced = ProgressEvent("paced", "x", 1, elapsed_s=1.0, wait_s=5.0)
    assert "paced: waiting 3.0 s for a quota slot on FLUX.2 [pro]" in progress.status_line("FLUX.2-pro", paced, 3.0)
    retry = ProgressEvent("retrying", "a reason the client gives", 1, elapsed_s=2.0, wait_s=1.0)
    assert progress.status_line("FLUX.2-flex", retry, 2.5) == "⏳ 2.5 s · a reason the client gives"
    sent = ProgressEvent("sent", "x", 2, elapsed_s=0.0)
    assert "sent to FLUX.2 [flex], attempt 2" in progress.status_line("FLUX.2-flex", sent, 4.0)


def test_quota_lines() -> None:
    busy = PacerStatus(Quota(2, 8.0), available=0, next_slot_in=3.25, waiting=2)
    assert progress.quota_line("FLUX.2-pro", busy) == ("**FLUX.2 [pro]**: 0 of 2 free now, next in 3.2 s, "
                                                       "2 waiting (15 RPM)")
    free = PacerStatus(Quota(5, 10.0), available=5, next_slot_in=0.0, waiting=0)
    assert progress.quota_line("FLUX.2-pro", free) == "**FLUX.2 [pro]**: 5 of 5 free now (30 RPM)"
    assert progress.quota_line("FLUX.1-schnell", None) == "**FLUX.1 [schnell]**: not paced"


async def test_stream_reports_while_waiting_then_yields_the_saved_image(tmp_path: Path) -> None:
    config = EmulatorConfig(faults={"FLUX.2-pro": [Fault("latency", seconds=1.2, count=1)]})
    with running_app(tmp_path, emulator=config) as app:
        steps = [s async for s in progress.stream(app.runtime, "FLUX.2-pro", "slow fox", {})]
        panel = progress.quota_panel(app.runtime)
    lines, last = steps[:-1], steps[-1]
    assert len(lines) >= 2 and all("sent to FLUX.2 [pro]" in s for s in lines[1:])
    assert isinstance(last, Generated) and Path(last.path).exists()
    assert panel.count("\n") == len(app.runtime.models) - 1 and "FLUX.2 [flex]" in panel


async def test_stopping_the_stream_before_sending_sends_nothing(tmp_path: Path) -> None:
    with running_app(tmp_path, quotas={"FLUX.2-pro": Quota(1, 60.0)}) as app:
        first = [s async for s in progress.stream(app.runtime, "FLUX.2-pro", "takes the slot", {})][-1]
        stream = progress.stream(app.runtime, "FLUX.2-pro", "never sent", {})
        assert "paced" in await anext(stream)  # waiting a minute for the quota's next slot
        await stream.aclose()  # what Gradio does when Stop cancels the event
        await asyncio.sleep(0.1)
        assert len(app.runtime.jobs) == 0  # the job went with the wait: nothing is left to send it
        assert [e.prompt for e in app.runtime.history.list()] == ["takes the slot"]
        assert [r["prompt"] for r in app.emulator.requests()] == ["takes the slot"]
    assert isinstance(first, Generated)
    assert "not sent and is not billed" in progress.STOPPED and "may still finish it and bill it" in progress.STOPPED
    assert "saves it to History" in progress.STOPPED


# --- a retry, said once -----------------------------------------------------------------------------

def test_the_retry_line_says_it_once_and_counts_down() -> None:
    line = retry_line("503 from the service", 0.8, 3, 3)
    assert line == "503 from the service; retrying in 0.8 s, attempt 3 of 3"
    retry = ProgressEvent("retrying", line, 2, elapsed_s=2.0, wait_s=0.8)
    shown = progress.status_line("FLUX.2-pro", retry, 2.0).replace("\\", "")  # inert escapes the message's dots
    assert shown == "⏳ 2.0 s · 503 from the service; retrying in 0.8 s, attempt 3 of 3"
    later = progress.status_line("FLUX.2-pro", retry, 2.5).replace("\\", "")
    assert later == "⏳ 2.5 s · 503 from the service; retrying in 0.3 s, attempt 3 of 3"
    assert shown.lower().count("retry") == 1 and shown.count("attempt") == 1


async def test_the_clients_retry_events_are_the_line_shown(runtime: Runtime) -> None:
    """Two 503s, then the image: each wait is announced once, with the attempt it leads to, of three."""
    assert runtime.emulator is not None
    runtime.emulator.set_faults("FLUX.2-pro", [Fault("status", status=503, count=2)])
    events: list[ProgressEvent] = []
    made = await handlers.generate(runtime, "FLUX.2-pro", "a heron", {"seed": 3}, on_event=events.append)
    retries = [e for e in events if e.stage == "retrying"]
    assert made.result.attempts == 3 and len(retries) == 2
    for event, attempt in zip(retries, (2, 3), strict=True):
        assert event.message == f"503 from the service; retrying in {event.wait_s:.1f} s, attempt {attempt} of 3"
        line = progress.status_line("FLUX.2-pro", event, event.elapsed_s)
        assert line.lower().count("retry") == 1 and line.count("503") == 1


# --- the caption: every parameter sent, costs with their unit ------------------------------------------

async def test_the_caption_lists_every_parameter_sent_and_each_costs_unit(runtime: Runtime) -> None:
    made = await handlers.generate(runtime, "FLUX.2-flex", "a heron", {"seed": 5, "guidance": 3.5, "steps": 28})
    text = handlers.caption(made.result)
    first, sent = text.split("\n\n")[:2]
    assert "seed 5" in first and "1024×1024 JPEG" in first
    assert "≈ $0.063 (list price)" in first  # $0.06 per megapixel, 1.05 MP
    assert f"service cost {made.result.service_cost:g} (unit not documented)" in first
    assert sent == ("Sent: guidance 3.5 · steps 28 · prompt upsampling on · safety tolerance 2 · output format "
                    "jpeg")
    assert set(made.result.params) - {"seed", "width", "height"} == {
        "guidance", "steps", "prompt_upsampling", "safety_tolerance", "output_format"}  # each one said


async def test_the_caption_says_what_it_cannot_know(runtime: Runtime) -> None:
    """The Image API reports no seed; a model without a list price says where its price is."""
    made = await handlers.generate(runtime, "FLUX.1-Kontext-pro", "a bridge", {"aspect_ratio": "16:9"},
                                   route=Route.IMAGES_GENERATIONS)
    text = handlers.caption(made.result)
    assert made.result.seed is None and "seed not reported" in text
    assert "no list price (see the Foundry pricing page)" in text
    assert "Sent: aspect ratio 16:9 · output format png" in text
    schnell = await handlers.generate(runtime, "FLUX.1-schnell", "a bridge", {"negative_prompt": "*fog*"})
    line = handlers.caption(schnell.result)
    assert "no list price (billed as your endpoint's compute)" in line and "negative prompt “\\*fog\\*”" in line
