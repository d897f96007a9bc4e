"""The Grid tab: one prompt as an X/Y/Z plot over models, seeds, sizes and parameters, with a contact sheet and a ZIP.

This module lays the tab out, then wires it: each axis checked as it is typed, the plan line (images,
cost, time) and its confirmation, the streamed run and Stop, and the /grid endpoint. Planning and
sending a grid is :mod:`flux_ui.ui.grid_run`; what the page shows for one is :mod:`flux_ui.ui.grid_view`.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.errors import ValidationError
from flux_ui.grid import axis_kinds, axis_label
from flux_ui.grid.axes import MODEL
from flux_ui.runtime import Runtime
from flux_ui.ui.common import (
    TabContext,
    TabHandle,
    as_caller,
    error_text,
    flag,
    handoff,
    leave,
    model_choices,
    named_signature,
)
from flux_ui.ui.compare_run import SEED_LIMIT
from flux_ui.ui.grid_run import (
    NONE,
    Grid,
    GridForm,
    cells_payload,
    check_budget,
    confirmation_problem,
    export_grid,
    grid_estimate,
    grid_models,
    grid_run,
    plan_form,
    run_grid,
)
from flux_ui.ui.grid_view import (
    GALLERY_COLUMNS,
    ROW_PX,
    axis_checks,
    confirm_update,
    final_frame,
    first_frame,
    frame,
    placeholder,
    plan_line,
    stopped_text,
)
from flux_ui.ui.layout import PromptRow, prompt_row
from flux_ui.ui.prompt_tools import wire_prompt_tools
from flux_ui.ui.quota_gate import QuotaGate, quota_gate

#: A frame at least this often while nothing new arrives (the progress line's clock).
FRAME_S = 1.0
#: The /grid endpoint's parameters after the prompt, with their defaults.
API_OPTIONAL = {"model": None, "seed": None, "x_axis": MODEL, "x_values": "", "y_axis": None, "y_values": "",
                "z_axis": None, "z_values": "", "confirm": False}


# --- the handlers the tab's events call ---------------------------------------------------------

def _models(grid: Grid) -> list[str]:
    """The models the grid sends to, once each (each counts against its deployment while the grid runs)."""
    return list(dict.fromkeys(cell.model for cell in grid.plan.cells if cell.sent))


def prepare(runtime: Runtime, available: Sequence[str], form: GridForm) -> Grid:
    """The grid to send, planned and confirmed; ValidationError (nothing sent) when it cannot be."""
    plan = plan_form(available, form, random.SystemRandom(), runtime.styles.styles())
    est = grid_estimate(runtime, plan)
    problem = confirmation_problem(est, form.confirm)
    if problem:
        raise ValidationError(problem, field="confirm")
    grid = grid_run(plan, est)
    check_budget(runtime, grid)  # BudgetError, a ValidationError: over a daily cap, refused whole up front
    return grid


async def handle_grid(runtime: Runtime, available: Sequence[str], form: GridForm, gate: QuotaGate | None = None,
                      ) -> tuple[str | None, str | None, dict[str, Any], str]:
    """The /grid endpoint on the values as sent: (contact sheet, ZIP, cells, message); the message says why
    nothing was sent (or the exports could not be written), and is empty otherwise."""
    try:
        grid = prepare(runtime, available, form)
    except ValidationError as err:
        return None, None, {"cells": []}, str(err)
    with gate.admitted_all(_models(grid)) if gate is not None else nullcontext():
        async for _ in run_grid(runtime, grid, gate.cap if gate is not None else None):
            pass
    exports = await export_grid(runtime, grid)
    sheet, archive = (str(p) if p else None for p in (exports.sheet, exports.archive))
    return sheet, archive, cells_payload(grid, exports), exports.problem or ""


def page_form(prompt: Any, model: Any, seed: Any, randomize: Any, *axes: Any, confirm: Any = False) -> GridForm:
    """The page's values as a GridForm: the seed only when not randomized; ``axes`` are kind, values, kind, …"""
    pairs = tuple(zip(axes[::2], axes[1::2], strict=True))
    return GridForm(prompt, model, None if flag("randomize_seed", randomize, True) else seed, pairs, confirm)


# --- layout ---------------------------------------------------------------------------------------

@dataclass
class _Axis:
    kind: gr.Dropdown
    values: gr.Textbox
    check: gr.Markdown


@dataclass
class _Form:
    row: PromptRow
    model: gr.Dropdown
    seed: gr.Number
    randomize: gr.Checkbox
    axes: list[_Axis]
    plan: gr.Markdown
    confirm: gr.Checkbox
    named: gr.State  # the count the confirmation names

    @property
    def plan_inputs(self) -> list[Any]:
        """What the plan depends on, in :func:`page_form`'s order (without the confirmation)."""
        return [self.row.prompt, self.model, self.seed, self.randomize,
                *[c for axis in self.axes for c in (axis.kind, axis.values)]]


@dataclass
class _Results:
    gallery: gr.Gallery
    sheet: gr.Image
    files: gr.File
    box: gr.State  # the running grid, for Stop


DEFAULT_AXES = ((MODEL, 2), (NONE, 0), (NONE, 0))


def _axis(name: str, kinds: Sequence[str], kind: str, values: str, optional: bool) -> _Axis:
    choices = [(NONE, NONE)] * optional + [(axis_label(k), k) for k in kinds]
    with gr.Row(equal_height=True):
        dropdown = gr.Dropdown(choices, value=kind, label=f"{name.upper()} axis", elem_id=f"grid-{name}-axis",
                               scale=1, min_width=150)
        text = gr.Textbox(values, label=f"{name.upper()} values", placeholder=placeholder(kind), scale=3,
                          interactive=kind != NONE, elem_id=f"grid-{name}-values", max_lines=1)
    check = gr.Markdown("", elem_id=f"grid-{name}-check", elem_classes=["flux-status"])
    return _Axis(dropdown, text, check)


def _form(runtime: Runtime, available: list[str]) -> _Form:
    kinds = axis_kinds(available)
    axes: list[_Axis] = []
    parts: dict[str, Any] = {}

    def between() -> None:
        for name, (kind, count) in zip("xyz", DEFAULT_AXES, strict=True):
            axes.append(_axis(name, kinds, kind, ", ".join(available[:count]), optional=name != "x"))
        parts["plan"] = gr.Markdown("", elem_id="grid-plan")
        parts["confirm"] = gr.Checkbox(False, label="I understand this sends 0 requests", visible=False,
                                       elem_id="grid-confirm")

    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            row = prompt_row("grid", run_label="Run grid", lines=2, max_lines=8, between=between,
                             placeholder="A ceramic fox on a windowsill, morning light, film photo",
                             info="Every cell starts from this prompt. Ctrl+Enter (⌘+Enter) runs the grid.")
        with gr.Column(scale=2, min_width=300):
            model = gr.Dropdown(model_choices(available), value=available[0], label="Base model",
                                info="Every cell uses it, unless an axis is Model.", elem_id="grid-model")
            with gr.Row():
                seed = gr.Number(value=None, precision=0, minimum=0, maximum=SEED_LIMIT, label="Seed",
                                 elem_id="grid-seed", min_width=140, info="One seed for every cell (unless an "
                                 "axis is Seed); shows the last one used.")
                randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="grid-randomize")
            gr.Markdown("Values are comma-separated, or ranges: `1.5-10 (4 values)` spaces four evenly, "
                        "`20-50 (+10)` steps by ten. A cell whose model does not take an axis is **n/a** and "
                        "sends nothing. Each image is saved to History as a text-to-image request.",
                        elem_id="grid-help")
    form = _Form(row, model, seed, randomize, axes, parts["plan"], parts["confirm"], gr.State(0))
    _initial_checks(runtime, available, form)
    return form


def _initial_checks(runtime: Runtime, available: list[str], form: _Form) -> None:
    """The checks and plan line for the form as first shown, so the page opens with them."""
    lines, plan, _, _ = refresh(runtime, available, "", available[0], None, True,
                                *[v for axis in form.axes for v in (axis.kind.value, axis.values.value)], shown=0)
    for axis, line in zip(form.axes, lines, strict=True):
        axis.check.value = line
    form.plan.value = plan


def _results() -> _Results:
    with gr.Column(elem_id="grid-result"):  # assets/scroll.js brings it into view after Run grid on a phone
        gallery = gr.Gallery(label="Cells as they arrive", columns=GALLERY_COLUMNS, height=ROW_PX,
                             object_fit="contain", elem_id="grid-gallery", buttons=["download", "fullscreen"],
                             preview=False)
        with gr.Row(equal_height=False):
            # The alt text names the button Gradio wraps the image in (click to view it larger).
            sheet = gr.Image(label="Contact sheet", show_label=False, type="filepath", interactive=False,
                             elem_id="grid-sheet", buttons=["download", "fullscreen"], scale=3, min_width=320,
                             alt_text="The grid's contact sheet")
            # min_width: on a phone the files go below the sheet, their names readable.
            files = gr.File(label="Contact sheet and ZIP (originals, manifest.json, manifest.csv)",
                            interactive=False, file_count="multiple", elem_id="grid-files", scale=2, min_width=280)
    return _Results(gallery, sheet, files, handoff())


# --- wiring -----------------------------------------------------------------------------------------

def refresh(runtime: Runtime, available: Sequence[str], prompt: Any, model: Any, seed: Any, randomize: Any,
            *axes: Any, shown: Any) -> tuple[list[str], str, Any, int]:
    """(each axis's check, the plan line, the confirmation, the count it names) for the form's values."""
    form = page_form(prompt, model, seed, randomize, *axes)
    checks = axis_checks(form.model, form.axes, available)
    line, est = plan_line(runtime, available, form)
    confirm, named = confirm_update(est, shown)
    return checks, line, confirm, named


def _wire_checks(runtime: Runtime, available: list[str], form: _Form) -> None:
    """Every axis re-checked and the plan line recomputed as the form changes; each kind's example."""
    def on_change(*values: Any) -> list[Any]:
        *inputs, shown = values
        checks, line, confirm, named = refresh(runtime, available, *inputs, shown=shown)
        return [*checks, line, confirm, named]

    outputs = [*(a.check for a in form.axes), form.plan, form.confirm, form.named]
    for component in form.plan_inputs:
        component.change(on_change, [*form.plan_inputs, form.named], outputs, api_visibility="private",
                         show_progress="hidden", trigger_mode="always_last", preprocess=False)
    for axis in form.axes:
        axis.kind.change(lambda k: gr.update(placeholder=placeholder(k), interactive=k != NONE), axis.kind,
                         axis.values, api_visibility="private", show_progress="hidden")


def _wire_run(runtime: Runtime, available: list[str], form: _Form, res: _Results, gate: QuotaGate) -> None:
    """Run grid (streamed), and Stop, which cancels it and says how many cells were sent."""
    outputs = [form.row.status, form.seed, form.row.stop, res.gallery, res.sheet, res.files]

    async def run_grid_ui(*values: Any) -> AsyncIterator[list[Any]]:
        *inputs, confirm, box = values
        try:
            grid = prepare(runtime, available, page_form(*inputs, confirm=confirm))
        except ValidationError as err:
            yield [error_text(err), *[gr.update()] * (len(outputs) - 1)]
            return
        leave(box, grid=grid)
        with gate.admitted_all(_models(grid)):
            yield first_frame(grid, flag("randomize_seed", inputs[3], True))
            last, count = time.monotonic(), 0
            async for running in run_grid(runtime, grid, gate.cap):
                if len(running.arrivals) != count or time.monotonic() - last >= FRAME_S:
                    last, count = time.monotonic(), len(running.arrivals)
                    yield frame(running)
        yield frame(grid, drawing=True)
        yield final_frame(grid, await export_grid(runtime, grid))
        box.pop("grid", None)  # done: the session need not hold its images any longer

    inputs = [*form.plan_inputs, form.confirm, res.box]
    event = form.row.run.click(as_caller(run_grid_ui, runtime, len(inputs)), inputs, outputs,
                               api_visibility="private", preprocess=False, concurrency_limit=None)
    event.then(lambda: gr.update(visible=False), None, form.row.stop, api_visibility="private",
               show_progress="hidden")
    def on_stop(box: dict[str, Any] | None) -> tuple[str, Any]:
        return stopped_text((box or {}).pop("grid", None)), gr.update(visible=False)

    form.row.stop.click(on_stop, res.box, [form.row.status, form.row.stop], cancels=[event],
                        api_visibility="private")


def _wire_api(runtime: Runtime, available: list[str], form: _Form, gate: QuotaGate) -> None:
    """The /grid endpoint (and MCP tool), on a hidden button with hidden outputs."""
    trigger = gr.Button(visible=False, elem_id="grid-api")
    sheet = gr.Image(visible=False, type="filepath", label="Contact sheet", elem_id="grid-api-sheet")
    archive = gr.File(visible=False, label="ZIP", elem_id="grid-api-archive")
    cells = gr.JSON(visible=False, label="Cells", elem_id="grid-api-cells")

    async def grid_api(prompt: str, model: str | None = None, seed: int | None = None, x_axis: str = MODEL,
                       x_values: str = "", y_axis: str | None = None, y_values: str = "", z_axis: str | None = None,
                       z_values: str = "", confirm: bool = False,
                       ) -> tuple[str | None, str | None, dict[str, Any], str]:
        """Run an X/Y/Z grid: one prompt, one image per cell, returned as a contact sheet and a ZIP.

        Each axis is a kind and its values, comma-separated or as ranges: ``x_axis="model"`` with
        ``x_values="FLUX.2-pro, FLUX.2-flex"``; ``"seed"`` with ``"1, 2, 3"``; a parameter such as
        ``"guidance"`` with ``"1.5-10 (4 values)"`` or ``"steps"`` with ``"20-50 (+10)"``; ``"size"`` with
        ``"1024x1024, 1344x768"``; ``"prompt"`` (search/replace: the first value is found in the prompt and
        each value replaces it). Y and Z are optional (None). ``model`` is the base model, used unless an
        axis is ``model``; ``seed`` is shared by every cell (None: one picked for all). A cell whose model
        does not take an axis is "na" and sends nothing. A grid of more than 20 images or $1 is sent only
        with ``confirm=True``.

        Returns (sheet, archive, cells, message): the contact sheet PNG (axes, captions, the grid's settings
        embedded), the ZIP (originals, the sheet, manifest.json and manifest.csv), and {id, axes, base,
        seed, shape, images, sent, elapsed_s, estimate, sheet, archive, cells: [one per cell, z then y then
        x: x, y, z, shown, model, prompt, params, size, outcome ("ok", "na" or "error"), message, file
        (its name in the ZIP), seed, history_id]}. ``message`` is empty, or says why nothing was sent.
        """
        form_values = GridForm(prompt, model, seed, ((x_axis, x_values), (y_axis, y_values), (z_axis, z_values)),
                               confirm)
        return await handle_grid(runtime, available, form_values, gate)

    grid_api.__name__ = "grid"  # MCP names the tool after the function
    grid_api.__signature__ = named_signature(["prompt"], API_OPTIONAL)  # type: ignore[attr-defined]
    inputs = [form.row.prompt, form.model, form.seed, *[c for a in form.axes for c in (a.kind, a.values)],
              form.confirm]
    trigger.click(as_caller(grid_api, runtime), inputs, [sheet, archive, cells, form.row.status], api_name="grid",
                  preprocess=False, concurrency_limit=None)


def build(ctx: TabContext) -> TabHandle:
    runtime = ctx.runtime
    available = grid_models(runtime.models)
    form = _form(runtime, available)
    res = _results()
    gate = quota_gate(ctx.demo)
    _wire_checks(runtime, available, form)
    _wire_run(runtime, available, form, res, gate)
    _wire_api(runtime, available, form, gate)
    wire_prompt_tools(runtime, form.row, "text-to-image")  # its cells are saved as text-to-image requests
    # Cells are saved as text-to-image requests, so History loads them there; none names this tab.
    return TabHandle(tab_id="grid", name="grid", models=available)
