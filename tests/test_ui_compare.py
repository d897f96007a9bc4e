"""The Compare tab's handlers without a browser: concurrency, order, failures, Stop, votes, reuse."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import gradio as gr
import pytest

from conftest import FakeClock
from flux_ui.emulator.config import Fault
from flux_ui.registry import MODELS, PixelSize
from flux_ui.runtime import Runtime
from flux_ui.tally import Tally
from flux_ui.ui import compare, compare_run, compare_view, fanout
from flux_ui.ui.common import ALERT_MARK, TabContext
from flux_ui.ui.compare_view import Blindness
from flux_ui.ui.controls import SIZE_PRESETS, preset_sizes
from flux_ui.ui.quota_gate import QuotaGate

THREE = ["FLUX.2-pro", "FLUX-1.1-pro", "FLUX.2-flex"]




def latency(rt: Runtime, seconds: dict[str, float]) -> None:
    assert rt.emulator is not None
    for model, s in seconds.items():
        rt.emulator.set_faults(model, [Fault("latency", seconds=s)])


async def snapshots(rt: Runtime, models: list[str], prompt: str = "a red kite over dunes", shape: str = "1:1",
                    seed: int = 4242) -> list[tuple[float, list[int], int]]:
    """(elapsed, arrivals so far, images so far) at every yield."""
    seen = []
    async for comp in compare_run.run_comparison(rt, prompt, models, shape, seed):
        seen.append((comp.elapsed, list(comp.arrivals), comp.images))
    return seen


# --- choosing what to send ----------------------------------------------------------------

@pytest.mark.parametrize(("prompt", "models", "expected"), [
    ("x", ["FLUX.2-pro"], "Pick 2 to 5 models to compare (you picked 1)"),
    ("x", [], "you picked 0"),
    ("x", [*list(MODELS)[:compare_run.MAX_MODELS], "FLUX.2-pro"], None),  # the most there may be, a repeat ignored
    ("x", ["FLUX.2-pro", "FLUX.3-ultra"], "FLUX.3-ultra cannot be compared here"),
    ("  ", THREE, "Write a prompt first"),
    ("x", "FLUX.2-pro", "you picked 0"),
])
def test_selection_problems_are_named(prompt: str, models: object, expected: str | None) -> None:
    problem = compare_run.selection_problem(prompt, models, list(MODELS))
    assert problem is None if expected is None else expected in str(problem)


def test_one_model_more_than_the_most_is_too_many() -> None:
    too_many = [f"FLUX.model-{i}" for i in range(compare_run.MAX_MODELS + 1)]
    problem = compare_run.selection_problem("x", too_many, too_many)
    assert f"you picked {compare_run.MAX_MODELS + 1}" in str(problem)


def test_one_seed_is_picked_or_checked() -> None:
    rng = random.Random(1)
    assert 0 <= compare_run.pick_seed(True, 5, rng) <= compare_run.RANDOM_SEED_MAX
    assert compare_run.pick_seed(False, 77.0) == 77
    assert compare_run.pick_seed(False, None, random.Random(2)) == random.Random(2).randint(
        0, compare_run.RANDOM_SEED_MAX)
    for bad in (-1, 1.5, 2**32, "7", True):
        with pytest.raises(ValueError, match="whole number"):
            compare_run.pick_seed(False, bad)


@pytest.mark.parametrize("model", [m for m in MODELS if isinstance(MODELS[m].size, PixelSize)])
def test_pixel_sizes_agree_with_the_text_to_image_presets(model: str) -> None:
    presets = {label.split()[0]: value for label, value in preset_sizes(MODELS[model])}
    for shape in SIZE_PRESETS:
        params = compare_run.size_params(model, shape)
        assert f"{params['width']}x{params['height']}" == presets[shape]


def test_kontext_gets_the_aspect_ratio_itself() -> None:
    assert compare_run.size_params("FLUX.1-Kontext-pro", "16:9") == {"aspect_ratio": "16:9"}


def test_a_saved_size_maps_to_the_nearest_shape() -> None:
    assert compare_run.nearest_shape(1024, 1024) == "1:1"
    assert compare_run.nearest_shape(1344, 768) == "16:9"
    assert compare_run.nearest_shape(768, 1024) == "3:4"


# --- running a comparison -------------------------------------------------------------------

async def test_requests_go_out_together_and_finish_well_under_the_sum(runtime: Runtime) -> None:
    await snapshots(runtime, THREE, prompt="warm-up")  # first-use costs (fonts, codecs) are not the point
    latency(runtime, dict.fromkeys(THREE, 1.0))
    start = time.monotonic()
    seen = await snapshots(runtime, THREE)
    took = time.monotonic() - start
    assert took <= 1.6, f"three 1 s requests took {took:.2f} s: they were not sent concurrently"
    assert seen[-1][2] == 3
    logged = [r for r in runtime.emulator.requests() if r["prompt"] == "a red kite over dunes"]
    assert sorted(r["model"] for r in logged) == sorted(THREE)
    assert {r["params"]["seed"] for r in logged} == {4242}
    assert max(r["time"] for r in logged) - min(r["time"] for r in logged) < 0.5


async def test_results_arrive_in_completion_order_with_ticks_between(runtime: Runtime) -> None:
    latency(runtime, {"FLUX.2-pro": 1.2, "FLUX-1.1-pro": 0.1, "FLUX.2-flex": 0.6})
    seen = await snapshots(runtime, THREE)
    assert seen[-1][1] == [1, 2, 0]  # slot indices, fastest first
    partial = [arrivals for _, arrivals, _ in seen]
    assert [1] in partial and [1, 2] in partial  # the page could show each as it came
    waiting = [t for t, arrivals, _ in seen if arrivals == [1, 2]]
    assert len(waiting) >= 1 and len(seen) >= 4  # ticks while FLUX.2 [pro] was still generating


async def test_each_model_gets_its_own_size_for_one_shape(runtime: Runtime) -> None:
    models = ["FLUX.2-pro", "FLUX-1.1-pro", "FLUX.1-Kontext-pro"]
    comp = await compare_run.compare(runtime, "a tall lighthouse", models, "9:16", 9)
    sizes = {s.model: s.generated.result.size for s in comp.slots if s.generated}
    assert sizes["FLUX.2-pro"] == (768, 1360)
    assert sizes["FLUX-1.1-pro"] == (640, 1152)
    w, h = sizes["FLUX.1-Kontext-pro"]
    assert h > w and abs(w / h - 9 / 16) < 0.03
    logged = {r["model"]: r["params"] for r in runtime.emulator.requests() if r["prompt"] == "a tall lighthouse"}
    assert logged["FLUX.1-Kontext-pro"]["aspect_ratio"] == "9:16"
    assert (logged["FLUX.2-pro"]["width"], logged["FLUX.2-pro"]["height"]) == (768, 1360)


async def test_one_failure_stays_in_its_slot(runtime: Runtime) -> None:
    runtime.emulator.set_faults("FLUX.2-flex", [Fault("status", status=400, message="bad flex")])
    comp = await compare_run.compare(runtime, "two boats", THREE, "1:1", 5)
    assert [s.generated is not None for s in comp.slots] == [True, True, False]
    assert comp.slots[2].error and comp.slots[2].generated is None
    gallery, payload = compare_view.api_payload(comp)
    assert [model for _, model in gallery] == ["FLUX.2-pro", "FLUX-1.1-pro"]
    flex = payload["results"][2]
    assert flex["model"] == "FLUX.2-flex" and flex["image_index"] is None and flex["error"]
    assert payload["results"][1]["image_index"] == 1 and payload["results"][1]["seed"] == 5


async def test_when_every_model_fails_the_line_is_an_error(runtime: Runtime) -> None:
    for model in THREE:
        runtime.emulator.set_faults(model, [Fault("status", status=400, message="bad")])
    comp = await compare_run.compare(runtime, "three failures", THREE, "1:1", 5)
    line = compare_view.summary(comp, blind=False)
    assert line.startswith(ALERT_MARK) and "every model failed" in line and "Done: 0 of 3" in line
    runtime.emulator.set_faults("FLUX.2-pro", [])
    for model in THREE[1:]:
        runtime.emulator.set_faults(model, [Fault("status", status=400, message="bad")])
    partly = await compare_run.compare(runtime, "two failures", THREE, "1:1", 5)
    assert ALERT_MARK not in compare_view.summary(partly, blind=False)


async def test_closing_the_stream_ends_the_wait_and_keeps_what_was_sent(runtime: Runtime) -> None:
    latency(runtime, dict.fromkeys(THREE, 1.0))
    stream = compare_run.run_comparison(runtime, "stopped early", THREE, "1:1", 3)
    first = await anext(stream)
    assert first.arrivals == []
    await stream.aclose()  # what Gradio does when Stop cancels the event
    assert runtime.history.list(text="stopped early") == []  # nothing has arrived yet
    await runtime.jobs.wait(5.0)  # the three requests were sent, and are billed: their images are kept
    assert sorted(x.model for x in runtime.history.list(text="stopped early")) == sorted(THREE)


# --- what the page shows ----------------------------------------------------------------------

async def test_every_frame_carries_every_finished_image(runtime: Runtime) -> None:
    comp = await compare_run.compare(runtime, "three pears", THREE, "1:1", 12)
    out = compare_view.frame(comp, blind_mode=True, fresh=set(), final=True)  # nothing new in this frame
    m = compare_run.MAX_MODELS
    images, captions, votes = out[4 + m: 4 + 2 * m], out[4 + 2 * m: 4 + 3 * m], out[4 + 3 * m: 4 + 4 * m]
    assert [img["value"] for img in images[:3]] == [s.generated.path for s in comp.slots]
    assert [img["label"] for img in images[:3]] == ["Image A", "Image B", "Image C"]
    assert not any("FLUX" in c for c in captions) and "Which is best?" in out[0]
    assert [v["visible"] for v in votes] == [True, True, True, False, False]
    assert out[3]["blind"] is True and [v["model"] for v in out[3]["views"]] == THREE
    plain = compare_view.frame(comp, blind_mode=False, fresh=set(), final=True)
    assert "FLUX.2 [pro]" in plain[4 + 2 * m] and not any(v["visible"] for v in plain[4 + 3 * m: 4 + 4 * m])


M = compare_run.MAX_MODELS
STATUS, SEED, STOP, IMAGES, EXPORTS = 0, 1, 2, slice(4 + M, 4 + 2 * M), -1


async def page_frames(runtime: Runtime, models: list[str], clock: FakeClock, flush_s: float = 0.0,
                      **form: object) -> list[list[object]]:
    """run_frames as the page takes them: each frame takes ``flush_s`` of the clock to reach the page
    (Gradio postprocessing it and the browser drawing it), before the next is asked for."""
    values = {"prompt": "a red kite over dunes", "chosen": models, "shape": "16:9", "randomize_seed": True,
              "seed": None, "blind_mode": False, **form}
    frames = []
    async for update in compare.run_frames(runtime, models, QuotaGate(runtime), *values.values(), clock=clock):
        assert len(update) == compare.RUN_OUTPUTS
        frames.append(update)
        clock.advance(flush_s)
    return frames


def done_seconds(status: object) -> float:
    found = re.search(r"^Done: .* in ([\d.]+) s", str(status))
    assert found, status
    return float(found.group(1))


async def test_the_done_time_is_the_whole_wait_the_page_saw(runtime: Runtime) -> None:
    # The clock moves only while a frame travels to the page: the old Done time (from the first request
    # out to the last answer in) left out the first frame's trip and the last image's, and said 0.0 s.
    clock = FakeClock()
    frames = await page_frames(runtime, THREE, clock, flush_s=0.4)
    done = next(i for i, f in enumerate(frames) if str(f[STATUS]).startswith("Done"))
    assert done_seconds(frames[done][STATUS]) == pytest.approx(0.4 * done, abs=0.051)
    assert done_seconds(frames[-1][STATUS]) == done_seconds(frames[done][STATUS])  # the exports change nothing


async def test_the_done_line_follows_a_frame_with_every_image(runtime: Runtime) -> None:
    latency(runtime, {"FLUX.2-pro": 0.3})
    frames = await page_frames(runtime, THREE, FakeClock())
    done = next(i for i, f in enumerate(frames) if str(f[STATUS]).startswith("Done"))
    before = frames[done - 1]
    assert "3 of 3 done" in str(before[STATUS])  # the last image went out first, with the clock still running
    assert all(img["value"] for img in before[IMAGES][:3])
    assert frames[done][STOP]["visible"] is False and before[STOP]["visible"] is True


async def test_no_frame_leaves_out_what_the_frame_before_said(runtime: Runtime) -> None:
    # Gradio diffs each frame against the last and the page applies the diff to frames it may not have
    # drawn yet: a key dropped from an update deletes it there (the Done frame's images vanished when
    # the exports came as a frame of their own). The last frame is the Done frame whole, with the seed.
    frames = await page_frames(runtime, THREE, FakeClock(), seed=None)
    first, last = frames[0], frames[-1]
    assert all(f[EXPORTS] == {"__type__": "update", "value": None, "visible": False} for f in frames[:-1])
    assert last[EXPORTS]["visible"] is True and len(last[EXPORTS]["value"]) == 2
    assert str(last[STATUS]).startswith("Done") and all(img["value"] for img in last[IMAGES][:3])
    assert last[STOP] == {"__type__": "update", "visible": False}
    assert last[SEED]["value"] == first[SEED]["value"] and isinstance(first[SEED]["value"], int)
    assert len({id(img) for f in frames for img in f[IMAGES]}) == len(frames) * M  # Gradio pops what it sends


async def test_a_fixed_seed_is_left_as_typed(runtime: Runtime) -> None:
    frames = await page_frames(runtime, THREE, FakeClock(), randomize_seed=False, seed=77)
    assert all(f[SEED] == {"__type__": "update"} for f in frames)
    assert "seed 77 on every model" in str(frames[-1][STATUS])


async def test_a_refused_comparison_is_one_frame_saying_why(runtime: Runtime) -> None:
    frames = await page_frames(runtime, ["FLUX.2-pro"], FakeClock())
    assert len(frames) == 1 and "Pick 2 to 5" in str(frames[0][STATUS])


def test_a_tiles_alt_text_names_no_more_than_the_page(tmp_path: Path) -> None:
    v = views(tmp_path)[0]
    assert compare_view.alt_text(v, Blindness.OPEN) == "Result from FLUX.2 [pro]"
    assert compare_view.alt_text(v, Blindness.HIDDEN) == "Image A, result"
    assert compare_view.alt_text(v, Blindness.REVEALED) == "A: FLUX.2 [pro], result"


def test_stop_marks_only_the_waiting_slots(tmp_path: Path) -> None:
    state = {"blind": False, "views": views(tmp_path)}
    state["views"][2] = {**state["views"][2], "path": None}  # C was still waiting
    status, stop, *captions = compare_view.stopped(state)
    assert "may still finish" in status and stop["visible"] is False
    assert "stopped" in captions[2] and captions[0] == captions[1] == {"__type__": "update"}

def test_slot_status_says_what_it_waits_for() -> None:
    from flux_ui.client import ProgressEvent

    slot = fanout.Slot("FLUX.2-pro")
    assert compare_view.slot_status(slot, 0.2) == "⏳ starting · 0.2 s"
    slot.event = ProgressEvent("paced", "", 1, 0.1, 2.0)
    assert compare_view.slot_status(slot, 1.0) == "⏳ waiting for quota · 1.0 s"
    slot.event = ProgressEvent("sent", "", 1, 0.3)
    assert compare_view.slot_status(slot, 3.24) == "⏳ generating · 3.2 s"


def views(tmp_path: Path) -> list[dict[str, object]]:
    paths = []
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes(b"x")
        paths.append(str(tmp_path / f"{name}.png"))
    return [
        {"model": "FLUX.2-pro", "label": "A", "path": paths[0], "caption": "**FLUX.2 [pro]** · 1024×1024",
         "error": None},
        {"model": "FLUX-1.1-pro", "label": "B", "path": None, "caption": None, "error": "FLUX1.1 [pro] failed"},
        {"model": "FLUX.2-flex", "label": "C", "path": paths[2], "caption": "**FLUX.2 [flex]** · 1024×1024",
         "error": None},
    ]


def test_blind_captions_hide_the_model_until_revealed(tmp_path: Path) -> None:
    v = views(tmp_path)
    hidden = compare_view.caption_text(v[0], Blindness.HIDDEN)
    assert "FLUX" not in hidden and "Image A" in hidden
    assert "FLUX.2 [pro]" in compare_view.caption_text(v[0], Blindness.REVEALED)
    assert "FLUX.2 [pro]" in compare_view.caption_text(v[0], Blindness.OPEN)
    assert compare_view.pick_choices(v, Blindness.HIDDEN) == [("Image A", 0), ("Image C", 2)]
    failed = compare_view.caption_text({**v[1], "error": "FLUX1.1 [pro] (FLUX-1.1-pro, flux-pro-1.1) failed"},
                                       Blindness.HIDDEN)
    assert "Image B" in failed and "failed" in failed and "this model" in failed and "pro" not in failed.lower()
    assert "FLUX1.1 [pro]" in compare_view.caption_text(v[1], Blindness.REVEALED)


def test_a_blind_comparison_asks_every_model_for_one_format() -> None:
    models = ["FLUX.2-pro", "FLUX.1-Kontext-pro", "FLUX.1-schnell"]
    blind = compare_run.comparison("a fox", models, "1:1", 7, blind=True)
    assert {s.params["output_format"] for s in blind.slots} == {compare_run.shared_format(models)} == {"png"}
    assert all("output_format" not in s.params for s in compare_run.comparison("a fox", models, "1:1", 7).slots)


def test_the_slider_takes_two_ready_results(tmp_path: Path) -> None:
    v = views(tmp_path)
    assert compare_view.slider_value(v, 0, 2) == (v[0]["path"], v[2]["path"])
    assert compare_view.slider_value(v, 0, 1) is None  # B failed
    assert compare_view.slider_value(None, 0, 2) is None and compare_view.slider_value(v, 0, 9) is None


def test_settling_the_picks_keeps_the_persons_choice(tmp_path: Path) -> None:
    state = {"views": views(tmp_path)}
    left, right, slider, hint = compare_view.settle_picks(state, 2, 0)
    assert (left["value"], right["value"]) == (2, 0) and slider["visible"] and not hint["visible"]
    left, right, slider, _ = compare_view.settle_picks(state, None, 1)  # nothing picked, or a failed slot
    assert (left["value"], right["value"]) == (0, 2) and slider["value"] == (state["views"][0]["path"],
                                                                               state["views"][2]["path"])
    *_, slider, hint = compare_view.settle_picks({"views": state["views"][:2]}, 0, 1)
    assert slider["visible"] is False and hint["visible"] is True  # only one image: no slider


def test_a_blind_vote_is_counted_once_and_reveals_the_names(tmp_path: Path) -> None:
    tally = Tally(tmp_path)
    state = {"blind": True, "voted": False, "views": views(tmp_path)}
    out = compare.vote(tally, 2, state)
    assert "C: FLUX.2 [flex]" in out[0]
    assert out[1]["voted"] is True
    captions = out[2 + compare_run.MAX_MODELS: 2 + 2 * compare_run.MAX_MODELS]
    assert "FLUX.2 [pro]" in captions[0] and "your pick" in captions[2] and "your pick" not in captions[0]
    assert {s.model: (s.wins, s.shown) for s in tally.standings()} == {"FLUX.2-flex": (1, 1), "FLUX.2-pro": (0, 1)}
    assert "| FLUX.2 [flex] | 1 | 1 | 100% |" in out[-1]
    again = compare.vote(tally, 0, out[1])
    assert "no open blind vote" in again[0]
    assert compare.vote(tally, 0, {**state, "blind": False})[0] == again[0]  # only blind votes count
    assert sum(s.wins for s in tally.standings()) == 1


def test_the_tally_table_has_an_empty_state(tmp_path: Path) -> None:
    assert "No blind votes yet" in compare_view.tally_table(Tally(tmp_path))


# --- reuse settings from History ------------------------------------------------------------

async def test_apply_loads_prompt_seed_shape_and_the_compared_models(runtime: Runtime) -> None:
    comp = await compare_run.compare(runtime, "a copper kettle", ["FLUX.2-pro", "FLUX.1-Kontext-pro"], "16:9", 31)
    with gr.Blocks() as demo:
        handle = compare.build(TabContext(runtime, demo))
    assert (handle.tab_id, handle.name) == ("compare", "compare")
    entry = runtime.history.get(comp.slots[1].generated.entry.id)
    prompt, models, shape, randomize, seed = handle.apply(entry.settings)
    assert prompt["value"] == "a copper kettle" and seed["value"] == 31 and randomize["value"] is False
    assert models["value"] == ["FLUX.2-pro", "FLUX.1-Kontext-pro"]
    assert shape["value"] == "16:9"

    other = {"tab": "text-to-image", "model": "FLUX-1.1-pro", "prompt": "a fox", "seed": 8, "size": [1024, 768]}
    prompt, models, shape, _, seed = handle.apply(other)
    assert "FLUX-1.1-pro" in models["value"] and 2 <= len(models["value"]) <= compare_run.MAX_MODELS
    assert shape["value"] == "4:3" and seed["value"] == 8
