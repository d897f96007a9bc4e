"""History's index (SQLite, or PostgreSQL shared by replicas): its tables, the filters a listing takes,
and the file gate's question.

``images`` lists every saved image, ``favourites`` the starred ones, ``deleted`` the tombstones
of deletes not yet finished (recovery finishes them), ``gone`` every path deleted on a shared
database, for good (:mod:`flux_ui.history_recovery` says why), and ``inputs``
(:mod:`flux_ui.history_inputs`) each image's stored input files in order. The SQL is written once
for both engines; where their JSON functions differ, each has its own fragment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ui.database import DB_NAME, ERRORS, Connection, Database, Dialect

__all__ = ["DB_NAME", "SCHEMA", "Filters", "columns", "knows_file", "put"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    tab TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    settings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_created ON images (created DESC);
CREATE TABLE IF NOT EXISTS favourites (
    entry TEXT PRIMARY KEY,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deleted (
    path TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS gone (
    path TEXT PRIMARY KEY,
    since REAL NOT NULL
);
"""
_NAMES = "id, created, tab, model, prompt, seed, width, height, format, path, settings"
_REPLACE = "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _NAMES.split(", ")[1:])
#: The settings' group id, and the settings with the prompt cut, in each engine's JSON functions.
_GROUP = {"sqlite": "json_extract(settings, '$.group.id')", "postgres": "(settings::json #>> '{group,id}')"}
_CUT = {"sqlite": "json_set(settings, '$.prompt', {cut}, '$.prompt_truncated', json('true'))",
        "postgres": "(jsonb_set(settings::jsonb, '{{prompt}}', to_jsonb({cut})) "
                    "|| '{{\"prompt_truncated\": true}}'::jsonb)::text"}
_COLUMNS = ("id, created, tab, model, {prompt}, seed, width, height, format, path, {settings}, "
            "EXISTS (SELECT 1 FROM favourites WHERE entry = images.id)")


@dataclass(frozen=True)
class Filters:
    """What a listing keeps: one model's images, prompts containing ``text``, one run's, the favourites."""

    model: str | None = None
    text: str | None = None
    group: str | None = None
    favourites: bool = False

    def where(self, dialect: Dialect = "sqlite") -> tuple[str, list[Any]]:
        """The WHERE clause (without the word) and its arguments, in ``dialect``'s SQL."""
        query, args = "1=1", []
        if self.model:
            query += " AND model = ?"
            args.append(self.model)
        if self.text and self.text.strip():  # case-insensitive on both engines (PostgreSQL's LIKE is not)
            query += " AND LOWER(prompt) LIKE LOWER(?) ESCAPE '\\'"
            escaped = self.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if self.group:  # the images one grid, run of variations or comparison made together
            query += f" AND {_GROUP[dialect]} = ?"
            args.append(self.group)
        if self.favourites:
            query += " AND id IN (SELECT entry FROM favourites)"
        return query, args


def columns(preview: int | None, dialect: Dialect = "sqlite") -> str:
    """The images columns, in order, then whether it is a favourite; with ``preview``, the prompt and the
    settings' copy of it cut to that many characters (by the database: a listing never carries a whole
    long prompt into Python)."""
    if preview is None:
        return _COLUMNS.format(prompt="prompt", settings="settings")
    n = int(preview)
    long = f"length(prompt) > {n}"
    cut = f"substr(prompt, 1, {n}) || '…'"
    return _COLUMNS.format(prompt=f"CASE WHEN {long} THEN {cut} ELSE prompt END",
                           settings=f"CASE WHEN {long} THEN {_CUT[dialect].format(cut=cut)} ELSE settings END")


def put(db: Connection, row: Sequence[Any], replace: bool) -> bool:
    """Inside the caller's write transaction: one images row (its columns in order), unless its path has
    a tombstone; ``replace`` an existing row of that id (a save), or leave it (an adoption). Whether it
    went in."""
    if db.execute("SELECT 1 FROM deleted WHERE path = ? UNION ALL SELECT 1 FROM gone WHERE path = ?",
                  (row[9], row[9])).fetchone() is not None:
        return False
    cursor = db.execute(f"INSERT INTO images ({_NAMES}) VALUES ({', '.join('?' * len(row))}) ON CONFLICT (id) "
                        + (_REPLACE if replace else "DO NOTHING"), tuple(row))
    return cursor.rowcount > 0


def knows_file(folder: Path, relative: str, database: Database | None = None) -> bool:
    """Whether History's index lists the file at ``relative`` (as History stores it: the path inside the
    folder) as a saved image or as an image's stored input. The web edge asks this before it serves a
    file from the outputs folder, so that only files flux-ui wrote are served there. Any failure (no
    index yet, no file descriptor left, the server away) answers False, which refuses the file.

    On SQLite (``database`` None or a SQLite one) it reads the folder's file read-only, on a short
    connection of its own, so it sees what another flux-ui on the same folder indexed; on PostgreSQL
    it asks the shared database, so an image another replica saved (and this one fetched) is served.
    """
    if database is not None and database.dialect != "sqlite":
        try:
            with database.connect() as db:
                return any(db.execute(query, (relative,)).fetchone() is not None for query in _KNOWS)
        except ERRORS:
            return False
    path = Path(folder) / DB_NAME
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    except (OSError, ValueError, sqlite3.Error):
        return False
    try:
        for query in _KNOWS:
            try:
                if db.execute(query, (relative,)).fetchone() is not None:
                    return True
            except sqlite3.Error:
                continue  # an index older than the inputs table
        return False
    finally:
        db.close()


_KNOWS = ("SELECT 1 FROM images WHERE path = ? LIMIT 1", "SELECT 1 FROM inputs WHERE file = ? LIMIT 1")
