"""Running one grid: the form's values planned and checked, one request per cell sent, then the sheet and ZIP.

Plain values in and out, no components. The plan is :mod:`flux_ui.grid`'s, the sending the one fan-out
loop (:mod:`flux_ui.ui.fanout`), the exports :mod:`flux_ui.exports`'. Every image is saved to History
as a text-to-image request (so "reuse settings" loads any cell there) with the grid it belongs to.
What the page shows for a grid is :mod:`flux_ui.ui.grid_view`; the tab is :mod:`flux_ui.ui.grid_tab`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_ui.errors import ValidationError
from flux_ui.exports import Axis
from flux_ui.exports.archive import MANIFEST_JSON, ArchiveCell, Outcome, grid_archive
from flux_ui.exports.sheet import SheetCell, build_sheet_async
from flux_ui.grid import Cell, Estimate, GridAxis, GridBase, GridPlan, estimate, plan_grid
from flux_ui.grid.axes import MODEL
from flux_ui.registry import MODELS, Mode
from flux_ui.runtime import Runtime
from flux_ui.styles import Style
from flux_ui.ui import fanout
from flux_ui.ui.compare_run import pick_seed
from flux_ui.ui.downloads import save_sheet_and_archive
from flux_ui.ui.fanout import Fanout, Slot, in_group, reserve, run_fanout

#: The tab each cell's image is saved under: every cell is a text-to-image request.
TAB = "text-to-image"
GROUP_KIND = "grid"
#: What an unused Y or Z axis is called (the dropdown's first choice; the API takes None or "" too).
NONE = "—"
AXIS_NAMES = ("x", "y", "z")
#: Where each run's contact sheet and ZIP are written, in a folder of its own, under the outputs folder.


def grid_models(models: Sequence[str]) -> list[str]:
    """The deployed models a grid can use: those that make an image from a prompt alone."""
    return [m for m in models if m in MODELS and MODELS[m].does(Mode.GENERATE)]


# --- what to send -----------------------------------------------------------------------------

@dataclass(frozen=True)
class GridForm:
    """A grid as asked for, values as sent: ``seed`` None picks one; ``axes`` are (kind, values text) for X, Y, Z."""

    prompt: Any
    model: Any
    seed: Any = None
    axes: tuple[tuple[Any, Any], ...] = ()
    confirm: Any = False


def axis_kind(value: Any, name: str) -> str | None:
    """An axis's kind as sent, or None for an unused axis; ValidationError for what is not text."""
    if value is None or (isinstance(value, str) and value.strip() in ("", NONE, "none")):
        return None
    if not isinstance(value, str):
        raise ValidationError(f"The {name.upper()} axis must be named as text, such as \"model\" or \"seed\"; "
                              f"got {value!r}.", field=f"{name}_axis")
    return value.strip()


def used_axes(axes: Sequence[tuple[Any, Any]]) -> list[tuple[str, str, Any]]:
    """(name, kind, values) of each axis in use, in order; X must be, and Z only with Y."""
    used = [(name, kind, values) for name, (kind_value, values) in zip(AXIS_NAMES, axes, strict=False)
            if (kind := axis_kind(kind_value, name)) is not None]
    names = [name for name, _, _ in used]
    if "x" not in names:
        raise ValidationError("Choose what the X axis varies (model, seed, a parameter) and type its values.",
                              field="x_axis")
    if "z" in names and "y" not in names:
        raise ValidationError("The Z axis is set but Y is not: use Y before Z.", field="z_axis")
    return used


def in_play(kind: str, values: Any, base_model: Any, deployed: Sequence[str]) -> tuple[str, ...]:
    """The models other axes are checked against: the model axis's (when it parses), else the base model."""
    if kind == MODEL:
        try:
            return tuple(str(v) for v in GridAxis.parse(MODEL, _text(values, "model"), deployed).values)
        except ValidationError:
            return tuple(deployed)
    return (str(base_model),) if isinstance(base_model, str) and base_model in deployed else tuple(deployed)


def _text(values: Any, kind: str) -> str:
    if values is None:
        return ""
    if not isinstance(values, str):
        raise ValidationError(f"The {kind} values must be text, comma-separated (such as \"1, 2, 3\"); got "
                              f"{values!r}.", field=kind)
    return values


def parse_axis(kind: str, values: Any, models: Sequence[str], deployed: Sequence[str]) -> GridAxis:
    """One axis from its typed values, checked against the models in play (the deployed ones for ``model``)."""
    return GridAxis.parse(kind, _text(values, kind), deployed if kind == MODEL else models)


def parse_axes(axes: Sequence[tuple[Any, Any]], base_model: Any, deployed: Sequence[str]) -> list[GridAxis]:
    """Every axis in use, parsed; ValidationError naming the axis for the first that does not parse."""
    used = used_axes(axes)
    model_axis = next(((kind, values) for _, kind, values in used if kind == MODEL), None)
    models = in_play(*model_axis, base_model, deployed) if model_axis else in_play("", "", base_model, deployed)
    parsed = []
    for name, kind, values in used:
        try:
            parsed.append(parse_axis(kind, values, models, deployed))
        except ValidationError as err:
            raise ValidationError(f"{name.upper()} axis: {err.message}", field=f"{name}_axis") from None
    return parsed


def plan_form(deployed: Sequence[str], form: GridForm, rng: random.Random,
              styles: Sequence[Style] = ()) -> GridPlan:
    """The grid to send (a style axis naming ``styles``); ValidationError (nothing sent) for what no cell could fix."""
    if not isinstance(form.prompt, str) or not form.prompt.strip():
        raise ValidationError("The prompt is empty. Write a prompt first: every cell starts from it.", field="prompt")
    try:
        params = {} if form.seed is None or form.seed == "" else {"seed": pick_seed(False, form.seed)}
    except ValueError as err:
        raise ValidationError(str(err), field="seed") from None
    base_model = form.model if isinstance(form.model, str) and form.model else (deployed[0] if deployed else "")
    axes = parse_axes(form.axes, base_model, deployed)
    base = GridBase(form.prompt, base_model, params, {s.name: s for s in styles})
    return plan_grid(base, axes, deployed, rng)


def grid_estimate(runtime: Runtime, plan: GridPlan) -> Estimate:
    """What the plan costs and how long its quotas take, from this installation's deployments."""
    deployments = runtime.settings.deployments
    return estimate(plan.cells, {m: d.quota for m, d in deployments.items()},
                    tiers={m: d.tier for m, d in deployments.items()})


def confirmation_problem(est: Estimate, confirm: Any) -> str | None:
    """Why a large grid is not sent without a confirmation (None when it needs none or has it)."""
    if not est.needs_confirmation() or confirm is True:
        return None
    return (f"Not sent: this grid sends {est.images} requests ({est.text}). Tick \"I understand this sends "
            f"{est.images} requests\" and run it again (from code: confirm=True). Nothing was sent.")


# --- sending it -------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Grid(Fanout):
    """A running (then finished) grid: one slot per planned cell, in the plan's order (z, then y, then x)."""

    plan: GridPlan
    estimate: Estimate
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def cells(self) -> list[tuple[Cell, Slot]]:
        return list(zip(self.plan.cells, self.slots, strict=True))


def axes_record(plan: GridPlan, cell: Cell) -> list[dict[str, Any]]:
    """Each axis's name, label and shown values, with this cell's value: stored with the cell in History."""
    return [{"axis": name, "kind": axis.kind, "label": axis.label, "value": shown, "values": list(axis.shown)}
            for name, axis, shown in zip(AXIS_NAMES, plan.axes, cell.shown, strict=False)]


def grid_run(plan: GridPlan, est: Estimate, run_id: str | None = None) -> Grid:
    """The grid to send: a slot per cell (an n/a cell's is never sent), each carrying its place in the grid."""
    grid_id = run_id or uuid.uuid4().hex
    slots = [Slot(c.model, c.prompt, dict(c.params), na=c.na,
                  extra=in_group(GROUP_KIND, grid_id, cell=[c.x, c.y, c.z], axes=axes_record(plan, c)))
             for c in plan.cells]
    return Grid(slots=slots, plan=plan, estimate=est, id=grid_id)


def waves(slots: Sequence[Slot], cap: Callable[[str], int]) -> list[list[int]]:
    """Slot indices in the waves they are sent in: at most ``cap(model)`` of one model per wave.

    A request waits for its quota only so long (the client's deadline); a model's cells beyond what its
    quota sends in that time go in the next wave, sent once the one before has finished.
    """
    rank: dict[str, int] = {}
    out: dict[int, list[int]] = {}
    for i, slot in enumerate(slots):
        if slot.na is not None:
            continue
        n = rank.get(slot.model, 0)
        rank[slot.model] = n + 1
        out.setdefault(n // max(1, cap(slot.model)), []).append(i)
    return [out[k] for k in sorted(out)]


async def run_grid(runtime: Runtime, grid: Grid, cap: Callable[[str], int] | None = None) -> AsyncIterator[Grid]:
    """Send every cell that can be sent, in waves of at most ``cap(model)`` per model (one wave without it);
    yield the grid (updated in place) whenever a cell finishes, and every tick. Closing the generator (Stop)
    sends nothing more.

    The whole grid's cost is held against the day's caps first, for every wave; a grid that would pass one
    is refused whole (every cell fails with the reason, nothing is sent)."""
    start = time.monotonic()
    if await reserve(runtime, grid, TAB) is not None:
        grid.arrivals.extend(i for i, slot in enumerate(grid.slots) if slot.na is None)
        yield grid
        return
    try:
        for wave in waves(grid.slots, cap or (lambda model: len(grid.slots))):
            part, seen = Fanout(slots=[grid.slots[i] for i in wave], allowance=grid.allowance), 0
            async with aclosing(run_fanout(runtime, part, TAB)) as stream:
                async for _ in stream:
                    grid.arrivals.extend(wave[j] for j in part.arrivals[seen:])
                    seen = len(part.arrivals)
                    grid.elapsed = time.monotonic() - start
                    yield grid
    finally:
        runtime.ledger.release_run(grid.allowance)  # what no cell drew (all settled, or Stop)
    grid.elapsed = time.monotonic() - start


def check_budget(runtime: Runtime, grid: Grid) -> None:
    """Before a grid is sent: BudgetError (nothing sent) when its estimate would pass a cap today, so the tab
    says so up front; :func:`run_grid` holds the cost for real as it starts."""
    fanout.check_budget(runtime, grid, TAB)


# --- the contact sheet and the ZIP ---------------------------------------------------------------

@dataclass(frozen=True)
class GridExports:
    """The run's contact sheet and ZIP (None when they could not be written: ``problem`` says why)."""

    sheet: Path | None = None
    archive: Path | None = None
    files: int = 0
    notes: tuple[str, ...] = ()  # originals the ZIP left out, and why
    problem: str | None = None
    records: tuple[Mapping[str, Any], ...] = ()  # the manifest's cell records, in the plan's order


def sheet_axes(plan: GridPlan) -> dict[str, Axis]:
    """The sheet's (and the ZIP's) axes: each axis's label and shown values, by x, y, z."""
    return {name: Axis(axis.label, axis.shown) for name, axis in zip(AXIS_NAMES, plan.axes, strict=False)}


def cell_seed(cell: Cell, slot: Slot) -> Any:
    return slot.generated.result.seed if slot.generated is not None else cell.params.get("seed")


def outcome(slot: Slot) -> tuple[Outcome, str]:
    if slot.generated is not None:
        return "ok", ""
    if slot.na is not None:
        return "na", slot.na
    return "error", slot.error or "not sent: the grid was stopped"


def sheet_cell(cell: Cell, slot: Slot) -> SheetCell:
    seed = cell_seed(cell, slot)
    caption = (MODELS[cell.model].display_name, f"seed {seed}" if seed is not None else "")
    kind, message = outcome(slot)
    image = Path(slot.generated.path) if slot.generated is not None else None
    return SheetCell(cell.x, cell.y, cell.z, image=image, caption=caption, na=message if kind == "na" else None,
                     error=message if kind == "error" else None)


def archive_cell(cell: Cell, slot: Slot) -> ArchiveCell:
    kind, message = outcome(slot)
    if slot.generated is not None:
        settings: Mapping[str, Any] = slot.generated.entry.settings
        return ArchiveCell(settings, Path(slot.generated.path), cell.x, cell.y, cell.z, kind, message)
    planned = {"tab": TAB, "model": cell.model, "prompt": cell.prompt, "seed": cell.params.get("seed"),
               "params": dict(cell.params), **(dict(slot.extra) if slot.extra else {})}
    return ArchiveCell(planned, None, cell.x, cell.y, cell.z, kind, message)


async def export_grid(runtime: Runtime, grid: Grid) -> GridExports:
    """Draw the contact sheet and write the ZIP into the run's own folder under the outputs folder, and let
    the page serve both; a problem writing them is said, and the images stay in History either way."""
    plan, pairs = grid.plan, grid.cells()
    axes = sheet_axes(plan)
    try:
        sheet = await build_sheet_async([sheet_cell(c, s) for c, s in pairs], title=plan.base.prompt,
                                        settings=plan.to_json(), **axes)
        return await asyncio.to_thread(_write_exports, runtime.history.folder, grid, sheet, axes)
    except (OSError, ValueError) as err:
        return GridExports(problem=f"The contact sheet and ZIP could not be written ({err}); every image is in "
                                   "History all the same.")


def _write_exports(folder: Path, grid: Grid, sheet: bytes, axes: Mapping[str, Axis]) -> GridExports:
    """The sheet and the ZIP on disk (blocking: a worker thread's), registered as files flux-ui wrote."""
    cells = [archive_cell(c, s) for c, s in grid.cells()]
    sheet_path, report = save_sheet_and_archive(
        folder, "grid", grid.id, sheet, lambda dest: grid_archive(cells, dest, outputs_folder=folder, sheet=sheet,
                                                                  **axes))
    with zipfile.ZipFile(report.path) as zf:
        records = json.loads(zf.read(MANIFEST_JSON))["cells"]
    return GridExports(sheet_path, report.path, report.files, report.problems, None, tuple(records))


def cells_payload(grid: Grid, exports: GridExports) -> dict[str, Any]:
    """The API's record of a grid: its axes and base, then each cell's settings and outcome (JSON-able)."""
    plan = grid.plan.to_json()
    records = {(r.get("x", 1) - 1, r.get("y", 1) - 1, r.get("z", 1) - 1): r for r in exports.records}
    cells = []
    for (cell, slot), planned in zip(grid.cells(), plan["cells"], strict=True):
        kind, message = outcome(slot)
        record = records.get(cell.coords, {})
        generated = slot.generated
        cells.append({**planned, "outcome": record.get("outcome", kind), "message": record.get("message", message),
                      "file": record.get("file") or None, "seed": cell_seed(cell, slot),
                      "history_id": generated.entry.id if generated is not None and generated.saved else None})
    return {"id": grid.id, "axes": plan["axes"], "base": plan["base"], "seed": plan["seed"],
            "shape": list(grid.plan.shape), "images": grid.images, "sent": grid.sent,
            "elapsed_s": round(grid.elapsed, 2), "estimate": grid.estimate.text,
            "sheet": exports.sheet.name if exports.sheet else None,
            "archive": exports.archive.name if exports.archive else None, "cells": cells}
