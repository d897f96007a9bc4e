"""The blind-comparison tally: how often each model was shown and how often it was picked.

Only blind votes land here (the Compare tab's blind mode), so a name never swayed a vote.
The counts live in a small SQLite file of their own beside the images (or, with PostgreSQL, in the
database every replica shares), so they survive restarts and are shared by every browser session;
concurrent votes cannot lose a count (one UPSERT per model, inside one write transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_ui.database import Database, Tables

DB_NAME = "tally.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS tally (
    model TEXT PRIMARY KEY,
    wins INTEGER NOT NULL DEFAULT 0,
    shown INTEGER NOT NULL DEFAULT 0
);
"""
UPSERT = """
INSERT INTO tally (model, wins, shown) VALUES (?, ?, 1)
ON CONFLICT (model) DO UPDATE SET wins = tally.wins + excluded.wins, shown = tally.shown + 1
"""


@dataclass(frozen=True)
class Standing:
    """One model's record in blind votes."""

    model: str
    wins: int
    shown: int

    @property
    def win_rate(self) -> float:
        return self.wins / self.shown if self.shown else 0.0


class Tally(Tables):
    """Wins and appearances per model, in ``folder / tally.sqlite3`` (a SQLite ``database`` given is not
    used: the tally keeps its own file) or in a shared PostgreSQL ``database``; thread-safe."""

    def __init__(self, folder: Path, database: Database | None = None) -> None:
        shared = database if database is not None and database.shared else None
        super().__init__(folder, SCHEMA, shared, DB_NAME, wal=False)

    def record(self, winner: str, shown: Sequence[str]) -> None:
        """Count one blind vote: ``winner`` won, every model in ``shown`` appeared once."""
        models = list(dict.fromkeys(shown))
        if len(models) < 2:
            raise ValueError("a vote needs at least two different models to choose between")
        if winner not in models:
            raise ValueError(f"the winner {winner!r} was not among the models shown")
        with self.database.write() as db:
            db.executemany(UPSERT, [(m, int(m == winner)) for m in models])

    def standings(self) -> list[Standing]:
        """Every model voted on, best win rate first (then most wins, then name)."""
        with self.database.connect() as db:
            rows = db.execute("SELECT model, wins, shown FROM tally").fetchall()
        found = [Standing(model, wins, shown) for model, wins, shown in rows]
        return sorted(found, key=lambda s: (-s.win_rate, -s.wins, s.model))
