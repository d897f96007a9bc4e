"""History's SQLite index: its tables, the filters a listing takes, and the file gate's question.

``images`` lists every saved image, ``favourites`` the starred ones, ``deleted`` the tombstones
of deletes not yet finished (recovery finishes them), and ``inputs`` (:mod:`flux_ui.history_inputs`)
each image's stored input files in order.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "history.sqlite3"
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
"""
_COLUMNS = ("id, created, tab, model, {prompt}, seed, width, height, format, path, {settings}, "
            "EXISTS (SELECT 1 FROM favourites WHERE entry = images.id)")


@dataclass(frozen=True)
class Filters:
    """What a listing keeps: one model's images, prompts containing ``text``, one run's, the favourites."""

    model: str | None = None
    text: str | None = None
    group: str | None = None
    favourites: bool = False

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (without the word) and its arguments."""
        query, args = "1=1", []
        if self.model:
            query += " AND model = ?"
            args.append(self.model)
        if self.text and self.text.strip():
            query += " AND prompt LIKE ? ESCAPE '\\'"
            escaped = self.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if self.group:  # the images one grid, run of variations or comparison made together
            query += " AND json_extract(settings, '$.group.id') = ?"
            args.append(self.group)
        if self.favourites:
            query += " AND id IN (SELECT entry FROM favourites)"
        return query, args


def columns(preview: int | None) -> str:
    """The images columns, in order, then whether it is a favourite; with ``preview``, the prompt and the
    settings' copy of it cut to that many characters."""
    if preview is None:
        return _COLUMNS.format(prompt="prompt", settings="settings")
    n = int(preview)
    long = f"length(prompt) > {n}"
    cut = f"substr(prompt, 1, {n}) || '…'"
    return _COLUMNS.format(
        prompt=f"CASE WHEN {long} THEN {cut} ELSE prompt END",
        settings=f"CASE WHEN {long} THEN json_set(settings, '$.prompt', {cut}, '$.prompt_truncated', json('true')) "
                 "ELSE settings END")


def knows_file(folder: Path, relative: str) -> bool:
    """Whether the index in ``folder`` lists the file at ``relative`` (as History stores it: the
    path inside the folder) as a saved image or as an image's stored input. The web edge asks this
    before it serves a file from the outputs folder, so that only files flux-ui wrote are served
    there. Read-only, on a short connection of its own: it needs no History object, sees what
    another flux-ui on the same folder indexed, and any failure (no index yet, no file descriptor
    left) answers False, which refuses the file."""
    database = Path(folder) / DB_NAME
    try:
        db = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    except (OSError, ValueError, sqlite3.Error):
        return False
    try:
        for query in ("SELECT 1 FROM images WHERE path = ? LIMIT 1", "SELECT 1 FROM inputs WHERE file = ? LIMIT 1"):
            try:
                if db.execute(query, (relative,)).fetchone() is not None:
                    return True
            except sqlite3.Error:
                continue  # an index older than the inputs table
        return False
    finally:
        db.close()
