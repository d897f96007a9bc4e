"""The retry decision (a pure function) and the pacing arithmetic, each tested alone."""

from __future__ import annotations

import asyncio
import email.utils

import pytest

from conftest import FakeClock
from flux_ui.client.retry import MAX_BACKOFF_S, backoff, decide_retry, parse_retry_after
from flux_ui.pacing import Pacer, Quota, SlidingWindow, pacing_margin


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_never_retried(status: int) -> None:
    decision = decide_retry(retries_done=0, status=status)
    assert not decision.retry and str(status) in decision.reason


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retried(status: int) -> None:
    assert decide_retry(retries_done=0, status=status, rand=0.0).retry


def test_other_4xx_not_retried_and_x_should_retry_overrides() -> None:
    assert not decide_retry(retries_done=0, status=418).retry
    assert decide_retry(retries_done=0, status=418, headers={"X-Should-Retry": "true"}).retry
    assert not decide_retry(retries_done=0, status=503, headers={"x-should-retry": "false"}).retry


def test_gives_up_after_max_retries() -> None:
    assert decide_retry(retries_done=1, status=503).retry
    final = decide_retry(retries_done=2, status=503)
    assert not final.retry and "3 attempts" in final.reason


@pytest.mark.parametrize(
    ("failure", "retry"), [("connect", True), ("dropped", True), ("empty", True), ("malformed", True),
                           ("timeout", False)]
)
def test_failures_without_status(failure: str, retry: bool) -> None:
    assert decide_retry(retries_done=0, failure=failure).retry is retry  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_cap_with_jitter_taken_off() -> None:
    assert [backoff(n, 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, MAX_BACKOFF_S]
    assert backoff(1, 0.999) == pytest.approx(1.0 * (1 - 0.25 * 0.999))
    assert decide_retry(retries_done=1, status=500, rand=0.0).wait == 1.0


def test_retry_after_headers_win_over_backoff() -> None:
    assert decide_retry(retries_done=0, status=429, headers={"Retry-After": "7"}).wait == 7.0
    assert decide_retry(retries_done=0, status=429, headers={"retry-after-ms": "1500", "Retry-After": "9"}).wait == 1.5


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(12, abs=1)


def test_wait_from_the_azure_message_when_no_header() -> None:
    message = "Requests to the deployment have exceeded the rate limit. Please retry after 4 seconds."
    assert decide_retry(retries_done=0, status=429, message=message).wait == 4.0
    assert parse_retry_after({}, "no number here") is None


def test_a_wait_above_the_cap_is_a_quota_wall() -> None:
    decision = decide_retry(retries_done=0, status=429, headers={"Retry-After": "600"}, cap=60)
    assert not decision.retry and decision.quota_wall and decision.wait == 600


def test_no_retry_that_would_pass_the_deadline() -> None:
    decision = decide_retry(retries_done=0, status=503, headers={"Retry-After": "5"}, time_left=3)
    assert not decision.retry and "deadline" in decision.reason


def test_needs_status_or_failure() -> None:
    with pytest.raises(ValueError):
        decide_retry(retries_done=0)


# --- pacing -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("rpm", "requests", "window"), [(5, 1, 12.0), (6, 1, 10.0), (15, 2, 8.0), (30, 5, 10.0), (100, 16, 9.6)]
)
def test_rpm_becomes_a_short_window_with_the_same_rate(rpm: int, requests: int, window: float) -> None:
    q = Quota.from_rpm(rpm)
    assert (q.requests, q.window_s) == (requests, pytest.approx(window))
    assert q.rpm == pytest.approx(rpm)


def test_quota_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Quota(0, 1.0)
    with pytest.raises(ValueError):
        Quota(1, 0)


def test_sliding_window_arithmetic() -> None:
    w = SlidingWindow(Quota(3, 10.0))
    for t in (0.0, 1.0, 2.0):
        assert w.wait_time(t) == 0
        w.record(t)
    assert w.available(2.5) == 0
    assert w.wait_time(2.5) == pytest.approx(7.5)  # the slot used at 0 frees at 10
    assert w.available(10.0) == 1 and w.wait_time(10.0) == 0
    w.record(10.0)
    assert w.wait_time(10.5) == pytest.approx(0.5)  # next frees at 11
    assert w.available(12.0) == 2


def test_the_margin_keeps_a_slot_past_its_window() -> None:
    w = SlidingWindow(Quota(1, 1.0), margin_s=0.1)
    w.record(0.0)
    assert w.wait_time(1.0) == pytest.approx(0.1) and w.available(1.05) == 0 and w.available(1.1) == 1
    assert pacing_margin(Quota(20, 5.0)) == 0.15
    assert pacing_margin(Quota(4, 0.5)) == 0.1 and pacing_margin(Quota.from_rpm(6)) == 0.3


def test_block_until_holds_everything_back() -> None:
    w = SlidingWindow(Quota(5, 1.0))
    w.block_until(3.0)
    assert w.available(1.0) == 0 and w.wait_time(1.0) == pytest.approx(2.0)
    assert w.available(3.0) == 5


async def test_pacer_spreads_a_burst_without_exceeding_the_quota() -> None:
    clock = FakeClock(now=0.0)
    pacer = Pacer(Quota(2, 8.0), clock=clock, sleep=clock.sleep)
    sent: list[float] = []

    async def one() -> None:
        await pacer.acquire()
        sent.append(clock.now)

    await asyncio.gather(*(one() for _ in range(6)))
    # 2 per 8 s, never more, and no time wasted beyond the arrival margin (3 % of the window: 0.24 s)
    m = pacing_margin(Quota(2, 8.0))
    assert m == pytest.approx(0.24)
    assert sent == pytest.approx([0.0, 0.0, 8 + m, 8 + m, 16 + 2 * m, 16 + 2 * m])
    status = pacer.status()
    assert status.available == 0 and status.next_slot_in == pytest.approx(8 + m) and status.waiting == 0


async def test_pacer_status_counts_available_slots() -> None:
    clock = FakeClock()
    pacer = Pacer(Quota(3, 1.0), clock=clock, sleep=clock.sleep)
    assert pacer.status().available == 3
    assert await pacer.acquire() == 0
    assert pacer.status().available == 2
    pacer.penalize(5.0)
    assert pacer.status().available == 0 and pacer.status().next_slot_in == pytest.approx(5.0)
    waited = await pacer.acquire()
    assert waited == pytest.approx(5.0)


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    clock, wakes = FakeClock(), asyncio.Event()  # never set: a waiter sleeps until it is cancelled
    pacer = Pacer(Quota(1, 0.3), clock=clock, sleep=lambda _: wakes.wait())
    await pacer.acquire()
    waiter = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)  # the waiter runs up to its sleep
    assert pacer.status().waiting == 1 and pacer.status().next_slot_in > 0
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pacer.status().waiting == 0
    assert len(pacer.window._sent) == 1  # the cancelled request claimed no slot


def test_a_long_wait_on_an_outage_is_not_called_a_spent_quota() -> None:
    decision = decide_retry(retries_done=0, status=503, headers={"Retry-After": "600"}, cap=60)
    assert not decision.retry and not decision.quota_wall and decision.wait == 600
