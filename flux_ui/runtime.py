"""What a running flux-ui holds: settings, the one client, history, the generations it runs, the
content safety guard when configured, the spend ledger and audit trail, and the emulator if used."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flux_ui.audit import AuditLog
from flux_ui.blob_store import FileStore, open_files
from flux_ui.client import FoundryClient
from flux_ui.database import Database, open_database
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.errors import BusyError
from flux_ui.history import History
from flux_ui.pacing import Quota
from flux_ui.safety import SafetyGuard
from flux_ui.settings import Settings
from flux_ui.spend import Ledger
from flux_ui.styles import Library
from flux_ui.tally import Tally
from flux_ui.unsaved import UnsavedImages

log = logging.getLogger("flux_ui")
T = TypeVar("T")
#: Generations running at once, waited for or not; as many as the app's queue holds (app.py).
MAX_JOBS = 256


class Jobs:
    """The generations the runtime owns. A request once sent is billed, so its exchange and the save of
    its image belong here, not to the person's wait: Stop, a closed page or a passed deadline end the
    wait only. Bounded (a new one is refused, before sending, when full), tracked, cancelled only at
    shutdown."""

    def __init__(self, limit: int = MAX_JOBS) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` on the running loop as a job; BusyError (nothing sent) when the runtime is full."""
        with self._lock:
            if len(self._tasks) >= self.limit:
                work.close()
                raise BusyError(f"Not sent: flux-ui is already finishing {self.limit} generations, as many as it "
                                "holds at once. Try again in a moment. Nothing was sent, so nothing is billed.")
            task = asyncio.get_running_loop().create_task(work)
            self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: whoever waited reported it, or the job logged it

    async def wait(self, timeout: float | None = None) -> None:
        """Until every job has ended (or ``timeout``): tests, and a shutdown that lets answers land."""
        with self._lock:
            tasks = set(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def cancel_all(self) -> None:
        """Shutdown: cancel every job, from any thread (each on its own loop)."""
        with self._lock:
            tasks = list(self._tasks)
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # its loop is already closed
                task.get_loop().call_soon_threadsafe(task.cancel)
        if tasks:
            log.warning("shutting down with %d generation(s) unfinished; their images are lost", len(tasks))


@dataclass
class Runtime:
    settings: Settings
    client: FoundryClient
    history: History
    emulator: Emulator | None = None
    jobs: Jobs = field(default_factory=Jobs)
    unsaved: UnsavedImages = field(default_factory=UnsavedImages)
    safety: SafetyGuard | None = None  # Content Safety (None: off): handlers screen prompts and results
    database: Database | None = None  # PostgreSQL shared by replicas (None: each store's SQLite file)

    @property
    def models(self) -> tuple[str, ...]:
        return self.client.models

    @functools.cached_property
    def styles(self) -> Library:
        """The saved styles and recent prompts, kept in History's database."""
        return Library(self.history.folder, self.database)

    @functools.cached_property
    def ledger(self) -> Ledger:
        """The day's spend against the caps, and the audit trail's writer, in History's database."""
        return Ledger(self.history.folder, self.settings.spend, database=self.database)

    @functools.cached_property
    def audit(self) -> AuditLog:
        """The audit trail (every request, its cost and outcome), for the Usage tab and its CSV."""
        self.ledger  # noqa: B018 - opened first: it settles what an earlier run left in flight
        return AuditLog(self.history.folder, self.database)

    @functools.cached_property
    def tally(self) -> Tally:
        """The blind-vote tally: beside the images, or in the shared database."""
        return Tally(self.history.folder, self.database)

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Let running generations land for up to ``grace_s``, cancel the rest, then close."""
        if grace_s > 0:
            await self.jobs.wait(grace_s)
        self.jobs.cancel_all()
        await self.jobs.wait(1.0)
        await self.client.aclose()
        if self.safety is not None:
            await self.safety.aclose()
        self.close_sync()

    def close_sync(self) -> None:
        self.jobs.cancel_all()
        self.history.close()
        self.history.files.close()
        if self.database is not None:
            self.database.close()
        if self.emulator is not None:
            self.emulator.stop()


def start_runtime(
    settings: Settings,
    emulator_config: EmulatorConfig | None = None,
    quotas: Mapping[str, Quota] | None = None,
    *,
    public: bool = False,
    **client_options: object,
) -> Runtime:
    """Start the emulator when the settings ask for it, then the client, history and content safety.

    ``public``: other people use this instance (logins, ``--share``, a non-loopback host, a Space;
    :func:`flux_ui.safety.instance_is_public`), which decides what a Content Safety outage lets
    through (``FLUX_UI_SAFETY_FAIL_OPEN=private``). ``FLUX_UI_SAFETY=emulator`` checks against the
    emulator started here.

    ``quotas`` overrides the emulated deployments' quotas on both sides (tests use short ones).
    The embedded emulator is the app's alone: its key and control token (random per start unless
    a test passes its own) stay in this process, and it takes no Entra token (it cannot check a signature, so any local
    process could forge one and spend the app's emulated quota).
    """
    emulator = None
    if settings.uses_emulator:
        config = emulator_config or EmulatorConfig()
        config.accept_entra = False
        config.open_controls = False
        if quotas:
            config.quotas = {**config.quotas, **quotas}
        emulator = Emulator(config)
        base_url = emulator.start()
        settings = settings.with_emulator(base_url, emulator.api_key, quotas)
        log.info("using the local emulator at %s (synthetic images)", base_url)
    client = FoundryClient(settings, **client_options)  # type: ignore[arg-type]
    database, files = open_shared(settings)
    history = History(settings.output_dir, database, files)
    safety = SafetyGuard.from_settings(settings, public=public)
    if safety is not None:
        log.info("content safety on: %s", safety)
    return Runtime(settings=settings, client=client, history=history, emulator=emulator, safety=safety,
                   database=database)


def open_shared(settings: Settings) -> tuple[Database | None, FileStore | None]:
    """The shared database and image store the settings name (None, None: the embedded defaults). The
    web edge's file gate is told the database, so it knows the files other replicas wrote."""
    from flux_ui.ui.edge.files import written_files  # the UI package imports this module

    database = files = None
    try:
        if settings.shared.database_url:
            database = open_database(settings.shared.database_url, settings.output_dir)
            written_files(settings.output_dir, database)
        if settings.shared.uses_blob:
            files = open_files(settings.shared, settings.output_dir)
    except BaseException:
        if database is not None:
            database.close()
        raise
    shared = settings.shared
    missing = [name for name, on in (("FLUX_UI_REDIS_URL (the quota)", shared.redis_url),
                                     ("FLUX_UI_DATABASE_URL (History, spend caps)", shared.database_url),
                                     ("Blob Storage (the images)", shared.uses_blob)) if not on]
    if shared.replicated and missing:
        log.warning("only some services are shared: %s stay in this process, so replicas would not share them "
                    "(docs/deploy.md)", ", ".join(missing))
    return database, files
