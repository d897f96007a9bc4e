"""What History finishes when its folder opens: saves and deletes that a crash (or a kill) cut short.

A save renames its file into place before indexing it, so a kill between the two leaves a whole,
labelled image (a billed one) that no list would show: it is indexed from its embedded settings.
A delete first swaps the row for a tombstone, then removes the file, then the inputs no other
entry uses, then the tombstone: a tombstone found here means "remove this file", and a path with
a tombstone is never indexed again, so no crash between the steps brings a deleted image back.
Stored inputs no entry uses, and old temporaries, are removed.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flux_ui import durable, history_inputs
from flux_ui.history_names import id_of_name
from flux_ui.images import inspect_image, read_metadata

if TYPE_CHECKING:
    from flux_ui.history import History

log = logging.getLogger("flux_ui.history")
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
#: A save takes milliseconds: a temporary file this old was left by one that died.
STALE_TEMP_S = 600.0


def bury(db: sqlite3.Connection, entry_id: str, relative: str) -> None:
    """Inside the caller's transaction: the tombstone in, the entry's rows out (image, inputs, star)."""
    db.execute("INSERT OR REPLACE INTO deleted VALUES (?, ?, ?)", (relative, entry_id, time.time()))
    db.execute("DELETE FROM images WHERE id = ?", (entry_id,))
    db.execute("DELETE FROM inputs WHERE entry = ?", (entry_id,))
    db.execute("DELETE FROM favourites WHERE entry = ?", (entry_id,))


def recover(history: History) -> None:
    """Finish interrupted deletes, index whole images that missed the index, sweep leftovers."""
    finish_deletes(history)
    with history._lock:  # one snapshot: a delete elsewhere commits its tombstone with its row's removal
        db = history._db
        db.execute("BEGIN")
        try:
            indexed = {row[0] for row in db.execute("SELECT path FROM images")}
            buried = {row[0] for row in db.execute("SELECT path FROM deleted")}
        finally:
            db.execute("COMMIT")
    adopt_unindexed(history, indexed | buried)
    with history._transaction() as db:
        history_inputs.sweep(db, history.folder, STALE_TEMP_S)


def finish_deletes(history: History) -> None:
    for relative, entry_id in history._read("SELECT path, entry FROM deleted"):
        durable.remove_durably(history.folder / relative)
        with history._transaction() as db:
            db.execute("DELETE FROM images WHERE path = ?", (relative,))
            db.execute("DELETE FROM deleted WHERE path = ?", (relative,))
        log.info("finished deleting %s (%s): flux-ui stopped half-way through", relative, entry_id)


def adopt_unindexed(history: History, known: set[str]) -> None:
    now = time.time()
    for day in history.folder.iterdir():
        if not (_DAY_NAME.fullmatch(day.name) and day.is_dir()):
            continue
        for path in day.iterdir():
            try:  # another flux-ui on this folder may be saving or sweeping meanwhile
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    if now - path.stat().st_mtime > STALE_TEMP_S:
                        path.unlink(missing_ok=True)
                elif id_of_name(path.name) and f"{day.name}/{path.name}" not in known:
                    adopt(history, path)
            except FileNotFoundError:
                continue


def adopt(history: History, path: Path) -> None:
    """Index a whole flux-ui image from its embedded settings (and link the inputs they name)."""
    from flux_ui.history import Entry  # the entry type lives with History, which imports this module

    data = path.read_bytes()
    settings = read_metadata(data)
    try:
        info = inspect_image(data)
    except ValueError:
        info = None
    if info is None or not settings or settings.get("generator") != "flux-ui":
        log.warning("%s is in the outputs folder but is not a whole flux-ui image; left unlisted", path.name)
        return
    seed = settings.get("seed")
    entry = Entry(str(id_of_name(path.name)), path.stat().st_mtime, str(settings.get("tab", "")),
                  str(settings.get("model", "")), str(settings.get("prompt", "")),
                  seed if isinstance(seed, int) else None, info.width, info.height, info.format, path, settings)
    with history._transaction() as db:
        if history._index(db, entry, "IGNORE"):
            history_inputs.link_existing(db, history.folder, entry.id, settings.get("inputs") or [])
    log.info("indexed %s: it was saved whole but not indexed when flux-ui last stopped (%s)", path.name,
             json.dumps(entry.id))


