"""The Grid tab's handlers without a browser: axes checked as typed, the plan line, confirmation, the run,
History's record of each cell, the exports and Stop."""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from PIL import Image

from conftest import FAST
from flux_ui.emulator import EmulatorConfig
from flux_ui.errors import ValidationError
from flux_ui.exports import Axis
from flux_ui.exports.sheet import layout_for
from flux_ui.grid import MAX_VALUES
from flux_ui.pacing import Quota
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import grid_run, grid_tab, grid_view
from flux_ui.ui.common import TabHandle
from flux_ui.ui.edge import written_files
from flux_ui.ui.fanout import Slot
from flux_ui.ui.grid_run import NONE, GridForm
from flux_ui.ui.history_reuse import target_handle

PRO, FLEX = "FLUX.2-pro", "FLUX.2-flex"
TWO = f"{PRO}, {FLEX}"


def form(prompt: str = "a paper boat", model: str = PRO, seed: Any = None, x: tuple[Any, Any] = ("model", TWO),
         y: tuple[Any, Any] = (NONE, ""), z: tuple[Any, Any] = (NONE, ""), confirm: Any = False) -> GridForm:
    return GridForm(prompt, model, seed, (x, y, z), confirm)


@pytest.fixture
async def paced(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on the emulator's own quotas (FLUX.2 [flex]: one request per 12 s, its low tier)."""
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None)
    running = start_runtime(settings, EmulatorConfig(rng_seed=3), {**FAST, FLEX: Quota(1, 12.0)})
    yield running
    await running.aclose()


def plain(markdown: str) -> str:
    """Inert Markdown as the page shows it: the escapes gone."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def deployed(rt: Runtime) -> list[str]:
    return grid_run.grid_models(rt.models)


# --- the axes, checked as they are typed -------------------------------------------------------------

def test_each_axis_says_what_its_values_make_or_what_is_wrong(runtime: Runtime) -> None:
    models = deployed(runtime)
    x, y, z = map(plain, grid_view.axis_checks(FLEX, [("model", TWO), ("seed", "1, 2, 3"), (NONE, "")], models))
    assert x == "✓ 2 values: FLUX.2 [pro] · FLUX.2 [flex]"
    assert y == "✓ 3 values: 1 · 2 · 3" and z == ""
    x, y, _ = map(plain, grid_view.axis_checks(FLEX, [("guidance", "1.5-10 (4 values)"), ("steps", "20-50 (+10)"),
                                                     (NONE, "")], models))
    assert x == "✓ 4 values: 1.5 · 4.33333 · 7.16667 · 10" and y == "✓ 4 values: 20 · 30 · 40 · 50"
    bad = [plain(line) for line in grid_view.axis_checks(PRO, [("model", "FLUX.3-ultra"), ("seed", "1, 1"),
                                                               ("guidance", "")], models)]
    assert bad[0].startswith("⚠️ Unknown model 'FLUX.3-ultra'; choose from FLUX.2 [pro], FLUX.2 [flex]")
    assert "lists 1 twice" in bad[1] and bad[2].startswith("⚠️ Enter at least one guidance value")


def test_values_are_checked_against_the_models_in_play(runtime: Runtime) -> None:
    models = deployed(runtime)
    on_pro = grid_view.axis_checks(PRO, [("guidance", "2, 5"), (NONE, ""), (NONE, "")], models)[0]
    assert on_pro.startswith("⚠️") and "guidance" in on_pro  # FLUX.2 [pro] takes none
    on_both = grid_view.axis_checks(PRO, [("model", TWO), ("guidance", "2, 5"), (NONE, "")], models)[1]
    assert plain(on_both) == "✓ 2 values: 2 · 5"  # flex takes it: pro's cells will be n/a
    too_many = grid_view.axis_checks(PRO, [("seed", f"0-{MAX_VALUES} (+1)"), (NONE, ""), (NONE, "")], models)[0]
    assert too_many.startswith("⚠️") and str(MAX_VALUES) in too_many


def test_typed_text_is_shown_inert(runtime: Runtime) -> None:
    prompt_axis = grid_view.axis_checks(PRO, [("prompt", "fox, <img src=x onerror=alert(1)>, **owl**"), (NONE, ""),
                                              (NONE, "")], deployed(runtime))[0]
    assert "<img" not in prompt_axis and "&lt;img" in prompt_axis and r"\*\*owl\*\*" in prompt_axis
    line, _ = grid_view.plan_line(runtime, deployed(runtime), form(x=("model", "[pro](http://x), <b>")))
    assert "](" not in line and "<b>" not in line  # the refusal quotes what was typed, inert
    assert "Unknown model '[pro](http://x)'" in plain(line)


def test_every_axis_kind_has_an_example() -> None:
    from flux_ui.grid import axis_kinds

    assert all(grid_view.placeholder(kind) for kind in axis_kinds())
    assert grid_view.placeholder("model") == "FLUX.2-pro, FLUX.2-flex"
    assert grid_view.placeholder("guidance") == "1.5-10 (4 values), or 2, 3.5, 5"


# --- the plan line and the confirmation -----------------------------------------------------------------

async def test_the_plan_line_shows_images_cost_and_the_quotas_time(paced: Runtime) -> None:
    models = deployed(paced)
    line, est = grid_view.plan_line(paced, models, form(model=FLEX, x=("seed", "1-12 (+1)")))
    assert est is not None and est.images == 12
    assert plain(line).startswith("**Before Run**: 12 images · ≈ $0.")
    assert plain(line).endswith("≈ 2 min 24 s (FLUX.2 [flex] low tier: 5 per minute)")  # 11 waits of 12 s, then one
    line, est = grid_view.plan_line(paced, models, form(x=("model", TWO), y=("guidance", "2, 5")))
    assert est is not None and est.images == 2 and "2 cells n/a" in plain(line)
    line, est = grid_view.plan_line(paced, models, form(x=("seed", "x")))
    assert est is None and plain(line).startswith("**Before Run**: ⚠️ X axis: seed value 'x' is not a number")
    line, est = grid_view.plan_line(paced, models, form(prompt=" "))
    assert est is not None and line.endswith("write a prompt to run it")  # the cost shows before the prompt


async def test_a_large_grid_is_sent_only_once_confirmed(runtime: Runtime) -> None:
    models = deployed(runtime)
    big = form(x=("model", TWO), y=("seed", "1-16 (+1)"))
    line, est = grid_view.plan_line(runtime, models, big)
    assert est is not None and est.images == 32 and line.endswith("tick the box below to send them")
    box, named = grid_view.confirm_update(est, 0)
    assert box["visible"] is True and box["value"] is False and named == 32
    assert box["label"] == "I understand this sends 32 requests"
    assert "value" not in grid_view.confirm_update(est, 32)[0]  # a tick stays while the count does
    before = len(runtime.emulator.requests())  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="Not sent: this grid sends 32 requests"):
        grid_tab.prepare(runtime, models, big)
    sheet, archive, cells, message = await grid_tab.handle_grid(runtime, models, big)
    assert (sheet, archive, cells["cells"]) == (None, None, [])
    assert "confirm=True" in message and "Nothing was sent" in message
    assert len(runtime.emulator.requests()) == before  # type: ignore[union-attr]
    assert grid_tab.prepare(runtime, models, replace(big, confirm=True)).to_send == 32
    small = grid_view.confirm_update(grid_view.plan_line(runtime, models, form())[1], 32)[0]
    assert small["visible"] is False


@pytest.mark.parametrize(("changes", "expected"), [
    ({"prompt": ""}, "The prompt is empty"),
    ({"x": (NONE, "")}, "Choose what the X axis varies"),
    ({"z": ("seed", "1, 2")}, "The Z axis is set but Y is not"),
    ({"x": ("seed", "1"), "y": ("seed", "2")}, "Seed is on two axes"),
    ({"x": (7, "1")}, "must be named as text"),
    ({"seed": -4, "x": ("guidance", "2"), "model": FLEX}, "whole number from 0"),
    ({"x": ("model", "FLUX.1-schnell, FLUX.2-pro"), "y": ("size", "64x99999")}, "Size 64×99999 suits no chosen model"),
])
def test_what_no_cell_could_fix_refuses_the_grid(runtime: Runtime, changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("[", r"\[")):
        grid_tab.prepare(runtime, deployed(runtime), form(**changes))


# --- a run, its History records and its exports -------------------------------------------------------

async def test_a_grid_saves_each_cell_as_a_text_to_image_request_of_its_group(runtime: Runtime) -> None:
    grid = grid_tab.prepare(runtime, deployed(runtime), form(seed=77, x=("model", TWO), y=("seed", "5, 6")))
    async for _ in grid_run.run_grid(runtime, grid):
        pass
    assert grid.finished and grid.images == 4 and sorted(grid.arrivals) == [0, 1, 2, 3]
    entries = runtime.history.list(text="a paper boat")
    assert len(entries) == 4 and {e.tab for e in entries} == {"text-to-image"}
    groups = [e.settings["group"] for e in entries]
    assert {g["id"] for g in groups} == {grid.id} and {g["kind"] for g in groups} == {"grid"}
    assert sorted(tuple(g["cell"]) for g in groups) == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]
    pro_6 = next(e for e in entries if e.model == PRO and e.seed == 6)
    assert pro_6.settings["group"]["cell"] == [0, 1, 0]
    assert [(a["label"], a["value"]) for a in pro_6.settings["group"]["axes"]] == [("Model", "FLUX.2 [pro]"),
                                                                                   ("Seed", "6")]
    t2i, mine = TabHandle("t2i", "text-to-image", outputs=[gr.Textbox()]), TabHandle("grid", "grid")
    assert target_handle([t2i, mine], pro_6.settings) == (t2i, None)  # "reuse settings" goes to Text to image


async def test_the_exports_hold_every_cell_and_are_served(runtime: Runtime) -> None:
    grid = grid_tab.prepare(runtime, deployed(runtime), form(x=("model", TWO), y=("guidance", "2, 5")))
    async for _ in grid_run.run_grid(runtime, grid):
        pass
    exports = await grid_run.export_grid(runtime, grid)
    assert exports.problem is None and exports.files == 2 and exports.sheet and exports.archive
    assert exports.archive.parent == runtime.history.folder / "exports" / grid.id
    gate = written_files(runtime.history.folder)
    assert gate.knows(exports.sheet) and gate.knows(exports.archive)  # the file route serves them
    with zipfile.ZipFile(exports.archive) as zf:
        names = zf.namelist()
    assert sorted(n for n in names if n.endswith(".jpg")) == [f"y1-x2_{FLEX}_seed{grid.plan.seed}.jpg",
                                                              f"y2-x2_{FLEX}_seed{grid.plan.seed}.jpg"]
    assert {"manifest.json", "manifest.csv", "contact-sheet.png"} <= set(names)
    payload = grid_run.cells_payload(grid, exports)
    assert [c["outcome"] for c in payload["cells"]] == ["na", "ok", "na", "ok"]
    assert payload["cells"][0]["message"] == "FLUX.2 [pro] takes no guidance" and payload["cells"][0]["file"] is None
    assert payload["cells"][1]["file"] == f"y1-x2_{FLEX}_seed{grid.plan.seed}.jpg"
    assert payload["cells"][3]["params"]["guidance"] == 5.0 and payload["shape"] == [2, 2, 1]
    summary = grid_view.summary(grid, exports)
    assert summary.startswith("Done: 2 of 2 images") and "2 n/a (nothing sent)" in summary


async def test_a_z_axis_stacks_blocks_on_the_sheet_and_prefixes_the_files(runtime: Runtime) -> None:
    three = form(model=FLEX, x=("guidance", "2, 5"), y=("seed", "1, 2"), z=("steps", "20, 30"))
    sheet, archive, cells, message = await grid_tab.handle_grid(runtime, deployed(runtime), three)
    assert message == "" and cells["shape"] == [2, 2, 2] and cells["images"] == 8
    axes = [Axis("Guidance", ("2", "5")), Axis("Seed", ("1", "2")), Axis("Steps (steps)", ("20", "30"))]
    with Image.open(str(sheet)) as img:
        assert img.size == layout_for(*axes, title="a paper boat").size
    with zipfile.ZipFile(str(archive)) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))
    assert names[0] == f"z1-y1-x1_{FLEX}_seed1.jpg" and names[-1] == f"z2-y2-x2_{FLEX}_seed2.jpg"
    assert [c["params"]["steps"] for c in cells["cells"]] == [20] * 4 + [30] * 4


@pytest.mark.asyncio(loop_scope="module")
async def test_the_page_streams_the_cells_then_shows_the_sheet_and_the_files(module_runtime: Runtime,
                                                                             demo: gr.Blocks) -> None:
    event = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "run_grid_ui")
    values = {"grid-prompt": "a kite over dunes", "grid-x-axis": "model", "grid-x-values": TWO,
              "grid-y-axis": "seed", "grid-y-values": "1, 2"}
    args = [values.get(c.elem_id or "", getattr(c, "value", None)) for c in event.inputs[:-1]] + [{}]
    frames = [out async for out in event.fn(*args)]
    shown = [dict(zip(event.outputs, f, strict=True)) for f in frames]
    ids = {c.elem_id: c for c in event.outputs}
    status, gallery, sheet, files = (ids[i] for i in ("grid-status", "grid-gallery", "grid-sheet", "grid-files"))
    assert shown[0][status].startswith("⏳ 0 of 4 done") and shown[0][ids["grid-stop"]]["visible"] is True
    last = shown[-1]
    assert last[status].startswith("Done: 4 of 4 images") and last[ids["grid-stop"]]["visible"] is False
    captions = [c for _, c in last[gallery]["value"]]
    assert captions == ["FLUX.2 [pro] · seed 1", "FLUX.2 [flex] · seed 1", "FLUX.2 [pro] · seed 2",
                        "FLUX.2 [flex] · seed 2"]
    assert last[sheet]["value"].endswith(".png") and [Path(p).suffix for p in last[files]["value"]] == [".png", ".zip"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_refused_run_sends_nothing_and_keeps_the_form(module_runtime: Runtime, demo: gr.Blocks) -> None:
    event = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "run_grid_ui")
    args = [getattr(c, "value", None) for c in event.inputs[:-1]] + [{}]  # the page as it opens: no prompt
    before = len(module_runtime.emulator.requests())  # type: ignore[union-attr]
    frames = [out async for out in event.fn(*args)]
    assert len(frames) == 1 and frames[0][0].startswith("⚠️ The prompt is empty")
    assert all(v == {"__type__": "update"} for v in frames[0][1:])
    assert len(module_runtime.emulator.requests()) == before  # type: ignore[union-attr]


# --- waves, captions and Stop ---------------------------------------------------------------------------

def test_a_models_cells_beyond_what_its_quota_sends_in_time_wait_for_the_next_wave() -> None:
    slots = [Slot(PRO), Slot(FLEX), Slot(PRO, na="n/a"), Slot(PRO), Slot(FLEX), Slot(PRO), Slot(FLEX)]
    caps = {PRO: 2, FLEX: 1}
    assert grid_run.waves(slots, caps.__getitem__) == [[0, 1, 3], [4, 5], [6]]
    assert grid_run.waves(slots, lambda m: 100) == [[0, 1, 3, 4, 5, 6]]


async def test_stop_sends_nothing_more_and_says_how_many_were_sent(paced: Runtime) -> None:
    grid = grid_tab.prepare(paced, deployed(paced), form(prompt="a stopped grid", model=FLEX, x=("seed", "1, 2, 3")))
    stream = grid_run.run_grid(paced, grid)
    async for running in stream:
        if running.arrivals:  # the first is back; the others wait 12 s and 24 s for FLUX.2 [flex]'s quota
            break
    assert grid_view.progress_line(grid).startswith("⏳ 1 of 3 done")
    await stream.aclose()  # what Gradio does when Stop cancels the event
    assert grid_view.stopped_text(grid) == ("⏹ Stopped: 1 of 3 sent; it is saved in History. Nothing more is "
                                            "sent.")
    await paced.jobs.wait(5.0)
    sent = [r for r in paced.emulator.requests() if r["prompt"] == "a stopped grid"]  # type: ignore[union-attr]
    assert len(sent) == 1 and sent[0]["params"]["seed"] == 1
    assert [e.seed for e in paced.history.list(text="a stopped grid")] == [1]


def test_stop_before_a_grid_or_a_send_says_so() -> None:
    assert grid_view.stopped_text(None).startswith("⏹ Stopped waiting")
    grid = grid_run.Grid(slots=[Slot(PRO), Slot(PRO)], plan=None, estimate=None)  # type: ignore[arg-type]
    assert grid_view.stopped_text(grid) == "⏹ Stopped: none of 2 sent, so nothing is billed."
