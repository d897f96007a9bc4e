"""Pacing that holds when the machine is busy: arrivals, not sends, stay within the quota.

The logic runs on virtual time (concurrent sleeps that end in order, no real waiting), with
send delays that vary the way a loaded machine makes them vary: the first requests of a
burst leave late, the next ones early. Every arrival is then judged with the emulator's own
arithmetic (:class:`SlidingWindow`, as ``QuotaBook.try_consume``). One real test sends a
30-user burst to an in-process emulator enforcing a tight quota while CPU burners run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from bench.burst_load import burst, cpu_load, default_burners, floor_s, latency_alone, references
from bench.common import emulator, quotas_for
from conftest import VirtualTime
from flux_ui.pacing import (
    Pacer,
    Quota,
    SlidingWindow,
    mark_sent,
    max_margin,
    pacing_margin,
    trace_sends,
)
from flux_ui.pacing_margin import AdaptiveMargin, SchedulingProbe

PRO = Quota(2, 8.0)  # FLUX.2 [pro]'s default tier, 15 RPM


class Stalls:
    """A scheduling-delay source the test sets by hand (what a loaded machine's probe would read)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.asked = 0

    def keep_alive(self) -> None:
        self.asked += 1

    def recent(self, horizon_s: float, quantile: float) -> float:
        return self.delay_s


async def user(pacer: Pacer, clock: VirtualTime, send_delay: float, unseen_delay: float,
               arrivals: list[float], marks: bool = True) -> None:
    """One request: its slot, then ``send_delay`` until it leaves, then ``unseen_delay`` until it arrives."""
    await pacer.acquire()
    await clock.sleep(send_delay)
    if marks:
        mark_sent()  # where core.py's request goes out (trace_sends, on the body written)
    arrivals.append(clock.now + unseen_delay)


def refused(quota: Quota, arrivals: Sequence[float]) -> int:
    """How many arrivals the emulator's quota would answer with a 429 (refusals take no slot)."""
    window = SlidingWindow(quota)
    count = 0
    for at in sorted(arrivals):
        if window.wait_time(at) > 0:
            count += 1
        else:
            window.record(at)
    return count


async def burst_on_virtual_time(quota: Quota, sends: Sequence[float], unseen: Sequence[float], *,
                                marks: bool = True, factor: float | None = None,
                                probe: Stalls | None = None) -> tuple[list[float], Pacer]:
    clock = VirtualTime()
    pacer = Pacer(quota, clock=clock, sleep=clock.sleep, probe=probe)
    if factor is not None:
        pacer.margin.factor = factor
    arrivals: list[float] = []
    await clock.run(*(user(pacer, clock, s, u, arrivals, marks) for s, u in zip(sends, unseen, strict=True)))
    return arrivals, pacer


# --- the attack, on virtual time ----------------------------------------------------------------


async def test_late_then_early_arrivals_drew_a_429_when_slots_were_stamped_at_the_grant() -> None:
    # The attack: the first two leave 1.3 s after their slots, the next ones at once.
    sends, unseen = [1.3, 1.3, 0, 0, 0, 0], [0.05] * 6
    arrivals, _ = await burst_on_virtual_time(PRO, sends, unseen, marks=False)
    third = sorted(arrivals)[2]
    assert third - min(arrivals) < PRO.window_s and refused(PRO, arrivals) > 0


async def test_stamped_at_the_send_late_then_early_arrivals_stay_within_the_quota() -> None:
    sends, unseen = [1.3, 1.3, 0, 0, 0, 0, 0.6, 0, 0, 0], [0.05] * 10
    arrivals, pacer = await burst_on_virtual_time(PRO, sends, unseen)
    assert refused(PRO, arrivals) == 0
    # No more conservative than it must be: each window waits its late sends and the margin.
    windows = 4
    assert max(arrivals) <= windows * PRO.window_s + 1.3 + 0.6 + windows * max_margin(PRO) + 0.1
    assert pacer.marks_sends


async def test_the_margin_covers_an_unseen_delay_that_grows_with_the_measured_one() -> None:
    # What follows the send (the service reading it) is late for the first two as well, by
    # less than three times what the client measured before the send; later ones are prompt.
    sends, unseen = [0.3, 0.3, 0, 0, 0, 0], [0.8, 0.8, 0, 0, 0, 0]
    with_base_only, _ = await burst_on_virtual_time(PRO, sends, unseen, factor=0.0)
    assert refused(PRO, with_base_only) > 0  # a fixed base margin (0.3 s) is not enough
    adaptive, _ = await burst_on_virtual_time(PRO, sends, unseen)
    assert refused(PRO, adaptive) == 0
    assert sorted(adaptive)[2] == pytest.approx(0.3 + PRO.window_s + 3 * 0.3)  # stamped at the send, 0.9 s kept


async def test_a_measured_scheduling_delay_widens_the_margin_even_without_marks() -> None:
    stalls = Stalls(delay_s=0.25)
    sends, unseen = [0, 0, 0, 0], [0.7, 0.7, 0, 0]  # the service late on the first two
    arrivals, pacer = await burst_on_virtual_time(PRO, sends, unseen, marks=False, probe=stalls)
    assert refused(PRO, arrivals) == 0 and stalls.asked >= 4
    assert pacer.window.margin_s == pytest.approx(0.75)
    calm, _ = await burst_on_virtual_time(PRO, sends, unseen, marks=False, probe=Stalls(0.0))
    assert refused(PRO, calm) > 0


async def test_a_slot_is_held_until_its_request_leaves() -> None:
    quota = Quota(1, 1.0)
    clock = VirtualTime()
    pacer = Pacer(quota, clock=clock, sleep=clock.sleep)
    arrivals: list[float] = []
    # One marked request switches holding on; then one takes 3 s to leave (a slow upload),
    # longer than the window, and the next must not go before it has left and a window passed.
    await clock.run(user(pacer, clock, 0.0, 0.0, arrivals))
    await clock.run(user(pacer, clock, 3.0, 0.0, arrivals), user(pacer, clock, 0.0, 0.0, arrivals))
    slow, quick = arrivals[1], arrivals[2]
    assert quick >= slow + quota.window_s and refused(quota, arrivals) == 0


async def test_a_slot_never_marked_stops_holding_when_its_task_ends() -> None:
    quota = Quota(1, 1.0)
    clock = VirtualTime()
    pacer = Pacer(quota, clock=clock, sleep=clock.sleep)
    arrivals: list[float] = []
    await clock.run(user(pacer, clock, 0.0, 0.0, arrivals))  # holding on

    async def gives_up() -> None:
        await pacer.acquire()  # then fails before sending, and never marks

    await clock.run(gives_up())
    start = clock.now
    await clock.run(user(pacer, clock, 0.0, 0.0, arrivals))
    assert clock.now - start <= quota.window_s + max_margin(quota)


async def test_mark_sent_outside_a_slot_or_twice_does_nothing() -> None:
    mark_sent()
    clock = VirtualTime()
    pacer = Pacer(Quota(3, 1.0), clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    clock.now = 0.2
    mark_sent()
    clock.now = 0.5
    mark_sent()
    assert list(pacer.window._sent) == [0.2]
    await pacer.acquire()  # never marked
    clock.now = 0.6
    await pacer.acquire()  # the same task again: the slot at 0.5 is let go, keeping its stamp
    assert [r.slot_s for r in pacer._pending] == [0.6] and list(pacer.window._sent) == [0.2, 0.5, 0.6]


async def test_a_slot_is_marked_once_even_from_a_task_that_inherited_it() -> None:
    clock = VirtualTime()
    pacer = Pacer(Quota(3, 1.0), clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    clock.now = 0.1

    async def child() -> None:  # a task made after acquire copies this task's context
        mark_sent()

    await asyncio.create_task(child())
    clock.now = 0.3
    mark_sent()
    assert list(pacer.window._sent) == [0.1]


async def test_trace_sends_marks_when_the_body_is_written() -> None:
    clock = VirtualTime()
    pacer = Pacer(Quota(2, 1.0), clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    clock.now = 0.3
    await trace_sends("http11.send_request_headers.complete", {})
    assert not pacer.marks_sends
    clock.now = 0.4
    await trace_sends("http11.send_request_body.complete", {})
    assert pacer.marks_sends and list(pacer.window._sent) == [0.4]


# --- the margin ---------------------------------------------------------------------------------


def test_the_margin_adapts_within_its_bounds_and_shrinks_back() -> None:
    margin = AdaptiveMargin(0.4, 2.0, horizon_s=10.0)
    assert margin.value(0.0) == 0.4
    margin.observe(1.0, 0.05)
    assert margin.value(1.0) == 0.4  # an idle machine's delays: the base
    margin.observe(2.0, 0.3)
    assert margin.value(2.0) == pytest.approx(0.9)  # three delays
    margin.observe(3.0, 30.0)
    assert margin.value(3.0) == 2.0  # never above the cap
    assert margin.value(13.5) == 0.4  # all rolled out of the horizon


def test_the_cap_is_a_quarter_of_the_window_at_most_two_seconds_and_never_below_the_base() -> None:
    assert max_margin(PRO) == 2.0 and max_margin(Quota(6, 3.0)) == 0.75
    tiny = Quota(1, 0.3)
    assert AdaptiveMargin(pacing_margin(tiny), max_margin(tiny), 1.0).cap_s == pacing_margin(tiny)


def test_the_scheduling_probe_measures_while_asked_and_then_stops() -> None:
    probe = SchedulingProbe(period_s=0.005, idle_s=0.1)
    probe.keep_alive()
    deadline = time.monotonic() + 5.0
    while probe._running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not probe._running  # stopped by itself after idle_s
    assert len(probe._samples) >= 3 and probe.recent(10.0, 1.0) >= 0.0


def test_the_probe_reports_a_quantile_of_its_recent_samples() -> None:
    now = [100.0]
    probe = SchedulingProbe(clock=lambda: now[0])
    for i, late in enumerate([0.01, 0.02, 0.5, 0.03]):
        probe.record(95.0 + i, late)
    assert probe.recent(10.0, 1.0) == 0.5 and probe.recent(2.5, 1.0) == 0.03
    assert probe.recent(10.0, 0.5) == 0.02


# --- for real: a burst on a busy machine ---------------------------------------------------------


async def test_a_30_user_burst_under_cpu_load_draws_no_429_and_stays_near_the_floor() -> None:
    quota, n, latency = Quota(6, 3.0), 30, 0.2
    refs = references()
    with cpu_load(default_burners(), seconds=30):
        alone = await latency_alone(latency, refs, reps=3)
        with emulator({"FLUX.2-pro": latency}, quotas_for(tight={"FLUX.2-pro": quota})) as emu:
            result = await burst(emu, quota, n, refs)
    assert result.throttled == 0, f"{result.throttled} × 429 (p95 slot-to-arrival {result.p95_delay_s():.3f} s)"
    assert result.failures == 0 and len(result.slot_to_arrival_s) == n
    floor = floor_s(quota, n, alone)
    assert result.wall_s <= 1.15 * floor, f"{result.wall_s:.2f} s against a floor of {floor:.2f} s"
