"""Many requests at once, results as they arrive: the one fan-out loop Compare, Grid and variations share.

Each request is its own asyncio task through the shared client, so it waits only in its own
deployment's pacing and deployments work side by side. Closing the generator (Stop, a closed page)
cancels every task: one not sent yet sends nothing; one already sent is still awaited and saved by
its job (``handlers.generate``), because the service bills it either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux_ui.client import COMMITTED_STAGES, ProgressEvent
from flux_ui.errors import FluxError
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers, progress


def in_group(kind: str, run_id: str, **place: Any) -> dict[str, Any]:
    """A slot's ``extra``: the run it belongs to (History lists a run's images by this id) and its place
    in the run (a grid's cell, a variation's index)."""
    return {"group": {"kind": kind, "id": run_id, **place}}


@dataclass
class Slot:
    """One request of a fan-out, filled in as it goes. A slot with ``na`` is never sent."""

    model: str
    prompt: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] | None = None  # stored with the image in History (the group it belongs to)
    na: str | None = None
    event: ProgressEvent | None = None
    generated: handlers.Generated | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.na is not None or self.generated is not None or self.error is not None

    @property
    def sent(self) -> bool:
        """Whether the request reached the service (so it is billed, Stop or not)."""
        return self.generated is not None or (self.event is not None and self.event.stage in COMMITTED_STAGES)


@dataclass
class Fanout:
    """A running (then finished) fan-out; ``arrivals`` lists slot indices in the order they finished."""

    slots: list[Slot]
    elapsed: float = 0.0
    arrivals: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.slots)

    @property
    def images(self) -> int:
        return sum(s.generated is not None for s in self.slots)

    @property
    def to_send(self) -> int:
        return sum(s.na is None for s in self.slots)

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.slots)


async def run_fanout(runtime: Runtime, run: Fanout, tab: str, references: Sequence[bytes] = (),
                     start: float | None = None, clock: Callable[[], float] = time.monotonic,
                     ) -> AsyncIterator[Fanout]:
    """Send every slot that can be sent at once; yield ``run`` (updated in place) whenever one finishes,
    and every tick. ``run.elapsed`` counts from ``start`` (a ``clock()`` reading; default now): a tab
    passes the moment the click reached it, so its clock includes the checks and the first frame
    before anything is sent, as the person's wait does."""
    start = clock() if start is None else start

    async def one(index: int) -> None:
        slot = run.slots[index]
        try:
            slot.generated = await handlers.generate(runtime, slot.model, slot.prompt, slot.params, references,
                                                     tab=tab, on_event=lambda e: setattr(slot, "event", e),
                                                     extra=slot.extra)
        except FluxError as err:
            slot.error = str(err)
        run.arrivals.append(index)

    pending = {asyncio.create_task(one(i)) for i, slot in enumerate(run.slots) if slot.na is None}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=progress.TICK_S, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a bug (not a FluxError) surfaces instead of hanging a slot
            run.elapsed = clock() - start
            yield run
    finally:
        for task in pending:
            task.cancel()
