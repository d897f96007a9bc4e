"""What the shared backends cost per request, against the embedded ones, measured in the same run:

- **pacing**: one uncontended slot (``acquire`` then ``mark_sent``) through Redis (``pacing_redis``,
  its Lua scripts on a real redis-server on loopback) against the in-process ``Pacer``; the target is the
  median difference, at most 5 ms a request;
- **saving**: ``History.save`` of a typical image (a 1 MP PNG, its settings embedded, one stored
  reference) into PostgreSQL and Blob Storage (Azurite) against SQLite and the local folder; the target
  is the ratio of medians, at most 1.5×. Both write the local file durably; the shared one also uploads
  it and the reference, and commits its row over a connection from the pool.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.common import Row, ratio_row
from flux_ui.blob_store import open_files
from flux_ui.client.core import GenerationResult, Timings
from flux_ui.database import open_database
from flux_ui.history import History
from flux_ui.images import inspect_image
from flux_ui.pacing import Pacer, Quota, mark_sent
from flux_ui.pacing_redis import RedisStore, SharedPacer
from flux_ui.registry import Route
from flux_ui.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite's real servers
from servers import Azurite, PostgresServer, RedisServer

NAME = "shared backends"
SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")  # the last is the reference
UNCONTENDED = Quota(1_000_000, 1.0)


async def _slot_times(pacer: Pacer | SharedPacer, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await pacer.acquire("bench", "one slot")
        mark_sent()
        times.append(time.perf_counter() - start)
    return times


async def _pacing(redis_url: str, n: int) -> tuple[float, float]:
    """Median seconds per slot: (through Redis, in process), interleaved in rounds so drift hits both."""
    local = Pacer(UNCONTENDED, name="FLUX.2-pro")
    store = RedisStore(redis_url)
    shared = SharedPacer(UNCONTENDED, store, name="FLUX.2-pro")
    try:
        await _slot_times(shared, 5)  # connections and scripts loaded
        redis_times, local_times = [], []
        for _ in range(5):
            redis_times += await _slot_times(shared, n // 5)
            local_times += await _slot_times(local, n // 5)
        return statistics.median(redis_times), statistics.median(local_times)
    finally:
        await shared.aclose()
        await store.aclose()


def _images() -> list[bytes]:
    """Photos at 1024×1024 as PNG, 1.0–1.4 MB each: about what a 1 MP FLUX image weighs (random noise would
    weigh three times that and is no image a model makes)."""
    out = []
    for name in PHOTOS:
        buffer = io.BytesIO()
        Image.open(SAMPLES / name).convert("RGB").resize((1024, 1024)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def _result(seed: int, image: bytes) -> GenerationResult:
    return GenerationResult(
        image=image, info=inspect_image(image), model="FLUX.2-pro", deployment="FLUX.2-pro", route=Route.BFL,
        prompt=f"a lighthouse at dusk, take {seed}", seed=seed, params={"seed": seed, "width": 1024, "height": 1024},
        params_sent={}, references=("ref.png",), adjustments=(), warnings=(), service_cost=3.0,
        cost_estimate_usd=0.03, input_mp=None, output_mp=1.05, revised_prompt=None, attempts=1, timings=Timings())


def _save_times(history: History, images: list[bytes], reference: bytes) -> list[float]:
    times = []
    for seed, image in enumerate(images):
        result = _result(seed, image)
        start = time.perf_counter()
        history.save(result, "edit", inputs=[reference])
        times.append(time.perf_counter() - start)
    return times


def _saving(folder: Path, database_url: str, blob_env: dict[str, str], n: int) -> tuple[float, float]:
    """Median seconds per save: (PostgreSQL + Blob, SQLite + local), interleaved in rounds."""
    *images, reference = _images()
    shared_settings = load_settings(blob_env, dotenv_path=None).shared
    shared_folder, local_folder = folder / "shared", folder / "local"
    database = open_database(database_url, shared_folder)
    files = open_files(shared_settings, shared_folder)
    remote, local = History(shared_folder, database, files), History(local_folder)
    try:
        _save_times(remote, images[:1], reference)  # the pool's first connection, the container made
        remote_times, local_times = [], []
        for round_ in range(n // len(images)):
            batch = images[round_ % 2:] + images[:round_ % 2]
            remote_times += _save_times(remote, batch, reference)
            local_times += _save_times(local, batch, reference)
        return statistics.median(remote_times), statistics.median(local_times)
    finally:
        remote.close()
        local.close()
        database.close()
        files.close()


def run(quick: bool = False) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="flux-ui-bench-shared-"))
    redis, postgres, azurite = RedisServer(folder / "redis"), PostgresServer(), Azurite(folder / "azurite")
    for server in (redis, postgres, azurite):
        server.start()
    try:
        via_redis, in_process = asyncio.run(_pacing(redis.url, 50 if quick else 500))
        blob_env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "FLUX_UI_BLOB_CONTAINER": "bench"}
        shared_save, local_save = _saving(folder, postgres.fresh_schema(), blob_env, 8 if quick else 40)
    finally:
        for server in (redis, azurite):
            server.stop()
        postgres.remove()
    added_ms = (via_redis - in_process) * 1000
    return [
        Row(NAME, "Redis pacing: added per slot (median)", added_ms, "ms", target="≤ 5 ms", met=added_ms <= 5.0,
            size_dependent=True),
        ratio_row(NAME, "History save: PostgreSQL + Blob vs SQLite + local (median)", shared_save, local_save, 1.5),
    ]
