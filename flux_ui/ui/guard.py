"""Sign-in throttling: the login resists guessing without locking out everyone else.

Each attempt is counted *before* its password is checked (a success takes its count back), so an
attacker who sends a hundred guesses at once meets the same limits as one who sends them in turn.
Per client address: a delay that doubles with each recent failure, then a lockout after
``per_address`` failures within ``window_s``. Per account (known accounts only): a lockout after
``per_account`` failures from anywhere, which caps guessing spread over many addresses. The account
gets no delay of its own, or a stranger could slow its owner's sign-in at will. Lockouts end by
themselves once the failures age out of the window; a success clears its address.

Pure logic with injectable clocks, so the tests need no sleeps; the web side is in launch.py.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("flux_ui")
_K = TypeVar("_K")

#: How an unknown account name appears in the log: people type their password into the name field.
UNKNOWN_ACCOUNT = "<unknown account>"


@dataclass(frozen=True)
class Limits:
    """How many failures, how fast, and how much memory the guard may hold."""

    per_address: int = 10
    per_account: int = 20
    window_s: float = 15 * 60
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_entries: int = 10_000


@dataclass(frozen=True)
class Ticket:
    """One admitted attempt, handed back to ``settle`` once its password has been checked."""

    address: str
    account: str | None  # None: not an account of this app
    stamp: float


@dataclass(frozen=True)
class Verdict:
    """The guard's answer before the password is checked: wait ``delay_s`` and check it, or refuse."""

    delay_s: float = 0.0
    retry_after_s: int = 0  # > 0: refused for this many seconds, whatever the password
    ticket: Ticket | None = None

    @property
    def refused(self) -> bool:
        return self.retry_after_s > 0


def lock_message(retry_after_s: int, wall_now: float) -> str:
    """What the person is told while sign-in is paused: when to try again, in minutes and UTC."""
    until = time.strftime("%H:%M UTC", time.gmtime(wall_now + retry_after_s))
    minutes = max(1, math.ceil(retry_after_s / 60))
    return (f"Too many failed sign-ins. Sign-in is paused until {until} (about {minutes} min); "
            "until then even the right password is refused.")


class LoginGuard:
    """Failure counts per address and per account, in sliding windows, in a bounded table."""

    def __init__(self, accounts: Iterable[str], limits: Limits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self._accounts = frozenset(accounts)
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()  # oldest touched first
        self._flood_logged: dict[tuple[str, str], float] = {}
        self._refused_until: dict[str, float] = {}  # address -> end of the lock it was last refused for
        self._lock = threading.Lock()  # the page route asks from Gradio's worker threads

    def __len__(self) -> int:
        return len(self._failures)

    def admit(self, address: str, account: str) -> Verdict:
        """Count this attempt and say how long to wait before checking it, or refuse it while locked."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            name = account if account in self._accounts else None
            retry = self._retry_after(address, name, now)
            if retry > 0:
                self._remember_refusal(address, now + retry)
                return Verdict(retry_after_s=retry)
            recent = len(self._recent(("address", address), now))
            delay = 0.0 if recent == 0 else min(self.limits.max_delay_s,
                                                self.limits.first_delay_s * 2 ** (recent - 1))
            self._record(("address", address), now, self.limits.per_address)
            if name is not None:
                self._record(("account", name), now, self.limits.per_account)
            return Verdict(delay_s=delay, ticket=Ticket(address, name, now))

    def settle(self, ticket: Ticket, succeeded: bool) -> None:
        """A success clears its address and takes back its account count; a failure is logged."""
        with self._lock:
            if succeeded:
                self._failures.pop(("address", ticket.address), None)
                stamps = self._failures.get(("account", ticket.account or ""))
                if ticket.account is not None and stamps is not None and ticket.stamp in stamps:
                    stamps.remove(ticket.stamp)
                return
            self._log_failure(ticket, self._clock())

    def locked_for(self, address: str) -> int:
        """Seconds until this address may try again (0: it may now), for the login page's message:
        its own lock, or the account lock it was last refused for (the page does not know the account)."""
        with self._lock:
            now = self._clock()
            refused = math.ceil(self._refused_until.get(address, now) - now)
            return max(self._retry_after(address, None, now), refused, 0)

    # --- the table ---------------------------------------------------------------------------------

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self.limits.window_s:
            stamps.popleft()
        return stamps

    def _retry_after(self, address: str, account: str | None, now: float) -> int:
        """Whole seconds until the oldest failure that keeps a key locked leaves the window."""
        keys = [(("address", address), self.limits.per_address)]
        if account is not None:
            keys.append((("account", account), self.limits.per_account))
        waits = [stamps[0] + self.limits.window_s - now for key, limit in keys
                 if len(stamps := self._recent(key, now)) >= limit]
        return math.ceil(max(waits)) if waits else 0

    def _record(self, key: tuple[str, str], now: float, limit: int) -> None:
        stamps = self._failures.setdefault(key, deque(maxlen=limit))
        stamps.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.limits.max_entries:
            evicted, _ = self._failures.popitem(last=False)
            self._flood_logged.pop(evicted, None)

    def _remember_refusal(self, address: str, until: float) -> None:
        self._refused_until.pop(address, None)  # re-inserted last: the dict stays oldest first
        self._refused_until[address] = until
        _drop_front(self._refused_until, lambda _: len(self._refused_until) > self.limits.max_entries)

    def _expire(self, now: float) -> None:
        """Drop entries whose newest failure has left the window; the least recently touched go first."""
        horizon = now - self.limits.window_s
        while self._failures:
            key, stamps = next(iter(self._failures.items()))
            if stamps and stamps[-1] > horizon:
                break
            del self._failures[key]
        _drop_front(self._flood_logged, lambda at: at <= horizon)
        _drop_front(self._refused_until, lambda until: until <= now)

    # --- the log -----------------------------------------------------------------------------------

    def _log_failure(self, ticket: Ticket, now: float) -> None:
        """One line per failed attempt (at most ``per_address`` per window and address), and one
        line when a key locks, at most once per window: a flood of refused attempts logs nothing."""
        window_min = round(self.limits.window_s / 60)
        shown = ticket.account if ticket.account is not None else UNKNOWN_ACCOUNT
        count = len(self._recent(("address", ticket.address), now))
        log.warning("failed sign-in for account %r from %s (%d of %d allowed from this address in %d min)",
                    shown, ticket.address, count, self.limits.per_address, window_min)
        keys = [(("address", ticket.address), self.limits.per_address, f"address {ticket.address}")]
        if ticket.account is not None:
            keys.append((("account", ticket.account), self.limits.per_account, f"account {ticket.account!r}"))
        for key, limit, what in keys:
            locked = len(self._recent(key, now)) >= limit
            if locked and key not in self._flood_logged:
                self._flood_logged[key] = now
                _drop_front(self._flood_logged, lambda _: len(self._flood_logged) > self.limits.max_entries)
                log.warning("sign-in locked for %s after %d failures in %d min; it unlocks by itself, and "
                            "refused attempts are not logged one by one", what, limit, window_min)


def _drop_front(table: dict[_K, float], done: Callable[[float], bool]) -> None:
    """Drop a time-ordered table's oldest entries while ``done`` says so: O(what is dropped)."""
    while table:
        key = next(iter(table))
        if not done(table[key]):
            return
        del table[key]
