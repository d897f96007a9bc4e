"""Many requests at once, results as they arrive: the one fan-out loop Compare, Grid and variations share.

Each request is its own asyncio task through the shared client, so it waits only in its own
deployment's pacing and deployments work side by side. Closing the generator (Stop, a closed page)
cancels every task: one not sent yet sends nothing; one already sent is still awaited and saved by
its job (``handlers.generate``), because the service bills it either way.

Before any request goes out, the run's whole cost is held against the day's caps (:func:`reserve`): a
run that would pass one is refused whole, nothing sent, each slot failing with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux_ui import spend
from flux_ui.client import COMMITTED_STAGES, GenerationRequest, ProgressEvent
from flux_ui.errors import FluxError, ValidationError
from flux_ui.grid.estimate import Estimate, estimate
from flux_ui.grid.plan import Cell
from flux_ui.identity import current_user
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
    allowance: spend.Allowance | None = None  # held against the caps for its requests not started yet

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
    owned = run.allowance is None  # a grid holds for all its waves; a run on its own holds here
    if owned and await reserve(runtime, run, tab, references) is not None:
        run.arrivals.extend(i for i, slot in enumerate(run.slots) if slot.na is None)
        run.elapsed = clock() - start
        yield run
        return

    async def one(index: int) -> None:
        slot = run.slots[index]
        try:
            slot.generated = await handlers.generate(runtime, slot.model, slot.prompt, slot.params, references,
                                                     tab=tab, on_event=lambda e: setattr(slot, "event", e),
                                                     extra=slot.extra, allowance=run.allowance)
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
        if owned:
            runtime.ledger.release_run(run.allowance)  # what no request drew (all settled, or Stop)


_RUN_WORDS = {"grid": "this grid's {n} images", "variations": "these {n} variations",
              "comparison": "this comparison's {n} images"}


def run_words(run: Fanout) -> str:
    """The run as a refusal names it: "this grid's 12 images"."""
    group = next((s.extra.get("group") for s in run.slots if s.extra), None)
    kind = group.get("kind") if isinstance(group, Mapping) else None
    return _RUN_WORDS.get(str(kind), "these {n} requests").format(n=run.to_send)


def run_estimate(runtime: Runtime, run: Fanout, tab: str, references: Sequence[bytes] = (),
                 ) -> tuple[Estimate, list[spend.Ask]]:
    """The run's cost before sending (the Grid's estimate, over one cell per request it will send) and
    its requests as the audit trail records them. A slot the client would refuse costs nothing."""
    cells, asks, user = [], [], current_user().id
    for i, slot in enumerate(run.slots):
        if slot.na is not None:
            continue
        try:
            checked = runtime.client.validate(GenerationRequest(slot.model, slot.prompt, tuple(references),
                                                                dict(slot.params)))
        except ValidationError:
            continue
        cells.append(Cell(i, 0, 0, (), slot.model, slot.prompt, checked.params, checked))
        deployment = runtime.settings.deployments.get(slot.model)
        asks.append(spend.Ask(user, slot.model, deployment.name if deployment else "", checked.route.value, tab,
                              slot.prompt, spend.request_usd(checked.model, checked.size, runtime.settings.spend)))
    return estimate(cells, {}), asks


def check_budget(runtime: Runtime, run: Fanout, tab: str, references: Sequence[bytes] = ()) -> None:
    """Before a run is offered to send: BudgetError (nothing sent, each request recorded as refused) when its
    estimate would pass a cap today, so the tab says so up front; :func:`reserve` holds it as the run starts."""
    est, asks = run_estimate(runtime, run, tab, references)
    runtime.ledger.reserve_run(current_user().id, asks, est, run_words(run), hold=False)


async def reserve(runtime: Runtime, run: Fanout, tab: str, references: Sequence[bytes] = ()) -> str | None:
    """Hold the run's whole cost before any of it is sent (``run.allowance``); when it would pass a cap,
    every slot to send fails with the refusal (nothing sent, each recorded as refused), which is returned."""
    est, asks = run_estimate(runtime, run, tab, references)
    holding = asyncio.ensure_future(asyncio.to_thread(runtime.ledger.reserve_run, current_user().id, asks, est,
                                                      run_words(run)))
    try:
        run.allowance = await asyncio.shield(holding)
    except asyncio.CancelledError:  # Stop while the hold was being written: once written, it is given back
        holding.add_done_callback(lambda done: done.exception() or runtime.ledger.release_run(done.result()))
        raise
    except spend.BudgetError as err:
        for slot in run.slots:
            if slot.na is None:
                slot.error = str(err)
        return str(err)
    return None
