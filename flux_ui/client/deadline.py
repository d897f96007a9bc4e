"""One click's deadline and cost: waiting for the deployment's pacing slot, and sending only while an answer can arrive.

The deadline is the person's patience and decides only what is *sent*: a request goes out only
while at least its route's send floor is left of it (its answer could not arrive sooner, and it
would be billed all the same). :func:`wait_for_slot` is where every attempt takes its pacing slot, in
the deployment's fair queue as the person asking (:func:`flux_ui.identity.current_user`), whose
requests keep the order they were asked in (``Click.order``: ``GenerationRequest.asked``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from flux_ui.client.events import Progress
from flux_ui.client.validation import ValidatedRequest
from flux_ui.errors import Billed, FluxError, ServiceTimeoutError, more_billed, with_billing
from flux_ui.fair_queue import next_order
from flux_ui.identity import current_user
from flux_ui.pacing import Pacer

#: How much of the prompt the person's "Your requests" list shows for a waiting request.
LABEL_CHARS = 60


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
    order: int = field(default_factory=next_order)  # its place among the person's requests (fair_queue)

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
        status, user = pacer.status(), current_user().id
        check_time(click, checked, status.next_slot_in, pacer)
        expected = max(status.next_slot_in, pacer.queue.starts_in(user))  # others' requests in the round too
        if expected > 0:
            progress.emit("paced", f"Waiting {expected:.1f} s for a quota slot "
                          f"({pacer.quota.describe()})", attempt, expected)
        told: dict[str, Callable[[str, float], None]] = {}
        if getattr(pacer, "notifies", False):  # a shared pacer says why it waits when Redis does not answer
            told["notify"] = lambda text, wait: progress.emit("paced", text, attempt, wait)
        try:
            async with asyncio.timeout(max(0.0, click.time_to_send())):
                stats["paced_s"] += await pacer.acquire(user, label(checked.prompt), click.order if attempt == 1
                                                        else None, capped=attempt == 1, **told)
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
    outage = getattr(pacer, "outage", None)
    if wait > 0 and outage is not None and (store := outage()):  # Redis did not answer (pacing_redis.py)
        raise ServiceTimeoutError(
            f"{retry} not sent to {name}: flux-ui waits {click.budget_s:g} s for an image, and in that time {store} "
            "(flux-ui sends nothing unpaced). Try again in a moment, or ask whoever runs flux-ui to check Redis.",
            sent=False, billed="no")
    raise ServiceTimeoutError(
        f"{retry} not sent to {name}: flux-ui waits {click.budget_s:g} s for an image and {why}, while a "
        f"request there takes at least {click.need:g} s, so its answer could not have arrived in time. "
        "Try again in a moment.", sent=False, billed="no")


def label(prompt: str) -> str:
    """What "Your requests" shows of a request: its prompt's start, on one line."""
    text = " ".join(prompt.split())
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1].rstrip() + "…"


def told(error: FluxError, click: Click) -> FluxError:
    """The click's error with what all its attempts cost, said in its message."""
    return with_billing(error, click.sent, click.billed)
