"""Pacing shared through Redis, so N replicas together never pass a deployment's quota.

With ``FLUX_UI_REDIS_URL`` set, each deployment's :class:`SharedPacer` keeps its window, its 429 hold-backs and
its fair queue in Redis (:mod:`flux_ui.pacing_scripts`) instead of in the process, behind the interface the
client and the UI use for :class:`flux_ui.pacing.Pacer`. Each step is one Lua script, so checking the window
and claiming a slot is atomic across replicas, and every stamp is Redis's own ``TIME``: one clock for all.
Lua rather than the ``limits`` library: its moving window has no notion of a slot held until its request is
sent, no 429 hold-back, no fair queue to grant only the head from, and no guard for a Redis that lost its data.

- **Slots** granted and not yet sent count as sent *now* (as the in-process pacer holds them); :func:`pacing.mark_sent`
  stamps them sent at Redis's time. One held past the hold limit counts as sent at its grant and the limit.
  Sends expire only past the window and the widest margin, so a replica with a small margin never drops what
  one with a wider margin still counts; each replica's own (adaptive) margin is what it grants by.
- **Fair share** is decided in Redis: the tickets of every replica wait there, and a replica's script grants
  only the global head (served least recently, never first, ties by who joined first; within a user their own
  order), and only when a slot is free. One dispatcher per pacer and replica steps for all its local tickets
  at once: on a pub/sub message (every grant, join, leave and 429 publishes one), at its head's slot time, or
  on a short fallback timeout (a lost message). Tickets hold a lease their dispatcher refreshes, so those of
  a crashed replica lapse and stop blocking the queue.
- **Redis away:** nothing is sent unpaced. Waiters keep waiting, say why, retry with a short backoff and
  still end at their click's deadline ("not sent", billed no); when Redis answers again they go on.
- **Redis restarted empty** (or flushed, or evicted): the sends recorded before are unknown, and some may be
  still within their window at the service. So when a script finds the ``epoch`` gone it sets ``blocked`` to
  now + the window + the widest margin before it grants anything: by then every unrecorded send has left
  every replica's window, and slots marked sent after the restart are recorded as usual (a replica that
  notices the reset holds its granted, unsent slots again). A first start on an empty Redis cannot be told
  from such a restart, so it waits one window too.
- :meth:`SharedPacer.status` stays synchronous: the last script's snapshot, aged on the local clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from flux_ui import pacing
from flux_ui.errors import TooManyQueuedError, WithdrawnError
from flux_ui.fair_queue import Board, Ticket, cap_message, display_name, next_order
from flux_ui.fair_queue_redis import SharedQueue
from flux_ui.pacing import HOLD_LIMIT_S, PacerStatus, Quota, SlidingWindow, max_margin, pacing_margin
from flux_ui.pacing_margin import PROCESS_PROBE, AdaptiveMargin, DelaySource
from flux_ui.pacing_store import BACKOFF_S, REDIS_ERRORS, RedisStore, Snapshot, listen, parse_step, retrying

__all__ = ["RedisStore", "SharedPacer", "SharedSlot"]

log = logging.getLogger("flux_ui.pacing")

#: A waiting ticket lapses this long after its replica last refreshed it (a crashed replica's, say).
LEASE_S = 5.0
#: A dispatcher whose head is elsewhere steps again at least this often (a lost pub/sub message).
FALLBACK_S = 0.5
#: The pub/sub listener stays subscribed this long after the last local ticket.
LISTEN_IDLE_S = 30.0
RETELL_S = 1.0  # a waiter is told again when its expected start moved this much later than it was told
REFRESH_S = 0.5  # status() asks for a fresh snapshot in the background once its own is this old
#: A function a waiter hears from: a status line and the seconds it expects to wait (0: unknown).
Notify = Callable[[str, float], None]


@dataclass(eq=False)
class _Waiter:
    ticket: Ticket
    mode: str  # c: join within the per-user cap, u: join, w: joined (re-added if Redis lost it)
    granted: asyncio.Future[None]
    notify: Notify | None
    told_until: float = 0.0  # when the waiter was last told it would be sent (local clock)


@dataclass(eq=False)
class SharedSlot:
    """A granted slot, held in Redis until :func:`pacing.mark_sent` (or until its task lets it go)."""

    pacer: SharedPacer
    id: str
    granted_s: float
    ticket: Ticket = field(repr=False)
    sent: bool = False


class SharedPacer:
    """A :class:`flux_ui.pacing.Pacer` whose window and fair queue live in Redis, shared by every replica.

    ``queue`` is a :class:`~flux_ui.fair_queue_redis.SharedQueue` on the client's board (this process's
    own tickets, placed in the shared order). ``acquire`` takes ``notify`` to tell the waiter why it waits
    when Redis does not answer.
    """

    notifies = True  # acquire takes notify= (client/deadline.py)

    def __init__(self, quota: Quota, store: RedisStore, *, board: Board | None = None, name: str = "",
                 key: str | None = None, clock: Callable[[], float] = time.monotonic,
                 hold_limit_s: float = HOLD_LIMIT_S, lease_s: float = LEASE_S, fallback_s: float = FALLBACK_S,
                 probe: DelaySource | None = None) -> None:
        if probe is None and clock is time.monotonic:
            probe = PROCESS_PROBE
        cap = max_margin(quota)
        self.quota = quota
        self.margin = AdaptiveMargin(pacing_margin(quota), cap, horizon_s=quota.window_s + cap, probe=probe)
        self.store = store
        self.name = name
        self._keys, self._channel = store.keys(key or name), store.channel(key or name)
        self._clock = clock
        self._hold_limit_s, self._lease_s, self._fallback_s = hold_limit_s, lease_s, fallback_s
        self.queue = SharedQueue(self, name, board)
        self._local: dict[str, _Waiter] = {}
        self._pending: list[SharedSlot] = []  # granted, not yet sent (pacing._let_go looks here)
        self._snap = Snapshot(at=clock())
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._peeking: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._busy_s = clock()  # when a local ticket last waited (the listener stays a while after)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.down: str | None = None  # why nothing can be granted now (Redis does not answer), or None

    @property
    def waiting(self) -> int:  # requests waiting for a slot, every replica's
        return self.queue.count()

    # --- what the client calls --------------------------------------------------------------------

    async def acquire(self, user: str = "", label: str = "", order: int | None = None, capped: bool = True,
                      notify: Notify | None = None) -> float:
        """Wait for a slot granted in Redis, claim it, and return the seconds spent waiting (as
        :meth:`flux_ui.pacing.Pacer.acquire`); TooManyQueuedError when the user has their cap waiting on
        any replica, WithdrawnError when cancelled under "Your requests"."""
        self._let_go_current()
        self.margin.keep_measuring()
        start = self._clock()
        ticket = Ticket(user, self.name, label, next_order() if order is None else order, start, changed_s=start)
        waiter = _Waiter(ticket, "c" if capped else "u", asyncio.get_running_loop().create_future(), notify,
                         start + self.queue.starts_in(user))  # what client/deadline.py has just said
        self._local[ticket.id] = waiter
        self.queue.board.add(ticket)
        if self.down is not None and notify is not None:
            notify(self.down, 0.0)
        self._kick()
        try:
            await self._wait(waiter)
        except BaseException:
            self._abandon(waiter)
            raise
        task = asyncio.current_task()
        slot = SharedSlot(self, ticket.id, self._clock(), ticket)
        self._pending.append(slot)
        pacing._current.set(slot)  # type: ignore[arg-type]  # mark_sent calls slot.pacer._sent(slot)
        if task is not None:
            task.add_done_callback(lambda _: self._let_go(slot))
        return self._clock() - start

    def penalize(self, seconds: float) -> None:
        """The service answered 429: hold every replica back for ``seconds`` (in Redis, and here at once)."""
        self._snap = self._snap.blocked(self._clock() + seconds)
        self._spawn(self._retrying(self.store.penalize, [str(round(seconds * 1000.0, 3))], seconds))

    def status(self) -> PacerStatus:
        """Slots free and the next one's time, from the last snapshot (refreshed in the background)."""
        self._refresh_soon()
        now = self._clock()
        window = self._window(now)
        free = 0 if self.down is not None else window.available(now)
        return PacerStatus(quota=self.quota, available=free, next_slot_in=window.wait_time(now), waiting=self.waiting)

    def forecast(self, n: int) -> list[float]:
        """Seconds from now until each of the next ``n`` slots opens, by the last snapshot."""
        now = self._clock()
        window, starts, at = self._window(now), [], now
        for _ in range(n):
            at += window.wait_time(at)
            window.record(at)
            starts.append(at - now)
        return starts

    def outage(self) -> str | None:
        """Why a click timed out without a slot, when it was Redis (client/deadline.py says it)."""
        if self.down is None:
            return None
        return f"the shared quota store (Redis at {self.store.where}) did not answer"

    async def aclose(self) -> None:
        """Stop waiting and listening; marks still on their way get a moment to reach Redis (else their
        slots stay held until the hold limit)."""
        for task in (self._dispatcher, self._peeking, self._listener):
            if task is not None:
                task.cancel()
        if pending := [t for t in self._tasks if not t.done() and t is not self._listener]:
            await asyncio.wait(pending, timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        await self.store.aclose()

    # --- waiting ----------------------------------------------------------------------------------

    async def _wait(self, waiter: _Waiter) -> None:
        ticket = waiter.ticket
        while True:
            ticket.wake.clear()
            if waiter.granted.done():
                waiter.granted.result()  # raises the cap's refusal
                if ticket.cancelled:  # cancelled while its grant was on the way: not sent, the slot let go
                    self._spawn(self._retrying(self.store.mark, [ticket.id], self._hold_limit_s))
                    raise self._withdrawn()
                return
            if ticket.cancelled:
                raise self._withdrawn()
            waker = asyncio.ensure_future(ticket.wake.wait())
            try:
                await asyncio.wait({waiter.granted, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()

    def _withdrawn(self) -> WithdrawnError:
        return WithdrawnError(f"Cancelled under “Your requests” while it waited for {display_name(self.name)}'s "
                              "quota.", sent=False, billed="no")

    def _abandon(self, waiter: _Waiter) -> None:
        """A wait that ended without its slot (cancelled, timed out, refused): out of Redis and the board."""
        if self._local.pop(waiter.ticket.id, None) is not None and waiter.mode == "w":
            self._snap = self._snap.without(waiter.ticket.user)  # until the next step says
        self.queue.board.discard(waiter.ticket)
        future = waiter.granted
        if not future.done():
            future.cancel()
            self._spawn(self._retrying(self.store.leave, [waiter.ticket.id], self._lease_s))
        elif not future.cancelled() and future.exception() is None and not waiter.ticket.cancelled:
            self._spawn(self._retrying(self.store.mark, [waiter.ticket.id], self._hold_limit_s))  # granted, unused

    def _kick(self) -> None:
        self._wake.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def _dispatch(self) -> None:
        """Step for every local ticket until none waits: at once after a grant, else on a message or a timeout."""
        if self._listener is None or self._listener.done():
            self._listener = self._spawn(self._listen())
        backoff = BACKOFF_S[0]
        while self._local:
            self._wake.clear()
            self._busy_s = self._clock()
            try:
                delay = await self._step(list(self._local.values()))
                backoff = BACKOFF_S[0]
            except REDIS_ERRORS as exc:
                self._outage(exc)
                delay, backoff = backoff, min(BACKOFF_S[1], backoff * 2)
            if delay > 0 and self._local:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    async def _listen(self) -> None:
        """Wake the dispatcher on every message; subscribed until :data:`LISTEN_IDLE_S` after the last local ticket."""
        await listen(self.store, self._channel, self._wake.set,
                     lambda: bool(self._local) or self._clock() - self._busy_s < LISTEN_IDLE_S)

    async def _step(self, waiters: list[_Waiter]) -> float:
        """One script call for ``waiters``; the seconds until the next is worth making (0: at once)."""
        margin_ms = self.margin.value(self._clock()) * 1000.0
        args = [str(self.quota.requests), f"{margin_ms:.3f}", f"{self._lease_s * 1000.0:.0f}",
                str(self.queue.board.max_queued or 0)]
        for w in waiters:
            args += [w.ticket.id, w.ticket.user, str(w.ticket.order), w.mode]
        reply = parse_step(await self._run(self.store.step, args), self._clock())
        self._snap, refusals, recovered = reply.snapshot, reply.refused, self.down is not None
        if recovered:
            self.down = None
            log.warning("Redis at %s answers again: %s's requests go on", self.store.where, self.name)
        if reply.reset:
            log.warning("Redis at %s had lost the pacing record of %s: nothing is granted for one window",
                        self.store.where, self.name)
            if unsent := [slot.id for slot in self._pending if not slot.sent]:  # lost with the record: held again
                self._spawn(self._retrying(self.store.hold, unsent, self._hold_limit_s))
        for w in waiters:
            if w.ticket.id in refusals:
                self._local.pop(w.ticket.id, None)
                cap = self.queue.board.max_queued or 0
                if not w.granted.done():
                    w.granted.set_exception(TooManyQueuedError(cap_message(refusals[w.ticket.id], cap, self.name),
                                                               sent=False, billed="no"))
            elif w.ticket.id in self._local:
                w.mode = "w"
            elif w.ticket.id != reply.granted:  # it left while this step was on its way: its leave may have gone first
                self._spawn(self._retrying(self.store.leave, [w.ticket.id], self._lease_s))
        if reply.granted:
            return self._granted(reply.granted)
        self._retell(recovered)
        if reply.head in self._local:  # this replica's turn: wake when its slot opens (and keep the leases fresh)
            return max(0.001, min(reply.wait_s, self._lease_s / 3))
        return min(self._fallback_s, self._lease_s / 3)

    def _granted(self, ticket_id: str) -> float:
        waiter = self._local.pop(ticket_id, None)
        if waiter is None or waiter.granted.done():  # its wait ended while the script ran: let the slot go
            self._spawn(self._retrying(self.store.mark, [ticket_id], self._hold_limit_s))
        else:
            waiter.ticket.state, waiter.ticket.changed_s = "sending", self._clock()
            waiter.granted.set_result(None)
        return 0.0

    # --- Redis away and back ----------------------------------------------------------------------

    def _outage(self, exc: BaseException) -> None:
        if self.down is None:
            self.down = self.store.outage()
            log.warning("Redis at %s does not answer (%s): %s's requests wait", self.store.where,
                        type(exc).__name__, self.name)
            for w in list(self._local.values()):
                if w.notify is not None:
                    w.told_until = float("inf")
                    w.notify(self.down, 0.0)

    def _retell(self, every: bool) -> None:
        """Tell each local waiter its new expected wait when it is a second or more later than it was told
        (a 429 on another replica, the reset guard, a stale first estimate), or ``every`` one (Redis is back)."""
        now = self._clock()
        for w in list(self._local.values()):
            if w.notify is None:
                continue
            wait = self.queue.starts_at(w.ticket)
            if every or now + wait > w.told_until + RETELL_S:
                w.told_until = now + wait
                w.notify(f"Waiting {wait:.1f} s for a quota slot ({self.quota.describe()})", max(wait, 0.001))

    async def _run(self, script: Any, args: list[str]) -> Any:
        common = [f"{self.quota.window_s * 1000.0:.3f}", f"{max_margin(self.quota) * 1000.0:.3f}",
                  f"{self._hold_limit_s * 1000.0:.3f}", self._channel]
        return await script(keys=self._keys, args=common + args)

    async def _retrying(self, script: Any, args: list[str], for_s: float) -> None:
        """A script that must reach Redis (a mark, a 429, a leave), retried while Redis is away for ``for_s``."""
        give_up = self._clock() + for_s
        await retrying(lambda: self._run(script, args), lambda: self._clock() > give_up)

    def _refresh_soon(self) -> None:
        """A fresh snapshot in the background when the last is old and no dispatcher is stepping."""
        if self._clock() - self._snap.at < REFRESH_S or (self._dispatcher and not self._dispatcher.done()):
            return
        if self._peeking is not None and not self._peeking.done():
            return
        with contextlib.suppress(RuntimeError):  # no event loop here: the snapshot stands
            self._peeking = asyncio.get_running_loop().create_task(self._peek())

    async def _peek(self) -> None:
        try:
            await self._step([])
        except REDIS_ERRORS as exc:
            self._outage(exc)

    # --- slots ------------------------------------------------------------------------------------

    def _window(self, now: float) -> SlidingWindow:
        """The window as the snapshot showed it, aged to ``now``: held slots count as sent now."""
        snap = self._snap
        window = SlidingWindow(self.quota, margin_s=self.margin.value(now))
        for stamp in [*(snap.local(ms) for ms in snap.sent_ms), *([now] * snap.held)]:
            window.record(stamp)
        window.block_until(snap.local(snap.blocked_ms))
        return window

    def _let_go_current(self) -> None:
        previous = pacing._current.get()
        pacing._current.set(None)
        if isinstance(previous, SharedSlot):
            previous.pacer._let_go(previous)
        else:
            pacing._let_go(previous)

    def _let_go(self, slot: SharedSlot) -> None:
        """A slot never marked sent (its task moved on or ended): it counts as sent now, and is no longer held."""
        if not slot.sent:
            slot.sent = True
            if slot in self._pending:
                self._pending.remove(slot)
            self._spawn(self._retrying(self.store.mark, [slot.id], self._hold_limit_s))

    def _sent(self, slot: SharedSlot) -> None:
        """:func:`pacing.mark_sent`: the request left now; Redis stamps it with its own time."""
        if slot.sent:
            return
        slot.sent = True
        if slot in self._pending:
            self._pending.remove(slot)
        now = self._clock()
        self.queue.board.sent(slot.ticket, now)
        self.margin.observe(now, now - slot.granted_s)
        self._spawn(self._retrying(self.store.mark, [slot.id], self._hold_limit_s))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

