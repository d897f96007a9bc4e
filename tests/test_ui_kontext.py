"""The Kontext edit tab without a browser: routes, parameters, the edit trail, and real edits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from PIL import Image, ImageStat

from conftest import SAMPLES
from flux_ui.errors import ContentRefusedError, ValidationError
from flux_ui.registry import MODELS, Route
from flux_ui.runtime import Runtime
from flux_ui.ui import kontext, kontext_edit, kontext_trail
from flux_ui.ui.common import TabContext
from flux_ui.ui.kontext_edit import EditDone
from flux_ui.ui.kontext_trail import Step

KONTEXT = "FLUX.1-Kontext-pro"


def mean_rgb(path: str | Path) -> list[float]:
    """The mean colour as the emulator's request log measures a reference."""
    img = Image.open(path).convert("RGB")
    img.thumbnail((768, 768), Image.Resampling.BILINEAR)
    return [round(v, 1) for v in ImageStat.Stat(img).mean]




async def edit(runtime: Runtime, prompt: str, image: str, trail: list[Step], route: Route = Route.BFL,
               params: dict[str, Any] | None = None) -> EditDone:
    steps = [s async for s in kontext_edit.run_edit(runtime, KONTEXT, prompt, image, route, params or {}, trail)]
    done = steps[-1]
    assert isinstance(done, EditDone)
    return done


# --- models, routes, parameters -------------------------------------------------------------

def test_only_models_that_edit_one_picture_are_offered() -> None:
    assert kontext_edit.edit_models(tuple(MODELS)) == [KONTEXT]
    assert kontext_edit.edit_models(("FLUX.2-pro", "FLUX-1.1-pro")) == []
    assert KONTEXT in kontext_edit.no_model_text() and "FLUX_DEPLOYMENTS" in kontext_edit.no_model_text()


def test_routes_are_the_ones_that_carry_an_input_image() -> None:
    spec = MODELS[KONTEXT]
    assert kontext_edit.route_choices(spec) == [("BFL route", "bfl"), ("Image API edits", "images/edits")]
    assert kontext_edit.parse_route(spec, None) is Route.BFL
    assert kontext_edit.parse_route(spec, "images/edits") is Route.IMAGES_EDITS
    with pytest.raises(ValidationError, match="'bfl', 'images/edits'"):
        kontext_edit.parse_route(spec, "sideways")


def test_the_image_api_route_leaves_out_what_it_does_not_carry() -> None:
    values = {"aspect_ratio": "16:9", "seed": 5, "prompt_upsampling": True, "safety_tolerance": 1,
              "output_format": "jpeg"}
    assert kontext_edit.edit_params(KONTEXT, Route.BFL, values, False) == values
    assert kontext_edit.edit_params(KONTEXT, Route.IMAGES_EDITS, values, False) == {"aspect_ratio": "16:9",
                                                                                "output_format": "jpeg"}
    assert kontext_edit.edit_params(KONTEXT, Route.BFL, {**values, "aspect_ratio": ""}, True) == {
        "prompt_upsampling": True, "safety_tolerance": 1, "output_format": "jpeg"}  # "" matches the input
    note = kontext_edit.route_note(MODELS[KONTEXT], Route.IMAGES_EDITS)
    assert "seed, prompt upsampling, safety tolerance are not sent" in note
    assert kontext_edit.route_note(MODELS[KONTEXT], Route.BFL) == ""


def test_controls_use_the_editing_bounds_and_offer_match_the_input() -> None:
    spec = MODELS[KONTEXT]
    with gr.Blocks():
        safety = kontext_edit.make_control(spec.param("safety_tolerance"), [KONTEXT])  # type: ignore[arg-type]
        ratio = kontext_edit.make_control(spec.param("aspect_ratio"), [KONTEXT])  # type: ignore[arg-type]
    assert safety.maximum == 2 and safety.elem_id == "kontext-safety_tolerance"
    assert ratio.choices[0] == ("Match the input image", "") and ratio.value == ""
    assert ("16:9", "16:9") in ratio.choices
    update = kontext_edit.control_update(spec, "safety_tolerance", Route.BFL)
    assert update["maximum"] == 2 and update["visible"] is True
    assert kontext_edit.control_update(spec, "seed", Route.IMAGES_EDITS)["visible"] is False
    assert kontext_edit.control_update(spec, "output_format", Route.IMAGES_EDITS)["visible"] is True


def test_without_an_edit_model_the_tab_says_so() -> None:
    with gr.Blocks() as demo:
        handle = kontext.build(TabContext(SimpleNamespace(models=("FLUX.2-pro",)), demo))  # type: ignore[arg-type]
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert kontext_edit.no_model_text() in texts
    assert handle.name == "kontext" and handle.outputs == []


def test_apply_loads_settings_back_and_asks_for_the_image() -> None:
    with gr.Blocks() as demo:
        handle = kontext.build(TabContext(SimpleNamespace(models=(KONTEXT,)), demo))  # type: ignore[arg-type]
    settings = {"model": KONTEXT, "prompt": "make it night", "route": "bfl", "seed": 42,
                "params": {"seed": 42, "safety_tolerance": 1, "output_format": "jpeg", "aspect_ratio": "4:3"}}
    updates = handle.apply(settings)
    assert len(updates) == len(handle.outputs)
    by_id = {c.elem_id: u for c, u in zip(handle.outputs, updates, strict=True)}
    assert by_id["kontext-model"]["value"] == KONTEXT and by_id["kontext-prompt"]["value"] == "make it night"
    assert by_id["kontext-route"]["value"] == "bfl" and by_id["kontext-randomize"]["value"] is False
    assert by_id["kontext-seed"]["value"] == 42 and by_id["kontext-safety_tolerance"]["value"] == 1
    assert by_id["kontext-aspect_ratio"]["value"] == "4:3" and by_id["kontext-output_format"]["value"] == "jpeg"
    assert "drop the input image in again" in by_id["kontext-status"]
    edits = handle.apply({"model": KONTEXT, "prompt": "p", "route": "images/edits", "params": {"n": 1}})
    by_id = {c.elem_id: u for c, u in zip(handle.outputs, edits, strict=True)}
    assert by_id["kontext-route"]["value"] == "images/edits" and by_id["kontext-seed"]["visible"] is False
    assert by_id["kontext-aspect_ratio"]["value"] == ""
    assert handle.apply({"model": "FLUX.2-pro"}) == [gr.update()] * len(handle.outputs)


# --- the trail ------------------------------------------------------------------------------

A, B, C, D = (Step(f"/{n}.png", n) for n in "abcd")


def test_a_chain_grows_the_trail_and_marks_the_source() -> None:
    trail, at, note = kontext_trail.extend_trail([], A, Step("/b.png", "b", "make it night"))
    assert [s.digest for s in trail] == ["a", "b"] and at == 0 and note == ""
    trail, at, note = kontext_trail.extend_trail(trail, Step("/copy-of-b.png", "b"), Step("/c.png", "c", "add snow"))
    assert [s.digest for s in trail] == ["a", "b", "c"] and at == 1 and note == ""
    assert kontext_trail.trail_gallery(trail) == [("/a.png", "original"), ("/b.png", "edit 1: make it night"),
                                            ("/c.png", "edit 2: add snow")]
    assert kontext_trail.trail_text(trail, 1).splitlines()[1] == "- edit 1: make it night ◀ **input now**"


def test_an_edit_from_an_earlier_step_branches_and_says_what_left() -> None:
    trail = [A, Step("/b.png", "b", "make it night"), Step("/c.png", "c", "add snow")]
    new, at, note = kontext_trail.extend_trail(trail, A, Step("/d.png", "d", "make it day"))
    assert [s.digest for s in new] == ["a", "d"] and at == 0
    assert note.startswith("New branch from original: edit 1: make it night, edit 2: add snow left the trail")
    assert "History keeps them" in note


def test_an_unknown_picture_starts_a_new_trail() -> None:
    new, at, note = kontext_trail.extend_trail([A, B], C, Step("/d.png", "d", "x"))
    assert [s.digest for s in new] == ["c", "d"] and at == 0 and "new trail" in note


def test_trail_texts() -> None:
    assert kontext_trail.trail_text([], None) == kontext_trail.EMPTY_TRAIL
    assert "your own picture" in kontext_trail.trail_text([A, B], None)
    trail = [A, Step("/b.png", "b", "x " * 40), Step("/c.png", "c", "y")]
    assert kontext_trail.step_label(1, trail[1], 20) == "edit 1: " + "x " * 9 + "x…"
    assert "later 2 steps stay in the trail" in kontext_trail.step_back_text(trail, 0)
    assert kontext_trail.step_back_text(trail, 2) == "edit 2: y is the input now."


# --- real edits through the emulator ----------------------------------------------------------

async def test_a_chain_of_two_edits_sends_each_result_as_the_next_input(runtime: Runtime) -> None:
    original = str(SAMPLES / "astronaut.png")
    first = await edit(runtime, "make it night", original, [])
    assert first.current == 0 and [s.instruction for s in first.trail] == [None, "make it night"]
    assert first.generated.entry.tab == "kontext"
    second = await edit(runtime, "add snow", first.generated.path, first.trail)
    assert second.current == 1 and len(second.trail) == 3 and second.note == ""
    log = runtime.emulator.requests()  # type: ignore[union-attr]
    ref = log[1]["references"][0]
    assert (ref["width"], ref["height"]) == first.generated.result.size
    assert ref["mean_rgb"] == pytest.approx(mean_rgb(first.generated.path), abs=2.0)
    assert log[0]["references"][0]["width"] == 512
    third = await edit(runtime, "make it day", original, second.trail)  # back to the original: a branch
    assert third.current == 0 and len(third.trail) == 2 and "left the trail" in third.note
    assert runtime.emulator.requests()[2]["references"] == log[0]["references"]  # type: ignore[union-attr]


async def test_the_image_api_route_sends_to_images_edits(runtime: Runtime) -> None:
    original = str(SAMPLES / "chelsea.png")
    params = kontext_edit.edit_params(KONTEXT, Route.IMAGES_EDITS, {"seed": 3, "output_format": "jpeg"}, False)
    done = await edit(runtime, "make the cat blue", original, [], Route.IMAGES_EDITS, params)
    logged = runtime.emulator.requests()[-1]  # type: ignore[union-attr]
    assert logged["route"] == "images/edits" and "seed" not in logged["params"]
    assert done.generated.result.format == "jpeg"
    assert "did not apply" in kontext_edit.done_status(done, Route.IMAGES_EDITS)


async def test_errors_propagate_and_nothing_is_sent_without_an_image(runtime: Runtime) -> None:
    with pytest.raises(ValidationError, match="Input image"):
        await edit(runtime, "make it night", None, [])  # type: ignore[arg-type]
    assert runtime.emulator.requests() == []  # type: ignore[union-attr]
    original = str(SAMPLES / "astronaut.png")
    with pytest.raises(ContentRefusedError):
        await edit(runtime, "please refuse-me", original, [])
