"""Pacing shared through a real Redis (the session's redis-server): separate pacers, each with its own client
and board as separate replicas would have, never pass the quota together, share 429s and held slots, take
turns by user across replicas, and wait (saying why, never sending) while Redis is away.

Short real windows (3 per 0.6 s): Redis's clock is real, so these tests wait on it; grant times are read
from Redis's own ``TIME``, the clock the scripts stamp with.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from bench.common import emulator, quotas_for
from conftest import FakeService, foundry_env
from flux_ui.client import FoundryClient, GenerationRequest, ProgressEvent
from flux_ui.errors import ServiceTimeoutError, TooManyQueuedError, WithdrawnError
from flux_ui.fair_queue import Board
from flux_ui.identity import User, acting_as
from flux_ui.pacing import Pacer, Quota, mark_sent, max_margin
from flux_ui.pacing_redis import RedisStore, SharedPacer
from flux_ui.settings import load_settings
from flux_ui.settings_shared import redact
from flux_ui.ui.progress import status_line

Q = Quota(3, 0.6)
NAME = "FLUX.2-pro"
PASSWORD = "hunter2-not-shown"


def replica(url: str, board: Board | None = None, quota: Quota = Q, **options: float) -> SharedPacer:
    """One replica's pacer: its own Redis pool and board."""
    return SharedPacer(quota, RedisStore(url), board=board or Board(), name=NAME, **options)  # type: ignore[arg-type]


async def settled(url: str) -> None:
    """A Redis that has been running a while: its epoch is there, so no reset guard holds the first grants."""
    async with aioredis.Redis.from_url(url) as db:
        await db.hset(f"flux-ui:{{{NAME}}}:state", "epoch", "test")


async def redis_now(db: aioredis.Redis) -> float:
    seconds, micros = await db.time()
    return seconds + micros / 1e6


async def until(check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def waiting_in_redis(url: str) -> int:
    async with aioredis.Redis.from_url(url) as db:
        return int(await db.hlen(f"flux-ui:{{{NAME}}}:tickets"))


def with_password(url: str) -> str:
    return url.replace("redis://", f"redis://default:{PASSWORD}@")


async def fill(pacer: SharedPacer, n: int = 3, user: str = "filler") -> None:
    """Use up the window now (``n`` grants, each marked sent at once)."""
    async def one() -> None:
        await pacer.acquire(user, capped=False)
        mark_sent()
    await asyncio.gather(*(one() for _ in range(n)))


async def close(*pacers: SharedPacer) -> None:
    for pacer in pacers:
        await pacer.aclose()


async def test_three_replicas_bursting_together_stay_within_the_quota(redis_url: str) -> None:
    await settled(redis_url)
    pacers = [replica(redis_url) for _ in range(3)]
    grants: list[float] = []
    async with aioredis.Redis.from_url(redis_url) as db:
        async def ask(pacer: SharedPacer, user: str) -> None:
            await pacer.acquire(user)
            grants.append(await redis_now(db))
            mark_sent()

        await asyncio.gather(*(ask(p, f"user{i}") for i, p in enumerate(pacers) for _ in range(4)))
    await close(*pacers)
    grants.sort()
    assert len(grants) == 12
    # No window of the quota's length ever holds more than its requests: the 4th is a window after the 1st.
    assert min(grants[i + Q.requests] - grants[i] for i in range(len(grants) - Q.requests)) >= Q.window_s
    # And the quota was used, not idled: three windows' worth, well short of a fourth (slack for a loaded machine).
    assert grants[-1] - grants[0] < 4 * (Q.window_s + max_margin(Q))


async def test_two_clients_on_one_redis_draw_no_429_from_the_emulator(redis_url: str) -> None:
    """Two replicas' clients, each bursting six images at one emulator that enforces the quota: none refused."""
    await settled(redis_url)
    with emulator(quotas=quotas_for(tight={NAME: Q})) as emu:
        settings = load_settings({"FLUX_UI_REDIS_URL": with_password(redis_url)}, dotenv_path=None).with_emulator(
            emu.base_url, emu.api_key, emu.config.quotas)
        clients = [FoundryClient(settings), FoundryClient(settings)]

        async def burst(client: FoundryClient, who: str) -> list[object]:
            with acting_as(User(who, who)):
                return await asyncio.gather(*(client.generate(GenerationRequest(NAME, f"{who} {i}", [], {}, None))
                                              for i in range(6)))

        results = await asyncio.gather(burst(clients[0], "alice"), burst(clients[1], "bob"))
        for client in clients:
            await client.aclose()
        log = emu.requests()
    assert sum(len(r) for r in results) == 12
    assert [entry["status"] for entry in log] == [200] * 12


async def test_a_429_on_one_replica_holds_back_the_others(redis_url: str) -> None:
    await settled(redis_url)
    one, two = replica(redis_url), replica(redis_url)
    async with aioredis.Redis.from_url(redis_url) as db:
        start = await redis_now(db)
        one.penalize(0.8)
        assert one.status().available == 0 and one.status().next_slot_in > 0.7  # said here at once
        await asyncio.sleep(0.05)
        await two.acquire("bob")
        granted = await redis_now(db)
        mark_sent()
    await close(one, two)
    assert granted - start >= 0.75


async def test_a_slot_not_yet_marked_sent_holds_its_place(redis_url: str) -> None:
    await settled(redis_url)
    one, two = replica(redis_url), replica(redis_url)
    go = asyncio.Event()
    sent_at: list[float] = []
    async with aioredis.Redis.from_url(redis_url) as db:
        async def hold() -> None:
            await one.acquire("alice")
            await go.wait()  # the request is slow to leave (a big upload)
            sent_at.append(await redis_now(db))
            mark_sent()

        holders = [asyncio.create_task(hold()) for _ in range(3)]
        await until(lambda: len(one._pending) == 3)
        fourth = asyncio.create_task(two.acquire("bob"))
        await asyncio.sleep(Q.window_s + max_margin(Q) + 0.1)  # past the window: the held slots still count
        assert not fourth.done()
        go.set()
        await asyncio.gather(*holders)
        await fourth
        granted = await redis_now(db)
    await close(one, two)
    assert granted - max(sent_at) >= Q.window_s


async def test_fair_share_across_replicas(redis_url: str) -> None:
    """A's 12-image burst on one replica; B's one request on another, asked later, goes within about one slot."""
    await settled(redis_url)
    one, two = replica(redis_url), replica(redis_url)
    grants: list[tuple[str, int]] = []
    asked: dict[str, float] = {}

    async def ask(pacer: SharedPacer, user: str, index: int) -> None:
        await pacer.acquire(user, f"{user} {index}")
        grants.append((user, index))
        mark_sent()

    burst = [asyncio.create_task(ask(one, "alice", i)) for i in range(12)]
    await until(lambda: len(grants) == 3)  # A's first three went at once; the rest wait
    asked["bob"] = time.monotonic()
    await ask(two, "bob", 0)
    waited = time.monotonic() - asked["bob"]
    await until(lambda: len(grants) >= 6)
    for task in burst:
        task.cancel()
    await asyncio.gather(*burst, return_exceptions=True)
    await close(one, two)
    # About one slot; first come first served it would be three windows (A's nine still waiting).
    assert waited <= 2 * (Q.window_s + max_margin(Q))
    assert grants.index(("bob", 0)) <= 4  # the next slot (one of A's may have been granted as B asked)
    alice = [i for user, i in grants if user == "alice"]
    assert alice == sorted(alice)  # A's own keep their order


async def test_each_board_places_its_own_requests_in_the_shared_round(redis_url: str) -> None:
    """Positions and estimated starts on each replica's board come from the order decided in Redis."""
    await settled(redis_url)
    one, two = replica(redis_url), replica(redis_url)
    one.penalize(5.0)  # nothing is granted while the test looks
    await asyncio.sleep(0.05)
    alice = [asyncio.create_task(one.acquire("alice", f"a{i}")) for i in range(3)]
    await until(lambda: _equals(waiting_in_redis(redis_url), 3), timeout_s=2)
    bob = [asyncio.create_task(two.acquire("bob", f"b{i}")) for i in range(2)]
    await until(lambda: one.queue.users() == {"alice", "bob"} and two.queue.users() == {"alice", "bob"})
    # Neither was served yet and A joined first: A, B, A, B, A.
    assert [(v.label, v.position) for v in one.queue.board.of("alice")] == [("a0", 1), ("a1", 3), ("a2", 5)]
    assert [(v.label, v.position) for v in two.queue.board.of("bob")] == [("b0", 2), ("b1", 4)]
    assert two.queue.board.of("alice") == [] and two.queue.waiting_of("alice") == 3 and one.waiting == 5
    starts = [v.starts_in_s for v in one.queue.board.of("alice")]
    assert starts[0] == pytest.approx(5.0, abs=0.2) and starts == sorted(starts)
    assert one.queue.starts_in("carol") == pytest.approx(starts[1], abs=0.05)  # a newcomer: after the first lap
    for task in (*alice, *bob):
        task.cancel()
    await asyncio.gather(*alice, *bob, return_exceptions=True)
    await close(one, two)


async def test_cancelling_a_waiting_request_takes_it_out_of_redis(redis_url: str) -> None:
    await settled(redis_url)
    board = Board()
    pacer = replica(redis_url, board)
    await fill(pacer)
    first = asyncio.create_task(pacer.acquire("alice", "first"))
    second = asyncio.create_task(pacer.acquire("alice", "second"))
    await until(lambda: waiting_in_redis(redis_url), timeout_s=2)
    await until(lambda: len([v for v in board.of("alice") if v.cancellable]) == 2)
    views = board.of("alice")
    assert [(v.label, v.position) for v in views] == [("first", 1), ("second", 2)]
    assert board.cancel("alice", views[0].id)
    with pytest.raises(WithdrawnError) as info:
        await first
    assert info.value.sent is False and info.value.billed == "no"
    await until(lambda: _equals(waiting_in_redis(redis_url), 1), timeout_s=2)
    await second
    mark_sent()
    await close(pacer)


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_the_per_user_cap_counts_waiting_requests_on_every_replica(redis_url: str) -> None:
    await settled(redis_url)
    one, two = replica(redis_url, Board(max_queued=2)), replica(redis_url, Board(max_queued=2))
    await fill(one)
    waiting = [asyncio.create_task(one.acquire("alice")) for _ in range(2)]
    await until(lambda: _equals(waiting_in_redis(redis_url), 2), timeout_s=2)
    with pytest.raises(TooManyQueuedError) as info:
        await two.acquire("alice")
    assert "FLUX_UI_USER_MAX_QUEUED=2" in info.value.message and info.value.sent is False
    assert two.queue.waiting_of("alice") == 2  # the round as Redis counts it, for the quota gate
    bob = asyncio.create_task(two.acquire("bob"))  # someone else is not capped by alice's requests
    await until(lambda: _equals(waiting_in_redis(redis_url), 3), timeout_s=2)
    for task in (*waiting, bob):
        task.cancel()
    await asyncio.gather(*waiting, bob, return_exceptions=True)
    await until(lambda: _equals(waiting_in_redis(redis_url), 0), timeout_s=2)
    await close(one, two)


async def test_a_crashed_replicas_tickets_lapse(redis_url: str) -> None:
    """A replica that died with a ticket at the head of the round stops blocking once its lease lapses."""
    await settled(redis_url)
    crashed, alive = replica(redis_url, lease_s=0.3), replica(redis_url)
    await fill(alive)
    # The crashed replica's last step: its ticket joins (never served: the head) and is never refreshed.
    await crashed._run(crashed.store.step, ["3", "100", "300", "0", "dead-ticket", "zed", "0", "u"])
    await crashed.aclose()
    assert await waiting_in_redis(redis_url) == 1
    start = time.monotonic()
    await asyncio.wait_for(alive.acquire("bob"), timeout=3)
    mark_sent()
    assert time.monotonic() - start < 2.0
    assert await waiting_in_redis(redis_url) == 0
    await close(alive)


async def test_redis_away_mid_burst_then_back_empty(redis_url: str, redis_server, caplog) -> None:  # type: ignore[no-untyped-def]
    """Stopped mid-burst: nothing is granted, and the waiters say why; started again empty: they go on, but
    only once a whole window (and the widest margin) has passed since it came back."""
    caplog.set_level(logging.INFO, "flux_ui")
    url = with_password(redis_url)
    await settled(url)
    pacer = replica(url)
    said: list[tuple[str, float]] = []
    granted: list[float] = []

    async def ask() -> None:
        await pacer.acquire("alice", notify=lambda text, wait: said.append((text, wait)))
        granted.append(time.monotonic())
        mark_sent()

    burst = [asyncio.create_task(ask()) for _ in range(6)]
    await until(lambda: len(granted) == 3)
    await asyncio.to_thread(redis_server.stop)
    await asyncio.sleep(1.0)  # a slot would have opened by now
    assert len(granted) == 3
    assert said and said[-1][0] == (f"Waiting for the shared quota store (Redis at {redact(url)}) to answer; "
                                    "nothing is sent without it")
    assert pacer.status().available == 0
    await asyncio.to_thread(redis_server.start)
    back = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*burst), timeout=5)
    await close(pacer)
    assert min(granted[3:]) - back >= Q.window_s + max_margin(Q) - 0.02  # the reset guard
    assert any(text.startswith("Waiting ") and "for a quota slot" in text for text, _ in said[1:])
    # Whichever call reaches the new Redis first sets the guard (checked above); only the dispatcher's step
    # logs it, and a slot marked sent during the outage may get there first, so the log line is not asserted.
    shown = [text for text, _ in said] + [r.getMessage() for r in caplog.records]
    assert all(PASSWORD not in line for line in shown)


async def test_a_slot_held_across_a_restart_is_held_again(redis_url: str, redis_server) -> None:  # type: ignore[no-untyped-def]
    """Granted before Redis lost everything and not yet sent: the replica that holds it records it again."""
    await settled(redis_url)
    pacer = replica(redis_url)
    go = asyncio.Event()

    async def slow() -> None:
        await pacer.acquire("alice")
        await go.wait()
        mark_sent()

    holder = asyncio.create_task(slow())
    await until(lambda: len(pacer._pending) == 1)
    await asyncio.to_thread(redis_server.restart)
    granted: list[float] = []

    async def ask() -> None:
        await pacer.acquire("bob")
        granted.append(time.monotonic())
        mark_sent()

    asking = [asyncio.create_task(ask()) for _ in range(3)]
    await until(lambda: len(granted) >= 2)  # after the guard: two, the held slot is the third
    await asyncio.sleep(0.3)
    assert len(granted) == 2
    go.set()
    await asyncio.wait_for(asyncio.gather(holder, *asking), timeout=3)
    await close(pacer)


async def test_a_click_with_redis_away_ends_at_its_deadline_not_sent(redis_url: str, redis_server) -> None:  # type: ignore[no-untyped-def]
    url = with_password(redis_url)
    settings = load_settings(foundry_env(FLUX_UI_REDIS_URL=url), dotenv_path=None)
    fake = FakeService()
    events: list[ProgressEvent] = []
    await asyncio.to_thread(redis_server.stop)
    try:
        async with FoundryClient(settings, transport=fake.transport, deadline_s=1.5, send_floor_s=0.05) as client:
            with pytest.raises(ServiceTimeoutError) as info:
                await client.generate(GenerationRequest("FLUX.2-pro", "a red fox", [], {}, None), events.append)
    finally:
        await asyncio.to_thread(redis_server.start)
    error = info.value
    assert error.sent is False and error.billed == "no" and not fake.requests
    assert f"the shared quota store (Redis at {redact(url)}) did not answer" in error.message, error.message
    paced = [e for e in events if e.stage == "paced"]
    assert "Waiting for the shared quota store" in status_line("FLUX.2-pro", paced[-1], 1.0)
    assert all(PASSWORD not in text for text in [error.message, *(e.message for e in events)])


async def test_acquire_overhead_against_the_in_process_pacer(redis_url: str) -> None:
    """Measured, not asserted (the bench holds the target, ≤ 5 ms per request over in-process pacing)."""
    await settled(redis_url)
    roomy = Quota(1000, 60.0)

    async def median_ms(pacer: Pacer | SharedPacer) -> float:
        times = []
        for _ in range(200):
            start = time.perf_counter()
            await pacer.acquire("alice")
            times.append(time.perf_counter() - start)
            mark_sent()
        return statistics.median(times) * 1000.0

    local = await median_ms(Pacer(roomy))
    shared_pacer = replica(redis_url, quota=roomy)
    shared = await median_ms(shared_pacer)
    await close(shared_pacer)
    print(f"\nmedian acquire: in-process {local:.3f} ms, Redis {shared:.3f} ms, overhead {shared - local:.3f} ms")
    assert shared > 0
