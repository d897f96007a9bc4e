"""The Kontext edit tab without a browser: routes, parameters, the edit trail, and real edits."""

from __future__ import annotations

import uuid
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
from flux_ui.ui import handlers, kontext, kontext_edit, kontext_restore, kontext_trail
from flux_ui.ui.common import TabContext
from flux_ui.ui.fanout import in_group
from flux_ui.ui.kontext_edit import EditDone
from flux_ui.ui.kontext_trail import Step

KONTEXT = "FLUX.1-Kontext-pro"


def mean_rgb(path: str | Path) -> list[float]:
    """The mean colour as the emulator's request log measures a reference."""
    img = Image.open(path).convert("RGB")
    img.thumbnail((768, 768), Image.Resampling.BILINEAR)
    return [round(v, 1) for v in ImageStat.Stat(img).mean]




async def edit(runtime: Runtime, prompt: str, image: str, trail: list[Step], route: Route = Route.BFL,
               params: dict[str, Any] | None = None, chain: str | None = None) -> EditDone:
    steps = [s async for s in kontext_edit.run_edit(runtime, KONTEXT, prompt, image, route, params or {}, trail,
                                                    chain)]
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
    assert by_id["kontext-input"] == gr.update()  # History kept no input image: the box stays as it is
    edits = handle.apply({"model": KONTEXT, "prompt": "p", "route": "images/edits", "params": {"n": 1}})
    by_id = {c.elem_id: u for c, u in zip(handle.outputs, edits, strict=True)}
    assert by_id["kontext-route"]["value"] == "images/edits" and by_id["kontext-seed"]["visible"] is False
    assert by_id["kontext-aspect_ratio"]["value"] == ""
    assert handle.apply({"model": "FLUX.2-pro"}) == [gr.update()] * len(handle.outputs)


def test_apply_puts_the_stored_input_image_in_the_input_box(tmp_path: Path) -> None:
    with gr.Blocks() as demo:
        handle = kontext.build(TabContext(SimpleNamespace(models=(KONTEXT,)), demo))  # type: ignore[arg-type]
    stored = tmp_path / "input.png"
    stored.write_bytes((SAMPLES / "horse.png").read_bytes())
    settings = {"model": KONTEXT, "prompt": "paint the horse gold", "route": "bfl", "params": {},
                "input_files": [str(stored), str(tmp_path / "second.png")]}
    by_id = {c.elem_id: u for c, u in zip(handle.outputs, handle.apply(settings), strict=True)}
    assert by_id["kontext-input"] == str(stored) and by_id["kontext-prompt"]["value"] == "paint the horse gold"
    assert "input image they edited loaded" in by_id["kontext-status"]
    gone = handle.apply({**settings, "input_files": [str(tmp_path / "deleted.png")]})
    by_id = {c.elem_id: u for c, u in zip(handle.outputs, gone, strict=True)}
    assert by_id["kontext-input"] == gr.update() and "drop the input image in again" in by_id["kontext-status"]


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


def test_an_edit_knows_its_place_in_the_chain_before_it_is_sent() -> None:
    trail = [A, Step("/b.png", "b", "make it night")]
    assert kontext_trail.chain_place(trail, "b", "c" * 32) == ("c" * 32, 2)  # the next step of this chain
    assert kontext_trail.chain_place(trail, "a", "c" * 32) == ("c" * 32, 1)  # a branch from the original
    chain, step = kontext_trail.chain_place(trail, "z", "c" * 32)  # a new picture: a new chain
    assert chain != "c" * 32 and len(chain) == 32 and step == 1
    assert kontext_trail.chain_place([], "a", None)[1] == 1


def test_replaying_a_chain_gives_back_the_trail_with_its_branches() -> None:
    night, snow, day, rain = (Step(f"/{n}.png", n, n) for n in ("night", "snow", "day", "rain"))
    trail, current = kontext_trail.rebuilt(A, [(1, night), (2, snow)])
    assert trail == [A, night, snow] and current == 1
    trail, current = kontext_trail.rebuilt(A, [(1, night), (2, snow), (1, day), (2, rain)])
    assert trail == [A, day, rain] and current == 1  # the branch from the original, as extend_trail left it
    trail, current = kontext_trail.rebuilt(A, [(1, night), (3, snow), ("2", day), (True, rain)])
    assert trail == [A, night] and current == 0  # a step whose source is missing, or no step, is left out
    assert kontext_trail.rebuilt(A, []) == ([A], None)


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


# --- the trail back from History ------------------------------------------------------------------

async def test_each_step_is_saved_in_its_chain_and_the_trail_comes_back_from_it(runtime: Runtime) -> None:
    original = str(SAMPLES / "astronaut.png")
    first = await edit(runtime, "make it night", original, [])
    second = await edit(runtime, "add snow", first.generated.path, first.trail, chain=first.chain)
    assert second.chain == first.chain and len(first.chain) == 32
    saved = [runtime.history.get(d.generated.entry.id) for d in (first, second)]
    assert [e.settings["group"] for e in saved if e] == [{"kind": "kontext-trail", "id": first.chain, "step": n}
                                                         for n in (1, 2)]
    restored = kontext_restore.restore(runtime.history, first.chain)
    assert isinstance(restored, kontext_restore.Restored)
    assert [s.digest for s in restored.trail] == [s.digest for s in second.trail]  # the same pictures, in order
    assert [s.instruction for s in restored.trail] == [None, "make it night", "add snow"]
    assert restored.current == 1 and restored.latest.id == second.generated.entry.id
    assert Path(restored.trail[0].path).read_bytes() == Path(original).read_bytes()  # History's copy of the input

    value = kontext_restore.remembered(first.chain, None)
    updates = kontext_restore.restore_updates(runtime.history, value, None)
    assert len(updates) == kontext_restore.RESTORE_OUTPUTS
    trail, current, chain, gallery, listing, image, result, info, use, prompt, status = updates
    assert trail == restored.trail and current == 1 and chain == first.chain
    assert len(gallery["value"]) == 3 and gallery["selected_index"] == 1 and "◀ **input now**" in listing
    assert image == restored.trail[1].path and result == str(second.generated.entry.path)
    assert use["visible"] is True and prompt == "add snow"
    assert "back from History (2 edits)" in status and "edit 1: make it night is the input now" in status
    assert f"seed {second.generated.result.seed}" in info
    # the form already holds a picture and an instruction (History's "reuse settings"): they stay
    held = kontext_restore.restore_updates(runtime.history, value, None, original, "make it night")
    assert held[:3] == [restored.trail, 0, first.chain]  # the held picture is the trail's original
    assert held[5:] == [gr.update()] * (kontext_restore.RESTORE_OUTPUTS - 5) and "◀ **input now**" in held[4]
    elsewhere = kontext_restore.restore_updates(runtime.history, value, None, "", "make it night")
    assert elsewhere[1] is None and "your own picture" in elsewhere[4]  # a picture it could not read: no step

    third = await edit(runtime, "make it day", original, second.trail, chain=first.chain)  # a branch
    assert third.chain == first.chain
    branch = kontext_restore.restore(runtime.history, first.chain)
    assert isinstance(branch, kontext_restore.Restored)
    assert [s.instruction for s in branch.trail] == [None, "make it day"] and branch.current == 0
    other = await edit(runtime, "make the cat blue", str(SAMPLES / "chelsea.png"), third.trail, chain=first.chain)
    assert other.chain != first.chain  # another picture: a new chain, and the old one is still whole
    assert kontext_restore.restore(runtime.history, first.chain) == branch


async def test_a_chain_history_does_not_know_restores_nothing(runtime: Runtime) -> None:
    done = await edit(runtime, "make it night", str(SAMPLES / "astronaut.png"), [])
    nothing = [gr.update()] * kontext_restore.RESTORE_OUTPUTS
    for value in (None, "", "not a record", {"chain": uuid.uuid4().hex, "user": None}, {"chain": "../" * 11},
                  {"chain": done.chain.upper(), "user": None}, {"chain": done.chain, "user": "someone"},
                  {"chain": done.generated.entry.id, "user": None}, [done.chain]):
        assert kontext_restore.restore_updates(runtime.history, value, None) == nothing, value
    mine = kontext_restore.remembered(done.chain, "ada")
    assert "ada" not in str(mine)  # the browser keeps no user name
    assert kontext_restore.restore_updates(runtime.history, mine, "grace") == nothing  # another person's
    assert kontext_restore.restore_updates(runtime.history, mine, "ada")[2] == done.chain
    grid = uuid.uuid4().hex  # a group of another kind is no trail
    await handlers.generate(runtime, "FLUX.2-pro", "a red fox", {}, extra=in_group("grid", grid, cell=[0, 0]))
    assert runtime.history.list(group=grid) and kontext_restore.restore(runtime.history, grid) is None
    assert kontext_restore.restore_updates(runtime.history, {"chain": grid, "user": None}, None) == nothing


async def test_a_trail_whose_original_is_gone_says_so(runtime: Runtime, tmp_path: Path) -> None:
    picture = tmp_path / "mine.png"
    picture.write_bytes((SAMPLES / "coffee.png").read_bytes())
    done = await edit(runtime, "make it matcha", str(picture), [])
    entry = runtime.history.get(done.generated.entry.id)
    assert entry is not None and entry.inputs
    for stored in entry.inputs:
        stored.unlink()
    updates = kontext_restore.restore_updates(runtime.history, kontext_restore.remembered(done.chain, None), None)
    assert updates[:-1] == [gr.update()] * (kontext_restore.RESTORE_OUTPUTS - 1)  # the page keeps what it shows
    assert "original picture is no longer in the outputs folder" in updates[-1]


async def test_a_result_whose_file_is_gone_leaves_the_trail_before_it(runtime: Runtime) -> None:
    first = await edit(runtime, "make it night", str(SAMPLES / "astronaut.png"), [])
    second = await edit(runtime, "add snow", first.generated.path, first.trail, chain=first.chain)
    second.generated.entry.path.unlink()  # deleted by hand from the outputs folder
    restored = kontext_restore.restore(runtime.history, first.chain)
    assert isinstance(restored, kontext_restore.Restored)
    assert [s.instruction for s in restored.trail] == [None, "make it night"] and restored.current == 0
    assert restored.latest.id == first.generated.entry.id
