"""The status line while waiting, and the quota panel, read as a person reads them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app_fixtures import running_app
from flux_ui.client.core import ProgressEvent
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.pacing import PacerStatus, Quota
from flux_ui.ui import progress
from flux_ui.ui.handlers import Generated


def test_status_lines_say_where_the_request_is() -> None:
    assert "preparing" in progress.status_line("FLUX.2-pro", None, 0.2)
    paced = ProgressEvent("paced", "x", 1, elapsed_s=1.0, wait_s=5.0)
    assert "paced: waiting 3.0 s for a quota slot on FLUX.2 [pro]" in progress.status_line("FLUX.2-pro", paced, 3.0)
    retry = ProgressEvent("retrying", "HTTP 503", 1, elapsed_s=2.0, wait_s=1.0)
    line = progress.status_line("FLUX.2-flex", retry, 2.5)
    assert "retrying in 0.5 s (attempt 2): HTTP 503" in line and line.startswith("⏳ 2.5 s")
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
