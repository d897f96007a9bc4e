"""The audit trail: one row per request, in History's database — when, who, which model, deployment and
route, the estimated and the reported cost, what came of it, and the prompt. Never a key: every text is
redacted (:func:`flux_ui.secrets.redact`) before it is written.

A row is written when the request is admitted (outcome ``pending``, its estimate held against the caps)
and finished when its job ends, so a request that was in flight when flux-ui stopped is still on the
record: the next start marks it ``unknown`` and counts its estimate (it may have been billed). The
rows are also what :mod:`flux_ui.spend` sums, so the trail and the caps can never disagree.

Outcomes: ``image`` (made and kept, or offered unsaved), ``refused`` (not sent: a cap, a bad value, no
room, a full queue), ``blocked`` (Content Safety kept the prompt from FLUX or the image from the page),
``error`` (sent and failed, or Content Safety could not answer), ``cancelled`` (Stop before sending),
``unknown`` (flux-ui stopped first).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from flux_ui.database import DB_NAME, Connection, Database, Tables
from flux_ui.errors import FluxError, SafetyBlockedError, SafetyUnavailableError, WithdrawnError
from flux_ui.secrets import redact

Outcome = Literal["pending", "image", "refused", "blocked", "error", "cancelled", "unknown"]
OUTCOMES: tuple[Outcome, ...] = ("image", "refused", "blocked", "error", "cancelled", "unknown", "pending")
#: A prompt is kept whole up to this (the longest any model takes is 32 000 tokens); a detail is a message.
MAX_PROMPT_CHARS = 200_000
MAX_DETAIL_CHARS = 2_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    day TEXT NOT NULL,
    "user" TEXT NOT NULL,
    model TEXT NOT NULL,
    deployment TEXT NOT NULL,
    route TEXT NOT NULL,
    tab TEXT NOT NULL,
    prompt TEXT NOT NULL,
    estimate_usd REAL,
    held_usd REAL NOT NULL DEFAULT 0,
    reported REAL,
    charged_usd REAL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_day_user ON audit (day, "user");
"""
#: The CSV's columns, in order: the reported cost keeps the service's own figure and says its unit is unknown.
CSV_COLUMNS = ("id", "time_utc", "user", "model", "deployment", "route", "tab", "outcome", "estimate_usd",
               "reported_cost_unit_undocumented", "charged_usd", "detail", "prompt")
_SELECT = ('SELECT id, at, "user", model, deployment, route, tab, outcome, estimate_usd, reported, '
           "COALESCE(charged_usd, held_usd), detail, prompt FROM audit")
#: How many rows of each (day, user, model) count as sent (or in flight), as images, as refused.
_COUNT = "SUM(CASE WHEN {} THEN 1 ELSE 0 END)"


@dataclass(frozen=True)
class AuditRow:
    """One request as the trail holds it (``charged_usd``: what it counts; held while ``pending``)."""

    id: int
    at: float
    user: str
    model: str
    deployment: str
    route: str
    tab: str
    outcome: str
    estimate_usd: float | None
    reported: float | None
    charged_usd: float
    detail: str
    prompt: str

    @property
    def time_utc(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def outcome_of(error: BaseException) -> tuple[Outcome, str]:
    """What a request's failure counts as on the trail, and the message it records."""
    if isinstance(error, asyncio.CancelledError | WithdrawnError):
        return "cancelled", "Stopped before the request was sent."
    if isinstance(error, SafetyBlockedError):
        return "blocked", str(error)
    if isinstance(error, SafetyUnavailableError):
        return "error", str(error)
    if isinstance(error, FluxError):
        return ("refused" if not error.sent else "error"), str(error)
    return "error", f"{type(error).__name__} (a flux-ui bug; see the log)"


def clean(text: object, limit: int) -> str:
    """Text as the trail stores it: redacted of every known key, clipped to ``limit``."""
    shown = redact(text if isinstance(text, str) else repr(text))
    return shown if len(shown) <= limit else f"{shown[:limit]}… ({len(shown)} characters)"


def day_of(at: float) -> str:
    """The UTC date a moment falls on, as the trail and the caps count days: ``2026-05-01``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def recover(db: Connection, at: float, before: float | None = None) -> int:
    """Start-up: requests left ``pending`` by a flux-ui that stopped are ``unknown``, counted at their estimate
    (only those admitted ``before`` then, on a database other replicas share: theirs may be in flight)."""
    detail = (f"flux-ui stopped before the answer (noted at {day_of(at)} start-up); counted at its estimate, as "
              "it may have been billed.")
    query = "UPDATE audit SET outcome = 'unknown', charged_usd = held_usd, detail = ? WHERE outcome = 'pending'"
    if before is None:
        return db.execute(query, (detail,)).rowcount
    return db.execute(f"{query} AND at < ?", (detail, before)).rowcount


def _safe_cell(value: object) -> object:
    """A text cell a spreadsheet will not run: one starting like a formula gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_text(rows: Sequence[AuditRow]) -> str:
    """The rows as CSV, oldest first, with :data:`CSV_COLUMNS` as its header."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in sorted(rows, key=lambda row: row.id):
        writer.writerow([_safe_cell(v) for v in (
            r.id, r.time_utc, r.user, r.model, r.deployment, r.route, r.tab, r.outcome,
            "" if r.estimate_usd is None else f"{r.estimate_usd:.4f}", "" if r.reported is None else f"{r.reported:g}",
            f"{r.charged_usd:.4f}", r.detail, r.prompt)])
    return out.getvalue()


@dataclass(frozen=True)
class UsageRow:
    """One user's use of one model on one UTC day: requests sent (or in flight), images, refusals, dollars."""

    day: str
    user: str
    model: str
    requests: int
    images: int
    refused: int
    usd: float


class AuditLog(Tables):
    """The trail in History's database (``database``, or the outputs folder's ``history.sqlite3``), for
    reading and export; thread-safe. :class:`flux_ui.spend.Ledger` writes it."""

    def __init__(self, folder: Path, database: Database | None = None) -> None:
        super().__init__(folder, SCHEMA, database, DB_NAME)

    def rows(self, user: str | None = None, since: float | None = None, limit: int | None = None) -> list[AuditRow]:
        """Newest first: every user's (``user`` None) or one user's, from ``since`` (a Unix time) on."""
        where, args = [], []
        if user is not None:
            where.append('"user" = ?')
            args.append(user)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        query = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.database.connect() as db:
            return [AuditRow(*row) for row in db.execute(query, args).fetchall()]

    def usage(self, since_day: str, user: str | None = None) -> list[UsageRow]:
        """Each (day, user, model) from ``since_day`` (a UTC date) on, newest day first; one user's, or all."""
        counts = ", ".join(_COUNT.format(c) for c in ("outcome NOT IN ('refused', 'cancelled')", "outcome = 'image'",
                                                        "outcome = 'refused'"))
        query = (f'SELECT day, "user", model, {counts}, SUM(COALESCE(charged_usd, held_usd)) FROM audit WHERE day >= ?'
                 + (' AND "user" = ?' if user is not None else "")
                 + ' GROUP BY day, "user", model ORDER BY day DESC, "user", model')
        args = (since_day,) if user is None else (since_day, user)
        with self.database.connect() as db:
            return [UsageRow(day, who, model, int(sent), int(images), int(refused), float(usd or 0.0))
                    for day, who, model, sent, images, refused, usd in db.execute(query, args).fetchall()]

    def export_csv(self, folder: Path, user: str | None = None) -> Path:
        """Write the trail (every user's, or ``user``'s) as a CSV file in ``folder``; blocking."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = Path(folder) / f"audit-{stamp}.csv"
        path.write_text(csv_text(self.rows(user)), encoding="utf-8", newline="")
        return path
