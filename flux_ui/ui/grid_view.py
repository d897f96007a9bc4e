"""What a grid looks like on the page: each axis's check as it is typed, the plan line, progress, captions, Stop.

Nothing here sends a request or writes a file: each function turns the form's values or a running grid
(:mod:`flux_ui.ui.grid_run`) into the text and updates the tab (:mod:`flux_ui.ui.grid_tab`) shows.
Every value a person typed reaches Markdown through :func:`flux_ui.ui.text.inert`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import gradio as gr

from flux_ui.errors import ValidationError
from flux_ui.grid import Cell, Estimate, GridPlan, format_duration
from flux_ui.grid.axes import MODEL, PROMPT, SEED, SIZE, STYLE
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import progress
from flux_ui.ui.fanout import Slot
from flux_ui.ui.grid_run import (
    AXIS_NAMES,
    Grid,
    GridExports,
    GridForm,
    axis_kind,
    cell_seed,
    grid_estimate,
    in_play,
    parse_axis,
    plan_form,
)
from flux_ui.ui.text import inert

PLAN_HEAD = "**Before Run**"
#: The gallery's columns, and the rows it grows to (then it scrolls) at about this height each.
GALLERY_COLUMNS, GALLERY_ROWS, ROW_PX = 6, 3, 250
#: Planned in place of an empty prompt, so the plan line shows the cost and time before there is one.
STAND_IN = "a grid"
_EXAMPLES = {MODEL: "FLUX.2-pro, FLUX.2-flex", SEED: "1, 2, 3", SIZE: "1024x1024, 1344x768, 768x1344",
             PROMPT: "fox, owl, hare (the first is searched for in the prompt)",
             STYLE: "Film noir, Watercolour (styles saved in History, under Styles)"}


# --- the form, as it is typed ----------------------------------------------------------------

def placeholder(kind: Any) -> str:
    """An example of what to type for an axis of this kind."""
    if kind in _EXAMPLES:
        return _EXAMPLES[kind]
    param = next((p for spec in MODELS.values() if (p := spec.param(kind)) is not None), None) \
        if isinstance(kind, str) else None
    if param is None:
        return ""
    if param.kind == "float":
        return "1.5-10 (4 values), or 2, 3.5, 5"
    if param.kind == "int":
        return "20-50 (+10), or 1, 2, 3"
    if param.kind == "bool":
        return "on, off"
    if param.kind == "aspect_ratio":
        return "1:1, 16:9, 9:16"
    return ", ".join(param.choices) if param.choices else "first, second, third"


def axis_checks(base_model: Any, axes: Sequence[tuple[Any, Any]], deployed: Sequence[str]) -> list[str]:
    """One line per axis (X, Y, Z): the values it makes, or why they do not parse; empty when unused."""
    kinds: list[str | ValidationError | None] = []
    for name, (kind_value, _) in zip(AXIS_NAMES, axes, strict=False):
        try:
            kinds.append(axis_kind(kind_value, name))
        except ValidationError as err:
            kinds.append(err)
    model_values = next((values for kind, (_, values) in zip(kinds, axes, strict=False) if kind == MODEL), None)
    models = in_play(MODEL, model_values, base_model, deployed) if model_values is not None else \
        in_play("", "", base_model, deployed)
    lines = []
    for kind, (_, values) in zip(kinds, axes, strict=False):
        if kind is None or isinstance(kind, ValidationError):
            lines.append("" if kind is None else f"⚠️ {inert(kind)}")
            continue
        try:
            axis = parse_axis(kind, values, models, deployed)
        except ValidationError as err:
            lines.append(f"⚠️ {inert(err)}")
            continue
        count = len(axis.values)
        lines.append(f"✓ {count} value{'' if count == 1 else 's'}: " + " · ".join(inert(v) for v in axis.shown))
    return lines


def plan_line(runtime: Runtime, deployed: Sequence[str], form: GridForm) -> tuple[str, Estimate | None]:
    """The line above Run: how many images, their cost and the time the quotas need; or what is wrong."""
    empty = not isinstance(form.prompt, str) or not form.prompt.strip()
    try:
        plan = plan_form(deployed, replace(form, prompt=STAND_IN) if empty else form, random.Random(0),
                         runtime.styles.styles())
    except ValidationError as err:
        return f"{PLAN_HEAD}: ⚠️ {inert(err)}", None
    est = grid_estimate(runtime, plan)
    text = f"{PLAN_HEAD}: {inert(est.text)}"
    if empty:
        text += " · write a prompt to run it"
    elif est.needs_confirmation():
        text += " · tick the box below to send them"
    return text, est


def confirm_update(est: Estimate | None, shown: Any) -> tuple[Any, int]:
    """The confirmation checkbox for this plan, and the count it now names: shown above the threshold,
    and unticked whenever the count changes (a tick was for the grid it named)."""
    count = est.images if est is not None else 0
    needed = est is not None and est.needs_confirmation()
    label = f"I understand this sends {count} requests"
    if count != shown:
        return gr.update(visible=needed, label=label, value=False), count
    return gr.update(visible=needed, label=label), count


# --- a running grid ----------------------------------------------------------------------------------

def caption(plan: GridPlan, cell: Cell, slot: Slot) -> str:
    """ "Guidance 2 · seed 5 · FLUX.2 [flex]": the cell's axis values, then its model and seed when no axis
    names them (a gallery caption: plain text, shown as typed)."""
    kinds = [axis.kind for axis in plan.axes]
    parts = []
    for axis, shown in zip(plan.axes, cell.shown, strict=True):
        if axis.kind == SEED:
            parts.append(f"seed {shown}")
        elif axis.kind == MODEL:
            parts.append(shown)
        else:
            parts.append(f"{axis.label} {shown}")
    if MODEL not in kinds:
        parts.append(MODELS[cell.model].display_name)
    seed = cell_seed(cell, slot)
    if SEED not in kinds and seed is not None:
        parts.append(f"seed {seed}")
    return " · ".join(parts)


def gallery(grid: Grid) -> list[tuple[str, str]]:
    """The images so far, in the grid's order (z, y, x), each captioned with where it sits."""
    return [(slot.generated.path, caption(grid.plan, cell, slot)) for cell, slot in grid.cells()
            if slot.generated is not None]


def _failed(grid: Grid) -> list[Slot]:
    return [s for s in grid.slots if s.error is not None]


def progress_line(grid: Grid) -> str:
    """ "⏳ 7 of 12 done · 12.3 s · ≈ 40 s left": what the quotas still need, or longer at the pace so far."""
    done, total = len(grid.arrivals), grid.to_send
    left = max(0.0, grid.estimate.seconds - grid.elapsed)  # the quotas' floor, until the pace says longer
    if done:
        left = max(left, grid.elapsed * (total - done) / done) if done < total else 0.0
    line = f"⏳ {done} of {total} done · {grid.elapsed:.1f} s · ≈ {format_duration(left)} left"
    skipped = len(grid.slots) - total
    if skipped:
        line += f" · {skipped} n/a"
    if failed := len(_failed(grid)):
        line += f" · {failed} failed"
    return line


def summary(grid: Grid, exports: GridExports | None) -> str:
    """The status line once every cell has answered, and where the sheet and ZIP are."""
    total = grid.to_send
    line = f"Done: {grid.images} of {total} image{'' if total == 1 else 's'} in {grid.elapsed:.1f} s"
    if grid.plan.seed is not None:
        line += f" · seed {grid.plan.seed} on every cell"
    skipped = len(grid.slots) - total
    if skipped:
        line += f" · {skipped} n/a (nothing sent)"
    failed = _failed(grid)
    if failed:
        line += f" · {len(failed)} failed, the first: ⚠️ {inert(failed[0].error)}"
    if exports is not None and exports.problem:
        return f"{line}\n\n⚠️ {inert(exports.problem)}"
    if exports is not None:
        line += " · the contact sheet and ZIP are below; every image is in History"
        if exports.notes:
            line += f"\n\n⚠️ {inert(' '.join(exports.notes))}"
    return line


def stopped_text(grid: Grid | None) -> str:
    """What Stop did: how many cells were sent (billed, and saved when they arrive) and that nothing more is."""
    if grid is None:
        return progress.STOPPED
    sent, total = grid.sent, grid.to_send
    if not sent:
        return f"⏹ Stopped: none of {total} sent, so nothing is billed."
    failed = sum(1 for s in grid.slots if s.sent and s.error is not None)
    arriving = sum(1 for s in grid.slots if s.sent and not s.finished)
    kept = sent - failed
    line = f"⏹ Stopped: {sent} of {total} sent; "
    if kept == sent:
        line += "it is saved in History" if sent == 1 else f"the {sent} are saved in History"
    else:
        line += f"{kept} saved in History, {failed} failed"
    if arriving:
        line += f" ({arriving} still on the way: each is saved as it arrives)"
    return line + ". Nothing more is sent."


# --- the run's outputs: status, seed, Stop, gallery, sheet, files ---------------------------------------

def first_frame(grid: Grid, randomized: bool) -> list[Any]:
    """The run's first update: the progress line, the shared seed when picked, Stop, and the last run's
    results cleared."""
    seed = gr.update(value=grid.plan.seed) if randomized and grid.plan.seed is not None else gr.update()
    rows = min(GALLERY_ROWS, max(1, math.ceil(grid.to_send / GALLERY_COLUMNS)))
    return [progress_line(grid), seed, gr.update(visible=True), gr.update(value=[], height=rows * ROW_PX),
            gr.update(value=None), gr.update(value=None)]


def frame(grid: Grid, drawing: bool = False) -> list[Any]:
    """An update while the grid runs: every image so far (a frame the page skips loses none), the progress."""
    line = "⏳ Every cell is back: drawing the contact sheet and writing the ZIP…" if drawing else progress_line(grid)
    return [line, gr.update(), gr.update(visible=True), gr.update(value=gallery(grid)), gr.update(), gr.update()]


def final_frame(grid: Grid, exports: GridExports) -> list[Any]:
    """The last update: the summary, Stop hidden, every image, and the sheet and ZIP to see and download."""
    files = [str(p) for p in (exports.sheet, exports.archive) if p is not None]
    return [summary(grid, exports), gr.update(), gr.update(visible=False), gr.update(value=gallery(grid)),
            gr.update(value=str(exports.sheet) if exports.sheet else None), gr.update(value=files or None)]
