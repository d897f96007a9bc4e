"""Every generated image, on disk and indexed, before anyone sees it.

Files are written whole (temporary name, fsync, rename) and only then indexed in SQLite,
so a crash can leave an unlisted temporary file but never a listed partial one. The
parameters travel inside each file too (PNG text chunks, JPEG EXIF/XMP), so an image
dropped back into flux-ui restores its settings even without the database, and an image
a crash left renamed into place but not indexed is indexed from them when the folder opens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ui.client import GenerationResult
from flux_ui.errors import FluxError, NoRoomError, NotSavedError
from flux_ui.images import embed_metadata, inspect_image, read_metadata
from flux_ui.registry import ModelSpec

log = logging.getLogger("flux_ui.history")
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
"""
#: A save takes milliseconds: a temporary file this old was left by one that died.
STALE_TEMP_S = 600.0
#: Free space the outputs folder must have before a request is sent: this many times the largest
#: file the model can return (the file, its temporary copy, SQLite's journal, other writers).
ROOM_FACTOR = 4
#: The largest file per pixel a model can return: an RGBA PNG of noise barely compresses.
WORST_BYTES_PER_PIXEL = 4
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
_SAVED_NAME = re.compile(r"\d{8}-\d{6}-[0-9a-f]{8}\.(?:jpg|png|webp)")


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
    """One saved image and the settings that made it."""

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

    def __init__(self, folder: Path) -> None:
        """Open (making it if need be) the folder and its index; OutputsFolderError if it cannot be written."""
        self.folder = Path(folder)
        self._lock = threading.Lock()
        try:
            self._db = self._open()
        except (OSError, sqlite3.Error) as err:
            raise OutputsFolderError(self.folder, err) from None
        self._recover()

    def _open(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.folder / DB_NAME, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

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

    def save(self, result: GenerationResult, tab: str, extra: Mapping[str, Any] | None = None) -> Entry:
        """Write the image with its settings embedded, then index it; returns the entry.

        NotSavedError when the disk refuses (no partial file is left); ``placed`` when the file is whole
        but the index could not take it (it is listed when the folder next opens, see :meth:`_recover`).
        """
        created = time.time()
        entry_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + "-" + uuid.uuid4().hex[:8]
        settings = settings_of(result, tab, extra)
        data = _labelled(result.image, settings)
        day = self.folder / time.strftime("%Y-%m-%d", time.localtime(created))
        path = day / f"{entry_id}.{'jpg' if result.format == 'jpeg' else result.format}"
        try:
            day.mkdir(exist_ok=True)
            _write_whole(path, data)
        except OSError as err:
            raise NotSavedError(self._not_saved(err), folder=self.folder) from err
        entry = Entry(entry_id, created, tab, result.model, result.prompt, result.seed, result.info.width,
                      result.info.height, result.format, path, settings)
        try:
            # REPLACE: another flux-ui opening this folder may have indexed the file from its embedded
            # settings between the rename and here; this row, with the full prompt, wins.
            self._index(entry, "REPLACE")
        except sqlite3.Error as err:
            raise NotSavedError(self._not_saved(err), folder=self.folder, placed=path) from err
        return entry

    def _not_saved(self, err: Exception) -> str:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return f"The image could not be saved in the outputs folder {self.folder} ({reason}), so it is not in History."

    def _index(self, entry: Entry, on_conflict: str) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT OR {on_conflict} INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.id, entry.created, entry.tab, entry.model, entry.prompt, entry.seed, entry.width, entry.height,
                 entry.format, str(entry.path.relative_to(self.folder)),
                 json.dumps(entry.settings, ensure_ascii=False)),
            )

    def list(self, model: str | None = None, text: str | None = None, limit: int = 200,
             preview: int | None = None, group: str | None = None) -> list[Entry]:
        """Newest first, optionally only one model's, or those whose prompt contains ``text``.

        With ``preview``, a longer prompt comes cut to its first ``preview`` characters and "…",
        in the entry and in its settings (which then say ``prompt_truncated``), cut by SQLite: a
        listing never carries a whole long prompt into Python, and :meth:`get` still has it.
        """
        query = f"SELECT {_columns(preview)} FROM images WHERE 1=1"
        args: list[Any] = []
        if model:
            query += " AND model = ?"
            args.append(model)
        if text and text.strip():
            query += " AND prompt LIKE ? ESCAPE '\\'"
            escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if group:  # the images one grid, run of variations or comparison made together
            query += " AND json_extract(settings, '$.group.id') = ?"
            args.append(group)
        query += " ORDER BY created DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [self._entry(row) for row in rows]

    def get(self, entry_id: str) -> Entry | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE id = ?", (entry_id,)).fetchone()
        return self._entry(row) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _recover(self) -> None:
        """Finish what killed saves left: index whole images that missed the index, delete old temporaries.

        A save renames its file into place before indexing it, so a kill between the two leaves a
        whole, labelled image (a billed one) that no list would show.
        """
        with self._lock:
            indexed = {row[0] for row in self._db.execute("SELECT path FROM images")}
        now = time.time()
        for day in self.folder.iterdir():
            if not (_DAY_NAME.fullmatch(day.name) and day.is_dir()):
                continue
            for path in day.iterdir():
                try:  # another flux-ui on this folder may be saving or sweeping meanwhile
                    if path.name.startswith(".") and path.name.endswith(".tmp"):
                        if now - path.stat().st_mtime > STALE_TEMP_S:
                            path.unlink(missing_ok=True)
                    elif _SAVED_NAME.fullmatch(path.name) and f"{day.name}/{path.name}" not in indexed:
                        self._adopt(path)
                except FileNotFoundError:
                    continue

    def _adopt(self, path: Path) -> None:
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
        self._index(Entry(path.stem, path.stat().st_mtime, str(settings.get("tab", "")), str(settings.get("model", "")),
                          str(settings.get("prompt", "")), seed if isinstance(seed, int) else None, info.width,
                          info.height, info.format, path, settings), "IGNORE")
        log.info("indexed %s: it was saved whole but not indexed when flux-ui last stopped", path.name)

    def _entry(self, row: tuple[Any, ...]) -> Entry:
        id_, created, tab, model, prompt, seed, width, height, fmt, path, settings = row
        return Entry(id_, created, tab, model, prompt, seed, width, height, fmt, self.folder / path,
                     json.loads(settings))


def knows_file(folder: Path, relative: str) -> bool:
    """Whether the index in ``folder`` lists the file at ``relative`` (as History stores it: the
    path inside the folder). The web edge asks this before it serves a file from the outputs folder,
    so that only images flux-ui wrote are served there. Read-only, on a short connection of its own:
    it needs no History object, sees what another flux-ui on the same folder indexed, and any
    failure (no index yet, no file descriptor left) answers False, which refuses the file."""
    database = Path(folder) / DB_NAME
    try:
        db = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    except (OSError, ValueError, sqlite3.Error):
        return False
    try:
        return db.execute("SELECT 1 FROM images WHERE path = ? LIMIT 1", (relative,)).fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()


def _columns(preview: int | None) -> str:
    """The images columns, in order, with the prompt and the settings' copy of it cut to ``preview``."""
    if preview is None:
        return "*"
    n = int(preview)
    long = f"length(prompt) > {n}"
    cut = f"substr(prompt, 1, {n}) || '…'"
    return (f"id, created, tab, model, CASE WHEN {long} THEN {cut} ELSE prompt END, seed, width, height, format, "
            f"path, CASE WHEN {long} THEN json_set(settings, '$.prompt', {cut}, '$.prompt_truncated', json('true')) "
            "ELSE settings END")


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


def _write_whole(path: Path, data: bytes) -> None:
    """Temporary name, fsync, rename; a write that fails (a full disk) removes its partial temporary."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def largest_image_bytes(spec: ModelSpec) -> int:
    """The largest file ``spec`` can return (its megapixels are BFL's, 2²⁰ pixels), metadata included."""
    return int(spec.max_output_mp * 1_048_576 * WORST_BYTES_PER_PIXEL) + 65_536


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.0f} MB"
