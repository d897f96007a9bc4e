"""App under load: many ``gradio_client`` users generating through one running flux-ui.

The app is launched in this process the way ``app.py`` launches it (``start_runtime``,
``build_demo``, ``launch_options``, the same queue settings) on a free port, over an emulator
whose FLUX.2-pro answers after a fixed latency (0.5 s). Quotas are lifted on both sides: the
scenario is about what the app adds when busy, and pacing has its own scenario.

Baseline: one user alone, in the same run, its requests one after another. Each user is a
thread with its own ``Client``, created before timing starts (its start-up fetches the API).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import UNLIMITED, Row, quotas_for, ratio_row

NAME = "app under load"
MODEL = "FLUX.2-pro"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@contextmanager
def launched_app(outputs: Path, latency_s: float) -> Iterator[str]:
    """flux-ui on a free loopback port over its emulator; yields the app's URL."""
    from flux_ui.emulator import EmulatorConfig, Fault
    from flux_ui.runtime import start_runtime
    from flux_ui.settings import load_settings
    from flux_ui.ui import CSS, HEAD, THEME, build_demo
    from flux_ui.ui.launch import launch_options

    settings = load_settings({"FLUX_OUTPUT_DIR": str(outputs)}, dotenv_path=None)
    config = EmulatorConfig(rng_seed=3, faults={MODEL: [Fault("latency", seconds=latency_s)]})
    runtime = start_runtime(settings, config, quotas_for(quota=UNLIMITED))
    demo = build_demo(runtime)
    options = launch_options(runtime.settings, "127.0.0.1", 0, False, False)
    options.pop("server_port")
    demo.queue(default_concurrency_limit=32, max_size=256).launch(
        prevent_thread_lock=True, quiet=True, theme=THEME, css=CSS, head=HEAD, **options)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()
        runtime.close_sync()


def _user(url: str, images: int, latencies: list[float], failures: list[str], start: threading.Barrier) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    start.wait()
    for i in range(images):
        t0 = time.perf_counter()
        try:
            path, _, status, _ = client.predict(model=MODEL, prompt=f"a kite over dunes {i}", randomize_seed=True,
                                                width=1024, height=1024, api_name="/generate")
            if status or not path:
                failures.append(status or "no image")
        except Exception as exc:  # counted, not raised: one failed user must not hide the others' numbers
            failures.append(repr(exc))
        latencies.append(time.perf_counter() - t0)


def _users(url: str, users: int, images: int) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    failures: list[str] = []
    barrier = threading.Barrier(users + 1)
    threads = [threading.Thread(target=_user, args=(url, images, latencies, failures, barrier)) for _ in range(users)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, failures, time.perf_counter() - t0


def _cpu_s() -> float:
    """CPU seconds this process (app, emulator and users alike) has used, all threads."""
    return time.process_time()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def run(quick: bool = False) -> list[Row]:
    users, images, latency = (3, 2, 0.1) if quick else (20, 10, 0.5)
    with tempfile.TemporaryDirectory(prefix="flux-bench-") as folder, launched_app(Path(folder), latency) as url:
        _users(url, 1, 2)  # warm-up
        alone, alone_failures, _ = _users(url, 1, images)
        cpu = _cpu_s()
        loaded, failures, wall = _users(url, users, images)
        cpu = _cpu_s() - cpu
    total = users * images
    ok = total - len(failures)
    return [
        ratio_row(NAME, f"{users} users × {images} images ({latency:g} s latency): p95 vs one user's p95",
                  p95(loaded), p95(alone), 1.5),
        Row(NAME, f"{users} users × {images} images: succeeded (one user alone: "
                  f"{len(alone) - len(alone_failures)}/{len(alone)})", ok, "count", None, f"{total}", ok == total),
        Row(NAME, f"{users} users × {images} images: wall time (ideal {images * latency:g} s + work)", wall, "s"),
        Row(NAME, "CPU per request, whole process (app + emulator + users share one GIL)", cpu / total, "s"),
    ]
