"""Quota pacing: spend every slot a quota allows, and never draw a 429.

One deployment, a shortened quota (20 per 5 s) enforced by the emulator, and the client
pacing to the same quota. 40 requests are started at once, as a queue of users would.

The floor is the least time the quota allows for them: the first ``q`` requests go at once,
request ``q + k`` cannot be sent before request ``k`` leaves the window, so the last batch
starts ``(ceil(n / q) - 1) × window`` after the first, and takes one request's latency::

    floor = (ceil(n / q) - 1) × window_s + latency_alone

``latency_alone`` is the median of single requests to an identical, unquoted emulator
measured in the same run (measuring it on the quoted one would spend its slots).
"""

from __future__ import annotations

import asyncio
import math
import time

from bench.common import Row, client_for, emulator, median, quotas_for, time_once
from flux_ui.client.validation import GenerationRequest
from flux_ui.pacing import Quota

NAME = "quota pacing"
MODEL = "FLUX.2-pro"


def _request(i: int) -> GenerationRequest:
    # A small image keeps the emulator's rendering (20 at once on two cores) out of the measure.
    return GenerationRequest(MODEL, f"a paper boat on a pond, number {i}",
                             params={"width": 512, "height": 512, "seed": i})


async def _alone(latency_s: float, reps: int) -> float:
    with emulator({MODEL: latency_s}) as emu:
        client = client_for(emu)
        try:
            await client.generate(_request(0))
            return median([await time_once(lambda i=i: client.generate(_request(i))) for i in range(reps)])
        finally:
            await client.aclose()


async def _burst(quota: Quota, n: int, latency_s: float) -> tuple[float, int, int, int]:
    """(wall time, 429s the emulator answered, failed requests, images received)."""
    quotas = quotas_for(tight={MODEL: quota})
    with emulator({MODEL: latency_s}, quotas) as emu:
        client = client_for(emu, quotas)
        try:
            start = time.perf_counter()
            results = await asyncio.gather(*(client.generate(_request(i)) for i in range(n)),
                                           return_exceptions=True)
            wall = time.perf_counter() - start
        finally:
            await client.aclose()
        statuses = [e["status"] for e in emu.requests()]
    failures = sum(isinstance(r, BaseException) for r in results)
    return wall, statuses.count(429), failures, len(results) - failures


def run(quick: bool = False) -> list[Row]:
    quota, n, latency = (Quota(4, 1.0), 8, 0.1) if quick else (Quota(20, 5.0), 40, 0.5)
    alone = asyncio.run(_alone(latency, reps=3 if quick else 7))
    wall, throttled, failures, images = asyncio.run(_burst(quota, n, latency))
    floor = (math.ceil(n / quota.requests) - 1) * quota.window_s + alone
    label = f"{n} requests, quota {quota.requests}/{quota.window_s:g} s"
    return [
        Row(NAME, f"{label}: total vs floor", wall, "s", floor, "≤ 1.10×", wall / floor <= 1.10,
            size_dependent=True),
        Row(NAME, f"{label}: 429 responses received", throttled, "count", None, "0", throttled == 0),
        Row(NAME, f"{label}: failed requests", failures, "count", None, "0", failures == 0),
        Row(NAME, f"{label}: images received", images, "count", None, f"{n}", images == n),
    ]
