"""Fair share of a deployment's quota, on fake clocks: slots go round-robin by user, each user's own
requests keep their order, each person sees and cancels their own waiting requests, and the per-user cap.

The story of issue 15: user A queues 24 images on a 5-per-minute deployment, then user B asks for one.
B's is sent within one slot interval of A's next, and A's 24 all complete in order with no 429, against
the emulator enforcing that quota on the same fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pytest

from app_fixtures import running_app, screenshot
from bench import fair_share as bench_fair_share
from bench.common import emulator, quotas_for
from conftest import FakeClock, VirtualTime
from flux_ui.client import FoundryClient, GenerationRequest, GenerationResult
from flux_ui.errors import TooManyQueuedError, WithdrawnError
from flux_ui.fair_queue import Board, FairQueue
from flux_ui.identity import User, acting_as
from flux_ui.pacing import Pacer, PacerStatus, Quota, pacing_margin
from flux_ui.ui import queue_panel
from flux_ui.ui.quota_gate import QuotaGate

FLEX = "FLUX.2-flex"
RPM5 = Quota.from_rpm(5)  # one request per 12 s
SLOT_S = RPM5.window_s / RPM5.requests + pacing_margin(RPM5)  # 12.3 s between two grants
ALICE, BOB = User("alice", "alice"), User("bob", "bob")


async def grid_and_one(pacer: Pacer, clock: VirtualTime, b_user: str, a_user: str = "alice",
                       b_at: float = 30.0) -> list[tuple[str, int, float]]:
    """A asks for 24 at 0 s, B for one at ``b_at``: (user, index, when granted), in grant order."""
    grants: list[tuple[str, int, float]] = []

    async def ask(user: str, index: int, at: float = 0.0) -> None:
        if at:
            await clock.sleep(at)
        await pacer.acquire(user, f"{user} {index}")
        grants.append((user, index, clock.now))

    await clock.run(*(ask(a_user, i) for i in range(24)), ask(b_user, 0, b_at))
    return grants


# --- the round, on virtual time -------------------------------------------------------------------


async def test_a_single_image_waits_about_one_slot_behind_someone_elses_24() -> None:
    clock = VirtualTime()
    grants = await grid_and_one(Pacer(RPM5, clock=clock, sleep=clock.sleep), clock, "bob")
    b_at = next(t for user, _, t in grants if user == "bob")
    a_next = next(t for user, _, t in grants if user == "alice" and t >= 30.0)
    assert b_at - 30.0 <= SLOT_S  # B asked at 30 s and got the next slot
    assert abs(b_at - a_next) <= SLOT_S + 1e-9  # within one slot interval of A's next
    a_order = [i for user, i, _ in grants if user == "alice"]
    assert a_order == list(range(24))  # A's own keep their order
    times = [t for *_, t in grants]
    assert all(b - a >= SLOT_S - 1e-9 for a, b in itertools.pairwise(times))  # the quota still holds


async def test_first_come_first_served_when_everyone_is_one_user() -> None:
    clock = VirtualTime()
    grants = await grid_and_one(Pacer(RPM5, clock=clock, sleep=clock.sleep), clock, "alice", b_at=30.0)
    assert grants[-1][:2] == ("alice", 0) and grants[-1][2] == pytest.approx(24 * SLOT_S)  # behind all 24


async def test_the_round_goes_to_whoever_was_served_least_recently() -> None:
    clock = VirtualTime()
    pacer = Pacer(Quota(1, 1.0), clock=clock, sleep=clock.sleep)
    order: list[str] = []

    async def ask(user: str, count: int) -> None:
        await asyncio.gather(*(one(user) for _ in range(count)))

    async def one(user: str) -> None:
        await pacer.acquire(user)
        order.append(user)

    await clock.run(ask("a", 4), ask("b", 2), ask("c", 1))
    assert order == ["a", "b", "c", "a", "b", "a", "a"]


async def test_each_users_requests_keep_the_order_they_were_asked_in_not_the_order_they_arrive() -> None:
    clock = VirtualTime()
    pacer = Pacer(Quota(1, 1.0), clock=clock, sleep=clock.sleep)
    granted: list[int] = []

    async def one(order: int) -> None:
        await pacer.acquire("a", order=order)
        granted.append(order)

    await clock.run(*(one(n) for n in (0, 3, 1, 2)))  # asked 0..3, reached the pacer 0, 3, 1, 2
    assert granted == [0, 1, 2, 3]


# --- the same against the emulator, through the client ----------------------------------------------


class SettledClock(FakeClock):
    """A FakeClock that moves only once no request is on the wire (and nothing the test waits for is still
    coming), so the emulator counts each request at the moment the client sent it, as real time would."""

    def __init__(self) -> None:
        super().__init__()
        self.on_wire = 0
        self.holds: list[Callable[[], bool]] = []

    async def sleep(self, seconds: float) -> None:
        while self.on_wire or any(hold() for hold in self.holds):
            await asyncio.sleep(0.001)
        await super().sleep(seconds)


class Wire(httpx.AsyncBaseTransport):
    """Loopback HTTP that records each generation request as it is answered: (fake time, prompt, status)."""

    def __init__(self, clock: SettledClock, on_send: Callable[[str], None] = lambda prompt: None) -> None:
        self.clock, self.inner, self.on_send = clock, httpx.AsyncHTTPTransport(), on_send
        self.sent: list[tuple[float, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.on_wire += 1
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            if request.method == "POST":
                prompt = json.loads(request.content).get("prompt", "")
                self.sent.append((self.clock.now, prompt, response.status_code))
                self.on_send(prompt)
            return response
        finally:
            self.clock.on_wire -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def flex(prompt: str) -> GenerationRequest:
    return GenerationRequest(FLEX, prompt, params={"width": 512, "height": 512})


def fake_client(emu: Any, clock: SettledClock, wire: Wire, env: dict[str, str] | None = None) -> FoundryClient:
    """The project's client on ``clock``, pacing to RPM5 as the emulator (on the same clock) enforces it."""
    from flux_ui.emulator.quotas import QuotaBook
    from flux_ui.settings import load_settings

    emu.state.quotas = QuotaBook(emu.config.quotas, enforce=True, clock=clock)
    settings = load_settings(env or {}, dotenv_path=None).with_emulator(emu.base_url, emu.api_key, emu.config.quotas)
    return FoundryClient(settings, transport=wire, clock=clock, sleep=clock.sleep)


def count_joins(pacer: Pacer) -> Counter[str]:
    """How many requests each user has put in ``pacer``'s queue so far."""
    joined: Counter[str] = Counter()
    join = pacer.queue.join

    def counted(user: str, *args: Any, **kwargs: Any) -> Any:
        ticket = join(user, *args, **kwargs)
        joined[user] += 1
        return ticket

    pacer.queue.join = counted  # type: ignore[method-assign]
    return joined


async def test_against_the_emulator_b_goes_next_and_a_s_24_complete_in_order_without_a_429() -> None:
    clock = SettledClock()
    wire = Wire(clock)
    with emulator(quotas=quotas_for(tight={FLEX: RPM5})) as emu:
        client = fake_client(emu, clock, wire)
        pacer = client._pacers[FLEX]
        joined = count_joins(pacer)
        clock.holds += [lambda: not joined["bob"],  # time stands still until B has asked
                        lambda: bool(pacer._pending)]  # and while a slot is granted but its request not yet out
        tasks: list[asyncio.Task[GenerationResult]] = []
        with acting_as(ALICE):
            for i in range(24):  # A queues 24, one after the other
                tasks.append(asyncio.ensure_future(client.generate(flex(f"alice {i}"))))
                while joined["alice"] <= i:
                    await asyncio.sleep(0.001)
        with acting_as(BOB):
            tasks.append(asyncio.ensure_future(client.generate(flex("bob 0"))))  # then B asks for one
        results = await asyncio.gather(*tasks)
        await client.aclose()
        log = emu.requests()
    assert all(r.image for r in results) and [s for *_, s in wire.sent] == [200] * 25  # no 429, no failure
    assert [r["status"] for r in log] == [200] * 25
    prompts = [p for _, p, _ in wire.sent]
    assert [p for p in prompts if p.startswith("alice")] == [f"alice {i}" for i in range(24)]  # in order
    b_time = next(t for t, p, _ in wire.sent if p == "bob 0")
    a_next = next(t for t, p, _ in wire.sent if p == "alice 1")
    asked = wire.sent[0][0]  # B asked while alice 0 was being sent
    assert prompts.index("bob 0") == 1 and abs(b_time - a_next) <= SLOT_S + 1e-6
    assert b_time - asked <= SLOT_S + 1e-6  # B waited one slot, not 24
    assert wire.sent[-1][0] - asked == pytest.approx(24 * SLOT_S)  # A's 24 and B's one in 25 slots


async def test_a_cancelled_request_ends_not_sent_and_never_reaches_the_emulator() -> None:
    clock = SettledClock()
    wire = Wire(clock)
    with emulator(quotas=quotas_for(tight={FLEX: RPM5})) as emu:
        client = fake_client(emu, clock, wire)
        board, joined, looked = client.board, count_joins(client._pacers[FLEX]), asyncio.Event()
        clock.holds.append(lambda: not looked.is_set())  # time stands still while the test looks
        with acting_as(ALICE):
            tasks = [asyncio.ensure_future(client.generate(flex(f"alice {i}"))) for i in range(3)]
        while joined["alice"] < 3 or not wire.sent:
            await asyncio.sleep(0.001)
        waiting = [v for v in board.of("alice") if v.cancellable]
        assert [v.position for v in waiting] == [1, 2] and waiting[1].label == "alice 2"
        assert not board.cancel("bob", waiting[1].id)  # not bob's to cancel
        assert board.cancel("alice", waiting[1].id)
        looked.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        log = emu.requests()
    error = done[2]
    assert isinstance(error, WithdrawnError) and not error.sent and error.billed == "no"
    assert "Cancelled under “Your requests”" in str(error) and "Nothing was sent, so nothing is billed." in str(error)
    assert [r["prompt"] for r in log] == ["alice 0", "alice 1"]  # the cancelled one never left
    assert not board.cancel("alice", waiting[0].id)  # sent by now: too late to cancel


async def test_the_per_user_cap_refuses_one_more_at_once_and_leaves_others_alone() -> None:
    clock = SettledClock()
    wire = Wire(clock)
    with emulator(quotas=quotas_for(tight={FLEX: RPM5})) as emu:
        client = fake_client(emu, clock, wire, {"FLUX_UI_USER_MAX_QUEUED": "2"})
        joined, refusing = count_joins(client._pacers[FLEX]), asyncio.Event()
        clock.holds.append(lambda: not refusing.is_set())
        with acting_as(ALICE):
            tasks = [asyncio.ensure_future(client.generate(flex(f"alice {i}"))) for i in range(3)]
        while joined["alice"] < 3:  # one sent, two waiting: the cap
            await asyncio.sleep(0.001)
        with acting_as(ALICE), pytest.raises(TooManyQueuedError) as refused:
            await client.generate(flex("alice, one too many"))
        with acting_as(BOB):
            tasks.append(asyncio.ensure_future(client.generate(flex("bob 0"))))
        refusing.set()
        await asyncio.gather(*tasks)
        await client.aclose()
        log = emu.requests()
    message = str(refused.value)
    assert "You already have 2 requests waiting for FLUX.2 [flex]'s quota" in message
    assert "FLUX_UI_USER_MAX_QUEUED=2" in message and "cancel one under “Your requests”" in message
    assert message.endswith("Nothing was sent, so nothing is billed.") and not refused.value.sent
    assert "alice, one too many" not in [r["prompt"] for r in log] and len(log) == 4


def test_the_cap_counts_waiting_requests_per_deployment() -> None:
    board = Board(max_queued=1)
    flex_queue, pro_queue = FairQueue(FLEX, board), FairQueue("FLUX.2-pro", board)

    async def joins() -> None:
        flex_queue.join("a")
        pro_queue.join("a")  # another deployment: its own count
        flex_queue.join("b")
        with pytest.raises(TooManyQueuedError):
            flex_queue.join("a")
        flex_queue.join("a", capped=False)  # a retry is never refused

    asyncio.run(joins())
    assert board.waiting_of("a") == 3 and board.waiting_of("a", FLEX) == 2


# --- what each person sees ----------------------------------------------------------------------------


async def test_the_board_shows_each_person_their_own_with_place_and_estimated_start() -> None:
    clock = VirtualTime()
    pacer = Pacer(RPM5, clock=clock, sleep=clock.sleep, name=FLEX)
    board, seen = pacer.queue.board, {}

    async def look() -> None:
        await clock.sleep(1.0)
        seen.update(alice=board.of("alice"), bob=board.of("bob"), carol=pacer.queue.starts_in("carol"))
        for ticket in list(pacer.queue.waiting):
            assert board.cancel(ticket.user, ticket.id)

    async def ask(user: str, granted: bool = False) -> None:
        with ExitStack() if granted else pytest.raises(WithdrawnError):
            await pacer.acquire(user, f"{user} asks")
        await clock.sleep(2.0)  # its request still on its way when the board is read: "sending"

    await clock.run(ask("alice", granted=True), *(ask("alice") for _ in range(3)), ask("bob"), look())
    alice, bob = seen["alice"], seen["bob"]
    # alice had the last slot, so bob (never served) goes next, then alice's in their order
    assert [(v.state, v.position) for v in alice] == [("waiting", 2), ("waiting", 3), ("waiting", 4),
                                                      ("sending", None)]
    assert [(v.position, v.deployment, v.label) for v in bob] == [(1, FLEX, "bob asks")]
    assert bob[0].starts_in_s == pytest.approx(SLOT_S - 1.0)
    assert [v.starts_in_s for v in alice[:3]] == pytest.approx([2 * SLOT_S - 1.0, 3 * SLOT_S - 1.0, 4 * SLOT_S - 1.0])
    assert seen["carol"] == pytest.approx(2 * SLOT_S - 1.0)  # a newcomer: after bob, before alice's next
    assert pacer.waiting == 0 and not board.of("alice")  # cancelled ones leave, the sent one with its task


def test_the_panel_lists_only_the_callers_requests_with_labelled_cancel_buttons() -> None:
    board = Board()
    runtime = SimpleNamespace(client=SimpleNamespace(board=board), settings=SimpleNamespace(
        users=SimpleNamespace(owners=frozenset()), logins=()))

    async def fill() -> list[Any]:
        queue = FairQueue(FLEX, board, forecast=lambda n: [12.0 * (i + 1) for i in range(n)])
        queue.join("alice", "a <b>bold</b> fox")
        queue.join("bob", "bob's lighthouse")
        return queue_panel.view_updates(runtime, "alice")  # type: ignore[arg-type]

    updates = asyncio.run(fill())
    rows = queue_panel.ROWS
    label, summary, texts = updates[0]["label"], updates[1], updates[2 + rows:2 + 2 * rows]
    buttons, shown = updates[2 + 2 * rows:2 + 3 * rows], updates[-1]
    assert label == "Your requests · 1 waiting"
    assert "1 other person waiting for FLUX.2 [flex]" in summary
    assert texts[0].startswith("**FLUX.2 [flex]** · waiting, next · starts in about 12 s")
    assert "<b>" not in texts[0] and "bob" not in " ".join(texts)  # inert, and nobody else's
    assert buttons[0]["visible"] and "flux-label:Cancel_request_1_in_line_for_FLUX.2_[flex]" in \
        buttons[0]["elem_classes"]
    assert not any(b["visible"] for b in buttons[1:]) and len(shown) == 1


# --- the gate, with the round --------------------------------------------------------------------------


def gate_over(board: Board, quota: Quota = RPM5) -> QuotaGate:
    status = PacerStatus(quota, 0, 7.0, 0)
    runtime = SimpleNamespace(models=(FLEX,), client=SimpleNamespace(pacing=lambda model: status, board=board))
    return QuotaGate(runtime)  # type: ignore[arg-type]


def test_the_gate_lets_a_newcomer_in_behind_a_full_queue_and_refuses_the_full_ones_next() -> None:
    board = Board()
    gate = gate_over(board)
    assert gate.sendable(FLEX) == gate.cap(FLEX) == 25
    with ExitStack() as held:
        for _ in range(25):
            held.enter_context(gate.admitted(FLEX, ALICE))
        with pytest.raises(gr.Error, match="25 requests are already waiting"):
            held.enter_context(gate.admitted(FLEX, ALICE))  # alone, as before the round
        assert gate.place(FLEX, "bob") == 2
        held.enter_context(gate.admitted(FLEX, BOB))  # one of each other person's goes first, not all 25
        with pytest.raises(gr.Error) as refused:
            held.enter_context(gate.admitted(FLEX, ALICE))
        assert refused.value.message.startswith("You already have 25 requests in progress on FLUX.2 [flex], and "
                                                "other people's requests take turns with yours")
        assert gate.busy[FLEX] == 26 and gate.by_user[(FLEX, "bob")] == 1
    assert gate.busy[FLEX] == 0 and not gate.by_user


def test_the_gate_counts_a_grid_by_what_it_has_waiting_and_waves_within_the_cap() -> None:
    board = Board(max_queued=8)
    gate = gate_over(board)
    queue = FairQueue(FLEX, board)

    async def grid() -> None:
        for i in range(8):
            queue.join("alice", f"cell {i}")

    with gate.admitted(FLEX, ALICE):  # the grid's run counts once, then its cells wait one by one
        asyncio.run(grid())
        assert gate.place(FLEX, "bob") == 2 and gate.place(FLEX, "alice") == 9
        assert gate.cap(FLEX) == 8  # its waves: no more than one person may have waiting
        with pytest.raises(gr.Error, match=r"FLUX_UI_USER_MAX_QUEUED=8\). .*Nothing was sent"), \
                gate.admitted(FLEX, ALICE):
            pass
        with gate.admitted(FLEX, BOB):
            pass
    assert gate.cap(FLEX, BOB) == 8  # the cap; without it, as many as fit with alice's 8 turns between
    board.max_queued = None
    assert gate.cap(FLEX, BOB) == 17 and gate.cap(FLEX, ALICE) == 25  # 17 + 8 = 25 slots in the deadline


# --- the benchmark, and the panel in a browser ------------------------------------------------------------


def test_the_benchmark_reports_the_wait_in_slots_against_first_come_first_served() -> None:
    with ThreadPoolExecutor(1) as thread:  # its own event loops, whatever runs in this thread (a browser's)
        wait, order, throttled, failed = thread.submit(bench_fair_share.run, True).result()
    assert wait.unit == "slots" and wait.value <= 1.5 and wait.baseline is not None and wait.baseline >= 5
    assert (order.value, throttled.value, failed.value) == (0, 0, 0) and all(r.met for r in (order, throttled, failed))


@pytest.mark.browser
def test_the_panel_cancels_a_waiting_request_and_its_tab_says_it_was_not_sent(browser: Any, tmp_path: Any) -> None:
    prompt = "a lighthouse on a cliff in a storm, four ways"
    with running_app(tmp_path / "outputs", quotas={"FLUX.2-pro": Quota(1, 2.0)}) as app:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(app.url)
        box = page.locator("#t2i-count input[type=number]")
        box.fill("4")
        box.press("Enter")
        page.fill("#t2i-prompt textarea", prompt)
        page.click("#t2i-run")
        page.click("#queue > button")  # open "Your requests"
        page.wait_for_selector("#queue-cancel-1", state="visible")
        assert "waiting, #2 in line" in page.inner_text("#queue-text-1")
        assert page.get_attribute("#queue-cancel-1", "aria-label") == "Cancel request 2 in line for FLUX.2 [pro]"
        assert page.inner_text("#queue > button").startswith("Your requests · 3 waiting")
        screenshot(page, "your-requests")
        page.click("#queue-cancel-1")
        page.wait_for_selector("text=before sending: nothing is billed")
        page.wait_for_function("document.querySelector('#t2i-status').innerText.includes('1 of 4 failed')",
                               timeout=30_000)
        status = page.inner_text("#t2i-status")
        page.wait_for_function("!document.querySelector('#queue > button').innerText.includes('·')")  # all done
        sent = [r for r in app.emulator.requests() if r["prompt"] == prompt]
        context.close()
    assert "Cancelled under “Your requests”" in status and "Nothing was sent, so nothing is billed." in status
    assert len(sent) == 3  # the cancelled one never reached the emulator
