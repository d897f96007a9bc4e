"""Running a generation while telling the person what is happening.

:func:`stream` runs one request through the shared client and yields a status line every
half second (elapsed time; waiting for quota, sent, or retrying) until the image is saved,
then yields the result. If the person presses Stop (or the page goes away), Gradio cancels
the generator, which cancels only the wait (:func:`handlers.generate`): a request not yet
sent is dropped, one already sent is billed and still saved to History when it arrives.
:data:`STOPPED` is what the tab then says, honestly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from flux_ui.client import ProgressEvent
from flux_ui.client.retry import counted_down
from flux_ui.pacing import PacerStatus
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers
from flux_ui.ui.text import inert

TICK_S = 0.5
STOPPED = ("⏹ Stopped waiting; nothing more is sent. A request not yet sent was not sent and is not billed. "
           "If it had been sent, the service may still finish it and bill it: flux-ui still receives that image "
           "and saves it to History.")


def status_line(model: str, event: ProgressEvent | None, elapsed: float) -> str:
    """Where the request is, after ``elapsed`` seconds: each stage said once, in the person's terms."""
    name = MODELS[model].display_name
    if event is None:
        return f"⏳ {elapsed:.1f} s · preparing the request for {name}"
    if event.stage == "paced" and event.wait_s <= 0:  # no countdown: the pacer's own words (Redis away)
        return f"⏳ {elapsed:.1f} s · {inert(event.message)}"
    if event.stage == "paced":
        left = max(0.0, event.wait_s - (elapsed - event.elapsed_s))
        return f"⏳ {elapsed:.1f} s · paced: waiting {left:.1f} s for a quota slot on {name}"
    if event.stage == "retrying":  # the client's own line (client/retry.retry_line), its wait counting down
        left = max(0.0, event.wait_s - (elapsed - event.elapsed_s))
        return f"⏳ {elapsed:.1f} s · {inert(counted_down(event.message, event.wait_s, left))}"
    if event.stage in ("sent", "polling", "downloading"):
        attempt = f", attempt {event.attempt}" if event.attempt > 1 else ""
        return f"⏳ {elapsed:.1f} s · sent to {name}{attempt}; generating"
    return f"⏳ {elapsed:.1f} s · {inert(event.message)}"  # a service's words may quote the prompt


async def stream(runtime: Runtime, model: str, *rest: Any, **named: Any) -> AsyncIterator[str | handlers.Generated]:
    """Yield status lines, then the saved result; errors (FluxError) propagate.

    Takes :func:`handlers.generate`'s arguments, which it passes on as they are (the prompt, params,
    references, route and tab after the model), so that there is one list of them to keep.
    """
    events: list[ProgressEvent] = []
    start = time.monotonic()
    task = asyncio.create_task(handlers.generate(runtime, model, *rest, on_event=events.append, **named))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=TICK_S)
            if done:
                break
            yield status_line(model, events[-1] if events else None, time.monotonic() - start)
        yield task.result()
    finally:
        if not task.done():
            task.cancel()  # Stop: the wait ends; a request already sent still lands in History


def quota_line(model: str, status: PacerStatus | None) -> str:
    name = MODELS[model].display_name
    if status is None:
        return f"**{name}**: not paced"
    q = status.quota
    free = f"{status.available} of {q.requests} free now"
    nxt = "" if status.available else f", next in {status.next_slot_in:.1f} s"
    queued = f", {status.waiting} waiting" if status.waiting else ""
    return f"**{name}**: {free}{nxt}{queued} ({q.rpm:g} RPM)"


def quota_panel(runtime: Runtime) -> str:
    """One line per deployment: requests available now and when the next slot opens."""
    return "\n".join(f"- {quota_line(m, runtime.client.pacing(m))}" for m in runtime.models)
