"""What History finishes when its folder opens: saves and deletes that a crash (or a kill) cut short.

A save renames its file into place before indexing it, so a kill between the two leaves a whole,
labelled image (a billed one) that no list would show: it is indexed from its embedded settings.
A delete first swaps the row for a tombstone, then removes the file, then the inputs no other
entry uses, then the tombstone: a tombstone found here means "remove this file", and a path with
a tombstone is never indexed again, so no crash between the steps brings a deleted image back.
Stored inputs no entry uses, and old temporaries, are removed.

**Replicas on one shared database** (PostgreSQL, :attr:`flux_ui.database.Database.shared`), each with an
outputs folder of its own that is only a cache of the files (which live for good in Blob Storage): what
one replica's folder lacks says nothing about another's images, so recovery here never deletes or
drops a row because a file is missing from *this* folder; it acts only on files this folder holds,
and on the database's own records:

- A pending tombstone (``deleted``) is a delete some replica began: any replica may finish it (remove
  its own copy, the stored file, the row), because the path stays recorded for good in ``gone``.
- ``gone`` lists every path deleted on a shared database, kept forever (a path and a time each; names
  are unique, so none is ever reused). A file in this folder named there is a cached copy of a deleted
  image (fetched before another replica deleted it, or left by a delete cut short here): it is removed
  from this folder, never indexed again. Without ``gone``, a replica starting after another finished a
  delete would find the file in its cache, unindexed and without a tombstone, and bring it back.
- A whole flux-ui image in this folder that no row, tombstone or ``gone`` names was renamed into place
  here by a save that died before indexing it: it is indexed (another replica's images are in other
  folders, and are not touched). Rows are added with ``DO NOTHING``, so a row already there wins.
- Stored inputs no row of the shared database uses are removed from this folder only.

On SQLite (one folder, one index) the tombstone is dropped once the delete is done, as always.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from flux_ui import durable, history_inputs
from flux_ui.database import Connection
from flux_ui.history_names import id_of_name
from flux_ui.images import inspect_image, read_metadata

if TYPE_CHECKING:
    from flux_ui.history import History

log = logging.getLogger("flux_ui.history")
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
#: A save takes milliseconds: a temporary file this old was left by one that died.
STALE_TEMP_S = 600.0


def bury(db: Connection, entry_id: str, relative: str, shared: bool = False) -> None:
    """Inside the caller's transaction: the tombstone in (and, on a ``shared`` database, the path's record
    in ``gone`` for good), the entry's rows out (image, inputs, star)."""
    now = time.time()
    db.execute("INSERT INTO deleted (path, entry, since) VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
               "entry = excluded.entry, since = excluded.since", (relative, entry_id, now))
    if shared:
        db.execute("INSERT INTO gone (path, since) VALUES (?, ?) ON CONFLICT (path) DO NOTHING", (relative, now))
    db.execute("DELETE FROM images WHERE id = ?", (entry_id,))
    db.execute("DELETE FROM inputs WHERE entry = ?", (entry_id,))
    db.execute("DELETE FROM favourites WHERE entry = ?", (entry_id,))


def recover(history: History) -> None:
    """Finish interrupted deletes, index whole images that missed the index, sweep leftovers."""
    finish_deletes(history)
    with history._transaction() as db:  # one snapshot: a delete commits its tombstone with its row's removal
        indexed = {row[0] for row in db.execute("SELECT path FROM images")}
        buried = {row[0] for row in db.execute("SELECT path FROM deleted")}
        gone = {row[0] for row in db.execute("SELECT path FROM gone")}
    adopt_unindexed(history, indexed | buried, gone)
    with history._transaction() as db:
        history_inputs.sweep(db, history.folder, STALE_TEMP_S)


def finish_deletes(history: History) -> None:
    for relative, entry_id in history._read("SELECT path, entry FROM deleted"):
        durable.remove_durably(history.folder / relative)
        history.files.removed(history.folder / relative)
        with history._transaction() as db:
            db.execute("DELETE FROM images WHERE path = ?", (relative,))
            db.execute("DELETE FROM deleted WHERE path = ?", (relative,))
        log.info("finished deleting %s (%s): flux-ui stopped half-way through", relative, entry_id)


def adopt_unindexed(history: History, known: Collection[str], gone: Collection[str] = ()) -> None:
    """Index the whole images in this folder that ``known`` (rows, tombstones) does not name; remove this
    folder's copies of those ``gone`` names (deleted on a shared database)."""
    now = time.time()
    for day in history.folder.iterdir():
        if not (_DAY_NAME.fullmatch(day.name) and day.is_dir()):
            continue
        for path in day.iterdir():
            try:  # another flux-ui on this folder may be saving or sweeping meanwhile
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    if now - path.stat().st_mtime > STALE_TEMP_S:
                        path.unlink(missing_ok=True)
                elif f"{day.name}/{path.name}" in gone:
                    durable.remove_durably(path)  # a cached copy of an image deleted elsewhere
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
    inputs = [history.folder / history_inputs.relative(str(n)) for n in settings.get("inputs") or []
              if history_inputs.is_name(n)]
    try:  # indexed only once stored for good (with the inputs it names): a listed entry always has its blobs
        for item in (p for p in inputs if p.is_file()):
            history.files.saved(item, discard_on_failure=False)
        history.files.saved(path, discard_on_failure=False)
    except OSError as err:
        log.warning("%s is whole but could not be stored (%s); left unlisted until the next start", path.name, err)
        return
    with history._transaction() as db:
        if history._index(db, entry, replace=False):
            history_inputs.link_existing(db, history.folder, entry.id, settings.get("inputs") or [])
    log.info("indexed %s: it was saved whole but not indexed when flux-ui last stopped (%s)", path.name,
             json.dumps(entry.id))


