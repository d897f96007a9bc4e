"""Fixtures and helpers for every test: settings without a .env, the example photos, a scripted fake
service, a fake clock, solid-colour images, quotas no test reaches and the registry's model groups.

This is the one home of what tests share; test modules import helpers by name (``from conftest import
FakeClock``). Two families live beside it and import from here: ``emulator_fixtures`` (an emulator over
loopback HTTP, for the emulator's and the client's tests) and ``app_fixtures`` (the launched app and a
browser page), whose fixtures every test module may use (``pytest_plugins`` below).
"""

from __future__ import annotations

import os
import tempfile

# Gradio reads these at import: keep its uploads and cache out of the machine's /tmp/gradio
# and never call home from a test run.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="flux-ui-gradio-"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# gradio_client's huggingface_hub fetches a registry from huggingface.co; CI has no such network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import asyncio
import heapq
import io
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from PIL import Image

from flux_ui.database import Database, open_database
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS, Mode
from flux_ui.settings import Settings, load_settings

#: app_fixtures' fixtures (app, runtime, browser, page) for every test module; as a plugin it loads
#: after this module, so it can import from here.
pytest_plugins = ["app_fixtures", "server_fixtures"]

REPO = Path(__file__).resolve().parents[1]
#: The example photos the app ships (licences in assets/README.md); tests use them as real photos.
SAMPLES = REPO / "assets" / "examples"
ENDPOINT = "https://unit-test.services.ai.azure.com"
KEY = "unit-test-key-6c1f0e9b"

#: A quota no test reaches unless it asks for a tight one: ``FAST`` for every model, ``FAST_RPM`` as
#: FLUX_DEPLOYMENTS and FLUX_SCHNELL_RPM write it.
FAST_QUOTA = Quota(1000, 1.0)
FAST = {m: FAST_QUOTA for m in MODELS}
FAST_RPM = f"{FAST_QUOTA.requests}/{FAST_QUOTA.window_s:g}s"

# --- the registry's model groups: a model added there is tested without editing a list here ---------------

#: Every model on Foundry itself (schnell lives on an Azure ML endpoint), in the registry's order.
FOUNDRY_MODELS = MODELS.foundry
#: Models that combine several references (the Edit tab's) and those that change one picture (Kontext's).
MULTI_REFERENCE_MODELS = tuple(m.id for m in MODELS.values() if m.does(Mode.MULTI_REFERENCE_EDIT))
KONTEXT_MODELS = tuple(m.id for m in MODELS.values() if m.does(Mode.INSTRUCTION_EDIT))
#: Models that take no reference image at all.
TEXT_ONLY_MODELS = tuple(m.id for m in MODELS.values() if m.max_references == 0)


def foundry_env(**overrides: str) -> dict[str, str]:
    env = {
        "AZURE_ENDPOINT": ENDPOINT,
        "AZURE_API_KEY": KEY,
        "FLUX_DEPLOYMENTS": ",".join(f"{m}:{FAST_RPM}" for m in FOUNDRY_MODELS),
        "FLUX_SCHNELL_ENDPOINT": "https://schnell.eastus.inference.ml.azure.com/score",
        "FLUX_SCHNELL_KEY": "schnell-key-9a8b7c6d",
        "FLUX_SCHNELL_RPM": FAST_RPM,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


@pytest.fixture
def settings() -> Settings:
    return load_settings(foundry_env(), dotenv_path=None)


@pytest.fixture(params=["sqlite", "postgres"])
def history_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database | None]:
    """Each backend History's database may have: None (SQLite in the outputs folder, as with no
    FLUX_UI_DATABASE_URL), or PostgreSQL on a fresh schema, closed after the test."""
    if request.param == "sqlite":
        yield None
        return
    database = open_database(request.getfixturevalue("postgres_url"), tmp_path)
    yield database
    database.close()


# --- images and time -----------------------------------------------------------------------------------------

RED = (200, 30, 30)


def solid_image(colour: tuple[int, int, int] = RED, size: tuple[int, int] = (96, 64), fmt: str = "PNG") -> bytes:
    """A one-colour image, encoded (PNG unless ``fmt`` says otherwise)."""
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def solid_files(folder: Path, colours: Iterable[tuple[int, int, int]], size: tuple[int, int] = (96, 64)) -> list[str]:
    """One PNG per colour in ``folder``, numbered from 1 (``solid-01.png``, ...), as a person picks files."""
    paths = []
    for number, colour in enumerate(colours, start=1):
        path = folder / f"solid-{number:02d}.png"
        path.write_bytes(solid_image(colour, size))
        paths.append(str(path))
    return paths


class FakeClock:
    """Time that moves only when a test moves it or something sleeps on it: no real waiting.

    Pass the clock where code takes one (``clock=clock``: calling it reads the time) and ``clock.sleep``
    where it takes an async sleep, which moves the time on at once; ``waits`` lists every sleep asked for.
    Reading it from another thread (an emulator's quota book) is safe.
    """

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # a sleep still lets other tasks run, as a real one does


@dataclass
class FakeService:
    """A scripted stand-in for the service on httpx.MockTransport: records every request
    and answers each from ``handler`` (or from a queue of canned responses)."""

    handler: Callable[[httpx.Request], httpx.Response] | None = None
    queue: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.queue:
            item = self.queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        assert self.handler is not None, f"unexpected request {request.method} {request.url}"
        return self.handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def bfl_ok(image: bytes | None = None, **meta: Any) -> httpx.Response:
    import base64

    data = base64.b64encode(image or solid_image(size=(64, 48), fmt="JPEG")).decode()
    body = {"created": 1, "data": [{"b64_json": data}],
            "request_meta": meta or {"cost": 3, "input_mp": 0.0, "output_mp": 1.05, "total_pixels": 1048576}}
    return httpx.Response(200, json=body)


@pytest.fixture
def fake() -> FakeService:
    return FakeService(handler=lambda request: bfl_ok())


class FakeCredential:
    """Hands out numbered tokens; each fetch blocks its thread like a real sign-in can."""

    def __init__(self, lifetime: float = 3600.0, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls: list[tuple[str, ...]] = []
        self.threads: set[int] = set()

    def get_token(self, *scopes: str, **_: object) -> SimpleNamespace:
        self.calls.append(scopes)
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return SimpleNamespace(token=f"entra-token-{len(self.calls):04d}", expires_on=time.time() + self.lifetime)


class LoopGaps:
    """How long the event loop went between 10 ms ticks while the block ran: a blocked loop shows as a big gap.

        async with LoopGaps() as gaps:
            await work()
        assert max(gaps) < 0.2
    """

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    async def __aenter__(self) -> list[float]:
        self._task = asyncio.create_task(self._tick())
        return self.gaps

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        assert self._task is not None
        await self._task


class VirtualTime:
    """A clock that moves only when every task waits on it, so concurrent sleeps end in order
    (a cancelled sleep is dropped)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._order), future))
        await future

    async def run(self, *coros: Awaitable[object]) -> None:
        tasks = [asyncio.ensure_future(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(30):
                await asyncio.sleep(0)
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)
            if self._timers:
                when, _, future = heapq.heappop(self._timers)
                self.now = max(self.now, when)
                future.set_result(None)
            elif not all(t.done() for t in tasks):
                raise AssertionError("tasks wait on something other than virtual time")
        for t in tasks:
            t.result()
