"""Grids within a quota: N images on one deployment, and a grid across K models side by side.

The whole stack a Grid run takes (``flux_ui.grid.plan_grid``, ``ui.fanout.run_fanout``,
``handlers.generate``, the client's pacing, History) against an embedded emulator that enforces
shortened quotas. The floor is the least time a quota allows (see ``bench/pacing.py``)::

    floor = (ceil(n / q) - 1) × window_s + latency_alone

Across models the quotas are independent, so the grid's floor is the slowest model's.
``latency_alone`` is one request's time on an unquoted emulator, measured in the same run.
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Row, median, quotas_for
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.grid import GridAxis, GridBase, plan_grid
from flux_ui.pacing import Quota
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui.fanout import Fanout, Slot, run_fanout

NAME = "grid"
ONE = "FLUX.2-pro"
MANY = ("FLUX.2-pro", "FLUX.2-flex", "FLUX-1.1-pro")


def _runtime(folder: Path, latency_s: float, quotas: dict[str, Quota]) -> Runtime:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(folder)}, dotenv_path=None)
    faults = {m: [Fault("latency", seconds=latency_s)] for m in quotas}
    return start_runtime(settings, EmulatorConfig(faults=faults, rng_seed=5), quotas)


async def _grid(runtime: Runtime, models: Sequence[str], seeds: int) -> tuple[float, int, int]:
    """(wall time, 429s the emulator answered, images) for a models × seeds grid of 512² images."""
    axes = [GridAxis.parse("seed", f"1-{seeds}", list(models))]
    if len(models) > 1:
        axes.append(GridAxis.parse("model", ", ".join(models), list(models)))
    base = GridBase("a paper boat on a pond", models[0], {"width": 512, "height": 512})
    plan = plan_grid(base, axes, list(models), random.Random(1))
    run = Fanout([Slot(c.model, c.prompt, c.params, na=c.na) for c in plan.cells])
    before = len(runtime.emulator.requests()) if runtime.emulator else 0
    start = time.perf_counter()
    async for _ in run_fanout(runtime, run, "text-to-image"):
        pass
    wall = time.perf_counter() - start
    statuses = [r["status"] for r in runtime.emulator.requests()[before:]] if runtime.emulator else []
    return wall, statuses.count(429), run.images


async def _alone(folder: Path, latency_s: float, reps: int) -> float:
    runtime = _runtime(folder, latency_s, quotas_for([ONE]))
    try:
        return median([(await _grid(runtime, [ONE], 1))[0] for _ in range(reps)])
    finally:
        await runtime.aclose()


async def _measure(folder: Path, models: Sequence[str], seeds: int, quota: Quota,
                   latency_s: float) -> tuple[float, int, int]:
    runtime = _runtime(folder, latency_s, {m: quota for m in models})
    try:
        wall, throttled, images = await _grid(runtime, models, seeds)
    finally:
        await runtime.aclose()
    return wall, throttled, images


def run(quick: bool = False) -> list[Row]:
    quota, seeds, latency = (Quota(3, 1.0), 6, 0.1) if quick else (Quota(5, 10.0), 16, 0.5)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        alone = asyncio.run(_alone(Path(tmp, "alone"), latency, reps=3 if quick else 5))
        floor = (math.ceil(seeds / quota.requests) - 1) * quota.window_s + alone
        for label, models in ((f"{seeds} images on one deployment", [ONE]),
                              (f"{len(MANY)} models × {seeds} seeds, one quota each", list(MANY))):
            wall, throttled, images = asyncio.run(_measure(Path(tmp, str(len(models))), models, seeds, quota, latency))
            what = f"{label}, quota {quota.requests}/{quota.window_s:g} s"
            rows += [
                Row(NAME, f"{what}: total vs floor", wall, "s", floor, "≤ 1.05×", wall / floor <= 1.05,
                    size_dependent=True),
                Row(NAME, f"{what}: 429 responses received", throttled, "count", None, "0", throttled == 0),
                Row(NAME, f"{what}: images", images, "count", None, f"{seeds * len(models)}",
                    images == seeds * len(models)),
            ]
    return rows
