"""App under load: many ``gradio_client`` users generating through one running flux-ui.

Three processes, as in real use: the app, launched in this process the way ``app.py`` launches
it (``build_demo``, ``launch_options``, the same queue settings); the service, an emulator in a
process of its own whose answers leave 0.5 s after each request arrives; and the users, threads
with their own ``gradio_client.Client`` in a third process (``python -m bench.load URL ...``).
In real use the service and the users are on other machines; here all three share two cores,
so the CPU each used per request is reported too. Quotas are lifted: pacing has its own scenario.

Baseline: one user alone, in the same run, its requests one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import UNLIMITED, EmulatorProcess, Row, emulator_process, quotas_for, ratio_row

NAME = "app under load"
MODEL = "FLUX.2-pro"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@contextmanager
def launched_app(outputs: Path, service: EmulatorProcess) -> Iterator[str]:
    """flux-ui on a free loopback port, its client pointed at ``service``; yields the app's URL."""
    from flux_ui.client.core import FoundryClient
    from flux_ui.history import History
    from flux_ui.runtime import Runtime
    from flux_ui.settings import load_settings
    from flux_ui.ui import build_demo, launch_queued
    from flux_ui.ui.launch import launch_options

    settings = load_settings({"FLUX_OUTPUT_DIR": str(outputs)}, dotenv_path=None).with_emulator(
        service.base_url, service.api_key, quotas_for(quota=UNLIMITED))
    runtime = Runtime(settings, FoundryClient(settings), History(settings.output_dir))
    demo = build_demo(runtime)
    options = launch_options(runtime.settings, "127.0.0.1", 0, False, False)
    options.pop("server_port")
    launch_queued(demo, prevent_thread_lock=True, quiet=True, **options)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()
        runtime.close_sync()


# --- the users' process -------------------------------------------------------------------------


def _user(url: str, images: int, latencies: list[list[float]], failures: list[str], start: threading.Barrier) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False, ssl_verify=False)  # plain HTTP on loopback: no CA bundle to load per call
    mine: list[float] = []
    latencies.append(mine)
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
        mine.append(time.perf_counter() - t0)


def users_main(argv: Sequence[str] | None = None) -> int:
    """Run the users and print one JSON line: each user's latencies in order, failures, wall time, CPU."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("url")
    parser.add_argument("users", type=int)
    parser.add_argument("images", type=int)
    args = parser.parse_args(argv)
    latencies: list[list[float]] = []
    failures: list[str] = []
    barrier = threading.Barrier(args.users + 1)
    threads = [threading.Thread(target=_user, args=(args.url, args.images, latencies, failures, barrier))
               for _ in range(args.users)]
    for t in threads:
        t.start()
    barrier.wait()  # every Client has fetched the API: only the generations are timed
    cpu, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.join()
    print(json.dumps({"latencies": latencies, "failures": failures, "wall": time.perf_counter() - t0,
                      "cpu": time.process_time() - cpu}))
    return 0


# --- the scenario -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    per_user: list[list[float]]  # each user's latencies, in the order made
    failures: list[str]
    wall_s: float
    users_cpu_s: float
    app_cpu_s: float
    service_cpu_s: float

    @property
    def latencies(self) -> list[float]:
        return [t for user in self.per_user for t in user]

    @property
    def after_first(self) -> list[float]:
        """Without each user's first request, which also pays for Gradio setting up the session."""
        return [t for user in self.per_user for t in user[1:]]


def _round(url: str, service: EmulatorProcess, users: int, images: int) -> Round:
    app_cpu, service_cpu = time.process_time(), service.cpu_s()
    out = subprocess.run([sys.executable, "-m", "bench.load", url, str(users), str(images)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return Round(result["latencies"], result["failures"], result["wall"], result["cpu"],
                 time.process_time() - app_cpu, service.cpu_s() - service_cpu)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def run(quick: bool = False) -> list[Row]:
    users, images, latency = (3, 2, 0.1) if quick else (20, 10, 0.5)
    with (tempfile.TemporaryDirectory(prefix="flux-bench-") as folder, emulator_process(latency) as service,
          launched_app(Path(folder), service) as url):
        _round(url, service, 1, 2)  # warm-up
        alone = _round(url, service, 1, images)
        loaded = _round(url, service, users, images)
    total = users * images
    ok = total - len(loaded.failures)
    per = {name: cpu / total for name, cpu in
           (("app", loaded.app_cpu_s), ("service", loaded.service_cpu_s), ("users", loaded.users_cpu_s))}
    return [
        ratio_row(NAME, f"{users} users × {images} images ({latency:g} s latency): p95 vs one user's p95",
                  p95(loaded.latencies), p95(alone.latencies), 1.5),
        Row(NAME, f"{users} users × {images} images: p95 after each user's first request (which sets up the "
                  "session) vs the same for one user", p95(loaded.after_first), "s", p95(alone.after_first)),
        Row(NAME, f"{users} users × {images} images: succeeded (one user alone: "
                  f"{len(alone.latencies) - len(alone.failures)}/{len(alone.latencies)})", ok, "count", None,
            f"{total}", ok == total),
        Row(NAME, f"{users} users × {images} images: wall time (ideal {images * latency:g} s + work)",
            loaded.wall_s, "s"),
        Row(NAME, "CPU per request: app process (service: {service:.0f} ms, users: {users:.0f} ms, in their own "
                  "processes)".format(**{k: v * 1000 for k, v in per.items()}), per["app"], "s"),
    ]


if __name__ == "__main__":
    raise SystemExit(users_main())
