"""Quotas and pacing: spend every request a deployment allows, and never draw a 429.

The service enforces its requests-per-minute quota over short windows, so a burst can be
refused well below the per-minute figure (contract §2). flux-ui therefore turns an RPM
tier into a short sliding window (:meth:`Quota.from_rpm`) and paces every request through
it. The emulator enforces quotas with the same :class:`SlidingWindow`, so the two agree. Whose request
gets each slot is :mod:`flux_ui.fair_queue`'s call: round-robin by user, each user's own in order.

The service counts a request when it *arrives*, and on a busy machine that is a varying time
after the pacer granted its slot (the event loop, connection setup, writing the body). Two
arrivals can then be closer than the slots were: the earlier one late, the later one early.
So a caller that can tell when its request has left calls :func:`mark_sent` (or passes
:func:`trace_sends` as httpx's ``trace`` extension): the slot is then held until that moment
and stamped with it. What comes after the send stays unseen, so the margin a slot is kept
past its window grows with the scheduling delay measured lately (:class:`AdaptiveMargin`,
:class:`SchedulingProbe`), within bounds.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from flux_ui.fair_queue import Board, FairQueue, Ticket
from flux_ui.pacing_margin import PROCESS_PROBE, AdaptiveMargin, DelaySource

#: A slot granted and not marked sent within this long is taken as sent at its last stamp
#: (its request failed before sending, or its task moved on); it stops holding the window.
HOLD_LIMIT_S = 60.0
#: The adaptive margin never exceeds this share of the window, nor this many seconds.
MAX_MARGIN_SHARE = 0.25
MAX_MARGIN_S = 2.0


@dataclass(frozen=True)
class Quota:
    """At most ``requests`` in any ``window_s`` seconds."""

    requests: int
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window_s <= 0:
            raise ValueError(f"a quota needs at least one request per positive window, not {self}")

    @classmethod
    def from_rpm(cls, rpm: int) -> Quota:
        """An RPM tier as a window about ten seconds long (a sixth of a minute).

        Bursts stay within a sixth of the minute's allowance and the rate is exactly
        ``rpm``: 15 RPM → 2 per 8 s, 100 RPM → 16 per 9.6 s, 5 RPM → 1 per 12 s.
        """
        requests = max(1, rpm // 6)
        return cls(requests, 60.0 * requests / rpm)

    @property
    def rpm(self) -> float:
        return self.requests * 60.0 / self.window_s

    def describe(self) -> str:
        return f"{self.requests} per {self.window_s:g} s ({self.rpm:g} RPM)"


class SlidingWindow:
    """Send times of the last window; pure arithmetic on a caller-supplied clock.

    ``margin_s`` keeps a used slot a little longer than the window: the service counts a
    request when it arrives, which is later than when it was sent, and by a varying amount.
    """

    def __init__(self, quota: Quota, margin_s: float = 0.0) -> None:
        self.quota = quota
        self.margin_s = margin_s
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.quota.window_s - self.margin_s:
            self._sent.popleft()

    def wait_time(self, now: float) -> float:
        """Seconds until one more request fits (0 when it fits now)."""
        self._expire(now)
        wait = 0.0
        if len(self._sent) >= self.quota.requests:
            # The slot frees when the request that used it leaves the window.
            oldest = self._sent[len(self._sent) - self.quota.requests]
            wait = oldest + self.quota.window_s + self.margin_s - now
        return max(wait, self._blocked_until - now, 0.0)

    def available(self, now: float) -> int:
        """How many requests could be sent at once right now."""
        self._expire(now)
        if self._blocked_until > now:
            return 0
        return max(0, self.quota.requests - len(self._sent))

    def record(self, now: float) -> None:
        self._expire(now)
        self._sent.append(now)

    def restamp(self, old: float, new: float) -> None:
        """Move one recorded send from ``old`` to ``new``, keeping the times in order.

        The pacer records a slot when it grants it and moves it to when the request really
        left; if ``old`` already left the window, ``new`` is simply recorded.
        """
        with contextlib.suppress(ValueError):
            self._sent.remove(old)
        bisect.insort(self._sent, new)

    def block_until(self, until: float) -> None:
        """Hold every request back until ``until`` (the service said to wait)."""
        self._blocked_until = max(self._blocked_until, until)

    def copy(self) -> SlidingWindow:
        """The same window, to forecast on without touching this one."""
        twin = SlidingWindow(self.quota, self.margin_s)
        twin._sent, twin._blocked_until = deque(self._sent), self._blocked_until
        return twin


class Pacer:
    """Paces one deployment's requests; whose goes next is its :class:`~flux_ui.fair_queue.FairQueue`'s call.

    ``acquire`` waits for a slot and claims it, so a burst leaves spread over the window instead of
    all at once. Once the caller marks its sends (:func:`mark_sent`), a granted slot is held until its
    request has left and is stamped with that moment; a caller that never marks keeps slots stamped
    at the grant. Either way the margin follows the scheduling delay measured lately (:class:`AdaptiveMargin`).
    """

    def __init__(self, quota: Quota, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = asyncio.sleep, *, hold_limit_s: float = HOLD_LIMIT_S,
                 probe: DelaySource | None = None, board: Board | None = None, name: str = "") -> None:
        if probe is None and clock is time.monotonic:
            probe = PROCESS_PROBE  # its samples are on the real clock: only for a pacer on it too
        cap = max_margin(quota)
        self.margin = AdaptiveMargin(pacing_margin(quota), cap, horizon_s=quota.window_s + cap, probe=probe)
        self.window = SlidingWindow(quota, margin_s=self.margin.base_s)
        self._clock = clock
        self._sleep = sleep
        self.queue = FairQueue(name, board, forecast=self.forecast, clock=clock)
        self._pending: list[_Reservation] = []
        self._hold_limit_s = hold_limit_s
        self.marks_sends = False  # set by the first mark: from then on, unsent slots are held

    @property
    def quota(self) -> Quota:
        return self.window.quota

    @property
    def waiting(self) -> int:  # requests waiting for a slot, everyone's
        return len(self.queue.waiting)

    async def acquire(self, user: str = "", label: str = "", order: int | None = None, capped: bool = True) -> float:
        """Wait for a slot, claim it, and return the seconds spent waiting; :meth:`FairQueue.join` says what
        the arguments are (one ``user`` for all: first come first served) and what it refuses at once.

        The slot is this task's until :func:`mark_sent`; a task's next ``acquire`` lets its
        previous, unmarked slot go as it stands.
        """
        _let_go(_current.get())
        self.margin.keep_measuring()
        start = self._clock()
        ticket = self.queue.join(user, label, order, capped)
        await self.queue.wait_turn(ticket, lambda: self._wait_time(self._clock()), self._sleep)  # type: ignore[arg-type]
        self._reserve(self._clock(), ticket)
        return self._clock() - start

    def forecast(self, n: int) -> list[float]:
        """Seconds from now until each of the next ``n`` slots opens, if nothing else changes."""
        now = self._clock()
        self._wait_time(now)  # unsent slots held, the margin as it stands now
        window, starts, at = self.window.copy(), [], now
        for _ in range(n):
            at += window.wait_time(at)
            window.record(at)
            starts.append(at - now)
        return starts

    def penalize(self, seconds: float) -> None:
        """The service answered 429: hold the deployment back for ``seconds``."""
        self.window.block_until(self._clock() + seconds)

    def status(self) -> PacerStatus:
        now = self._clock()
        wait = self._wait_time(now)
        return PacerStatus(quota=self.quota, available=self.window.available(now), next_slot_in=wait,
                           waiting=self.waiting)

    def _wait_time(self, now: float) -> float:
        self._hold_unsent(now)
        self.window.margin_s = self.margin.value(now)
        return self.window.wait_time(now)

    def _reserve(self, now: float, ticket: Ticket) -> None:
        self.window.record(now)
        self.queue.granted(ticket)
        reservation = _Reservation(self, now, now, asyncio.current_task(), ticket)
        self._pending.append(reservation)
        _current.set(reservation)

    def _hold_unsent(self, now: float) -> None:
        """A slot granted and not yet sent counts as sent now: it cannot free before it has left."""
        for res in list(self._pending):
            if (res.task is not None and res.task.done()) or now - res.slot_s > self._hold_limit_s:
                self._pending.remove(res)  # abandoned: it keeps its last stamp
            elif self.marks_sends and res.stamp_s < now:
                self.window.restamp(res.stamp_s, now)
                res.stamp_s = now

    def _sent(self, reservation: _Reservation) -> None:
        if reservation.sent:
            return  # marked already (from a task that inherited this one's context, say)
        now = self._clock()
        if reservation in self._pending:
            self._pending.remove(reservation)
        self.window.restamp(reservation.stamp_s, now)
        reservation.stamp_s, reservation.sent = now, True
        self.queue.board.sent(reservation.ticket, now)
        self.marks_sends = True
        self.margin.observe(now, now - reservation.slot_s)


@dataclass(eq=False)
class _Reservation:
    """A granted slot: when it was granted, and where it stands in the window now."""

    pacer: Pacer
    slot_s: float
    stamp_s: float
    task: asyncio.Task[object] | None = field(repr=False)
    ticket: Ticket = field(repr=False)  # the request's place on the board, shown as sent from now on
    sent: bool = False


#: The slot the current task was granted last and has not yet marked sent.
_current: ContextVar[_Reservation | None] = ContextVar("flux_ui_pacing_slot", default=None)


def _let_go(reservation: _Reservation | None) -> None:
    """Stop holding a slot that was never marked sent; it keeps the stamp it has."""
    _current.set(None)
    if reservation is not None and reservation in reservation.pacer._pending:
        reservation.pacer._pending.remove(reservation)


def mark_sent() -> None:
    """The request for this task's last granted slot has left now (later calls do nothing).

    Call it where the bytes go out; ``acquire`` and ``mark_sent`` run in the same task, so
    no ticket has to be handed from one to the other.
    """
    reservation = _current.get()
    if reservation is not None:
        _current.set(None)
        reservation.pacer._sent(reservation)


async def trace_sends(event: str, info: Mapping[str, object]) -> None:
    """An httpx ``trace`` extension that marks the request sent once its body is written.

    Pass ``extensions={"trace": trace_sends}`` with the generation request: the moment
    covers connecting and uploading, which are the delays that grow on a busy machine.
    """
    if event.endswith(".send_request_body.complete"):
        mark_sent()


def pacing_margin(quota: Quota) -> float:
    """The base margin a slot is kept past its window: 3 % of the window, within 0.1–0.3 s (the
    adaptive margin adds what the scheduling delay measured lately calls for)."""
    return min(0.3, max(0.1, 0.03 * quota.window_s))


def max_margin(quota: Quota) -> float:
    """The most the adaptive margin may reach: a quarter of the window, at most 2 s."""
    return min(MAX_MARGIN_S, MAX_MARGIN_SHARE * quota.window_s)


@dataclass(frozen=True)
class PacerStatus:
    """What the UI shows for a deployment: slots free now and when the next one opens."""

    quota: Quota
    available: int
    next_slot_in: float
    waiting: int
