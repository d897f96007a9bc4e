"""Variations on the handlers: seeds consecutive or random, the count's bounds in words, each image saved to
History with its group, Stop keeping what was sent, and the page's gallery, downloads and code from the box."""

from __future__ import annotations

import asyncio
import contextlib
import random
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
import pytest_asyncio

from conftest import FAST, solid_files
from flux_ui.client import ProgressEvent
from flux_ui.emulator import EmulatorConfig, Fault
from flux_ui.errors import ValidationError
from flux_ui.pacing import Quota
from flux_ui.registry import SEED_MAX
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import edit, image_form, text_to_image, variations
from flux_ui.ui.common import upload_roots
from flux_ui.ui.edge import written_files

#: Async tests share the module-scoped runtime, so they run on its loop.
ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
SMALL = {"width": 256, "height": 256}
PRO, FLEX = "FLUX.2-pro", "FLUX.2-flex"


async def last(steps: AsyncIterator[Any]) -> Any:
    done = None
    async for step in steps:
        done = step
    return done


def sent_seeds(runtime: Runtime, prompt: str) -> list[int]:
    return [r["params"]["seed"] for r in runtime.emulator.requests() if r.get("prompt") == prompt]  # type: ignore[union-attr]


# --- the count and the seeds -------------------------------------------------------------------

@pytest.mark.parametrize("value, count", [(None, 1), ("", 1), (1, 1), (4, 4), (8, 8), (3.0, 3)])
def test_a_count_from_1_to_8_is_taken(value: Any, count: int) -> None:
    assert variations.parse_count(value) == count


@pytest.mark.parametrize("value, words", [
    (0, "Images per run (count) is 1 to 8; got 0"),
    (9, "Images per run (count) is 1 to 8; got 9"),
    (-2, "got -2"),
    (2.5, "must be a whole number from 1 to 8; got 2.5"),
    ("3", "must be a whole number from 1 to 8; got '3'"),
    (True, "got True"),
    (float("nan"), "got nan"),
])
def test_a_count_out_of_bounds_is_refused_in_words(value: Any, words: str) -> None:
    with pytest.raises(ValidationError, match="Images per run") as refused:
        variations.parse_count(value)
    assert words in str(refused.value) and refused.value.field == "count"


@ON_MODULE_LOOP
async def test_consecutive_seeds_run_on_from_the_chosen_seed(module_runtime: Runtime) -> None:
    prompt = "three foxes, consecutive"
    run = await last(text_to_image.handle_generate(module_runtime, PRO, prompt, False, {"seed": 41, **SMALL}, 3,
                                                   True))
    assert isinstance(run, variations.Variations) and run.finished and not run.stopped
    assert run.seeds == [41, 42, 43] and sorted(sent_seeds(module_runtime, prompt)) == [41, 42, 43]
    assert [g.result.seed for g in run.made] == [41, 42, 43]  # in seed order, whatever order they arrived in


@ON_MODULE_LOOP
async def test_unticked_the_first_keeps_the_seed_and_the_rest_are_random_and_distinct(module_runtime: Runtime) -> None:
    prompt = "four foxes, random"
    run = await last(text_to_image.handle_variations(module_runtime, PRO, prompt, False, {"seed": 41, **SMALL}, 4,
                                                     False))
    assert run.seeds[0] == 41 and len(set(run.seeds)) == 4
    assert run.seeds[1:] != [42, 43, 44]


@ON_MODULE_LOOP
async def test_randomize_seed_gives_random_distinct_seeds_even_with_consecutive_ticked(module_runtime: Runtime) -> None:
    run = await last(text_to_image.handle_variations(module_runtime, PRO, "four foxes, randomized", True,
                                                     {"seed": 41, **SMALL}, 4, True))
    assert len(set(run.seeds)) == 4 and 41 not in run.seeds
    assert run.seeds != list(range(run.seeds[0], run.seeds[0] + 4))


def test_planned_seeds_are_reproducible_from_the_rng(module_runtime: Runtime) -> None:
    runs = [variations.prepare(module_runtime, PRO, "same plan", SMALL, (), 5, False, "text-to-image",
                               random.Random(9)) for _ in range(2)]
    assert runs[0].seeds == runs[1].seeds and len(set(runs[0].seeds)) == 5
    assert runs[0].id != runs[1].id  # each run is its own group


@ON_MODULE_LOOP
async def test_seeds_past_the_largest_are_refused_before_anything_is_sent(module_runtime: Runtime) -> None:
    before = len(module_runtime.emulator.requests())  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=f"pass the largest seed, {SEED_MAX}"):
        await last(text_to_image.handle_generate(module_runtime, PRO, "too far", False, {"seed": SEED_MAX - 1}, 3,
                                                 True))
    with pytest.raises(ValidationError, match="Images per run"):
        await last(text_to_image.handle_generate(module_runtime, PRO, "too many", True, {}, 9))
    with pytest.raises(ValidationError, match="consecutive_seeds is on or off"):
        await last(text_to_image.handle_generate(module_runtime, PRO, "not a flag", True, {}, 2, "yes"))
    with pytest.raises(ValidationError, match="The prompt is empty"):
        await last(text_to_image.handle_generate(module_runtime, PRO, " ", True, {}, 2))
    assert len(module_runtime.emulator.requests()) == before  # type: ignore[union-attr]


# --- History ----------------------------------------------------------------------------------

@ON_MODULE_LOOP
async def test_each_image_is_saved_with_its_group(module_runtime: Runtime) -> None:
    prompt = "a group of three herons"
    run = await last(text_to_image.handle_generate(module_runtime, PRO, prompt, True, SMALL, 3))
    saved = sorted(module_runtime.history.list(text=prompt), key=lambda e: e.settings["group"]["index"])
    assert [e.settings["group"] for e in saved] == [
        {"kind": "variations", "id": run.id, "index": i} for i in range(3)]
    assert [e.seed for e in saved] == run.seeds and all(e.tab == "text-to-image" for e in saved)


@ON_MODULE_LOOP
async def test_edit_sends_the_same_references_with_each_seed(module_runtime: Runtime) -> None:
    uploads = Path(upload_roots(module_runtime)[0]) / "variations-test"  # where Gradio keeps received files
    uploads.mkdir(parents=True, exist_ok=True)
    received = [{"path": p, "meta": {"_type": "gradio.FileData"}}
                for p in solid_files(uploads, [(200, 30, 30), (30, 30, 200)])]
    prompt = "image 1 beside image 2, twice"
    run = await last(edit.handle_edit(module_runtime, edit.edit_models(module_runtime.models), FLEX, prompt, received,
                                      False, {"seed": 5, **SMALL}, 2, True))
    sent = [r for r in module_runtime.emulator.requests() if r.get("prompt") == prompt]  # type: ignore[union-attr]
    assert sorted(r["params"]["seed"] for r in sent) == [5, 6] and all(len(r["references"]) == 2 for r in sent)
    saved = module_runtime.history.list(text=prompt)
    assert {e.settings["group"]["id"] for e in saved} == {run.id} and all(e.tab == "edit" for e in saved)
    assert all(len(e.settings["references"]) == 2 for e in saved)


@ON_MODULE_LOOP
async def test_edit_refuses_variations_without_references_before_sending(module_runtime: Runtime) -> None:
    before = len(module_runtime.emulator.requests())  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="Add at least one reference image"):
        await last(edit.handle_edit(module_runtime, edit.edit_models(module_runtime.models), FLEX, "x", None, True,
                                    {}, 3))
    assert len(module_runtime.emulator.requests()) == before  # type: ignore[union-attr]


# --- Stop -----------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow_runtime(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    """FLUX.2 [flex] and [pro] each take two requests at once (a third waits for a slot) and answer slowly."""
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path_factory.mktemp("slow"))}, dotenv_path=None)
    slow = [Fault("latency", seconds=1.5)]  # past the first tick (0.5 s): sent, not yet answered
    config = EmulatorConfig(rng_seed=3, faults={FLEX: slow, PRO: slow})
    running = start_runtime(settings, config, {**FAST, FLEX: Quota(2, 30.0), PRO: Quota(2, 30.0)})
    yield running
    await running.aclose()


async def stop_when_two_are_sent(steps: AsyncIterator[Any]) -> variations.Variations:
    """Run ``steps`` until two requests are sent, then cancel it, as Gradio does when Stop is pressed."""
    seen: list[variations.Variations] = []
    two_sent = asyncio.Event()

    async def follow() -> None:
        async for run in steps:
            seen.append(run)
            if run.sent == 2:
                two_sent.set()

    task = asyncio.create_task(follow())
    await two_sent.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return seen[-1]


@ON_MODULE_LOOP
async def test_stop_sends_nothing_more_and_keeps_what_was_sent(slow_runtime: Runtime) -> None:
    prompt = "a stopped run of three kites"
    run = await stop_when_two_are_sent(text_to_image.handle_generate(slow_runtime, FLEX, prompt, True, SMALL, 3))
    assert run.stopped and not run.finished and run.sent == 2 and run.images == 0
    line = variations.stopped_line(run)
    assert line.startswith("⏹ Stopped: 2 of 3 sent; those 2 are saved in History"), line
    assert "2 still on the way" in line and "The other one was not sent and is not billed." in line
    await slow_runtime.jobs.wait(10)
    assert len(slow_runtime.history.list(text=prompt)) == 2  # the two sent arrived after Stop, and were kept
    assert len([r for r in slow_runtime.emulator.requests() if r.get("prompt") == prompt]) == 2  # type: ignore[union-attr]


def made_up_run(count: int) -> variations.Variations:
    slots = [variations.Slot(PRO, "x", {"seed": 10 + i}) for i in range(count)]
    return variations.Variations(slots=slots, id="g", tab="text-to-image", model=PRO, prompt="x", stopped=True)


def test_stopped_lines_say_what_was_sent() -> None:
    run = made_up_run(3)
    assert variations.stopped_line(run) == "⏹ Stopped: none of the 3 requests was sent, and nothing is billed."
    run.slots[0].event = ProgressEvent("sent", "sent", 1, 0.1)  # on its way
    assert variations.stopped_line(run) == ("⏹ Stopped: 1 of 3 sent; it is saved in History (1 still on the way: "
                                            "each is saved when it arrives). The other 2 were not sent and are not "
                                            "billed.")
    run.slots[1].event, run.slots[1].error = ProgressEvent("sent", "sent", 1, 0.1), "the service failed"
    assert "2 of 3 sent; 1 of them is saved in History (1 failed)" in variations.stopped_line(run)


def test_failures_are_named_by_image_and_seed_and_inert() -> None:
    run = made_up_run(5)
    for i in range(4):
        run.slots[i].error = f"refused: [a link](http://x.example/{i})"
    run.stopped = False
    line = variations.finished_line(run)
    assert line.startswith("⚠️ None of the 5 images was made.") or line.startswith("⚠️ 4 of 5 failed")
    assert "image 1 (seed 10): refused" in line and "And 1 more." in line
    assert "[a link](" not in line and "\\[a link\\]" in line  # inert on the page
    assert "[a link](http://x.example/0)" in variations.finished_line(run, markdown=False)  # a program's plain text


# --- the page: the gallery, the downloads, the code -----------------------------------------------

def test_the_result_view_follows_the_count() -> None:
    image, gallery, sheet, archive, timer = image_form.run_begins(1)
    assert image["visible"] and not gallery["visible"] and not timer.active
    image, gallery, sheet, archive, timer = image_form.run_begins(6)
    assert not image["visible"] and gallery["visible"] and gallery["value"] == [] and gallery["columns"] == 4
    assert timer.active and not sheet["visible"] and not archive["visible"]
    assert image_form.run_begins("nonsense")[0]["visible"]  # the run itself says what is wrong


@ON_MODULE_LOOP
async def test_the_page_event_fills_the_box_the_gallery_and_the_downloads(module_runtime: Runtime,
                                                                          demo: gr.Blocks) -> None:
    event = next(f for f in demo.fns.values() if f.api_name == "generate")
    box: dict[str, Any] = {}
    values = [getattr(c, "value", None) for c in event.inputs]
    prompt = "the page's four variations"
    values[:3] = [PRO, prompt, True]
    values[-3:] = [4, False, box]
    outputs = [out async for out in event.fn(*values)]
    image, caption, status, seed = outputs[-1]
    run = box["run"]
    assert isinstance(run, variations.Variations) and run.images == 4 and status == ""
    assert image == run.made[0].path and seed == run.seeds[0] and "4 of 4 images" in caption
    assert (await image_form.gallery_tick(box))["value"] == variations.gallery(run)
    assert await image_form.gallery_tick(box) == gr.update()  # nothing new since the last tick
    done = {"run": run}
    status, view, sheet, archive, timer = await image_form.run_ended(module_runtime, done)
    assert sheet["visible"] and archive["visible"] and not timer.active and len(view["value"]) == 4
    served = written_files(module_runtime.history.folder)
    for path in (Path(sheet["value"]), Path(archive["value"])):
        assert path.is_relative_to(module_runtime.history.folder / variations.EXPORTS) and served.knows(path)
    with zipfile.ZipFile(archive["value"]) as zf:
        assert sum(n.endswith(".jpg") for n in zf.namelist()) == 4
    note, curl, python, _ = image_form.code_after(module_runtime, done)
    assert f"seed {run.seeds[0]}" in note and all(str(s) in note for s in run.seeds[1:])
    assert f'"seed": {run.seeds[0]}' in curl["value"] and "$AZURE_API_KEY" in curl["value"]
    assert module_runtime.emulator.api_key not in curl["value"] + python["value"]  # type: ignore[union-attr]


@ON_MODULE_LOOP
async def test_a_stopped_run_says_so_after_the_run(slow_runtime: Runtime) -> None:
    run = await stop_when_two_are_sent(text_to_image.handle_generate(slow_runtime, PRO, "stopped, then the page",
                                                                     True, SMALL, 3))
    status, view, sheet, archive, timer = await image_form.run_ended(slow_runtime, {"run": run})
    assert status.startswith("⏹ Stopped: 2 of 3 sent") and not timer.active
    assert sheet == archive == gr.update() and view["value"] == []  # nothing arrived yet: no downloads
    assert image_form.reused_seed("⏹ Stopped", 7, {"run": run}) == [gr.update(), gr.update()]  # nothing made
    await slow_runtime.jobs.wait(10)


@ON_MODULE_LOOP
async def test_some_failed_the_rest_are_shown(module_runtime: Runtime) -> None:
    emulator = module_runtime.emulator
    assert emulator is not None
    emulator.set_faults("FLUX-1.1-pro", [Fault("refuse", count=1)])
    try:
        run = await last(text_to_image.handle_generate(module_runtime, "FLUX-1.1-pro", "two owls at dusk", True,
                                                       SMALL, 2))
    finally:
        emulator.set_faults("FLUX-1.1-pro", [])
    assert run.images == 1 and len(run.failed) == 1
    line = variations.finished_line(run)
    assert line.startswith("⚠️ 1 of 2 failed; the other one is saved in History. image "), line
    path, caption, status, seed = image_form.run_outputs(run, None)
    assert path == run.made[0].path and status == line and "1 of 2 images" in caption
    assert image_form.reused_seed(status, seed, {"run": run})[0] == run.made[0].result.seed


def test_the_page_is_built_with_the_new_controls(demo: gr.Blocks) -> None:
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    for prefix in ("t2i", "edit"):
        assert {f"{prefix}-count", f"{prefix}-consecutive", f"{prefix}-gallery", f"{prefix}-sheet",
                f"{prefix}-zip"} <= ids
    for prefix in ("t2i", "edit", "kontext"):
        assert {f"{prefix}-code", f"{prefix}-code-show", f"{prefix}-code-curl", f"{prefix}-code-python",
                f"{prefix}-code-openai"} <= ids
    count = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "t2i-count")
    assert (count.minimum, count.maximum, count.value) == (1, 8, 1)


async def test_exports_that_cannot_be_written_are_said_and_the_images_stay(runtime: Runtime) -> None:
    (runtime.history.folder / variations.EXPORTS).write_text("a file where the exports folder would go")
    run = await last(text_to_image.handle_generate(runtime, PRO, "two boats, no exports", True, SMALL, 2))
    status, view, sheet, archive, _ = await image_form.run_ended(runtime, {"run": run})
    assert status.startswith("⚠️ The contact sheet and ZIP could not be written") and "History all the same" in status
    assert sheet == archive == gr.update() and len(view["value"]) == 2
    assert len(runtime.history.list(text="two boats, no exports")) == 2
