"""The images a request was given (Edit's references, Kontext's input), kept with the image they made.

Each is stored once by its content's SHA-256, under ``<outputs>/inputs/ab/<sha256>.<ext>``, so a
reference used fifty times takes one file; the index table ``inputs`` maps an entry to its ordered
files. The saved image carries the same names in its embedded settings (``"inputs"``), so an image
recovered from the folder, or dropped back onto History, finds them again.

Why the writes happen where they do: an input file is written (whole) before the image and its
index row; the row is added in a write transaction that first puts back any of its files another
flux-ui on the folder removed meanwhile (as unused), and removals happen inside such a transaction
too, after checking no row uses the file. So a listed entry never points at a removed input for
long, and a file no row uses is removed at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_ui.database import Connection

log = logging.getLogger("flux_ui.history")
FOLDER = "inputs"
SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (
    entry TEXT NOT NULL,
    position INTEGER NOT NULL,
    hash TEXT NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY (entry, position)
);
CREATE INDEX IF NOT EXISTS inputs_file ON inputs (file);
"""
#: A file's first bytes and the extension they mean; anything else is kept as ``.bin``.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"\xff\xd8\xff", "jpg"), (8, b"WEBP", "webp"), (0, b"GIF8", "gif"),
    (0, b"BM", "bmp"), (0, b"II*\x00", "tif"), (0, b"MM\x00*", "tif"), (4, b"ftypavif", "avif"),
    (4, b"ftypheic", "heic"), (4, b"ftypheix", "heic"), (4, b"ftypmif1", "heic"))
Writer = Callable[[Path, bytes], None]


@dataclass(frozen=True)
class Input:
    """One input image as a request was given it: its bytes and where the store keeps them."""

    data: bytes
    name: str  # "<sha256>.<ext>", as the embedded settings list it

    @property
    def file(self) -> str:
        """The path inside the outputs folder, as the index stores it."""
        return relative(self.name)


def extension(data: bytes) -> str:
    return next((ext for at, magic, ext in _MAGIC if data[at:at + len(magic)] == magic), "bin")


def relative(name: str) -> str:
    return f"{FOLDER}/{name[:2]}/{name}"


def prepare(blobs: Sequence[bytes]) -> list[Input]:
    """The inputs in order, each named by its content (equal bytes, one name)."""
    return [Input(bytes(data), f"{hashlib.sha256(data).hexdigest()}.{extension(data)}") for data in blobs]


def is_name(name: object) -> bool:
    """Whether ``name`` (from a file's settings, so anything) is a stored input's name."""
    if not isinstance(name, str) or "." not in name:
        return False
    digest, ext = name.split(".", 1)
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) and ext.isalnum() and len(ext) <= 4


def place(folder: Path, inputs: Iterable[Input], write: Writer) -> list[Input]:
    """Make sure each input is on disk: written whole when new, touched when already there (OSError if
    the disk refuses). A file already there was written whole, so it is not read again. Returns those
    written now (the ones a shared store has not been given yet)."""
    written = []
    for item in {i.name: i for i in inputs}.values():
        path = folder / item.file
        try:
            os.utime(path)
            continue
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, item.data)
        written.append(item)
    return written


def link(db: Connection, folder: Path, entry: str, inputs: Sequence[Input], write: Writer) -> None:
    """Inside the caller's write transaction: the entry's rows, in order, with any file put back that
    went missing since :func:`place` (another flux-ui removed it as unused)."""
    db.execute("DELETE FROM inputs WHERE entry = ?", (entry,))
    for position, item in enumerate(inputs):
        path = folder / item.file
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, item.data)
        db.execute("INSERT INTO inputs (entry, position, hash, file) VALUES (?, ?, ?, ?)",
                   (entry, position, item.name.split(".")[0], item.file))


def link_existing(db: Connection, folder: Path, entry: str, names: Sequence[object]) -> int:
    """Rows for an image indexed from its file (recovery): the inputs its settings name that are on disk."""
    kept = [n for n in names if is_name(n) and (folder / relative(str(n))).is_file()]
    for position, name in enumerate(kept):
        db.execute("INSERT INTO inputs (entry, position, hash, file) VALUES (?, ?, ?, ?) ON CONFLICT (entry, "
                   "position) DO UPDATE SET hash = excluded.hash, file = excluded.file",
                   (entry, position, str(name).split(".")[0], relative(str(name))))
    return len(kept)


def files_of(db: Connection, folder: Path, ids: Sequence[str]) -> dict[str, tuple[Path, ...]]:
    """Each entry's input files, in order (an entry with none is left out)."""
    found: dict[str, list[Path]] = {}
    for start in range(0, len(ids), 500):  # within SQLite's bound on host parameters
        chunk = list(ids[start:start + 500])
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(f"SELECT entry, file FROM inputs WHERE entry IN ({marks}) ORDER BY entry, position", chunk)
        for entry, file in rows:
            found.setdefault(entry, []).append(folder / file)
    return {entry: tuple(paths) for entry, paths in found.items()}


def remove_unused(db: Connection, folder: Path, files: Iterable[str]) -> list[str]:
    """Inside the caller's write transaction: remove those of ``files`` no entry uses; returns them."""
    removed = []
    for file in dict.fromkeys(files):
        if db.execute("SELECT 1 FROM inputs WHERE file = ? LIMIT 1", (file,)).fetchone() is None:
            with contextlib.suppress(FileNotFoundError):
                (folder / file).unlink()
            removed.append(file)
    return removed


def sweep(db: Connection, folder: Path, stale_s: float) -> int:
    """Inside the caller's write transaction: remove stored inputs no entry uses (a delete or a save that
    stopped half-way leaves them) and temporaries older than ``stale_s``; returns how many went."""
    root = folder / FOLDER
    if not root.is_dir():
        return 0
    used = {row[0] for row in db.execute("SELECT DISTINCT file FROM inputs")}
    now, removed = time.time(), 0
    for shard in root.iterdir():
        if not shard.is_dir():
            continue
        for path in shard.iterdir():
            try:
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    if now - path.stat().st_mtime > stale_s:
                        path.unlink(missing_ok=True)
                        removed += 1
                elif is_name(path.name) and f"{FOLDER}/{shard.name}/{path.name}" not in used:
                    path.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:
                continue
    if removed:
        log.info("removed %d stored input file(s) no saved image uses", removed)
    return removed


def find(folder: Path, names: object) -> list[Path]:
    """The stored files for the names a dropped image's settings list (only valid names; missing ones too)."""
    if not isinstance(names, list):
        return []
    return [folder / relative(n) for n in names if is_name(n)]
