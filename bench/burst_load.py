"""A 30-user burst on a busy machine: paced to the quota, and never a 429.

The service counts a request when it arrives; on a loaded machine that is a varying time
after the pacer granted its slot, so a fixed margin can let two arrivals come closer than
the window (one late, the next early). Here 30 users send a request each with a reference
photo at once, to FLUX.2 [pro] on a tight quota that the emulator enforces, while
CPU-burning processes (one more than the machine has cores) compete for the CPU. The
emulator runs in this process, as in the app's emulator mode: it reads and counts each
request on the same loaded CPU, after the client has sent it, which no client can see.

Measured: the 429s the emulator answered (target 0), the wall time against the quota
floor (as in ``bench/pacing.py``: ``(ceil(n / q) - 1) × window + latency_alone``, with
``latency_alone`` the median single request under the same load), and the delay from each
request's slot to its arrival at the emulator (the moment the emulator's quota counts it).

The client marks each request sent when its body is written (``flux_ui.pacing.trace_sends``
as httpx's ``trace`` extension); :func:`with_send_marks` installs that on a client from the
outside for as long as ``flux_ui/client/sending.py`` does not pass it itself.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Row, client_for, emulator, median, quotas_for, ratio_row, time_once
from flux_ui.client.core import FoundryClient
from flux_ui.client.validation import GenerationRequest
from flux_ui.emulator import Emulator, pipeline
from flux_ui.pacing import Quota, trace_sends

NAME = "burst under load"
MODEL = "FLUX.2-pro"
REFERENCES = ("astronaut.png",)
EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"

_who: ContextVar[str] = ContextVar("bench_burst_who", default="")


@dataclass(frozen=True)
class Burst:
    """What one burst did: wall time, 429s at the emulator, failures, and per-request delays."""

    wall_s: float
    throttled: int
    failures: int
    images: int
    slot_to_arrival_s: tuple[float, ...]
    peak_margin_s: float  # the largest margin the pacer applied during the burst

    def p95_delay_s(self) -> float:
        ordered = sorted(self.slot_to_arrival_s)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


@contextmanager
def cpu_load(processes: int, seconds: float) -> Iterator[None]:
    """``processes`` Python processes spinning for at most ``seconds`` (they end by themselves)."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=10)


def default_burners() -> int:
    """One more CPU-bound process than the machine has cores: every core stays contended."""
    return (os.cpu_count() or 2) + 1


@contextmanager
def arrivals() -> Iterator[dict[str, float]]:
    """Prompt → the moment its request reached the emulator's quota count (``time.monotonic``).

    The emulator counts a request at the start of ``pipeline.generate``, with no await
    before the count; wrapping that function times the count exactly (in-process emulators only).
    """
    seen: dict[str, float] = {}
    original = pipeline.generate

    async def timed(request: Any, state: Any, record: Any, plan: Any, *args: Any, **kwargs: Any) -> Any:
        seen[plan.prompt] = time.monotonic()
        return await original(request, state, record, plan, *args, **kwargs)

    pipeline.generate = timed  # type: ignore[assignment]
    try:
        yield seen
    finally:
        pipeline.generate = original  # type: ignore[assignment]


def with_send_marks(client: FoundryClient) -> FoundryClient:
    """Pass ``trace_sends`` with every request, as ``AttemptSender._attempt`` is to (harmless once it does:
    a slot is marked once, and a request without a slot marks nothing)."""
    inner = client._request

    async def request(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("extensions", {"trace": trace_sends})
        return await inner(method, url, **kwargs)

    client._request = request  # type: ignore[method-assign]
    return client


def _slot_times(client: FoundryClient) -> dict[str, float]:
    """Prompt → when the pacer granted its (last) slot, recorded around the pacer's ``acquire``."""
    slots: dict[str, float] = {}
    pacer = client._pacers[MODEL]
    acquire = pacer.acquire

    async def timed(*args: Any, **kwargs: Any) -> float:
        waited = await acquire(*args, **kwargs)
        slots[_who.get()] = time.monotonic()
        return waited

    pacer.acquire = timed  # type: ignore[method-assign]
    return slots


def references() -> tuple[bytes, ...]:
    return tuple((EXAMPLES / name).read_bytes() for name in REFERENCES)


def request(i: int, refs: tuple[bytes, ...]) -> GenerationRequest:
    return GenerationRequest(MODEL, f"a paper boat on a pond, number {i}", references=refs,
                             params={"width": 512, "height": 512, "seed": i})


async def _one(client: FoundryClient, i: int, refs: tuple[bytes, ...]) -> object:
    one = request(i, refs)
    _who.set(one.prompt)
    return await client.generate(one)


async def burst(emu: Emulator, quota: Quota, n: int, refs: tuple[bytes, ...], marks: bool = True) -> Burst:
    """``n`` users at once against ``emu`` (which enforces ``quota``), the client pacing to it."""
    client = client_for(emu, quotas_for(tight={MODEL: quota}))
    if marks:
        with_send_marks(client)
    slots = _slot_times(client)
    pacer = client._pacers[MODEL]
    peak = [pacer.window.margin_s]

    async def watch_margin() -> None:
        while True:
            await asyncio.sleep(0.05)
            peak.append(pacer.window.margin_s)

    emu.clear()
    watcher = asyncio.create_task(watch_margin())
    try:
        with arrivals() as seen:
            start = time.perf_counter()
            results = await asyncio.gather(*(_one(client, i, refs) for i in range(n)), return_exceptions=True)
            wall = time.perf_counter() - start
    finally:
        watcher.cancel()
        await client.aclose()
    statuses = [e["status"] for e in emu.requests()]
    failures = sum(isinstance(r, BaseException) for r in results)
    delays = tuple(seen[p] - slots[p] for p in slots if p in seen)
    return Burst(wall, statuses.count(429), failures, n - failures, delays, max(peak))


async def latency_alone(latency_s: float, refs: tuple[bytes, ...], reps: int) -> float:
    """The median single request (same body, same load) on an identical emulator without a quota."""
    with emulator({MODEL: latency_s}) as emu:
        client = client_for(emu)
        try:
            await client.generate(request(0, refs))
            return median([await time_once(lambda i=i: client.generate(request(i, refs))) for i in range(reps)])
        finally:
            await client.aclose()


def floor_s(quota: Quota, n: int, alone_s: float) -> float:
    """The least time the quota allows ``n`` requests: every batch but the last waits a window."""
    return (math.ceil(n / quota.requests) - 1) * quota.window_s + alone_s


def run(quick: bool = False) -> list[Row]:
    quota, n, latency = (Quota(4, 0.6), 12, 0.1) if quick else (Quota(6, 5.0), 30, 0.2)
    refs = references()
    with cpu_load(default_burners(), seconds=15 if quick else 60):
        alone = asyncio.run(latency_alone(latency, refs, reps=3 if quick else 5))
        with emulator({MODEL: latency}, quotas_for(tight={MODEL: quota})) as emu:
            result = asyncio.run(burst(emu, quota, n, refs))
    label = f"{n} users, quota {quota.requests}/{quota.window_s:g} s, {default_burners()} CPU burners"
    return [
        Row(NAME, f"{label}: 429 responses received", result.throttled, "count", None, "0", result.throttled == 0),
        Row(NAME, f"{label}: failed requests", result.failures, "count", None, "0", result.failures == 0),
        ratio_row(NAME, f"{label}: total vs quota floor", result.wall_s, floor_s(quota, n, alone), 1.10),
        Row(NAME, f"{label}: slot-to-arrival delay, p95", result.p95_delay_s(), "s"),
        Row(NAME, f"{label}: largest pacer margin applied", result.peak_margin_s, "s"),
    ]
