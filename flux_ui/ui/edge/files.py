"""Which files inside the outputs folder the file route may serve: only those flux-ui wrote."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from gradio.utils import get_upload_folder

from flux_ui.database import Database
from flux_ui.history import knows_file
from flux_ui.ui.edge.bounds import URL_LIKE, inside

log = logging.getLogger("flux_ui.edge")

# --- files flux-ui wrote ---------------------------------------------------------------------------


class WrittenFiles:
    """The files flux-ui wrote into one outputs folder: the only ones the file route serves there.

    History's images are known from its index (asked read-only, so another flux-ui's images in the
    same folder count too; with a shared ``database``, the replicas' index). Whatever else flux-ui
    comes to write there (contact sheets, exports) joins with ``add`` per file, or ``add_source`` for
    a kind with an index of its own.
    """

    def __init__(self, folder: Path, database: Database | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.database = database
        self._lock = threading.Lock()
        self._files: set[Path] = set()
        self._sources: list[Callable[[Path], bool]] = [
            lambda relative: knows_file(self.folder, relative.as_posix(), self.database)]

    def add(self, path: Path) -> None:
        with self._lock:
            self._files.add(Path(path).resolve())

    def add_source(self, knows: Callable[[Path], bool]) -> None:
        """``knows(relative)``: whether that path inside the folder is a file this source wrote."""
        with self._lock:
            self._sources.append(knows)

    def knows(self, path: Path) -> bool:
        """Whether ``path`` (symlinks resolved here) is a regular file flux-ui wrote in the folder."""
        try:
            resolved = Path(path).resolve()
            relative = resolved.relative_to(self.folder)
            if not resolved.is_file():
                return False
        except (OSError, ValueError, RuntimeError):
            return False
        with self._lock:
            sources = [] if resolved in self._files else list(self._sources)
        return not sources or any(source(relative) for source in sources)


_REGISTRIES: dict[Path, WrittenFiles] = {}
_REGISTRIES_LOCK = threading.Lock()


def written_files(folder: Path, database: Database | None = None) -> WrittenFiles:
    """The one registry of an outputs folder, shared by the file gate and whatever writes there;
    ``database``: History's, when it is not the folder's SQLite file (PostgreSQL shared by replicas)."""
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.setdefault(Path(folder).resolve(), WrittenFiles(folder))
        if database is not None:
            registry.database = database
        return registry


class FileGate:
    """The file route, asked before Gradio: a path that reaches into the outputs folder, as spelled
    or once symlinks are resolved, is served only if flux-ui wrote it; other paths are Gradio's."""

    def __init__(self, outputs: Path, database: Database | None = None) -> None:
        self.written = written_files(outputs, database)
        self.folders = (Path(os.path.abspath(outputs)), self.written.folder)

    def refuses(self, target: str) -> bool:
        """``target`` as Gradio reads it: the route's path, percent-decoded once, relative to the cwd."""
        if URL_LIKE.match(target):
            return False  # Gradio fetches public addresses only, and refuses other schemes
        try:
            spelled = Path(os.path.abspath(target))
            resolved = spelled.resolve()
        except (OSError, ValueError, RuntimeError):
            return True
        if not any(inside(path, folder) for path in (spelled, resolved) for folder in self.folders):
            return False
        uploads = Path(get_upload_folder()).resolve()
        if inside(spelled, uploads) and inside(resolved, uploads):
            return False  # Gradio's cache, put inside the outputs folder by GRADIO_TEMP_DIR
        return not self.written.knows(resolved)


