"""Whose request gets a deployment's next quota slot: round-robin by user, each person's own in order.

The pacer (:mod:`flux_ui.pacing`) decides *when* a deployment may take one more request; this module
decides *whose*. Each request waiting for a deployment is a :class:`Ticket` in its :class:`FairQueue`.
The next slot goes to the user served least recently (one never served first, ties by who asked
first), and within a user to the request they asked for first. So a single image asked for while
someone else's 24-image grid waits about one slot, not the whole grid, and nobody's own requests
overtake each other. Only the head ticket waits on the clock; the others wait to become the head, and
are woken when the head changes (a new user arrives, a request is granted or cancelled).

The :class:`Board` holds every deployment's tickets for the page: each person's requests with their
place in line and estimated start (``ui/queue_panel.py``), cancelling one that has not been sent, and
the per-user cap ``FLUX_UI_USER_MAX_QUEUED`` (requests one user may have waiting for one deployment).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from flux_ui.errors import TooManyQueuedError, WithdrawnError
from flux_ui.registry import MODELS

State = Literal["waiting", "sending", "sent"]
#: Orders requests across the process: the client takes one when a request starts (the click), so a
#: person's requests keep the order they were asked in even when their preparation ends in another order.
_ORDER = itertools.count()
#: Users whose last grant is remembered; the oldest are forgotten past it (as if never served).
_SERVED_KEPT = 1024
#: A request sent this long ago is no longer listed, whatever became of its task.
LISTED_S = 600.0


def next_order() -> int:
    """The next place in the process-wide order of requests (see :data:`_ORDER`)."""
    return next(_ORDER)


def display_name(deployment: str) -> str:
    spec = MODELS.get(deployment)
    return spec.display_name if spec is not None else deployment


@dataclass(eq=False)
class Ticket:
    """One request waiting for (then holding, then sent with) a slot of one deployment."""

    user: str
    deployment: str
    label: str  # what the person asked for, shown only to them (the prompt's start)
    order: int
    joined_s: float
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    state: State = "waiting"
    changed_s: float = 0.0
    cancelled: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


@dataclass(frozen=True)
class RequestView:
    """A ticket as its owner sees it: ``position`` (1 = next) and ``starts_in_s`` while it waits."""

    id: str
    deployment: str
    label: str
    state: State
    position: int | None
    starts_in_s: float | None
    age_s: float  # since it joined the queue (waiting) or changed state (sending, sent)

    @property
    def cancellable(self) -> bool:
        return self.state == "waiting"


class FairQueue:
    """One deployment's waiting tickets and whose turn it is. ``forecast(n)`` (the pacer's) gives the
    seconds from now at which the next ``n`` slots open; ``clock`` is the pacer's."""

    def __init__(self, deployment: str, board: Board | None = None,
                 forecast: Callable[[int], list[float]] = lambda n: [0.0] * n,
                 clock: Callable[[], float] = lambda: 0.0) -> None:
        self.deployment = deployment
        self.board = board if board is not None else Board()
        self.forecast = forecast
        self.clock = clock
        self.waiting: list[Ticket] = []
        self._served: dict[str, int] = {}  # user → the number of the last grant they had
        self._grants = 0
        self._head: Ticket | None = None
        self.board.queues.append(self)

    def join(self, user: str, label: str = "", order: int | None = None, capped: bool = True) -> Ticket:
        """A new ticket: ``user`` is whose turn it is in the round, ``label`` what they see of it on the board,
        ``order`` where it stands among that user's requests (:func:`next_order` taken when it was asked
        for; None: now). TooManyQueuedError at once when the user already has their cap waiting here, unless
        ``capped`` is False (a retry of a request already let in)."""
        if capped:
            self.board.admit(self, user)
        now = self.clock()
        ticket = Ticket(user, self.deployment, label, next_order() if order is None else order, now, changed_s=now)
        self.waiting.append(ticket)
        self.board.add(ticket)
        self._reschedule()
        return ticket

    def head(self) -> Ticket | None:
        return self._head

    async def wait_turn(self, ticket: Ticket, wait_time: Callable[[], float],
                        sleep: Callable[[float], Awaitable[object]]) -> None:
        """Until ``ticket`` is the head and ``wait_time()`` is 0; WithdrawnError when it is cancelled.

        Whatever ends the wait but the turn (cancelled here or by its task, a timeout) takes the ticket out.
        """
        try:
            while True:
                ticket.wake.clear()
                if ticket.cancelled:
                    raise WithdrawnError(f"Cancelled under “Your requests” while it waited for "
                                         f"{display_name(self.deployment)}'s quota.", sent=False, billed="no")
                if self._head is ticket:
                    if (wait := wait_time()) <= 0:
                        return
                    await _nap(sleep, wait, ticket.wake)
                else:
                    await ticket.wake.wait()
        except BaseException:
            self.leave(ticket)
            raise

    def granted(self, ticket: Ticket) -> None:
        """``ticket`` has its slot: it stops waiting, and its user moves to the back of the round."""
        self.waiting.remove(ticket)
        self._grants += 1
        self._served.pop(ticket.user, None)
        self._served[ticket.user] = self._grants  # insertion order: the oldest grant first
        if len(self._served) > _SERVED_KEPT:
            del self._served[next(iter(self._served))]
        ticket.state, ticket.changed_s = "sending", self.clock()
        self._reschedule()

    def leave(self, ticket: Ticket) -> None:
        """A ticket that will not be granted (cancelled, timed out, its task gone)."""
        if ticket in self.waiting:
            self.waiting.remove(ticket)
            self._reschedule()
        self.board.discard(ticket)

    def order(self) -> list[Ticket]:
        """Every waiting ticket in the order it would be granted, if nobody else arrived."""
        served, waiting, out = dict(self._served), list(self.waiting), []
        grants = self._grants
        while waiting:
            ticket = _pick(waiting, served)
            assert ticket is not None
            waiting.remove(ticket)
            grants += 1
            served[ticket.user] = grants
            out.append(ticket)
        return out

    def starts_in(self, user: str) -> float:
        """When one more request from ``user`` would be sent, from now (the estimate a status line shows)."""
        phantom = Ticket(user, self.deployment, "", next_order(), 0.0)
        self.waiting.append(phantom)
        try:
            place = self.order().index(phantom)
        finally:
            self.waiting.remove(phantom)
        return self.forecast(place + 1)[place]

    def waiting_of(self, user: str) -> int:
        return sum(t.user == user for t in self.waiting)

    def users(self) -> set[str]:
        return {t.user for t in self.waiting}

    def _reschedule(self) -> None:
        """Wake the old and the new head when the head changes: one stops waiting on the clock, one starts."""
        head = _pick(self.waiting, self._served)
        if head is not self._head:
            for ticket in (self._head, head):
                if ticket is not None:
                    ticket.wake.set()
            self._head = head


def _pick(waiting: list[Ticket], served: dict[str, int]) -> Ticket | None:
    """The next ticket: its user served least recently (never: first), then the one asked for first."""
    return min(waiting, key=lambda t: (served.get(t.user, -1), t.order), default=None)


async def _nap(sleep: Callable[[float], Awaitable[object]], seconds: float, wake: asyncio.Event) -> None:
    """Sleep on the pacer's clock, ending early when ``wake`` is set (the head changed, a cancel)."""
    sleeper = asyncio.ensure_future(sleep(seconds))
    waker = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waker):
            task.cancel()


class Board:
    """Every deployment's tickets (one board per client): what each person sees and may cancel."""

    def __init__(self, max_queued: int | None = None) -> None:
        self.max_queued = max_queued
        self.queues: list[FairQueue] = []
        self._tickets: dict[str, Ticket] = {}
        self._by_task: dict[asyncio.Task[object], Ticket] = {}

    def admit(self, queue: FairQueue, user: str) -> None:
        """TooManyQueuedError when ``user`` already has their cap of requests waiting for ``queue``."""
        cap = self.max_queued
        if cap is None or (count := queue.waiting_of(user)) < cap:
            return
        raise TooManyQueuedError(cap_message(count, cap, queue.deployment), sent=False, billed="no")

    def add(self, ticket: Ticket) -> None:
        """Track ``ticket`` until its task ends or the task asks for another slot (a retry)."""
        self._tickets[ticket.id] = ticket
        task = asyncio.current_task()
        if task is None:
            return
        previous = self._by_task.get(task)
        if previous is None:
            task.add_done_callback(self._task_done)
        elif previous.state != "waiting":
            self.discard(previous)
        self._by_task[task] = ticket

    def discard(self, ticket: Ticket) -> None:
        self._tickets.pop(ticket.id, None)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        ticket = self._by_task.pop(task, None)
        if ticket is not None:
            self.discard(ticket)

    def sent(self, ticket: Ticket, now: float) -> None:
        ticket.state, ticket.changed_s = "sent", now

    def of(self, user: str) -> list[RequestView]:
        """``user``'s requests: waiting ones in the order they will go, per deployment, then those sent."""
        views: list[RequestView] = []
        for queue in self.queues:
            lined = queue.order()
            mine = [i for i, t in enumerate(lined) if t.user == user]
            starts = queue.forecast(mine[-1] + 1) if mine else []
            now = queue.clock()
            views += [RequestView(lined[i].id, queue.deployment, lined[i].label, "waiting", i + 1, starts[i],
                                  now - lined[i].joined_s) for i in mine]
            views += [RequestView(t.id, queue.deployment, t.label, t.state, None, None, now - t.changed_s)
                      for t in self._tickets.values()
                      if t.user == user and t.deployment == queue.deployment and t.state != "waiting"
                      and now - t.changed_s < LISTED_S]
        return views

    def cancel(self, user: str, ticket_id: str) -> bool:
        """Cancel ``user``'s waiting request ``ticket_id``: its wait ends with WithdrawnError (nothing sent).
        False when it is not theirs, or no longer waiting (sent, or being sent: billed either way)."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None or ticket.user != user or ticket.state != "waiting" or ticket.cancelled:
            return False
        ticket.cancelled = True
        ticket.wake.set()
        return True

    def waiting_of(self, user: str, deployment: str | None = None) -> int:
        return sum(q.waiting_of(user) for q in self.queues if deployment in (None, q.deployment))

    def queue(self, deployment: str) -> FairQueue | None:
        return next((q for q in self.queues if q.deployment == deployment), None)


def cap_message(count: int, cap: int, deployment: str) -> str:
    """Why one more request from this person is refused at once (the per-user cap), and what to do."""
    return (f"You already have {count} request{'s' if count != 1 else ''} waiting for {display_name(deployment)}'s "
            f"quota, as many as one person may have waiting there at once on this instance "
            f"(FLUX_UI_USER_MAX_QUEUED={cap}). Wait until one of them is sent, or cancel one under “Your requests”, "
            "then try again.")
