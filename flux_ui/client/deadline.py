"""One click's deadline and cost: waiting for the deployment's pacing slot, and sending only while an answer can arrive.

The deadline is the person's patience and decides only what is *sent*: a request goes out only
while at least its route's send floor is left of it (its answer could not arrive sooner, and it
would be billed all the same). :func:`wait_for_slot` is where every attempt takes its pacing slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from flux_ui.client.events import Progress
from flux_ui.client.validation import ValidatedRequest
from flux_ui.errors import Billed, FluxError, ServiceTimeoutError, more_billed, with_billing
from flux_ui.pacing import Pacer


@dataclass
class Click:
    """One generate call: its deadline, the time a request needs, and what its attempts cost so far."""

    deadline: float
    need: float
    budget_s: float  # the whole wait the deadline stands for, as messages quote it
    clock: Callable[[], float] = field(repr=False)
    sent: bool = False
    billed: Billed = "no"
    accepted: bool = False  # the current attempt's task was accepted (a polling id or a result link)

    def spent(self, billed: Billed) -> None:
        """An attempt reached the service; a click is billed if any of its attempts was."""
        self.sent = True
        self.billed = more_billed(self.billed, billed)

    def time_to_send(self) -> float:
        """How long a request may still wait (for a slot or a retry) and be sent in time."""
        return self.deadline - self.need - self.clock()


async def wait_for_slot(click: Click, pacer: Pacer | None, checked: ValidatedRequest, progress: Progress,
                        attempt: int, stats: dict[str, float]) -> None:
    """Wait for the deployment's quota, but never so long that too little time is left for an answer:
    a request sent then is billed and its image arrives after the person stopped waiting."""
    if pacer is not None:
        status = pacer.status()
        check_time(click, checked, status.next_slot_in, pacer)
        if status.next_slot_in > 0:
            progress.emit("paced", f"Waiting {status.next_slot_in:.1f} s for a quota slot "
                          f"({pacer.quota.describe()})", attempt, status.next_slot_in)
        try:
            async with asyncio.timeout(max(0.0, click.time_to_send())):
                stats["paced_s"] += await pacer.acquire()
        except TimeoutError:
            check_time(click, checked, float("inf"), pacer)  # raises: the queue was longer
    check_time(click, checked, 0.0, pacer)


def check_time(click: Click, checked: ValidatedRequest, wait: float, pacer: Pacer | None) -> None:
    """Raise "not sent" when, after ``wait`` more seconds, less than a request needs would be left."""
    left = click.deadline - click.clock()
    if left - wait >= click.need:
        return
    name = checked.model.display_name
    why = (f"its quota ({pacer.quota.describe()}) had no free slot in time"
           if pacer is not None and wait > 0 else f"only {max(0.0, left):.1f} s of it was left")
    retry = "The retry was" if click.sent else "The request was"
    raise ServiceTimeoutError(
        f"{retry} not sent to {name}: flux-ui waits {click.budget_s:g} s for an image and {why}, while a "
        f"request there takes at least {click.need:g} s, so its answer could not have arrived in time. "
        "Try again in a moment.", sent=False, billed="no")


def told(error: FluxError, click: Click) -> FluxError:
    """The click's error with what all its attempts cost, said in its message."""
    return with_billing(error, click.sent, click.billed)
