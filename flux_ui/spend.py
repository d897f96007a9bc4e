"""Spend caps: what a request (or a whole grid, comparison or run of variations) will cost, held against
the day's caps before anything is sent, and settled by what it really cost once its answer comes.

The figures live in History's database (SQLite in the outputs folder, or PostgreSQL shared by replicas),
as the audit trail's rows (:mod:`flux_ui.audit`): a day's spend is the sum of its rows (each one's
charge, or the estimate it holds while in flight) and of the allowances runs hold for requests not
started yet. So a restart keeps the day's spend, and concurrent requests cannot pass a cap together,
from one process or several: each admission checks and holds in one serialized write transaction.

How a cost is counted (all in US dollars, per UTC day, on the day the request or its run was admitted):

- **Before sending**, the registry's list-price hint for the output size (``PriceHint.estimate``; for a
  run, :func:`flux_ui.grid.estimate.estimate` over its cells). A model without a list price (FLUX.1
  Kontext [pro], FLUX.1 [schnell] on its own endpoint) counts at ``FLUX_UI_UNPRICED_USD``; without
  one it is refused while a cap is set, because its cost cannot be bounded, and counted at $0 (and
  said so in the trail) while none is.
- **Once an image arrives**, the service's own figure (``request_meta.cost``) replaces the estimate,
  read as ``FLUX_UI_SERVICE_COST_USD`` dollars per unit (default $0.01: the contract never names the
  unit; credits of a cent is the emulator's reading and fits the contract's one example). It is the
  correction that counts what the estimate cannot see, such as FLUX.2's billed input megapixels, so
  an edit can end a little over its estimate; the next request then meets the corrected total.
- **Without an image**: nothing was sent, or the service answered with an error (``billed`` "no",
  :mod:`flux_ui.errors`): the hold is released. Sent and unanswered, or accepted and lost (``billed``
  "maybe" or "yes"), or blocked by Content Safety after it was made: the estimate is kept, because
  the service may bill it and a cap must hold even when answers go missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flux_ui.audit import MAX_DETAIL_CHARS, MAX_PROMPT_CHARS, SCHEMA, Outcome, clean, day_of, outcome_of, recover
from flux_ui.database import DB_NAME, Connection, Database, Tables, insert_id
from flux_ui.errors import FluxError, ValidationError, with_billing
from flux_ui.grid.estimate import Estimate, format_duration
from flux_ui.registry import MODELS, ModelSpec
from flux_ui.settings_spend import SpendSettings

if TYPE_CHECKING:
    from flux_ui.client import GenerationRequest
    from flux_ui.runtime import Runtime

T = TypeVar("T")
#: Amounts closer than this count as equal: a cap of $0.50 takes ten $0.05 images, float sums or not.
EPSILON_USD = 1e-9
RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    day TEXT NOT NULL,
    "user" TEXT NOT NULL,
    usd REAL NOT NULL,
    at REAL NOT NULL
);
"""
_USED = ("SELECT (SELECT COALESCE(SUM(COALESCE(charged_usd, held_usd)), 0) FROM audit WHERE day = ?{user})"
         " + (SELECT COALESCE(SUM(usd), 0) FROM spend_runs WHERE day = ?{user})")
#: On a database shared by replicas, what a start settles is only what is older than this: a request
#: or a run another replica has in flight is not its to settle. (A run's hold counts on its own UTC day
#: only, so one a dead replica left over-holds until midnight at most.)
SHARED_STALE_S = 6 * 3600.0


class BudgetError(ValidationError):
    """A request or run that would pass a daily cap, refused before anything was sent. A ValidationError,
    so every tab shows it where it shows a refused input."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="budget")
        with_billing(self, False, "no")


def money(usd: float) -> str:
    """ "$0.50", "$12.00", and tenths of a cent where they matter: "$0.063"."""
    return f"${usd:.2f}" if usd >= 1 or abs(usd - round(usd, 2)) < 5e-4 else f"${usd:.3f}"


def resets_text(now: float) -> str:
    """When the day's caps start again, in words: "It resets at midnight UTC, in 3 h 12 min."."""
    today = datetime.fromtimestamp(now, UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return f"It resets at midnight UTC (00:00 UTC), in {format_duration(midnight.timestamp() - now)}."


def unpriced_problem(spec: ModelSpec) -> str:
    return (f"{spec.display_name} has no list price flux-ui knows ({spec.price.note or 'none published'}), so it "
            "cannot be kept within the daily budget. The owner can count it at a set price with "
            f"FLUX_UI_UNPRICED_USD (for example FLUX_UI_UNPRICED_USD={spec.id}=0.04), or choose a model with a "
            "list price.")


def request_usd(spec: ModelSpec, size: tuple[int, int] | None, settings: SpendSettings) -> float | None:
    """What one request counts before sending: its list price at ``size``, else the model's stand-in
    (FLUX_UI_UNPRICED_USD), else None (unpriced)."""
    price = spec.price.estimate(size[0] * size[1]) if size else spec.price.usd_per_image
    return price if price is not None else settings.unpriced(spec.id)


def run_usd(est: Estimate, settings: SpendSettings) -> tuple[float, tuple[str, ...]]:
    """A run's cost from its estimate (the Grid's own, :mod:`flux_ui.grid.estimate`): the priced cells,
    plus each unpriced model's images at its stand-in; and the unpriced models that have none."""
    total, missing = est.cost_usd or 0.0, []
    for load in est.loads:
        spec = MODELS[load.model]
        if spec.price.estimate(1_000_000) is not None:
            continue
        stand_in = settings.unpriced(spec.id)
        if stand_in is None:
            missing.append(spec.id)
        else:
            total += stand_in * load.images
    return total, tuple(missing)


@dataclass(frozen=True)
class Ask:
    """One request as the ledger records it; ``usd`` its cost before sending (None: unpriced)."""

    user: str
    model: str
    deployment: str
    route: str
    tab: str
    prompt: str
    usd: float | None


@dataclass
class Allowance:
    """What a run holds for its requests not started yet; each draws its own estimate from it."""

    id: int | None  # its spend_runs row (None: nothing held, the run costs nothing known)
    user: str
    day: str
    remaining: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class Left:
    """What is left today under each cap (None: no such cap), and when the day resets."""

    user: float | None
    instance: float | None
    resets: str


class Ledger(Tables):
    """The day's spend in History's database (``database``, or the outputs folder's ``history.sqlite3``):
    holds, charges, caps; thread-safe, and one across replicas sharing a database.

    ``clock`` (Unix seconds) decides the UTC day; tests give a fake one. At start-up, what an earlier
    flux-ui left in flight is settled: its requests at their estimate, its runs' allowances released
    (on a shared database only those older than :data:`SHARED_STALE_S`).
    """

    def __init__(self, folder: Path, settings: SpendSettings, clock: Callable[[], float] = time.time, *,
                 database: Database | None = None) -> None:
        super().__init__(folder, SCHEMA + RUNS_SCHEMA, database, DB_NAME)
        self.settings, self.clock = settings, clock
        now = clock()
        before = now - SHARED_STALE_S if self.database.shared else None
        with self._write() as db:
            recover(db, now, before)
            if before is None:
                db.execute("DELETE FROM spend_runs")
            else:
                db.execute("DELETE FROM spend_runs WHERE at < ?", (before,))

    def _write(self) -> contextlib.AbstractContextManager[Connection]:
        """One write transaction, serialized before its first read (:meth:`Database.write`), so a check and
        its hold are one, across threads and replicas."""
        return self.database.write()

    def _connect(self) -> contextlib.AbstractContextManager[Connection]:
        return self.database.connect()

    # --- what is spent and left ------------------------------------------------------------------

    @staticmethod
    def _used(db: Connection, day: str, user: str | None = None) -> float:
        if user is None:
            return float(db.execute(_USED.format(user=""), (day, day)).fetchone()[0])
        return float(db.execute(_USED.format(user=' AND "user" = ?'), (day, user, day, user)).fetchone()[0])

    def spent(self, user: str | None = None, day: str | None = None) -> float:
        """Today's (or ``day``'s) spend, held amounts included: one user's, or everyone's."""
        with self._connect() as db:
            return self._used(db, day or day_of(self.clock()), user)

    def left(self, user: str) -> Left:
        now = self.clock()
        with self._connect() as db:
            day = day_of(now)
            mine = self.settings.user_daily_usd
            every = self.settings.daily_usd
            return Left(None if mine is None else max(0.0, mine - self._used(db, day, user)),
                        None if every is None else max(0.0, every - self._used(db, day)), resets_text(now))

    def _problem(self, db: Connection, day: str, user: str, usd: float, what: str) -> str | None:
        """Why ``usd`` more for ``user`` would pass a cap today (the user's first), or None."""
        caps = ((self.settings.user_daily_usd, user, "your daily budget"),
                (self.settings.daily_usd, None, "this flux-ui's daily budget, shared by everyone,"))
        for cap, whose, name in caps:
            if cap is None:
                continue
            left = cap - self._used(db, day, whose)
            if usd > left + EPSILON_USD:
                return (f"Not sent: {what} would cost about {money(usd)}, and {name} of {money(cap)} has "
                        f"{money(max(0.0, left))} left today. {resets_text(self.clock())}")
        return None

    # --- admitting, settling -----------------------------------------------------------------------

    def _row(self, db: Connection, ask: Ask, day: str, outcome: Outcome, held: float,
             detail: str = "", charged: float | None = None) -> int:
        return insert_id(
            db, 'INSERT INTO audit (at, day, "user", model, deployment, route, tab, prompt, estimate_usd, held_usd, '
            "charged_usd, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.clock(), day, clean(ask.user, 200), clean(ask.model, 200), clean(ask.deployment, 200), ask.route,
             ask.tab, clean(ask.prompt, MAX_PROMPT_CHARS), ask.usd, held, charged, outcome,
             clean(detail, MAX_DETAIL_CHARS)))

    def refuse(self, ask: Ask, outcome: Outcome, detail: str) -> None:
        """Record a request refused before it was admitted (a bad value): nothing held, nothing charged."""
        with self._write() as db:
            self._row(db, ask, day_of(self.clock()), outcome, 0.0, detail, 0.0)

    def admit(self, ask: Ask, allowance: Allowance | None = None, what: str = "this image") -> int:
        """Hold ``ask.usd`` against today's caps (drawn from its run's ``allowance`` first) and open its row;
        BudgetError (recorded as refused, nothing held) when it would pass a cap."""
        spec = MODELS.get(ask.model)
        run = allowance if allowance is not None and allowance.id is not None else None
        with self._write() as db:
            day = run.day if run is not None else day_of(self.clock())  # a run's requests count on its day
            drawn = 0.0
            if run is not None:
                with run.lock:
                    drawn = min(ask.usd or 0.0, run.remaining)
                    run.remaining -= drawn
            problem = None
            if ask.usd is None and self.settings.capped and spec is not None:
                problem = f"Not sent: {unpriced_problem(spec)}"
            elif ask.usd is not None and ask.usd - drawn > EPSILON_USD:
                problem = self._problem(db, day, ask.user, ask.usd - drawn, what)
            if problem is None:
                if run is not None and drawn:
                    db.execute("UPDATE spend_runs SET usd = CASE WHEN usd > ? THEN usd - ? ELSE 0 END WHERE id = ?",
                               (drawn, drawn, run.id))
                note = "" if ask.usd is not None else "No list price and no FLUX_UI_UNPRICED_USD: counted at $0."
                return self._row(db, ask, day, "pending", ask.usd or 0.0, note)
            if run is not None:
                with run.lock:
                    run.remaining += drawn  # still the run's: this request takes none of it
            error = BudgetError(problem)
            self._row(db, ask, day, "refused", 0.0, str(error), 0.0)
        raise error

    def corrected(self, estimate: float | None, reported: float | None) -> float:
        """What an image counts: the service's figure at FLUX_UI_SERVICE_COST_USD a unit, else the estimate."""
        rate = self.settings.service_cost_usd
        if reported is not None and rate is not None and math.isfinite(reported) and reported >= 0:
            return reported * rate
        return estimate or 0.0

    def settle(self, row: int, outcome: Outcome, detail: str, charged: float, reported: float | None = None) -> None:
        """Close a request's row: what came of it, what it counts from now on."""
        with self._write() as db:
            db.execute("UPDATE audit SET outcome = ?, detail = ?, reported = ?, charged_usd = ? WHERE id = ?",
                       (outcome, clean(detail, MAX_DETAIL_CHARS), reported, charged, row))

    # --- whole runs --------------------------------------------------------------------------------

    def reserve_run(self, user: str, asks: Sequence[Ask], est: Estimate, what: str, hold: bool = True) -> Allowance:
        """Hold a whole run's cost (``est``, the run's estimate) before any of it is sent; BudgetError, with
        every request recorded as refused, when it would pass a cap. ``hold`` False only checks (a tab
        refusing up front; the run holds for real when it starts)."""
        usd, missing = run_usd(est, self.settings)
        now = self.clock()
        day = day_of(now)
        with self._write() as db:
            problem = None
            if missing and self.settings.capped:
                problem = f"Not sent: {what} includes {unpriced_problem(MODELS[missing[0]])}"
            elif usd > EPSILON_USD:
                problem = self._problem(db, day, user, usd, what)
            if problem is None:
                if usd <= EPSILON_USD or not hold:
                    return Allowance(None, user, day, 0.0)
                run_id = insert_id(db, 'INSERT INTO spend_runs (day, "user", usd, at) VALUES (?, ?, ?, ?)',
                                   (day, user, usd, now))
                return Allowance(run_id, user, day, usd)
            error = BudgetError(problem)
            for ask in asks:
                self._row(db, ask, day, "refused", 0.0, str(error), 0.0)
        raise error

    def release_run(self, allowance: Allowance | None) -> None:
        """Give back what a run held and did not draw (it ended, or was stopped)."""
        if allowance is None or allowance.id is None:
            return
        with self._write() as db:
            db.execute("DELETE FROM spend_runs WHERE id = ?", (allowance.id,))
        allowance.remaining = 0.0


@dataclass
class Charge:
    """One admitted request's row, to be settled by what becomes of it."""

    ledger: Ledger
    row: int
    usd: float | None

    def refused(self, error: BaseException) -> None:
        """It failed before its job started (no room, a blocked prompt, Stop): nothing sent, nothing counts."""
        outcome, detail = outcome_of(error)
        self.ledger.settle(self.row, outcome, detail, 0.0)

    async def track(self, job: Callable[[], Awaitable[T]], sent: Callable[[], bool],
                    reported: Callable[[T], float | None]) -> T:
        """The outcome of ``job()`` (the request's job, made here so a job refused at once never exists),
        after settling this row by it (see the module's rules); ``sent()``: whether it reached the service."""
        try:
            value = await job()
        except asyncio.CancelledError as err:  # settled at once: the loop may be shutting down
            self.ledger.settle(self.row, "unknown" if sent() else "cancelled",
                               "Stopped after it was sent: counted at its estimate." if sent() else outcome_of(err)[1],
                               (self.usd or 0.0) if sent() else 0.0)
            raise
        except BaseException as err:
            outcome, detail = outcome_of(err)
            billed = err.billed if isinstance(err, FluxError) else "maybe"
            await asyncio.to_thread(self.ledger.settle, self.row, outcome, detail,
                                    0.0 if billed == "no" else (self.usd or 0.0))
            raise
        figure = reported(value)
        await asyncio.to_thread(self.ledger.settle, self.row, "image", "", self.ledger.corrected(self.usd, figure),
                                figure)
        return value


async def admit(runtime: Runtime, request: GenerationRequest, tab: str, user: str,
                allowance: Allowance | None = None) -> Charge:
    """Open ``request``'s row with its estimate held against today's caps (from its run's ``allowance``
    when it belongs to one). Before anything is sent: BudgetError past a cap, or the client's own
    ValidationError for a request it could not send, each recorded as refused."""
    ledger = runtime.ledger
    model = request.model if isinstance(request.model, str) else repr(request.model)
    deployment = runtime.settings.deployments.get(model)
    name = deployment.name if deployment is not None else ""
    try:
        checked = runtime.client.validate(request)
    except ValidationError as err:
        await asyncio.to_thread(ledger.refuse, Ask(user, model, name, "", tab, request.prompt, None), "refused",
                                str(err))
        raise
    usd = request_usd(checked.model, checked.size, ledger.settings)
    ask = Ask(user, checked.model.id, name, checked.route.value, tab, request.prompt, usd)
    admitting = asyncio.ensure_future(asyncio.to_thread(ledger.admit, ask, allowance))
    try:
        return Charge(ledger, await asyncio.shield(admitting), usd)
    except asyncio.CancelledError:  # Stop while the hold was being written: once written, it is given back
        admitting.add_done_callback(lambda done: _abandoned(ledger, done))
        raise


def _abandoned(ledger: Ledger, admitted: asyncio.Future[int]) -> None:
    if not admitted.cancelled() and admitted.exception() is None:
        ledger.settle(admitted.result(), "cancelled", "Stopped before the request was sent.", 0.0)
