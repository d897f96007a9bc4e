"""Files written all or nothing and removed for good: the one way flux-ui puts a file on disk that
must survive a crash (History's images and stored inputs, the unsaved copies, the quarantine).

A write goes to a temporary name, is synced, renamed into place and the folder synced, so a crash
leaves the old state or the whole new file, never a partial one; a failed write removes its partial
temporary. A removal syncs the folder too, so a deleted file does not come back after a power cut.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_whole(path: Path, data: bytes, mode: int = 0o666) -> None:
    """``data`` at ``path``, all or nothing; ``mode`` (before the umask) for a new file, e.g. 0o600."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb", opener=lambda name, flags: os.open(name, flags, mode)) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def remove_durably(path: Path) -> None:
    """Remove a file (gone already is fine) and make its folder's new listing durable."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(FileNotFoundError):
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a folder's listing (a rename, a new or removed file) durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
