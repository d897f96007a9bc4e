"""Every generated image, on disk and indexed, before anyone sees it; and the images it was made from.

Files are written whole (temporary name, fsync, rename) and only then indexed (SQLite in the folder,
or PostgreSQL shared by replicas: :mod:`flux_ui.database`),
so a crash can leave an unlisted temporary file but never a listed partial one. The
parameters travel inside each file too (PNG text chunks, JPEG EXIF/XMP), so an image
dropped back into flux-ui restores its settings even without the database, and an image
a crash left renamed into place but not indexed is indexed from them when the folder opens
(:mod:`flux_ui.history_recovery`). The request's input images are stored once each by
content (:mod:`flux_ui.history_inputs`); files are named by what they show
(:mod:`flux_ui.history_names`). A delete records a tombstone before it removes anything, so
no crash brings a deleted image back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ui import durable, history_inputs, history_recovery
from flux_ui.blob_store import BlobStoreError, FileStore
from flux_ui.client import GenerationResult
from flux_ui.database import ERRORS, Connection, Database, open_database
from flux_ui.errors import FluxError, NoRoomError, NotSavedError
from flux_ui.history_index import DB_NAME, SCHEMA, Filters, columns, knows_file, put
from flux_ui.history_names import entry_id, saved_name
from flux_ui.history_recovery import STALE_TEMP_S
from flux_ui.images import embed_metadata
from flux_ui.registry import ModelSpec

__all__ = ["DB_NAME", "STALE_TEMP_S", "Entry", "Filters", "History", "OutputsFolderError", "knows_file",
           "settings_of"]
log = logging.getLogger("flux_ui.history")
#: Free space the outputs folder must have before a request is sent: this many times the largest
#: file the model can return (the file, its temporary copy, SQLite's journal, other writers).
ROOM_FACTOR = 4
#: The largest file per pixel a model can return: an RGBA PNG of noise barely compresses.
WORST_BYTES_PER_PIXEL = 4


class OutputsFolderError(FluxError):
    """The outputs folder cannot be made or written: one line naming FLUX_OUTPUT_DIR and the fix."""

    def __init__(self, folder: Path, err: Exception) -> None:
        reason = getattr(err, "strerror", None) or str(err)
        if folder.exists() and not folder.is_dir():
            reason = "it is a file, not a folder"
        elif not folder.exists():
            reason = f"it cannot be created: {reason}"
        super().__init__(f"flux-ui cannot write its outputs folder {folder} ({reason}). Set FLUX_OUTPUT_DIR to a "
                         "folder flux-ui can create and write, for example FLUX_OUTPUT_DIR=/data/flux-outputs, or "
                         "make that folder writable, then start flux-ui again.")


@dataclass(frozen=True)
class Entry:
    """One saved image, the settings that made it, and the input images it was made from (in order)."""

    id: str
    created: float
    tab: str
    model: str
    prompt: str
    seed: int | None
    width: int
    height: int
    format: str
    path: Path
    settings: Mapping[str, Any]  # what "reuse settings" loads back
    inputs: tuple[Path, ...] = ()  # the stored reference / input images, in the order sent
    favourite: bool = False


def settings_of(result: GenerationResult, tab: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What is embedded in the file and stored in the index: enough to make the image again.

    Built from the parameters the client validated (by the model's own names, whatever the route's
    body calls them), which never hold a key; the wire body is for display only.
    """
    params = dict(result.params)
    return {
        "generator": "flux-ui",
        "tab": tab,
        "model": result.model,
        "deployment": result.deployment,
        "route": result.route.value,
        "prompt": result.prompt,
        "seed": result.seed,
        "params": params,
        "references": list(result.references),
        "size": [result.info.width, result.info.height],
        **(extra or {}),
    }


class History:
    """The outputs folder and its index; safe to share between threads."""

    def __init__(self, folder: Path, database: Database | None = None, files: FileStore | None = None) -> None:
        """Open (making it if need be) the folder and its index; OutputsFolderError if it cannot be written.
        ``database``: where the index lives (None: ``history.sqlite3`` in the folder, closed with History;
        one given is its opener's to close). ``files``: where the files live for good (None: this folder;
        a BlobStore makes the folder its cache)."""
        self.folder = Path(folder)
        self.files = files if files is not None else FileStore(self.folder)
        self._owns_database = database is None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.database = database if database is not None else open_database(None, self.folder)
            self.database.schema(SCHEMA + history_inputs.SCHEMA)
        except (OSError, *ERRORS) as err:
            if database is None or isinstance(err, OSError):  # the folder, or the SQLite file in it
                raise OutputsFolderError(self.folder, err) from None
            raise  # a shared database: its own error names it (DatabaseUnavailable, psycopg's)
        history_recovery.recover(self)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One write transaction, taken at once (another flux-ui on the database waits, and is waited for)."""
        with self.database.write() as db:
            yield db

    def _read(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.database.connect() as db:
            return list(db.execute(query, args).fetchall())

    def check_room(self, spec: ModelSpec) -> None:
        """Refuse (NoRoomError, before anything is sent) when the outputs folder has too little free space
        for the largest image ``spec`` can return: an image that is paid for must have somewhere to go."""
        need = ROOM_FACTOR * largest_image_bytes(spec)
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError:
            return  # cannot tell: the save says what went wrong, and the image is kept meanwhile
        if free < need:
            raise NoRoomError(
                f"Not sent: the outputs folder {self.folder} has {_mb(free)} free, and flux-ui wants {_mb(need)} "
                f"there before sending to {spec.display_name} ({ROOM_FACTOR} × the largest image it can return), "
                "so that the image you pay for can be saved. Free some space there, or set FLUX_OUTPUT_DIR to a "
                "folder on a bigger disk and start flux-ui again.", folder=self.folder)

    def save(self, result: GenerationResult, tab: str, extra: Mapping[str, Any] | None = None,
             inputs: Sequence[bytes] = ()) -> Entry:
        """Write the request's input images (each once by content), then the image with its settings
        embedded, then index both; returns the entry.

        NotSavedError when the disk refuses the image (no partial file is left); ``placed`` when the file
        is whole but the index could not take it (it is listed when the folder next opens). Inputs the
        disk refuses are left out (the image matters more), and the log says so.
        """
        created = time.time()
        tail = uuid.uuid4().hex[:8]
        stored = self._store_inputs(history_inputs.prepare(inputs))
        settings = settings_of(result, tab, extra)
        if stored:
            settings["inputs"] = [i.name for i in stored]
        data = _labelled(result.image, settings)
        day = self.folder / time.strftime("%Y-%m-%d", time.localtime(created))
        path = day / saved_name(created, tail, result.model, result.prompt, result.seed, result.format)
        try:
            day.mkdir(exist_ok=True)
            durable.write_whole(path, data)
            self.files.saved(path)  # a Blob Storage outage fails the save as a full disk does
        except OSError as err:
            raise NotSavedError(self._not_saved(err), folder=self.folder) from err
        entry = Entry(entry_id(created, tail), created, tab, result.model, result.prompt, result.seed,
                      result.info.width, result.info.height, result.format, path, settings,
                      tuple(self.folder / i.file for i in stored))
        try:
            # REPLACE: another flux-ui opening this folder may have indexed the file from its embedded
            # settings between the rename and here; this row, with the full prompt, wins.
            with self._transaction() as db:
                self._index(db, entry, replace=True)
                history_inputs.link(db, self.folder, entry.id, stored, durable.write_whole)
                self.files.kept(entry.inputs)  # serialized with deletes: none removed since uploaded
        except (*ERRORS, OSError) as err:
            raise NotSavedError(self._not_saved(err), folder=self.folder, placed=path) from err
        return entry

    def _store_inputs(self, inputs: list[history_inputs.Input]) -> list[history_inputs.Input]:
        try:
            # Only new files are uploaded: one already here was uploaded when it came, and ``kept`` puts back
            # any another replica removed since.
            for item in history_inputs.place(self.folder, inputs, durable.write_whole):
                self.files.saved(self.folder / item.file, discard_on_failure=False)
        except OSError as err:
            log.warning("the %d input image(s) of an image could not be stored (%s): it is saved without them",
                        len(inputs), getattr(err, "strerror", None) or err)
            return []
        return inputs

    def _not_saved(self, err: Exception) -> str:
        if isinstance(err, BlobStoreError):
            return f"The image could not be stored: {err}, so it is not in History."
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return f"The image could not be saved in the outputs folder {self.folder} ({reason}), so it is not in History."

    def _index(self, db: Connection, entry: Entry, replace: bool) -> bool:
        """One row (inside the caller's transaction), unless the path was deleted; whether it went in."""
        relative = str(entry.path.relative_to(self.folder))
        return put(db, (entry.id, entry.created, entry.tab, entry.model, entry.prompt, entry.seed, entry.width,
                        entry.height, entry.format, relative, json.dumps(entry.settings, ensure_ascii=False)),
                   replace)

    def list(self, model: str | None = None, text: str | None = None, limit: int = 200,
             preview: int | None = None, group: str | None = None, favourites: bool = False,
             offset: int = 0) -> list[Entry]:
        """Newest first, optionally only one model's, those whose prompt contains ``text``, one run's
        (``group``) or the favourites; ``offset`` skips that many (a later page).

        With ``preview``, a longer prompt comes cut to its first ``preview`` characters and "…",
        in the entry and in its settings (which then say ``prompt_truncated``), cut by the database: a
        listing never carries a whole long prompt into Python, and :meth:`get` still has it.
        """
        where, args = Filters(model, text, group, favourites).where(self.database.dialect)
        rows = self._read(f"SELECT {columns(preview, self.database.dialect)} FROM images WHERE {where} "
                          "ORDER BY created DESC, id DESC LIMIT ? OFFSET ?", [*args, limit, max(0, offset)])
        return self._entries(rows)

    def count(self, model: str | None = None, text: str | None = None, group: str | None = None,
              favourites: bool = False) -> int:
        """How many entries :meth:`list` would page through with these filters."""
        where, args = Filters(model, text, group, favourites).where(self.database.dialect)
        return int(self._read(f"SELECT COUNT(*) FROM images WHERE {where}", args)[0][0])

    def position(self, entry_id: str) -> int | None:
        """How many entries come before this one, newest first and unfiltered (None: no such entry)."""
        rows = self._read("SELECT (SELECT COUNT(*) FROM images WHERE created > t.created OR (created = t.created "
                          "AND id > t.id)) FROM images AS t WHERE t.id = ?", (entry_id,))
        return int(rows[0][0]) if rows else None

    def get(self, entry_id: str) -> Entry | None:
        rows = self._read(f"SELECT {columns(None)} FROM images WHERE id = ?", (entry_id,))
        return self._entries(rows)[0] if rows else None

    def favourite(self, entry_id: str, on: bool) -> Entry | None:
        """Star (``on``) or unstar an entry; returns it as it now is (None: no such entry)."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE id = ?", (entry_id,)).fetchone() is None:
                return None
            if on:
                db.execute("INSERT INTO favourites (entry, since) VALUES (?, ?) ON CONFLICT (entry) DO NOTHING",
                           (entry_id, time.time()))
            else:
                db.execute("DELETE FROM favourites WHERE entry = ?", (entry_id,))
        return self.get(entry_id)

    def delete(self, entry_id: str) -> Entry | None:
        """Remove an entry: its row (with a tombstone), then its file, then its inputs no other entry uses.

        Returns the entry deleted (None: no such entry). Each step is durable before the next, and
        :func:`flux_ui.history_recovery.recover` finishes one a crash interrupted, so a deleted image is
        never listed again, nor listed while its file is gone.
        """
        entry = self.get(entry_id)
        if entry is None:
            return None
        relative = str(entry.path.relative_to(self.folder))
        with self._transaction() as db:
            files = [row[0] for row in db.execute("SELECT file FROM inputs WHERE entry = ?", (entry_id,))]
            history_recovery.bury(db, entry_id, relative, self.database.shared)
        durable.remove_durably(entry.path)
        try:
            self.files.removed(entry.path)
        except OSError as err:  # the tombstone stays: the next start (of any replica) finishes the delete
            log.warning("deleted %s from History, but its stored copy is left until the next start: %s",
                        entry.path.name, err)
            return entry
        with self._transaction() as db:
            gone = history_inputs.remove_unused(db, self.folder, files)
            self.files.removed_all(self.folder / file for file in gone)
            db.execute("DELETE FROM deleted WHERE path = ?", (relative,))
        return entry

    def close(self) -> None:
        """Close the index, when History opened it (a database handed in is its opener's)."""
        if self._owns_database:
            self.database.close()

    def _entries(self, rows: Sequence[tuple[Any, ...]]) -> list[Entry]:
        with self.database.connect() as db:
            inputs = history_inputs.files_of(db, self.folder, [row[0] for row in rows])
        entries = []
        for row in rows:
            id_, created, tab, model, prompt, seed, width, height, fmt, path, settings, starred = row
            entries.append(Entry(id_, created, tab, model, prompt, seed, width, height, fmt, self.folder / path,
                                 json.loads(settings), inputs.get(id_, ()), bool(starred)))
        self.files.fetch_all([p for e in entries for p in (e.path, *e.inputs)])  # before the page gets them
        return entries


#: A JPEG metadata segment holds 64 KB; a FLUX.2 prompt may be longer. The file then
#: carries the first part of the prompt and the index keeps all of it.
EMBEDDED_PROMPT_LIMIT = 8_000


def _labelled(image: bytes, settings: Mapping[str, Any]) -> bytes:
    try:
        return embed_metadata(image, settings)
    except ValueError:
        short = {**settings, "prompt": str(settings["prompt"])[:EMBEDDED_PROMPT_LIMIT], "prompt_truncated": True}
        try:
            return embed_metadata(image, short)
        except ValueError:
            log.warning("saved an image without embedded settings: they do not fit in its metadata")
            return image


def largest_image_bytes(spec: ModelSpec) -> int:
    """The largest file ``spec`` can return (its megapixels are BFL's, 2²⁰ pixels), metadata included."""
    return int(spec.max_output_mp * 1_048_576 * WORST_BYTES_PER_PIXEL) + 65_536


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.0f} MB"
