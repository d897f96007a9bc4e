"""The edit tab's handlers without a browser: the reference list, the limit, the order sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from conftest import FAST, MULTI_REFERENCE_MODELS, solid_files
from flux_ui.emulator import EmulatorConfig
from flux_ui.errors import ReferenceImageError, ValidationError
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import edit, edit_cards, handlers
from flux_ui.ui import references as refs
from flux_ui.ui.common import TabContext, TabHandle
from flux_ui.ui.text import inert

#: The deployments these scenarios offer the Edit tab: the two FLUX.2 models.
BOTH = ["FLUX.2-pro", "FLUX.2-flex"]
COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10)]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None)
    rt = start_runtime(settings, EmulatorConfig(rng_seed=5), FAST)
    yield rt
    rt.close_sync()


@pytest.fixture
def solid(tmp_path: Path) -> list[str]:
    return solid_files(tmp_path, COLOURS, (64, 48))


def colour_of(mean_rgb: list[float]) -> int:
    """Which of COLOURS a reference was (JPEG re-encoding moves a channel by a unit or two)."""
    distances = [sum(abs(a - b) for a, b in zip(mean_rgb, c, strict=True)) for c in COLOURS]
    assert min(distances) < 12, mean_rgb
    return distances.index(min(distances))


def names(n: int) -> list[str]:
    return [f"/cache/{i}.png" for i in range(1, n + 1)]


# --- the reference list ---------------------------------------------------------------------

def test_only_models_taking_several_references_are_offered() -> None:
    assert edit.edit_models(tuple(MODELS)) == list(MULTI_REFERENCE_MODELS)
    assert all(MODELS[m].max_references > 1 for m in MULTI_REFERENCE_MODELS)
    assert set(BOTH) <= set(MULTI_REFERENCE_MODELS)  # the scenarios below offer Edit models only


def test_adding_up_to_the_limit_keeps_everything_in_order() -> None:
    kept, note = refs.add(names(3), ["/cache/new-a.png", "/cache/new-b.png"], "FLUX.2-pro")
    assert kept == [*names(3), "/cache/new-a.png", "/cache/new-b.png"] and note == ""


def test_an_eleventh_image_is_refused_by_number_and_nothing_is_lost() -> None:
    kept, note = refs.add(names(10), ["/cache/eleven.png"], "FLUX.2-flex")
    assert kept == names(10)
    assert note == "FLUX.2 [flex] takes at most 10 reference images; image 11 was not added."


def test_a_batch_past_the_limit_adds_what_fits_and_names_the_rest() -> None:
    kept, note = refs.add(names(6), names(4), "FLUX.2-pro")
    assert kept == names(6) + names(2)
    assert note == "FLUX.2 [pro] takes at most 8 reference images; images 9 and 10 were not added."


def test_adding_while_already_over_a_lower_limit_keeps_the_list() -> None:
    kept, note = refs.add(names(10), ["/cache/x.png"], "FLUX.2-pro")
    assert kept == names(10) and "image 11 was not added" in note


@pytest.mark.parametrize(("index", "offset", "expected"), [
    (2, -1, [1, 3, 2, 4]),
    (2, -10, [3, 1, 2, 4]),  # to the front
    (0, -1, [1, 2, 3, 4]),  # already first
    (0, 1, [2, 1, 3, 4]),
    (3, 1, [1, 2, 3, 4]),  # already last
    (7, 1, [1, 2, 3, 4]),  # a stale slot from an old render
])
def test_move(index: int, offset: int, expected: list[int]) -> None:
    assert refs.move(names(4), index, offset) == [f"/cache/{i}.png" for i in expected]


@pytest.mark.parametrize(("index", "target", "expected"), [
    (2, 0, [3, 1, 2, 4]),  # image 3 dropped on image 1 takes its place
    (0, 3, [2, 3, 4, 1]),
    (1, 1, [1, 2, 3, 4]),
    (1, 9, [1, 3, 4, 2]),  # past the end: last
    (6, 0, [1, 2, 3, 4]),  # a card from an older list
])
def test_move_to(index: int, target: int, expected: list[int]) -> None:
    assert refs.move_to(names(4), index, target) == [f"/cache/{i}.png" for i in expected]


@pytest.mark.parametrize(("value", "move"), [
    ("3 1 1712-1", (2, 0)), ("1 4 x", (0, 3)), ("", None), (None, None), ("3", None), ("a b c", None),
    ("0 2 x", None), ("-1 2 x", None),
])
def test_a_drop_from_the_page_is_read_or_ignored(value: Any, move: tuple[int, int] | None) -> None:
    assert edit_cards.dropped(value) == move


def test_remove_and_replace_touch_one_slot() -> None:
    original = names(4)
    assert refs.remove(original, 1) == ["/cache/1.png", "/cache/3.png", "/cache/4.png"]
    assert refs.replace(original, 2, "/cache/new.png") == ["/cache/1.png", "/cache/2.png", "/cache/new.png",
                                                            "/cache/4.png"]
    assert refs.replace(original, 2, None) == original
    assert original == names(4)  # never changed in place: gr.State must see a new list


def test_over_the_limit_says_nothing_will_be_sent_until_the_extra_ones_go() -> None:
    assert refs.over_limit(names(10), "FLUX.2-pro", BOTH) == (
        "FLUX.2 [pro] takes at most 8 reference images and there are 10 (images 9 and 10 are over the limit): "
        "nothing will be sent until you remove two or switch back to FLUX.2 [flex].")
    assert refs.over_limit(names(9), "FLUX.2-pro", BOTH).startswith(
        "FLUX.2 [pro] takes at most 8 reference images and there are 9 (image 9 is over the limit): nothing will")
    assert refs.over_limit(names(8), "FLUX.2-pro", BOTH) == ""
    assert refs.over_limit(names(10), "FLUX.2-flex", BOTH) == ""
    # Without a model that takes that many, the only fix offered is removing some.
    assert refs.over_limit(names(10), "FLUX.2-pro", ["FLUX.2-pro"]).endswith("remove two.")


def test_the_summary_counts_and_warns() -> None:
    assert "No reference images yet" in refs.summary([], "FLUX.2-pro", BOTH)
    assert refs.summary(names(1), "FLUX.2-flex", BOTH) == "**1 reference image** · FLUX.2 [flex] takes up to 10"
    over = refs.summary(names(10), "FLUX.2-pro", BOTH)
    assert over.startswith("**10 reference images** · FLUX.2 [pro] takes up to 8")
    assert refs.over_limit(names(10), "FLUX.2-pro", BOTH) in over


def test_image_numbers_read_naturally() -> None:
    assert refs.image_numbers([3]) == "image 3"
    assert refs.image_numbers([9, 10]) == "images 9 and 10"
    assert refs.image_numbers([8, 9, 10]) == "images 8, 9 and 10"


def test_a_card_over_the_limit_says_what_the_message_says() -> None:
    """The summary, Generate's refusal and the marked cards use the same words, and nothing is called "sent"."""
    message = refs.over_limit(names(10), "FLUX.2-pro", BOTH)
    assert f"are {refs.OVER}" in message and "nothing will be sent until you remove two" in message
    with gr.Blocks():
        slot = edit_cards.Slot.build(9)
    assert refs.OVER in slot.unsent.value and "sent" not in slot.unsent.value
    assert slot.show("/cache/9.png", 8, 10, sent=False)[2]["visible"] is True  # card 9 of 10 on pro: marked
    assert slot.show("/cache/9.png", 8, 10, sent=True)[2]["visible"] is False


def test_file_paths_accepts_what_gradio_hands_over() -> None:
    assert refs.file_paths(None) == [] and refs.file_paths([]) == []
    assert refs.file_paths(["/a.png", "/b.png"]) == ["/a.png", "/b.png"]
    assert refs.file_paths("/a.png") == ["/a.png"]


# --- what may be sent -----------------------------------------------------------------------

def test_over_the_limit_is_refused_with_the_same_words() -> None:
    with pytest.raises(ValidationError) as caught:
        edit.check_sendable("FLUX.2-pro", names(10), BOTH)
    assert str(caught.value) == refs.over_limit(names(10), "FLUX.2-pro", BOTH)


def test_no_references_or_a_text_only_model_is_refused() -> None:
    with pytest.raises(ValidationError, match="Add at least one reference image"):
        edit.check_sendable("FLUX.2-flex", [], BOTH)
    with pytest.raises(ValidationError, match=r"FLUX1.1 \[pro\] does not edit with several"):
        edit.check_sendable("FLUX-1.1-pro", names(1), BOTH)


async def collect(runtime: Runtime, model: str, paths: list[str], prompt: str = "combine them",
                  params: dict | None = None) -> handlers.Generated:
    steps = [s async for s in edit.run_edit(runtime, model, prompt, paths, params or {}, BOTH)]
    assert isinstance(steps[-1], handlers.Generated)
    return steps[-1]


async def test_references_are_sent_in_the_order_given(runtime: Runtime, solid: list[str]) -> None:
    order = [solid[2], solid[0], solid[3], solid[1]]
    done = await collect(runtime, "FLUX.2-flex", order, params={"seed": 11})
    sent = runtime.emulator.requests()[-1]
    assert [colour_of(r["mean_rgb"]) for r in sent["references"]] == [2, 0, 3, 1]
    assert [r["index"] for r in sent["references"]] == [1, 2, 3, 4]
    assert done.entry.tab == "edit" and done.result.seed == 11 and Path(done.path).exists()
    assert len(done.entry.settings["references"]) == 4


async def test_over_the_limit_sends_nothing(runtime: Runtime, solid: list[str]) -> None:
    with pytest.raises(ValidationError, match=r"\(images 9 and 10 are over the limit\): nothing will be sent"):
        await collect(runtime, "FLUX.2-pro", (solid * 3)[:10])
    assert runtime.emulator.requests() == []


async def test_a_broken_upload_is_named_by_its_slot(runtime: Runtime, solid: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not really a picture")
    with pytest.raises(ReferenceImageError, match="image 2") as caught:
        await collect(runtime, "FLUX.2-pro", [solid[0], str(broken), solid[1]])
    assert caught.value.index == 2
    assert runtime.emulator.requests() == []


async def test_a_file_gone_from_the_cache_is_named_by_its_slot(runtime: Runtime, solid: list[str]) -> None:
    with pytest.raises(ReferenceImageError, match="image 3 can no longer be read"):
        await collect(runtime, "FLUX.2-pro", [solid[0], solid[1], "/nonexistent/gone.png"])


# --- reuse settings from History ------------------------------------------------------------

def test_apply_loads_model_prompt_seed_and_parameters(runtime: Runtime) -> None:
    with gr.Blocks() as demo:
        handle = edit.build(TabContext(runtime, demo))
    assert handle.tab_id == "edit" and handle.name == "edit"
    settings = {"model": "FLUX.2-flex", "prompt": "the cat from image 2 on the sofa in image 1", "seed": 42,
                "params": {"guidance": 7.5, "steps": 20, "width": 768, "height": 512},
                "references": ["image 1: 64×48 png", "image 2: 64×48 png"]}
    updates = handle.apply(settings)
    assert len(updates) == len(handle.outputs)
    by_id = {c.elem_id: u for c, u in zip(handle.outputs, updates, strict=True)}
    assert by_id["edit-model"]["value"] == "FLUX.2-flex"
    assert by_id["edit-prompt"]["value"] == settings["prompt"]
    assert by_id["edit-randomize"]["value"] is False
    assert by_id["edit-param-seed"]["visible"] is True
    assert by_id["edit-param-guidance"]["value"] == 7.5 and by_id["edit-param-steps"]["value"] == 20
    assert by_id["edit-param-width"]["value"] == 768
    assert "add the reference images again, in the same order" in by_id["edit-status"]
    assert "two reference images" in by_id["edit-status"]


def test_apply_ignores_an_image_from_a_model_this_tab_does_not_offer(runtime: Runtime) -> None:
    with gr.Blocks() as demo:
        handle = edit.build(TabContext(runtime, demo))
    updates = handle.apply({"model": "FLUX-1.1-pro", "prompt": "x", "params": {}})
    assert len(updates) == len(handle.outputs) and all(u == gr.update() for u in updates)


# --- the page's events, called as the browser would ------------------------------------------

def built(runtime: Runtime) -> tuple[gr.Blocks, TabHandle]:
    with gr.Blocks() as demo:
        handle = edit.build(TabContext(runtime, demo))
    return demo, handle


def event(demo: gr.Blocks, name: str) -> Any:
    return next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name)


def by_id(outputs: list[Any], updates: list[Any]) -> dict[str, Any]:
    return {c.elem_id: u for c, u in zip(outputs, updates, strict=True) if c.elem_id}


def test_a_refused_uploads_note_goes_when_the_model_changes(runtime: Runtime) -> None:
    demo, _ = built(runtime)
    add, model_change = event(demo, "on_add"), event(demo, "on_model")
    added = add.fn(names(10), ["/cache/eleven.png"], "FLUX.2-flex")
    shown = by_id(add.outputs, added)
    assert shown["edit-refs-status"] == "⚠️ " + inert("FLUX.2 [flex] takes at most 10 reference images; image 11 was "
                                                     "not added.")
    states = [update for c, update in zip(add.outputs, added, strict=True) if isinstance(c, gr.State)]
    assert states == [names(10), True]  # the list, and "the note is a refused upload's"

    switched = by_id(model_change.outputs, model_change.fn(names(10), "FLUX.2-pro", True))
    assert switched["edit-refs-status"] == ""  # what fits has changed: the note no longer applies
    assert refs.over_limit(names(10), "FLUX.2-pro", BOTH) in switched["edit-refs-summary"]
    # Any other note (a reference that could not be read, from Generate) stays through a model change.
    kept = by_id(model_change.outputs, model_change.fn(names(3), "FLUX.2-pro", False))
    assert kept["edit-refs-status"] == gr.update()


def test_a_dropped_card_moves_the_list_on_the_server(runtime: Runtime) -> None:
    demo, _ = built(runtime)
    drag = event(demo, "on_drag")
    moved = drag.fn("3 1 1712-1", names(4), "FLUX.2-pro")
    assert moved[0] == [f"/cache/{i}.png" for i in (3, 1, 2, 4)]  # the list State, as the arrows leave it
    assert by_id(drag.outputs, moved)["edit-ref-1"] == "/cache/3.png"
    for stale in ("9 1 x", "garbage", ""):  # a card from an older list, or not a drop: nothing changes
        assert all(u == gr.update() for u in drag.fn(stale, names(4), "FLUX.2-pro"))


def saved_settings(files: list[str] | None, made: int) -> dict[str, Any]:
    settings: dict[str, Any] = {"model": "FLUX.2-pro", "prompt": "image 3 on image 1", "seed": 7, "params": {},
                                "references": [f"image {n}: 64×48 png" for n in range(1, made + 1)]}
    if files is not None:
        settings["input_files"] = files
    return settings


def test_apply_with_input_files_restores_the_references_in_order(runtime: Runtime, solid: list[str]) -> None:
    _, handle = built(runtime)
    order = [solid[2], solid[0], solid[3], solid[1]]
    updates = handle.apply(saved_settings(order, 4))
    assert len(updates) == len(handle.outputs)
    shown = by_id(handle.outputs, updates)
    assert shown["edit-prompt"]["value"] == "image 3 on image 1"
    assert shown["edit-refs-files"] == order  # what Generate sends
    assert [shown[f"edit-ref-{n}"] for n in range(1, 5)] == order
    assert shown["edit-card-4"]["visible"] is True and shown["edit-card-5"]["visible"] is False
    assert order in updates  # the list State too, which later moves start from
    assert shown["edit-status"] == "Settings loaded, with its four reference images in the order they were sent."
    assert shown["edit-refs-summary"].startswith("**4 reference images**")


def test_apply_names_what_history_no_longer_has(runtime: Runtime, solid: list[str]) -> None:
    _, handle = built(runtime)
    shown = by_id(handle.outputs, handle.apply(saved_settings([solid[1], "/gone/away.png", solid[0]], 3)))
    assert shown["edit-refs-files"] == [solid[1], solid[0]]
    assert "with 2 of the 3 reference images" in shown["edit-status"]
    assert "add them again, each in its place" in shown["edit-status"]


@pytest.mark.parametrize(("files", "status"), [
    (None, "saved before History kept them: add the reference images again, in the same order"),
    ([], "History no longer has the reference images that image was made from: add them again, in the same order"),
    (["/gone/away.png"], "History no longer has the reference images"),
])
def test_apply_without_input_files_keeps_the_cards_as_they_are(runtime: Runtime, files: list[str] | None,
                                                               status: str) -> None:
    _, handle = built(runtime)
    updates = handle.apply(saved_settings(files, 2))
    assert len(updates) == len(handle.outputs)
    shown = by_id(handle.outputs, updates)
    assert shown["edit-prompt"]["value"] == "image 3 on image 1"  # the form still loads
    assert all(shown[key] == gr.update() for key in ("edit-refs-files", "edit-card-1", "edit-refs-summary"))
    assert status in shown["edit-status"]
