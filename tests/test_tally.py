"""The blind-vote tally: counts, win rates, refusals, restarts and concurrent votes (each counting test on
SQLite and on PostgreSQL: ``history_db``)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from flux_ui.database import Database
from flux_ui.tally import DB_NAME, Standing, Tally


def test_a_vote_counts_one_win_and_one_appearance_each(tmp_path: Path, history_db: Database | None) -> None:
    tally = Tally(tmp_path, history_db)
    tally.record("FLUX.2-pro", ["FLUX.2-pro", "FLUX-1.1-pro", "FLUX.2-flex"])
    tally.record("FLUX-1.1-pro", ["FLUX.2-pro", "FLUX-1.1-pro"])
    by_model = {s.model: s for s in tally.standings()}
    assert by_model["FLUX.2-pro"] == Standing("FLUX.2-pro", 1, 2)
    assert by_model["FLUX-1.1-pro"] == Standing("FLUX-1.1-pro", 1, 2)
    assert by_model["FLUX.2-flex"] == Standing("FLUX.2-flex", 0, 1)
    assert by_model["FLUX.2-flex"].win_rate == 0.0 and by_model["FLUX.2-pro"].win_rate == 0.5


def test_standings_are_ordered_by_win_rate_then_wins(tmp_path: Path, history_db: Database | None) -> None:
    tally = Tally(tmp_path, history_db)
    tally.record("b", ["a", "b"])
    tally.record("b", ["b", "c"])
    tally.record("c", ["a", "c"])
    assert [s.model for s in tally.standings()] == ["b", "c", "a"]  # 100 %, 50 %, 0 %


def test_a_model_shown_twice_in_one_vote_counts_once(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    tally.record("a", ["a", "a", "b"])
    assert {s.model: s.shown for s in tally.standings()} == {"a": 1, "b": 1}


@pytest.mark.parametrize(("winner", "shown"), [("a", ["a"]), ("c", ["a", "b"]), ("a", [])])
def test_impossible_votes_are_refused_and_not_counted(tmp_path: Path, winner: str, shown: list[str]) -> None:
    tally = Tally(tmp_path)
    with pytest.raises(ValueError):
        tally.record(winner, shown)
    assert tally.standings() == []


def test_the_tally_survives_a_restart_in_its_file(tmp_path: Path) -> None:
    Tally(tmp_path).record("a", ["a", "b"])
    assert (tmp_path / DB_NAME).exists()
    assert Tally(tmp_path).standings()[0] == Standing("a", 1, 1)
    rows = sqlite3.connect(tmp_path / DB_NAME).execute("SELECT model, wins, shown FROM tally ORDER BY model")
    assert rows.fetchall() == [("a", 1, 1), ("b", 0, 1)]


def test_concurrent_votes_from_two_instances_lose_nothing(tmp_path: Path, history_db: Database | None) -> None:
    first, second = Tally(tmp_path, history_db), Tally(tmp_path, history_db)  # two sessions, or two app processes

    def votes(tally: Tally, winner: str) -> None:
        for _ in range(25):
            tally.record(winner, ["a", "b"])

    threads = [threading.Thread(target=votes, args=(t, w)) for t in (first, second) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_model = {s.model: s for s in first.standings()}
    assert by_model["a"] == Standing("a", 50, 100) and by_model["b"] == Standing("b", 50, 100)
