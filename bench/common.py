"""What every scenario shares: an emulator on loopback, a client pointed at it, timing, the table.

Absolute times on the machines this runs on drift from run to run (two cores, other work
going on), so no scenario reports a bare time: each measures its own baseline in the same
run and reports the ratio (design.md, "Measuring"). Medians, not means, because one
scheduling hiccup should not move the result.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from flux_ui.client.core import FoundryClient
from flux_ui.emulator import Emulator, EmulatorConfig, Fault
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS
from flux_ui.settings import load_settings

#: A quota no benchmark reaches unless it asks for a tight one. Set on both sides (emulator
#: and client) so the defaults (e.g. 2 per 8 s for FLUX.2-pro) do not turn a timing into a wait.
UNLIMITED = Quota(100_000, 1.0)


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    ``value`` and ``baseline`` are medians in ``unit``; ``ratio`` is None when the measure is a
    count or a share with no baseline. ``met`` is None when the measure has no target, or when
    quick mode does not judge it.

    ``size_dependent`` says what kind of target it is. False (the default): a correctness check
    (nothing failed, every image arrived, within the input limit) that holds at any size, so it
    is judged in quick mode too. True: a target that only means something at full size (a ratio,
    a share, a stall, a growth); quick mode reports the number without a verdict.
    """

    scenario: str
    measure: str
    value: float
    unit: str = "s"
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    size_dependent: bool = False
    quick: bool = False  # measured at quick-mode sizes

    def in_quick_mode(self) -> Row:
        """This row as quick mode reports it: a size-dependent target loses its verdict."""
        return replace(self, quick=True, met=None if self.size_dependent else self.met)

    @property
    def verdict(self) -> str:
        """The table's "met?" cell."""
        if self.met is None:
            return "not judged (quick)" if self.quick and self.target else "–"
        return "met" if self.met else "**missed**"

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


def ratio_row(scenario: str, measure: str, value: float, baseline: float, limit: float, unit: str = "s") -> Row:
    """A row whose target is ``value / baseline ≤ limit`` (size-dependent, as every ratio is)."""
    ratio = value / baseline if baseline else math.inf
    return Row(scenario, measure, value, unit, baseline, f"≤ {limit:.2f}×", ratio <= limit, size_dependent=True)


# --- emulator and client ----------------------------------------------------------------------


def quotas_for(models: Sequence[str] | None = None, quota: Quota = UNLIMITED,
               tight: Mapping[str, Quota] | None = None) -> dict[str, Quota]:
    """One quota per model (every model by default), with ``tight`` overriding some."""
    return {**{m: quota for m in (models or MODELS)}, **(tight or {})}


@contextmanager
def emulator(latency_s: Mapping[str, float] | None = None, quotas: Mapping[str, Quota] | None = None,
             enforce_quotas: bool = True, rng_seed: int = 5) -> Iterator[Emulator]:
    """An emulator on a free loopback port, with a fixed latency per model and the given quotas."""
    faults = {model: [Fault("latency", seconds=s)] for model, s in (latency_s or {}).items() if s > 0}
    config = EmulatorConfig(api_key="bench-key", quotas=dict(quotas or quotas_for()),
                            enforce_quotas=enforce_quotas, faults=faults, rng_seed=rng_seed)
    emu = Emulator(config)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@dataclass(frozen=True)
class EmulatorProcess:
    """An emulator in a process of its own: its CPU work then competes with the app's only for
    cores, not for the app's GIL, as a remote service's would not compete at all."""

    base_url: str
    api_key: str
    pid: int

    @property
    def config(self) -> EmulatorConfig:  # what client_for reads: quotas are lifted in that process
        return EmulatorConfig(api_key=self.api_key, quotas=quotas_for(), enforce_quotas=False)

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid)


@contextmanager
def emulator_process(latency_s: float = 0.0) -> Iterator[EmulatorProcess]:
    """``python -m flux_ui.emulator`` on a free loopback port, quotas off, every model ``latency_s``."""
    key = secrets.token_urlsafe(24)
    # "--api-key=KEY" in one word: a random key may start with "-", which argparse would read as an option.
    argv = [sys.executable, "-m", "flux_ui.emulator", "--port", "0", f"--api-key={key}", "--no-quotas",
            "--latency", str(latency_s)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        base = ""
        for line in proc.stdout:  # the NAME=value lines it prints once listening
            if line.startswith("AZURE_ENDPOINT="):
                base = line.split("=", 1)[1].strip()
            if line.startswith("#"):
                break
        if not base:
            raise RuntimeError(f"the emulator exited ({proc.poll()}) before printing its address")
        # Keep reading what it prints (its access log): a full pipe would block it mid-answer.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield EmulatorProcess(base, key, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_for(emu: Emulator | EmulatorProcess, quotas: Mapping[str, Quota] | None = None,
               **options: object) -> FoundryClient:
    """The project's client pointed at ``emu``, pacing to the same quotas the emulator enforces."""
    settings = load_settings({}, dotenv_path=None).with_emulator(emu.base_url, emu.api_key,
                                                                   dict(quotas or emu.config.quotas))
    return FoundryClient(settings, **options)  # type: ignore[arg-type]


# --- timing -----------------------------------------------------------------------------------


async def time_once(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def interleaved(sides: Mapping[str, Callable[[], Awaitable[object]]], reps: int,
                      warmup: int = 3) -> dict[str, list[float]]:
    """Time each side ``reps`` times, alternating sides so drift hits them alike.

    Warm-up runs (connections opened, code paths and caches hot) are not counted. The order
    rotates every round so no side always runs right after the same other one.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            await sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            times[name].append(await time_once(sides[name]))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class LoopStallMeter:
    """The longest gap between ticks of a task that wants to run every ``period_s``.

    A gap much longer than the period means something held the event loop (CPU work not
    moved to a thread); in the app that is every other user's page frozen for that long.
    """

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.max_gap_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period_s)
            now = time.perf_counter()
            self.max_gap_s = max(self.max_gap_s, now - last)
            last = now

    async def __aenter__(self) -> LoopStallMeter:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # let the ticker take its first timestamp
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task

    @property
    def max_stall_s(self) -> float:
        """Longest gap beyond the period itself."""
        return max(0.0, self.max_gap_s - self.period_s)


# --- the table --------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.3g} {unit}".strip()


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table: scenario, measure, median, baseline, ratio, target, met?"""
    lines = ["| scenario | measure | median | baseline median | ratio | target | met? |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r.ratio is None else f"{r.ratio:.3f}×"
        lines.append(f"| {r.scenario} | {r.measure} | {_fmt(r.value, r.unit)} | {_fmt(r.baseline, r.unit)} | "
                     f"{ratio} | {r.target or '–'} | {r.verdict} |")
    return "\n".join(lines)
