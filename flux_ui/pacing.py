"""Quotas and pacing: spend every request a deployment allows, and never draw a 429.

The service enforces its requests-per-minute quota over short windows, so a burst can be
refused well below the per-minute figure (contract §2). flux-ui therefore turns an RPM
tier into a short sliding window (:meth:`Quota.from_rpm`) and paces every request through
it. The emulator enforces quotas with the same :class:`SlidingWindow`, so the two agree.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


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

    def block_until(self, until: float) -> None:
        """Hold every request back until ``until`` (the service said to wait)."""
        self._blocked_until = max(self._blocked_until, until)


class Pacer:
    """Paces one deployment's requests, first come first served.

    ``acquire`` waits for a slot and claims it; waiters queue behind one lock, so a burst
    leaves in order, spread over the window instead of all at once.
    """

    def __init__(self, quota: Quota, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = asyncio.sleep) -> None:
        self.window = SlidingWindow(quota, margin_s=pacing_margin(quota))
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.waiting = 0

    @property
    def quota(self) -> Quota:
        return self.window.quota

    async def acquire(self) -> float:
        """Wait for a slot, claim it, and return the seconds spent waiting."""
        start = self._clock()
        self.waiting += 1
        try:
            async with self._lock:
                while (wait := self.window.wait_time(self._clock())) > 0:
                    await self._sleep(wait)  # type: ignore[misc]
                self.window.record(self._clock())
        finally:
            self.waiting -= 1
        return self._clock() - start

    def penalize(self, seconds: float) -> None:
        """The service answered 429: hold the deployment back for ``seconds``."""
        self.window.block_until(self._clock() + seconds)

    def status(self) -> PacerStatus:
        now = self._clock()
        return PacerStatus(
            quota=self.quota,
            available=self.window.available(now),
            next_slot_in=self.window.wait_time(now),
            waiting=self.waiting,
        )


def pacing_margin(quota: Quota) -> float:
    """How long past its window flux-ui keeps a slot: 5 % of the window, within 0.1–0.5 s."""
    return min(0.5, max(0.1, 0.05 * quota.window_s))


@dataclass(frozen=True)
class PacerStatus:
    """What the UI shows for a deployment: slots free now and when the next one opens."""

    quota: Quota
    available: int
    next_slot_in: float
    waiting: int
