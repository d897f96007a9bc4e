"""Every generated image, on disk and indexed, before anyone sees it.

Files are written whole (temporary name, fsync, rename) and only then indexed in SQLite,
so a crash can leave an unlisted temporary file but never a listed partial one. The
parameters travel inside each file too (PNG text chunks, JPEG EXIF/XMP), so an image
dropped back into flux-ui restores its settings even without the database, and an image
a crash left renamed into place but not indexed is indexed from them when the folder opens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ui.client.core import GenerationResult
from flux_ui.client.errors import FluxError
from flux_ui.images import embed_metadata, inspect_image, read_metadata

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

    Built from the client's record of what was sent, which never holds a key.
    """
    skip = ("model", "prompt", "inputs", "parameters", "image", "accept")
    params = {k: v for k, v in result.params_sent.items() if k not in skip and not k.startswith("input_image")}
    if isinstance(result.params_sent.get("parameters"), Mapping):  # the Azure ML body nests them
        params.update(result.params_sent["parameters"])
    if "accept" in result.params_sent:
        params["output_format"] = str(result.params_sent["accept"]).removeprefix("image/")
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

    def save(self, result: GenerationResult, tab: str, extra: Mapping[str, Any] | None = None) -> Entry:
        """Write the image with its settings embedded, then index it; returns the entry."""
        created = time.time()
        entry_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + "-" + uuid.uuid4().hex[:8]
        settings = settings_of(result, tab, extra)
        data = _labelled(result.image, settings)
        day = self.folder / time.strftime("%Y-%m-%d", time.localtime(created))
        day.mkdir(exist_ok=True)
        path = day / f"{entry_id}.{'jpg' if result.format == 'jpeg' else result.format}"
        _write_whole(path, data)
        entry = Entry(entry_id, created, tab, result.model, result.prompt, result.seed, result.info.width,
                      result.info.height, result.format, path, settings)
        # REPLACE: another flux-ui opening this folder may have indexed the file from its embedded
        # settings between the rename and here; this row, with the full prompt, wins.
        self._index(entry, "REPLACE")
        return entry

    def _index(self, entry: Entry, on_conflict: str) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT OR {on_conflict} INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.id, entry.created, entry.tab, entry.model, entry.prompt, entry.seed, entry.width, entry.height,
                 entry.format, str(entry.path.relative_to(self.folder)),
                 json.dumps(entry.settings, ensure_ascii=False)),
            )

    def list(self, model: str | None = None, text: str | None = None, limit: int = 200) -> list[Entry]:
        """Newest first, optionally only one model's, or those whose prompt contains ``text``."""
        query = "SELECT * FROM images WHERE 1=1"
        args: list[Any] = []
        if model:
            query += " AND model = ?"
            args.append(model)
        if text and text.strip():
            query += " AND prompt LIKE ? ESCAPE '\\'"
            escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
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
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
