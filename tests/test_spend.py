"""Daily spend caps against the emulator: a request that would pass a cap is refused before anything is sent
(the emulator's log shows nothing after it), other users still generate, a restart keeps every user's spend,
concurrent requests cannot pass a cap together, a grid or a run of variations is refused whole, the service's
reported cost corrects the estimate, and a new UTC day starts afresh (a fake clock)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import FAST, FakeClock
from flux_ui.client import GenerationRequest
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.errors import BadRequestError, ServiceConnectionError
from flux_ui.grid.estimate import estimate
from flux_ui.grid.plan import Cell
from flux_ui.identity import User, acting_as
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import SettingsError, load_settings
from flux_ui.settings_spend import DEFAULT_SERVICE_COST_USD, load_spend
from flux_ui.spend import Ask, BudgetError, money, resets_text
from flux_ui.ui import grid_tab, handlers, text_to_image
from flux_ui.ui.grid_run import GridForm, grid_estimate, grid_run, plan_form, run_grid

PRO11 = "FLUX-1.1-pro"  # $0.04 an image at list price; the emulator reports 4 (credits of $0.01)
KONTEXT = "FLUX.1-Kontext-pro"  # no list price
ALICE, BOB = User("alice", "alice"), User("bob", "bob")
NOTHING_SENT = "Nothing was sent, so nothing is billed."


async def started(outputs: Path, **env: str) -> Runtime:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(outputs), **env}, dotenv_path=None)
    return start_runtime(settings, EmulatorConfig(rng_seed=3), FAST)


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[Runtime]:
    """Each user may spend $0.10 a day: two FLUX1.1 [pro] images, not three."""
    running = await started(tmp_path / "outputs", FLUX_UI_USER_DAILY_BUDGET_USD="0.10")
    yield running
    await running.aclose()


async def make(runtime: Runtime, user: User, prompt: str, model: str = PRO11) -> handlers.Generated:
    with acting_as(user):
        return await handlers.generate(runtime, model, prompt, {})


def prompts_sent(runtime: Runtime) -> list[str | None]:
    assert runtime.emulator is not None
    return [entry["prompt"] for entry in runtime.emulator.requests()]


# --- settings --------------------------------------------------------------------------------------------


def test_caps_are_off_until_set_and_read_as_dollars() -> None:
    off = load_spend({}, [])
    assert (off.daily_usd, off.user_daily_usd, off.capped) == (None, None, False)
    assert off.service_cost_usd == DEFAULT_SERVICE_COST_USD and off.unpriced(KONTEXT) is None
    problems: list[str] = []
    on = load_spend({"FLUX_UI_DAILY_BUDGET_USD": "$20", "FLUX_UI_USER_DAILY_BUDGET_USD": "2.50",
                     "FLUX_UI_UNPRICED_USD": "0.05,FLUX.1-schnell=0", "FLUX_UI_SERVICE_COST_USD": "off"}, problems)
    assert problems == []
    assert (on.daily_usd, on.user_daily_usd, on.capped, on.service_cost_usd) == (20.0, 2.5, True, None)
    assert (on.unpriced(KONTEXT), on.unpriced("FLUX.1-schnell"), on.unpriced(PRO11)) == (0.05, 0.0, None)


@pytest.mark.parametrize(("env", "named"), [
    ({"FLUX_UI_DAILY_BUDGET_USD": "ten"}, "FLUX_UI_DAILY_BUDGET_USD='ten' is not an amount in US dollars"),
    ({"FLUX_UI_USER_DAILY_BUDGET_USD": "-1"}, "FLUX_UI_USER_DAILY_BUDGET_USD='-1' is not an amount"),
    ({"FLUX_UI_DAILY_BUDGET_USD": "0"}, "more than 0; for example FLUX_UI_DAILY_BUDGET_USD=20 (leave it out"),
    ({"FLUX_UI_DAILY_BUDGET_USD": "inf"}, "FLUX_UI_DAILY_BUDGET_USD='inf'"),
    ({"FLUX_UI_UNPRICED_USD": "FLUX.2-pro=0.1"}, "FLUX.2-pro has a list price"),
    ({"FLUX_UI_UNPRICED_USD": "FLUX.9=0.1"}, "'FLUX.9' is not a model flux-ui knows"),
    ({"FLUX_UI_UNPRICED_USD": "FLUX.1-Kontext-pro=cheap"}, "FLUX_UI_UNPRICED_USD='cheap'"),
    ({"FLUX_UI_SERVICE_COST_USD": "a cent"}, "FLUX_UI_SERVICE_COST_USD='a cent' is not an amount"),
])
def test_a_bad_spend_setting_names_the_variable_and_a_fix(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as bad:
        load_settings(env, dotenv_path=None)
    assert named in str(bad.value) and "for example" in str(bad.value)


def test_money_and_the_reset_read_as_a_person_says_them() -> None:
    assert (money(0.5), money(12), money(0.0625), money(0.04)) == ("$0.50", "$12.00", "$0.062", "$0.04")
    late = datetime(2026, 5, 1, 21, 48, tzinfo=UTC).timestamp()
    assert resets_text(late) == "It resets at midnight UTC (00:00 UTC), in 2 h 12 min."


# --- a user's cap ----------------------------------------------------------------------------------------


async def test_a_user_is_refused_before_the_request_that_would_pass_the_cap(capped: Runtime) -> None:
    await make(capped, ALICE, "a cat 1")
    await make(capped, ALICE, "a cat 2")
    with pytest.raises(BudgetError) as refused:
        await make(capped, ALICE, "a cat 3")
    message = str(refused.value)
    assert "this image would cost about $0.04, and your daily budget of $0.10 has $0.02 left today" in message
    assert "It resets at midnight UTC (00:00 UTC), in " in message and message.endswith(NOTHING_SENT)
    assert (refused.value.sent, refused.value.billed) == (False, "no")
    assert prompts_sent(capped) == ["a cat 1", "a cat 2"]  # nothing after the refusal
    made = await make(capped, BOB, "a dog 1")  # another user's budget is their own
    assert made.saved and prompts_sent(capped)[-1] == "a dog 1"
    assert capped.ledger.spent("alice") == pytest.approx(0.08) and capped.ledger.spent("bob") == pytest.approx(0.04)
    left = capped.ledger.left("alice")
    assert left.user == pytest.approx(0.02) and left.instance is None


async def test_a_restart_keeps_every_users_spend(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    first = await started(outputs, FLUX_UI_USER_DAILY_BUDGET_USD="0.10")
    await make(first, ALICE, "a cat 1")
    await make(first, ALICE, "a cat 2")
    await make(first, BOB, "a dog 1")
    await first.aclose()
    again = await started(outputs, FLUX_UI_USER_DAILY_BUDGET_USD="0.10")  # a new Runtime and History, same folder
    try:
        assert again.ledger.spent("alice") == pytest.approx(0.08)
        assert again.ledger.spent("bob") == pytest.approx(0.04)
        with pytest.raises(BudgetError, match=r"has \$0.02 left today"):
            await make(again, ALICE, "a cat 3")
        assert prompts_sent(again) == []  # refused before its emulator saw anything
        await make(again, BOB, "a dog 2")
        assert again.ledger.spent("bob") == pytest.approx(0.08) and prompts_sent(again) == ["a dog 2"]
    finally:
        await again.aclose()


async def test_the_instance_cap_counts_everyone(tmp_path: Path) -> None:
    runtime = await started(tmp_path / "outputs", FLUX_UI_DAILY_BUDGET_USD="0.10", FLUX_UI_USER_DAILY_BUDGET_USD="0.10")
    try:
        await make(runtime, ALICE, "a cat 1")
        await make(runtime, ALICE, "a cat 2")
        with pytest.raises(BudgetError) as refused:
            await make(runtime, BOB, "a dog 1")  # bob's own cap has room; everyone's has not
        assert "this flux-ui's daily budget, shared by everyone, of $0.10 has $0.02 left today" in str(refused.value)
        assert prompts_sent(runtime) == ["a cat 1", "a cat 2"]
        left = runtime.ledger.left("bob")
        assert left.user == pytest.approx(0.10) and left.instance == pytest.approx(0.02)
    finally:
        await runtime.aclose()


async def test_concurrent_requests_cannot_pass_a_cap_together(tmp_path: Path) -> None:
    runtime = await started(tmp_path / "outputs", FLUX_UI_USER_DAILY_BUDGET_USD="0.12")
    try:
        with acting_as(ALICE):
            outcomes = await asyncio.gather(*(handlers.generate(runtime, PRO11, f"a cat {i}", {}) for i in range(6)),
                                            return_exceptions=True)
        made = [o for o in outcomes if isinstance(o, handlers.Generated)]
        refused = [o for o in outcomes if isinstance(o, BudgetError)]
        assert (len(made), len(refused)) == (3, 3)  # each held its estimate before the next was checked
        assert len(prompts_sent(runtime)) == 3
        assert runtime.ledger.spent("alice") == pytest.approx(0.12)
    finally:
        await runtime.aclose()


# --- what a request counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "charged"), [("0.02", 0.08), ("off", 0.04), ("", 0.04)])
async def test_the_reported_cost_corrects_the_estimate(tmp_path: Path, rate: str, charged: float) -> None:
    runtime = await started(tmp_path / "outputs", FLUX_UI_SERVICE_COST_USD=rate)
    try:
        made = await make(runtime, ALICE, "a cat")
        assert made.result.service_cost == 4.0 and made.result.cost_estimate_usd == pytest.approx(0.04)
        (row,) = runtime.audit.rows()
        assert (row.estimate_usd, row.reported) == (pytest.approx(0.04), 4.0)
        assert row.charged_usd == pytest.approx(charged) and runtime.ledger.spent("alice") == pytest.approx(charged)
    finally:
        await runtime.aclose()


async def test_a_model_without_a_list_price_is_refused_under_a_cap_unless_given_one(tmp_path: Path,
                                                                                     ) -> None:
    runtime = await started(tmp_path / "a", FLUX_UI_USER_DAILY_BUDGET_USD="1")
    try:
        with pytest.raises(BudgetError) as refused:
            await make(runtime, ALICE, "a lighthouse", KONTEXT)
        assert "no list price" in str(refused.value) and "FLUX_UI_UNPRICED_USD" in str(refused.value)
        assert prompts_sent(runtime) == []
    finally:
        await runtime.aclose()
    priced = await started(tmp_path / "b", FLUX_UI_USER_DAILY_BUDGET_USD="1", FLUX_UI_UNPRICED_USD="0.05")
    try:
        made = await make(priced, ALICE, "a lighthouse", KONTEXT)
        assert made.result.service_cost is None  # nothing to correct by: the stand-in counts
        assert priced.ledger.spent("alice") == pytest.approx(0.05)
    finally:
        await priced.aclose()


async def test_an_error_answer_gives_the_hold_back_and_a_lost_answer_keeps_it(tmp_path: Path) -> None:
    runtime = await started(tmp_path / "outputs", FLUX_UI_USER_DAILY_BUDGET_USD="0.10")
    assert runtime.emulator is not None
    try:
        runtime.emulator.set_faults(PRO11, [Fault("status", status=400, count=1)])
        with pytest.raises(BadRequestError):
            await make(runtime, ALICE, "a cat")
        assert runtime.ledger.spent("alice") == 0.0  # the service made no image: nothing counts
        runtime.emulator.set_faults(PRO11, [Fault("drop")])
        with pytest.raises(ServiceConnectionError) as lost:
            await make(runtime, ALICE, "a dog")
        assert lost.value.billed == "maybe"
        assert runtime.ledger.spent("alice") == pytest.approx(0.04)  # it may be billed: the estimate stays
    finally:
        await runtime.aclose()


# --- whole runs ------------------------------------------------------------------------------------------


async def test_a_grid_over_the_cap_is_refused_whole_before_anything_is_sent(capped: Runtime) -> None:
    form = GridForm("a lighthouse", PRO11, None, (("seed", "1, 2, 3"),), confirm=True)
    with acting_as(ALICE):
        with pytest.raises(BudgetError) as refused:
            grid_tab.prepare(capped, capped.models, form)
        assert "this grid's 3 images would cost about $0.12, and your daily budget of $0.10" in str(refused.value)
        # the same grid past the tab's check (another tab spent in between): refused whole as it starts
        plan = plan_form(capped.models, form, random.Random(1))
        grid = grid_run(plan, grid_estimate(capped, plan))
        async for _ in run_grid(capped, grid):
            pass
    assert prompts_sent(capped) == []
    assert [s.error is not None and "would cost about $0.12" in s.error for s in grid.slots] == [True] * 3
    assert [r.outcome for r in capped.audit.rows()] == ["refused"] * 6  # each cell, at each refusal
    assert capped.ledger.spent("alice") == 0.0


async def test_a_grid_within_the_cap_holds_its_cost_then_settles(capped: Runtime) -> None:
    form = GridForm("a lighthouse", PRO11, None, (("seed", "1, 2"),), confirm=True)
    with acting_as(ALICE):
        grid = grid_tab.prepare(capped, capped.models, form)
        stream = run_grid(capped, grid)
        await anext(stream)  # started: the whole grid is held
        assert capped.ledger.spent("alice") == pytest.approx(0.08)
        with pytest.raises(BudgetError, match=r"has \$0.02 left"):
            await make(capped, ALICE, "a cat")  # the grid's hold counts while it runs
        async for _ in stream:
            pass
    assert grid.images == 2 and sorted(prompts_sent(capped)) == ["a lighthouse", "a lighthouse"]
    assert capped.ledger.spent("alice") == pytest.approx(0.08)  # settled: the allowance is all drawn or given back
    with capped.ledger._connect() as db:
        assert db.execute("SELECT COUNT(*) FROM spend_runs").fetchone()[0] == 0


async def test_variations_over_the_cap_are_refused_whole(capped: Runtime) -> None:
    with acting_as(ALICE):
        with pytest.raises(BudgetError, match=r"these 3 variations would cost about \$0.12"):
            async for _ in text_to_image.handle_generate(capped, PRO11, "a fox", True, {}, count=3):
                pass
        async for _ in text_to_image.handle_generate(capped, PRO11, "a fox", True, {}, count=2):
            pass
    assert prompts_sent(capped) == ["a fox", "a fox"]
    assert capped.ledger.spent("alice") == pytest.approx(0.08)


def test_a_runs_hold_is_given_back_when_it_ends(capped: Runtime) -> None:
    ledger = capped.ledger
    ask = Ask("alice", PRO11, PRO11, "bfl", "t", "a cat", 0.04)
    one = Cell(0, 0, 0, (), PRO11, "a cat", {}, capped.client.validate(GenerationRequest(PRO11, "a cat")))
    allowance = ledger.reserve_run("alice", [ask, ask], estimate([one, one], {}), "these 2 requests")
    assert ledger.spent("alice") == pytest.approx(0.08)
    with pytest.raises(BudgetError):
        ledger.admit(ask)  # $0.04 more than the $0.02 the run leaves
    row = ledger.admit(ask, allowance)  # one of the run's own: drawn from what it holds
    assert allowance.remaining == pytest.approx(0.04) and ledger.spent("alice") == pytest.approx(0.08)
    ledger.settle(row, "image", "", 0.04)
    ledger.release_run(allowance)
    assert ledger.spent("alice") == pytest.approx(0.04)


# --- the UTC day -----------------------------------------------------------------------------------------


async def test_a_new_utc_day_starts_afresh(capped: Runtime) -> None:
    clock = FakeClock(datetime(2026, 5, 1, 23, 59, 30, tzinfo=UTC).timestamp())
    capped.ledger.clock = clock
    await make(capped, ALICE, "a cat 1")
    await make(capped, ALICE, "a cat 2")
    with pytest.raises(BudgetError, match=r"It resets at midnight UTC \(00:00 UTC\), in 30 s\."):
        await make(capped, ALICE, "a cat 3")
    clock.advance(45)  # 00:00:15 on 2 May
    await make(capped, ALICE, "a cat 3")
    assert capped.ledger.spent("alice", day="2026-05-01") == pytest.approx(0.08)
    assert capped.ledger.spent("alice") == pytest.approx(0.04)
    assert prompts_sent(capped) == ["a cat 1", "a cat 2", "a cat 3"]
