"""Where History's tables live: a SQLite file in the outputs folder (the default), or PostgreSQL shared by replicas.

History's index, the styles and recent prompts, the spend ledger and the audit trail (and the blind-vote
tally, in a file of its own on SQLite) all go through a :class:`Database`, so each is written once, in
the SQL both engines accept: ``?`` placeholders (translated for psycopg), ``INSERT … ON CONFLICT``,
``INSERT … RETURNING id``, ``CASE`` for a scalar ``MAX``, the column ``"user"`` quoted (PostgreSQL
reserves the word). A schema is written with SQLite's types and :meth:`Database.schema` translates
them for PostgreSQL (``REAL`` → ``DOUBLE PRECISION``, so no cent is lost to float4).

:meth:`Database.write` is the one way to change anything, and it is serialized across every process
sharing the database, so a spend check and its hold are one: ``BEGIN IMMEDIATE`` on SQLite (and a lock
per file inside one process, so threads queue rather than poll), an advisory lock held for the
transaction on PostgreSQL (:mod:`flux_ui.database_pg`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from flux_ui.errors import FluxError

Dialect = Literal["sqlite", "postgres"]
#: History's database file in the outputs folder (SQLite).
DB_NAME = "history.sqlite3"
#: Idle SQLite connections kept for reuse (more are opened while needed, and closed after).
IDLE_KEPT = 8


class Cursor(Protocol):
    """What a statement gives back on both engines."""

    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection taking ``?`` placeholders on both engines."""

    def execute(self, sql: str, args: Any = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Any) -> Any: ...


class DatabaseUnavailable(FluxError):
    """The database cannot be reached: a message naming it (never its password) and the fix."""


#: The errors a database call may raise, on either engine (psycopg's when it is installed).
try:
    import psycopg as _psycopg

    ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, _psycopg.Error, DatabaseUnavailable)
except ImportError:  # pragma: no cover - psycopg is a requirement; SQLite works without it
    ERRORS = (sqlite3.Error, DatabaseUnavailable)


class Database:
    """One database: ``connect()`` for reads, ``write()`` for a serialized write transaction."""

    dialect: Dialect
    name: str  # how messages and logs name it: a path, or a URL without its password

    def connect(self) -> contextlib.AbstractContextManager[Connection]:
        raise NotImplementedError

    def write(self) -> contextlib.AbstractContextManager[Connection]:
        raise NotImplementedError

    def schema(self, sql: str) -> None:
        """Create what ``sql`` (``CREATE … IF NOT EXISTS`` statements, SQLite's types) describes."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def shared(self) -> bool:
        """Other replicas, each with an outputs folder of its own, may use this database too."""
        return self.dialect == "postgres"


def insert_id(db: Connection, sql: str, args: Any) -> int:
    """Run an ``INSERT`` and return the new row's ``id`` (``RETURNING id``, on both engines: no lastrowid)."""
    rows = db.execute(f"{sql} RETURNING id", args).fetchall()  # fetched whole: SQLite finishes the statement
    return int(rows[0][0])


_FILE_LOCKS: dict[Path, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    """The one write lock of a database file in this process, whichever object opened it."""
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(path.resolve(), threading.Lock())


class SQLiteDatabase(Database):
    """A SQLite file, as flux-ui has always kept it: WAL (``wal``), ``synchronous=FULL``, a short wait for
    another process's write. Connections are kept for reuse and may move between threads."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, wal: bool = True, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.wal, self.timeout = wal, timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = _file_lock(self.path)
        with self.connect():  # opens the file now: a folder that cannot be written fails here
            pass

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None)
        try:
            if self.wal:
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError(f"the database {self.name} is closed")
            db = self._idle.pop() if self._idle else None
        db = db or self._open()
        try:
            yield db
        finally:
            self._give_back(db)

    def _give_back(self, db: sqlite3.Connection) -> None:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        with self._lock:
            if not self._closed and len(self._idle) < IDLE_KEPT:
                self._idle.append(db)
                return
        db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: the write lock is taken before the first read, so what is read is still true
        at COMMIT (another process on the file waits, and is waited for)."""
        with self._write_lock, self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def schema(self, sql: str) -> None:
        with self._write_lock, self.connect() as db:
            db.executescript(sql)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


class Tables:
    """A feature's tables (styles, the ledger, the trail, the tally) in a database: the one handed in,
    which its opener closes, or (None) a SQLite file of its own in ``folder``, closed by :meth:`close`."""

    def __init__(self, folder: Path, schema: str, database: Database | None = None, name: str = DB_NAME,
                 wal: bool = True) -> None:
        self.folder = Path(folder)
        self._owns_database = database is None
        self.database = database if database is not None else open_database(None, self.folder, name, wal)
        self.database.schema(schema)

    def close(self) -> None:
        if self._owns_database:
            self.database.close()


def open_database(url: str | None, folder: Path, name: str = DB_NAME, wal: bool = True) -> Database:
    """The database for ``url`` (``FLUX_UI_DATABASE_URL``): PostgreSQL for a ``postgresql://`` URL, else the
    SQLite file ``name`` in ``folder``. DatabaseUnavailable (naming it without its password) when the
    server cannot be reached; sqlite3.Error or OSError when the file cannot be opened."""
    if url:
        from flux_ui.database_pg import PostgresDatabase

        return PostgresDatabase(url)
    return SQLiteDatabase(Path(folder) / name, wal=wal)
