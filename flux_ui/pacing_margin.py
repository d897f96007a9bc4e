"""How late the event loop runs lately, and the pacing margin that follows it.

A slot's request reaches the service some scheduling delay after the pacer grants it; the part
of its way the client cannot see takes a few turns of the scheduler. So the margin a slot is kept
past its window follows the delay measured lately (:class:`AdaptiveMargin`), sampled by a probe
thread (:class:`SchedulingProbe`), within bounds (see :mod:`flux_ui.pacing`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

#: The part of a request's way the client cannot see takes a few turns of the scheduler
#: (read, parse, hand to a worker, count): the margin is this many measured delays.
DELAY_FACTOR = 3.0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class DelaySource(Protocol):
    """Somewhere the margin reads the scheduling delay from (a :class:`SchedulingProbe`, or a test's)."""

    def keep_alive(self) -> None: ...

    def recent(self, horizon_s: float, quantile: float) -> float: ...


class SchedulingProbe:
    """How late a thread that asks to wake every ``period_s`` wakes: this process's scheduling delay.

    That lateness is what CPU contention (other processes, the GIL) does to everything in
    the process at that moment, including what the pacer cannot see: an in-process
    emulator reading a request, the event loop finishing a send. The probe runs only while
    pacers keep asking (:meth:`keep_alive`), and stops ``idle_s`` after the last ask.
    """

    def __init__(self, period_s: float = 0.02, idle_s: float = 30.0, keep: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self.idle_s = idle_s
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._until = 0.0
        self._running = False

    def keep_alive(self) -> None:
        """Measure for at least ``idle_s`` more (starts the probe's thread if it is not running)."""
        with self._lock:
            self._until = self._clock() + self.idle_s
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="flux-ui-pacing-probe", daemon=True).start()

    def record(self, at_s: float, late_s: float) -> None:
        with self._lock:
            self._samples.append((at_s, max(0.0, late_s)))

    def recent(self, horizon_s: float, quantile: float) -> float:
        """The ``quantile`` of the lateness measured in the last ``horizon_s`` (0 when none)."""
        since = self._clock() - horizon_s
        with self._lock:
            values = [late for at, late in self._samples if at >= since]
        return _quantile(values, quantile)

    def _run(self) -> None:
        last = self._clock()
        while True:
            time.sleep(self.period_s)
            now = self._clock()
            self.record(now, now - last - self.period_s)
            last = now
            with self._lock:
                if now > self._until:
                    self._running = False
                    return


#: One probe for the process: the scheduling delay is the same for every pacer in it.
PROCESS_PROBE = SchedulingProbe()


class AdaptiveMargin:
    """How long past its window a slot is kept: the base, or a few recent scheduling delays.

    With sends marked, slots are stamped when their request has left, so the delay before
    the send costs nothing; what the margin must cover is the part after it, which the
    client cannot see (the network, the service or emulator reading the request). The base
    covers an idle machine's. On a busy one that part grows with the scheduling delay, which
    the pacer measures two ways: each slot's delay to its send, and a :class:`SchedulingProbe`.
    The margin is ``factor`` times a high quantile of what was measured within the last
    ``horizon_s`` (a window and the cap: the slots still held), never below the base nor
    above ``cap_s``; as old delays roll out, it shrinks back with the load.
    """

    def __init__(self, base_s: float, cap_s: float, horizon_s: float, *, factor: float = DELAY_FACTOR,
                 quantile: float = 0.99, probe: DelaySource | None = None) -> None:
        self.base_s = base_s
        self.cap_s = max(cap_s, base_s)
        self.horizon_s = horizon_s
        self.factor = factor
        self.quantile = quantile
        self.probe = probe
        self._sends: deque[tuple[float, float]] = deque(maxlen=256)

    def observe(self, at_s: float, delay_s: float) -> None:
        """A slot granted ``delay_s`` before its send at ``at_s`` (the pacer's clock)."""
        self._sends.append((at_s, max(0.0, delay_s)))

    def keep_measuring(self) -> None:
        if self.probe is not None:
            self.probe.keep_alive()

    def recent_delay_s(self, now_s: float) -> float:
        """The quantile of the delays measured within the horizon, sends and probe alike."""
        sends = [d for at, d in self._sends if at >= now_s - self.horizon_s]
        probed = self.probe.recent(self.horizon_s, self.quantile) if self.probe is not None else 0.0
        return max(_quantile(sends, self.quantile), probed)

    def value(self, now_s: float) -> float:
        return min(self.cap_s, max(self.base_s, self.factor * self.recent_delay_s(now_s)))
