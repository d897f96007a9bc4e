"""The audit trail against the emulator: a row for every request whatever came of it (an image, a refusal, an
error, a block by Content Safety, Stop before sending, flux-ui stopping first), with its user, model,
deployment, route, costs and prompt; exported as CSV a spreadsheet will not run; never a key (canaries)."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import FAST, FakeClock
from flux_ui.audit import CSV_COLUMNS, AuditLog, csv_text
from flux_ui.database import Database
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.errors import BadRequestError, SafetyBlockedError, ValidationError
from flux_ui.history import DB_NAME
from flux_ui.identity import User, acting_as
from flux_ui.pacing import Quota
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.spend import SHARED_STALE_S, Ask, BudgetError, Ledger
from flux_ui.ui import handlers
from flux_ui.ui.usage_tab import view

PRO11 = "FLUX-1.1-pro"
PRO = "FLUX.2-pro"
ALICE = User("alice", "alice")
SAFETY_CANARY = "canary-content-safety-key-7f3a9c21"


async def started(outputs: Path, quotas: dict[str, Quota] | None = None, **env: str) -> Runtime:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(outputs), **env}, dotenv_path=None)
    return start_runtime(settings, EmulatorConfig(rng_seed=3), {**FAST, **(quotas or {})})


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[Runtime]:
    """$0.10 a day for each user, content safety on the emulator, FLUX1.1 [pro] one request a minute."""
    running = await started(tmp_path / "outputs", {PRO11: Quota(1, 60.0)}, FLUX_UI_USER_DAILY_BUDGET_USD="0.10",
                            FLUX_UI_SAFETY="emulator", CONTENT_SAFETY_KEY=SAFETY_CANARY)
    yield running
    await running.aclose()


async def make(runtime: Runtime, prompt: str, model: str = PRO11, **params: object) -> handlers.Generated:
    with acting_as(ALICE):
        return await handlers.generate(runtime, model, prompt, params)


async def test_every_outcome_has_its_row(audited: Runtime) -> None:
    assert audited.emulator is not None
    made = await make(audited, "a cat")  # image: takes FLUX1.1 [pro]'s one slot this minute
    with pytest.raises(SafetyBlockedError):
        await make(audited, "a knight, safety-violence", PRO, width=256, height=256)  # blocked: the prompt
    with pytest.raises(SafetyBlockedError):
        await make(audited, "an owl, safety-marker", PRO, width=256, height=256)  # blocked: the image, billed
    with pytest.raises(ValidationError):
        await make(audited, "a dog", PRO, steps=9)  # refused: FLUX.2 [pro] takes no steps
    audited.emulator.set_faults(PRO, [Fault("status", status=400, count=1)])
    with pytest.raises(BadRequestError):
        await make(audited, "a fox", PRO, width=256, height=256)  # error: the service answered 400
    paced = asyncio.Event()
    with acting_as(ALICE):  # waits for FLUX1.1 [pro]'s next slot, a minute away
        waiting = asyncio.create_task(handlers.generate(
            audited, PRO11, "a hare", {}, on_event=lambda e: paced.set() if e.stage == "paced" else None))
    await asyncio.wait_for(paced.wait(), 10)
    waiting.cancel()  # Stop before it was sent
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await audited.jobs.wait(5)
    with pytest.raises(BudgetError):
        await make(audited, "a cat again", PRO, width=2048, height=2048)  # $0.126: refused by the cap

    rows = {row.prompt: row for row in audited.audit.rows()}
    expected = {"a cat": "image", "a knight, safety-violence": "blocked", "an owl, safety-marker": "blocked",
                "a dog": "refused", "a fox": "error", "a hare": "cancelled", "a cat again": "refused"}
    assert {p: r.outcome for p, r in rows.items()} == expected
    image = rows["a cat"]
    assert (image.user, image.model, image.deployment, image.route, image.tab) == (
        "alice", PRO11, PRO11, "bfl", "text-to-image")
    assert (image.estimate_usd, image.reported, image.charged_usd) == (pytest.approx(0.04), 4.0, pytest.approx(0.04))
    assert made.result.service_cost == image.reported
    assert "Violence" in rows["a knight, safety-violence"].detail and rows["a knight, safety-violence"].charged_usd == 0
    owl = rows["an owl, safety-marker"]
    assert owl.charged_usd == pytest.approx(owl.estimate_usd) and owl.charged_usd > 0  # made, so billed
    assert "steps" in rows["a dog"].detail and rows["a dog"].charged_usd == 0
    assert rows["a fox"].charged_usd == 0 and rows["a hare"].charged_usd == 0
    assert "daily budget" in rows["a cat again"].detail
    assert all(r.time_utc[:2] == "20" for r in rows.values())


def test_a_request_in_flight_when_flux_ui_stopped_is_unknown_and_counted(tmp_path: Path,
                                                                         history_db: Database | None) -> None:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path), "FLUX_UI_USER_DAILY_BUDGET_USD": "1"},
                             dotenv_path=None)
    clock = FakeClock(datetime(2026, 5, 1, 1, 0, tzinfo=UTC).timestamp())
    ledger = Ledger(tmp_path, settings.spend, clock, database=history_db)
    ledger.admit(Ask("alice", PRO11, PRO11, "bfl", "text-to-image", "a cat", 0.04))  # never settled: a crash
    clock.now += SHARED_STALE_S + 1  # on a shared database, only what no replica can still have in flight
    again = Ledger(tmp_path, settings.spend, clock, database=history_db)  # the next start
    (row,) = AuditLog(tmp_path, history_db).rows()
    assert row.outcome == "unknown" and row.charged_usd == pytest.approx(0.04) and "stopped" in row.detail
    assert again.spent("alice") == pytest.approx(0.04)
    (use,) = AuditLog(tmp_path, history_db).usage("2026-05-01")
    assert (use.user, use.requests, use.images, use.refused, use.usd) == ("alice", 1, 0, 0, pytest.approx(0.04))


async def test_the_csv_has_every_column_and_no_formula(audited: Runtime, tmp_path: Path) -> None:
    await make(audited, "=HYPERLINK(\"https://example.com\", \"click\")")
    with pytest.raises(BudgetError):
        await make(audited, "-a huge one", PRO, width=2048, height=2048)
    path = audited.audit.export_csv(tmp_path)
    table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == 3
    first, second = (dict(zip(CSV_COLUMNS, row, strict=True)) for row in table[1:])
    assert first["prompt"] == "'=HYPERLINK(\"https://example.com\", \"click\")"  # text, not a formula
    assert second["prompt"] == "'-a huge one"
    assert (first["user"], first["model"], first["outcome"], first["estimate_usd"], first["charged_usd"]) == (
        "alice", PRO11, "image", "0.0400", "0.0400")
    assert first["reported_cost_unit_undocumented"] == "4" and second["reported_cost_unit_undocumented"] == ""
    assert second["outcome"] == "refused" and "daily budget" in second["detail"]
    assert csv_text([]).splitlines() == [",".join(CSV_COLUMNS)]


async def test_no_key_reaches_the_trail(audited: Runtime, tmp_path: Path) -> None:
    deployment = audited.settings.deployments[PRO11]
    assert deployment.api_key is not None
    key = deployment.api_key.reveal()
    await make(audited, f"a cat holding a sign saying {key} and {SAFETY_CANARY}")
    with pytest.raises(BudgetError):
        await make(audited, f"{key} {SAFETY_CANARY}", PRO, width=2048, height=2048)
    rows = audited.audit.rows()
    assert len(rows) == 2 and all("***" in r.prompt for r in rows)
    exported = audited.audit.export_csv(tmp_path).read_text(encoding="utf-8")
    with sqlite3.connect(audited.history.folder / DB_NAME) as db:  # every column of every row, as stored
        stored = repr(db.execute("SELECT * FROM audit").fetchall())
    for canary in (key, SAFETY_CANARY):
        assert canary not in exported and canary not in stored


async def test_the_usage_view_holds_only_what_its_viewer_may_see(audited: Runtime) -> None:
    await make(audited, "alice's cat")
    with acting_as(User("bob", "bob")):
        await handlers.generate(audited, PRO, "bob's dog", {"width": 256, "height": 256})
    mine = view(audited, User("bob", "bob"))
    every = view(audited, User("alice", "alice", owner=True))
    assert set(mine.today["User"]) == {"bob"} and set(mine.chart["user"]) == {"bob"} and mine.trail.empty
    assert "alice" not in mine.summary and not mine.owner
    assert set(every.today["User"]) == {"alice", "bob"} and set(every.chart["user"]) == {"alice", "bob"}
    assert list(every.trail["Prompt"]) == ["bob's dog", "alice's cat"] and every.owner
    assert len(every.chart["day"].unique()) == 30  # every day of the last 30 on the axis
