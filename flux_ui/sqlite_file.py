"""One SQLite file shared by a process's threads: made with its schema, a connection per use, one at a time.

The blind-vote tally and the style library each keep such a file (History keeps its own long-lived
connection, because it writes on every image).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path


class SQLiteFile:
    """A database file and its schema; ``_connect`` yields a connection, one thread at a time."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(schema)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock, closing(sqlite3.connect(self.path, timeout=10.0)) as db:
            yield db
