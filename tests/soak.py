"""Many people at once against flux-ui on the emulator, with faults switched on at random.

:func:`run_soak` gives each simulated user a gradio_client ``Client`` and a thread that calls
/generate, /edit, /kontext and /compare in a random mix until time is up, while the emulator
plays status errors, 429s, dropped connections, slow bodies, malformed and empty answers,
refusals and latency at random. Afterwards three accounts are reconciled: what each user was
shown, what the emulator answered with an image (its request log), and what History holds.

tests/test_concurrency.py runs it shortened in CI; the full form (50 users, 120 s) is

    FLUX_UI_SOAK=full python -m pytest tests/test_concurrency.py -s
"""

from __future__ import annotations

import ctypes
import gc
import io
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, TextIO

from gradio_client import Client, handle_file

from conftest import KONTEXT_MODELS, MULTI_REFERENCE_MODELS, solid_image
from flux_ui.emulator import Emulator, Fault
from flux_ui.history import History
from flux_ui.images import inspect_image
from flux_ui.registry import MODELS


@dataclass(frozen=True)
class SoakPlan:
    users: int
    seconds: float
    #: The first part of the run, after which memory is expected to stay level.
    warm_up_share: float = 1 / 3


CI_PLAN = SoakPlan(users=10, seconds=12)
FULL_PLAN = SoakPlan(users=50, seconds=120)
#: Memory the app may gain between the end of warm-up and the end of the run.
RSS_GROWTH_LIMIT_MB = 30.0
#: gradio_client's calls give up after httpx's default 5 s; a person's browser waits much longer, and
#: on a busy 2-core CI machine answers can take that long without anything being wrong.
CLIENT_HTTP = {"timeout": 60.0}
#: Waiting for the last requests once time is up: a request with every fault and retry is ~15 s.
DRAIN_S = 90.0

#: What the emulator plays on every generation route, each drawn independently per request.
#: Latency stacks with the others; of the rest the first that fires decides the answer.
FAULTS: tuple[Fault, ...] = (
    Fault("latency", seconds=0.1, jitter_s=1.0, probability=0.3),
    Fault("status", status=500, probability=0.04),
    Fault("status", status=503, probability=0.04),
    Fault("status", status=429, retry_after_s=0.5, probability=0.04),
    Fault("status", status=429, retry_after=False, probability=0.02),
    Fault("drop", probability=0.03),
    Fault("trickle", seconds=0.8, probability=0.03),
    Fault("malformed", probability=0.03),
    Fault("empty", probability=0.03),
    Fault("refuse", probability=0.01),
)
#: Fault labels in the request log after which the emulator did not deliver an image.
NO_IMAGE_FAULTS = ("status", "drop", "malformed", "empty", "refuse", "expire_url")
#: Every so many requests a user writes a prompt the emulator refuses (its "refuse-me" word).
REFUSED_EVERY = 8
SIDE = 256  # small images: the load is on the app, not on the emulator's renderer
#: The models each action picks from, as the registry declares them; Kontext has its own action (do_kontext).
TEXT_MODELS = tuple(m for m in MODELS if m not in KONTEXT_MODELS)
EDIT_MODELS = MULTI_REFERENCE_MODELS
COMPARE_MODELS = tuple(MODELS)


@dataclass
class Outcome:
    """One user request as the user saw it."""

    endpoint: str
    prompt: str
    images: list[str] = field(default_factory=list)  # files the user received
    errors: list[str] = field(default_factory=list)  # error texts shown
    problem: str | None = None  # neither an image nor a clear error, or an unhandled failure
    seconds: float = 0.0  # from sending to the answer, as the user waited


@dataclass
class SoakReport:
    plan: SoakPlan
    outcomes: list[Outcome]
    service_requests: int
    faulted_requests: int  # service requests on which at least one fault fired
    faults: Counter[str]  # fired faults by kind (a request can have latency and one other)
    lost: list[str]  # answered with an image by the emulator, missing from History (or the reverse)
    rss_warm_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    unhandled: list[str]  # log records at ERROR or with a traceback, tracebacks on stderr
    warnings: list[str]  # log records at WARNING

    @property
    def images(self) -> int:
        return sum(len(o.images) for o in self.outcomes)

    @property
    def errors_shown(self) -> int:
        return sum(len(o.errors) for o in self.outcomes)

    @property
    def problems(self) -> list[str]:
        return [f"{o.endpoint} {o.prompt!r}: {o.problem}" for o in self.outcomes if o.problem]

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        waits = sorted(o.seconds for o in self.outcomes) or [0.0]
        return (f"{self.plan.users} users for {self.plan.seconds:g} s: {len(self.outcomes)} requests "
                f"({dict(Counter(o.endpoint for o in self.outcomes))}; answered in {waits[len(waits) // 2]:.1f} s "
                f"median, {waits[-1]:.1f} s at most), {self.images} images, "
                f"{self.errors_shown} errors shown, {self.service_requests} service requests, "
                f"{sum(self.faults.values())} faults injected on {self.faulted_requests} of them ({kinds}), "
                f"lost {len(self.lost)}, "
                f"RSS {self.rss_warm_mb:.1f} MB after warm-up → {self.rss_end_mb:.1f} MB at the end "
                f"(peak {self.rss_peak_mb:.1f} MB), unhandled exceptions {len(self.unhandled)}, "
                f"warnings logged {len(self.warnings)}, "
                f"unanswered {len(self.problems)}")


def rss_mb() -> float:
    """This process's resident memory, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def settled_rss_mb() -> float:
    """Resident memory once garbage is collected and malloc has handed free pages back.

    With dozens of threads glibc keeps freed memory in per-thread arenas, so raw RSS creeps up
    and down by tens of MB without any leak; trimming first leaves what is really held.
    """
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


# --- what one user does ----------------------------------------------------------------------------

def clear_error(text: Any) -> bool:
    """A message a person can act on: words, not empty, not a traceback or a bare exception name."""
    return isinstance(text, str) and len(text.strip()) > 20 and "Traceback" not in text


def single(endpoint: str, prompt: str, path: Any, message: Any, success: Callable[[str], bool]) -> Outcome:
    """An endpoint that answers one image or one message."""
    outcome = Outcome(endpoint, prompt)
    if isinstance(path, str) and Path(path).is_file():
        outcome.images.append(path)
        if not success(message if isinstance(message, str) else ""):
            outcome.problem = f"an image came with the message {message!r}"
    elif clear_error(message):
        outcome.errors.append(message)
    else:
        outcome.problem = f"neither an image nor a clear error: {path!r}, {message!r}"
    return outcome


def do_generate(client: Client, prompt: str, rng: Random, reference: str) -> Outcome:
    path, _, message, _ = client.predict(model=rng.choice(TEXT_MODELS), prompt=prompt, width=SIDE, height=SIDE,
                                         api_name="/generate")
    return single("/generate", prompt, path, message, lambda m: m == "")


def do_edit(client: Client, prompt: str, rng: Random, reference: str) -> Outcome:
    path, _, message, _ = client.predict(model=rng.choice(EDIT_MODELS), prompt=prompt, width=SIDE, height=SIDE,
                                         references=[handle_file(reference)], api_name="/edit")
    return single("/edit", prompt, path, message, lambda m: m == "")


def do_kontext(client: Client, prompt: str, rng: Random, reference: str) -> Outcome:
    path, _, message = client.predict(model="FLUX.1-Kontext-pro", prompt=prompt, image=handle_file(reference),
                                      route=rng.choice(("bfl", "images/edits")), api_name="/kontext")
    return single("/kontext", prompt, path, message, lambda m: m == "")


def do_compare(client: Client, prompt: str, rng: Random, reference: str) -> Outcome:
    models = rng.sample(COMPARE_MODELS, 2)
    gallery, results, message = client.predict(prompt=prompt, models=models, aspect_ratio="1:1",
                                               api_name="/compare")
    outcome = Outcome("/compare", prompt)
    records = results.get("results", []) if isinstance(results, dict) else []
    if message or [r.get("model") for r in records] != models:
        outcome.problem = f"the comparison itself failed: {message!r}, {results!r}"
        return outcome
    for record in records:
        index = record.get("image_index")
        if isinstance(index, int) and Path(gallery[index]["image"]).is_file():
            outcome.images.append(gallery[index]["image"])
        elif clear_error(record.get("error")):
            outcome.errors.append(record["error"])
        else:
            outcome.problem = f"{record.get('model')}: neither an image nor a clear error: {record!r}"
    return outcome


ACTIONS: tuple[Callable[[Client, str, Random, str], Outcome], ...] = (do_generate, do_edit, do_kontext, do_compare)


def user(index: int, client: Client, until: float, reference: str, seed: int) -> list[Outcome]:
    """Requests one after another, each with a prompt no other request has, until ``until``."""
    rng = Random(seed * 1000 + index)
    outcomes: list[Outcome] = []
    while time.monotonic() < until:
        action = rng.choice(ACTIONS)
        prompt = f"soak user {index} request {len(outcomes)}"
        if len(outcomes) % REFUSED_EVERY == 0:
            prompt += " refuse-me"  # a prompt the content filter stops: an error every user must be shown
        sent = time.monotonic()
        try:
            outcome = action(client, prompt, rng, reference)
        except Exception as exc:  # gradio_client's AppError: the handler raised instead of answering
            outcome = Outcome(f"/{action.__name__.removeprefix('do_')}", prompt, problem=f"{type(exc).__name__}: {exc}")
        outcome.seconds = time.monotonic() - sent
        outcomes.append(outcome)
    return outcomes


# --- watching the logs ------------------------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _StderrTap(io.TextIOBase):
    """Passes stderr through and keeps a copy: Gradio prints a handler's traceback there."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.text: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.text.append(text)
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()


@dataclass
class LogWatch:
    unhandled: list[str] = field(default_factory=list)  # ERROR records, records with a traceback, printed tracebacks
    warnings: list[str] = field(default_factory=list)  # WARNING records: reported, not failures


@contextmanager
def watching_logs() -> Iterator[LogWatch]:
    """Collects WARNING+ log records (the root logger's and uvicorn's, which does not propagate) and
    tracebacks printed to stderr, where Gradio reports an exception a handler did not handle."""
    handler = _Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    tap = _StderrTap(sys.stderr)
    sys.stderr = tap
    watch = LogWatch()
    try:
        yield watch
    finally:
        sys.stderr = tap.inner
        for logger in loggers:
            logger.removeHandler(handler)
        for record in dict.fromkeys(handler.records):  # a uvicorn record can reach both loggers' handlers
            line = f"{record.name} {record.levelname}: {record.getMessage()}"
            (watch.unhandled if record.levelno >= logging.ERROR or record.exc_info else watch.warnings).append(line)
        printed = "".join(tap.text)
        watch.unhandled += [f"stderr: Traceback …{chunk[-1500:]}"
                            for chunk in printed.split("Traceback (most recent call last)")[1:]]


# --- reconciling the accounts ----------------------------------------------------------------------

def delivered_an_image(entry: dict[str, Any]) -> bool:
    """Whether the emulator answered this request with an image (the client then had it in hand)."""
    if entry["status"] != 200 or entry["route"] == "poll":
        return False
    return not any(part.split(":")[0] in NO_IMAGE_FAULTS for part in (entry["fault"] or "").split("+"))


def reconcile(log: Sequence[dict[str, Any]], history: History) -> list[str]:
    """Every image the emulator delivered has a whole file in History, and History has nothing else."""
    delivered = Counter((r["prompt"], r["model"]) for r in log if delivered_an_image(r))
    saved: Counter[tuple[str, str]] = Counter()
    broken = []
    for entry in history.list(limit=1_000_000):
        try:
            inspect_image(entry.path.read_bytes())
            saved[(entry.prompt, entry.model)] += 1
        except (OSError, ValueError) as exc:
            broken.append(f"{entry.id}: its file does not load ({exc})")
    lost = [f"{prompt!r} on {model}: delivered {n}, saved {saved[(prompt, model)]}"
            for (prompt, model), n in (delivered - saved).items()]
    extra = [f"{prompt!r} on {model}: saved {n} more than delivered"
             for (prompt, model), n in (saved - delivered).items()]
    return lost + extra + broken


def fault_counts(log: Sequence[dict[str, Any]]) -> Counter[str]:
    return Counter(part.split(":")[0] if part.startswith("latency") else part
                   for r in log if r["fault"] for part in r["fault"].split("+"))


# --- the run ---------------------------------------------------------------------------------------

def small_reference(folder: Path) -> str:
    path = folder / "soak-reference.png"
    path.write_bytes(solid_image((40, 120, 200), (128, 96)))
    return str(path)


def run_soak(url: str, emulator: Emulator, history: History, plan: SoakPlan, scratch: Path, seed: int = 6,
             ) -> SoakReport:
    """Drive ``plan.users`` users at the app on ``url`` for ``plan.seconds`` with faults on, then reconcile."""
    reference = small_reference(scratch)
    with ThreadPoolExecutor(4) as pool:  # each Client fetches the app's config: a few at a time
        clients = list(pool.map(lambda _: Client(url, verbose=False, httpx_kwargs=CLIENT_HTTP), range(plan.users)))
    if emulator.requests():
        raise RuntimeError("the soak reconciles the emulator's whole log: start it on a fresh app")
    emulator.set_faults("*", FAULTS)
    peak = rss_mb()
    pool = ThreadPoolExecutor(plan.users)
    with watching_logs() as logs:
        start = time.monotonic()
        until = start + plan.seconds
        runs = {pool.submit(user, i, client, until, reference, seed) for i, client in enumerate(clients)}
        rss_warm: float | None = None
        pending = runs
        while pending:
            _, pending = wait(pending, timeout=0.5)
            peak = max(peak, rss_mb())
            if rss_warm is None and time.monotonic() >= start + plan.seconds * plan.warm_up_share:
                rss_warm = settled_rss_mb()
            if time.monotonic() > until + DRAIN_S:
                pool.shutdown(wait=False)
                raise TimeoutError(f"{len(pending)} users still waiting {DRAIN_S:g} s after the end of the run")
        pool.shutdown()
        outcomes = [outcome for run in runs for outcome in run.result()]
    emulator.set_faults("*", [])
    with ThreadPoolExecutor(plan.users) as pool:  # each close waits up to 1 s for its heartbeat thread
        list(pool.map(Client.close, clients))
    log = emulator.requests()
    if log and log[0]["seq"] != 1:
        raise RuntimeError("the emulator's request log overflowed: raise EmulatorConfig.log_limit for this run")
    rss_end = settled_rss_mb()
    return SoakReport(plan, outcomes, len(log), sum(bool(r["fault"]) for r in log), fault_counts(log),
                      reconcile(log, history),
                      rss_end if rss_warm is None else rss_warm, rss_end, peak, logs.unhandled, logs.warnings)
