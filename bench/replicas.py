"""Replicas on one quota: the same 40-request burst through one flux-ui replica and through three sharing
Redis, PostgreSQL and Blob Storage behind nginx, against the quota's floor.

Everything is real and on loopback, as in the replica drill (``tests/deploy_drill.py``, whose pieces this
starts): ``python app.py`` processes, redis-server, PostgreSQL, Azurite, nginx with ``deploy/nginx.conf``,
and one emulator process enforcing the quota (a 429 for each request past it). Each request is one
visitor's (its own routing cookie), made through gradio_client's ``/generate``, all at once.

The floor is what the quota allows at best: with ``N`` requests per ``W`` seconds, ``B`` requests cannot
all be sent in less than ``(ceil(B / N) - 1) × W``, and the last answer comes a latency after that. The
ratio to it is the cost of pacing (its margins) and of the replicas' own work; three replicas must stay
within 1.10× with no 429 and every image in the shared History. One replica is the baseline.
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import Row, ratio_row

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the drill's servers and pieces

from deploy_drill import MODEL, deployment, visitor_cookie
from servers import Azurite, PostgresServer, RedisServer

NAME = "replicas"
#: The top tier a team's deployment gets (100 RPM: 16 requests per 9.6 s, as Quota.from_rpm paces it).
REQUESTS, WINDOW_S = 16, 9.6
LATENCY_S = 0.3


def floor_s(burst: int) -> float:
    return (math.ceil(burst / REQUESTS) - 1) * WINDOW_S + LATENCY_S


def _one_run(folder: Path, replicas: int, burst: int, services: dict[str, str]) -> tuple[float, int, int, int]:
    """(seconds from the burst's start to its last image, 429s at the emulator, failures, images listed)."""
    from gradio_client import Client

    with deployment(folder, replicas, f"{REQUESTS}/{WINDOW_S:g}s", services, latency_s=LATENCY_S) as running:
        clients = [Client(running.nginx.url, verbose=False, httpx_kwargs={"cookies": visitor_cookie(),
                                                                          "timeout": 300})
                   for _ in range(burst)]
        # A Redis that has never seen this deployment cannot tell its first use from a restart that lost the
        # window, so it holds the first request back a window (pacing_redis). One request first, and a window
        # after it, leave the quota settled and empty when the burst starts.
        clients[0].predict(model=MODEL, prompt="warm-up", api_name="/generate")
        time.sleep(WINDOW_S + 0.5)
        running.emulator.clear()
        gate = threading.Barrier(burst + 1)

        def ask(index: int) -> str:
            gate.wait()
            return str(clients[index].predict(model=MODEL, prompt=f"burst {index}", api_name="/generate")[2])

        with ThreadPoolExecutor(burst) as pool:
            futures = [pool.submit(ask, i) for i in range(burst)]
            gate.wait()
            start = time.monotonic()
            messages = [f.result() for f in futures]
            took = time.monotonic() - start
        throttled = sum(1 for e in running.emulator.requests() if e.get("status") == 429)
        entries, _ = Client(running.replicas[0].url, verbose=False).predict(limit=500, api_name="/history")
        listed = sum(1 for e in entries if str(e["prompt"]).startswith("burst "))
    return took, throttled, sum(1 for m in messages if m), listed


def run(quick: bool = False) -> list[Row]:
    burst = 20 if quick else 40
    folder = Path(tempfile.mkdtemp(prefix="flux-ui-bench-replicas-"))
    redis, postgres, azurite = RedisServer(folder / "redis"), PostgresServer(), Azurite(folder / "azurite")
    for server in (redis, postgres, azurite):
        server.start()
    try:
        rows: list[Row] = []
        floor = floor_s(burst)
        for replicas in (1, 3):
            services = {"redis": redis.url, "database": postgres.fresh_schema(), "blob": azurite.connection_string,
                        "container": f"bench-{replicas}"}
            took, throttled, failed, listed = _one_run(folder / f"run-{replicas}", replicas, burst, services)
            label = f"{replicas} replica{'s' if replicas > 1 else ''}"
            rows.append(ratio_row(NAME, f"{label}: {burst}-request burst vs quota floor", took, floor, 1.10))
            rows.append(Row(NAME, f"{label}: 429 responses", throttled, "count", target="= 0", met=throttled == 0))
            rows.append(Row(NAME, f"{label}: failed requests", failed, "count", target="= 0", met=failed == 0))
            rows.append(Row(NAME, f"{label}: images in the shared History", listed, "count", target=f"= {burst}",
                            met=listed == burst))
        return rows
    finally:
        for server in (redis, azurite):
            server.stop()
        postgres.remove()
