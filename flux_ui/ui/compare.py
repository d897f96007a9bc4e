"""The Compare tab: one prompt, one seed and one shape on 2–5 models at once, side by side.

This module lays the tab out, then wires it: the streamed run and Stop, the A/B slider's picks,
blind votes, the /compare endpoint and "reuse settings". Running a comparison is
:mod:`flux_ui.ui.compare_run`; what the page shows for one is :mod:`flux_ui.ui.compare_view`.
A blind mode shuffles the results and hides the names until the person picks a favourite; those
votes feed the tally (:mod:`flux_ui.tally`).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.errors import ValidationError
from flux_ui.runtime import Runtime
from flux_ui.tally import Tally
from flux_ui.ui import examples
from flux_ui.ui.common import (
    TabContext,
    TabHandle,
    as_caller,
    error_text,
    flag,
    model_choices,
    named_signature,
)
from flux_ui.ui.compare_run import (
    DEFAULT_PICKS,
    MAX_MODELS,
    MIN_MODELS,
    SEED_LIMIT,
    TAB,
    comparable_models,
    compare,
    comparison,
    export_comparison,
    prepare_comparison,
    reused_models,
    run_comparison,
    saved_shape,
)
from flux_ui.ui.compare_view import (
    LABELS,
    NO_OPEN_VOTE,
    api_payload,
    frame,
    open_vote,
    revealed,
    settle_picks,
    slider_value,
    stopped,
    tally_table,
)
from flux_ui.ui.controls import SIZE_PRESETS
from flux_ui.ui.layout import PromptRow, prompt_row
from flux_ui.ui.prompt_tools import wire_prompt_tools
from flux_ui.ui.quota_gate import QuotaGate, quota_gate

#: The vote's outputs: status, state, then images, captions and vote buttons per slot, left, right, tally.
VOTE_OUTPUTS = 2 + 3 * MAX_MODELS + 3
#: The run's outputs: status, seed, Stop, state, then columns, images, captions and vote buttons per slot,
#: left, right, slider, hint and the exports.
RUN_OUTPUTS = 4 + 4 * MAX_MODELS + 5


# --- the handlers the tab's events call ---------------------------------------------------------

async def handle_compare(runtime: Runtime, available: Sequence[str], prompt: Any, models: Any, aspect_ratio: Any,
                         randomize_seed: Any, seed: Any, gate: QuotaGate | None = None,
                         ) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
    """The /compare endpoint on the values as sent: (images, results, message); the message says why
    nothing was sent, and is empty otherwise. With ``gate``, each model counts against its deployment's
    requests in progress while the comparison runs (gr.Error, nothing sent, when one is full)."""
    started = time.monotonic()
    try:
        order, used_seed = prepare_comparison(runtime, available, prompt, models, aspect_ratio, randomize_seed, seed)
    except ValidationError as err:
        return [], {"results": []}, str(err)
    with gate.admitted_all(order) if gate is not None else nullcontext():
        comp = await compare(runtime, prompt, order, aspect_ratio, used_seed, start=started)
    gallery, payload = api_payload(comp)
    return gallery, payload, ""


def _no_exports() -> dict[str, Any]:
    """The exports while a run has none yet: said in every frame, since a frame leaving it out would clear
    it from the frame before (see run_frames). A new dict each time: Gradio pops the value it sends."""
    return gr.update(value=None, visible=False)


def _opening(prompt: str, order: list[str], shape: str, seed: int, blind: bool, seed_update: Any) -> list[Any]:
    """The first frame of a run: every slot waiting, the last run's picks, slider and exports cleared."""
    first = frame(comparison(prompt, order, shape, seed, blind), blind, set(), False)
    first[1] = seed_update
    first[-4:] = [gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                  gr.update(value=None, visible=False), gr.update(visible=True)]
    return [*first, _no_exports()]


async def run_frames(runtime: Runtime, available: Sequence[str], gate: QuotaGate, prompt: Any, chosen: Any,
                     shape: Any, randomize_seed: Any, seed: Any, blind_mode: Any,
                     clock: Callable[[], float] = time.monotonic) -> AsyncIterator[list[Any]]:
    """The Compare button's streamed updates (:data:`RUN_OUTPUTS` each), ending with the Done line.

    The clock starts when the click reaches this handler, not when the requests go out; the Done line
    is a frame of its own, timed after the frame with the last image was handed on (Gradio asks for
    the next frame only then). So "Done in N s" is the wait the person saw, less the click's trip
    here and the images' trip to the browser, and it never shows before the tiles.

    Gradio sends each frame as a diff from the one before, and the page applies a diff to the very
    objects it was handed for earlier frames, maybe before it has shown them: a key left out of an
    output's update deletes it from the frame still waiting (the Done frame's images and hidden Stop,
    when the exports followed as a frame of their own). So the exports stay in every frame until they
    exist, and the run ends on the whole Done frame again (with the seed used), which Gradio's closing
    message hands the page in full, so the page ends on it whatever it skipped.
    """
    started = clock()
    try:
        order, used_seed = prepare_comparison(runtime, available, prompt, chosen, shape, randomize_seed, seed)
    except ValidationError as err:
        yield [error_text(err), *[gr.update()] * (RUN_OUTPUTS - 1)]
        return
    blind = bool(blind_mode)
    if blind:
        random.shuffle(order)

    def seed_update() -> dict[str, Any]:  # the seed box shows a seed flux-ui picked; a typed one stays as typed
        return gr.update(value=used_seed) if flag("randomize_seed", randomize_seed, True) else gr.update()

    yield _opening(prompt, order, shape, used_seed, blind, seed_update())
    seen: set[int] = set()
    comp = None
    with gate.admitted_all(order):
        async for comp in run_comparison(runtime, prompt, order, shape, used_seed, blind, start=started, clock=clock):
            fresh = set(comp.arrivals) - seen
            seen |= fresh
            yield [*frame(comp, blind, fresh, False), _no_exports()]
    if comp is None:
        return
    comp.elapsed = clock() - started
    yield [*frame(comp, blind, set(), True, seed_update()), _no_exports()]
    exports = _no_exports()
    if comp.images:
        made = await export_comparison(runtime, comp, blind)
        files = [str(p) for p in (made.sheet, made.archive) if p is not None]
        exports = gr.update(value=files or None, visible=bool(files))
    yield [*frame(comp, blind, set(), True, seed_update()), exports]  # built anew: Gradio consumed the last


def vote(tally: Tally, index: int, state: Mapping[str, Any] | None) -> list[Any]:
    """Count a blind vote and reveal the names: status, state, images, captions, votes, picks, tally."""
    if state is None or not open_vote(state, index):
        return [NO_OPEN_VOTE, *[gr.update()] * (VOTE_OUTPUTS - 1)]
    views = state["views"]
    tally.record(views[index]["model"], [v["model"] for v in views if v["path"]])
    return [*revealed(state, index), tally_table(tally)]


def apply_settings(runtime: Runtime, available: Sequence[str], settings: Mapping[str, Any]) -> list[Any]:
    """Load a saved image's prompt and seed, with its model (and those it was compared with) ticked."""
    seed_value = settings.get("seed")
    chosen = reused_models(runtime.history, settings, available)
    return [gr.update(value=settings.get("prompt", "")), gr.update() if chosen is None else gr.update(value=chosen),
            gr.update(value=saved_shape(settings)),
            gr.update(value=not isinstance(seed_value, int)),
            gr.update(value=seed_value if isinstance(seed_value, int) else None)]


# --- layout ---------------------------------------------------------------------------------------

@dataclass
class _Form:
    row: PromptRow
    picked: gr.CheckboxGroup
    shape: gr.Dropdown
    seed: gr.Number
    randomize: gr.Checkbox
    blind: gr.Checkbox

    @property
    def settings(self) -> list[Any]:
        """What the endpoint takes and "reuse settings" loads, in its order."""
        return [self.row.prompt, self.picked, self.shape, self.randomize, self.seed]


@dataclass
class _SlotWidgets:
    column: gr.Column
    image: gr.Image
    caption: gr.Markdown
    vote: gr.Button


@dataclass
class _Results:
    slots: list[_SlotWidgets]
    hint: gr.Markdown
    left: gr.Dropdown
    right: gr.Dropdown
    slider: gr.ImageSlider
    tally: gr.Markdown
    views: gr.State
    exports: gr.File

    @property
    def images(self) -> list[gr.Image]:
        return [s.image for s in self.slots]

    @property
    def captions(self) -> list[gr.Markdown]:
        return [s.caption for s in self.slots]

    @property
    def votes(self) -> list[gr.Button]:
        return [s.vote for s in self.slots]


def _form(available: list[str]) -> _Form:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            row = prompt_row("compare", run_label="Compare", lines=3, max_lines=10,
                             placeholder="A glass teapot on a windowsill, morning light, film photo",
                             info="Every model gets this prompt. Ctrl+Enter (⌘+Enter) compares.")
        with gr.Column(scale=2, min_width=320):
            picked = gr.CheckboxGroup(model_choices(available), value=available[:DEFAULT_PICKS], label="Models",
                                      info=f"Pick {MIN_MODELS} to {MAX_MODELS}; each is sent at once, "
                                           "within its own quota.", elem_id="compare-models")
            with gr.Row():
                shape = gr.Dropdown(list(SIZE_PRESETS), value="1:1", label="Shape", elem_id="compare-shape",
                                    info="Each model makes it at its own size.", min_width=140)
                seed = gr.Number(value=None, precision=0, minimum=0, maximum=SEED_LIMIT, label="Seed",
                                 elem_id="compare-seed", min_width=140,
                                 info="One seed for every model; shows the last one used.")
            with gr.Row():
                randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="compare-randomize")
                blind = gr.Checkbox(value=False, label="Blind mode", elem_id="compare-blind",
                                    info="Shuffle and hide the names until you pick a favourite.")
    return _Form(row, picked, shape, seed, randomize, blind)


def _slot_widgets(i: int) -> _SlotWidgets:
    with gr.Column(visible=False, min_width=220, elem_id=f"compare-slot-{i}") as column:
        # No fixed height: assets/layout.css sizes each tile to its image's own shape (.flux-tile).
        image = gr.Image(label=f"Result {i + 1}", type="filepath", interactive=False, elem_classes=["flux-tile"],
                         buttons=["download", "fullscreen"], elem_id=f"compare-image-{i}")
        caption = gr.Markdown("", elem_id=f"compare-caption-{i}")
        vote = gr.Button(f"{LABELS[i]} is best", visible=False, size="sm", elem_id=f"compare-vote-{i}")
    return _SlotWidgets(column, image, caption, vote)


def _results(tally: Tally) -> _Results:
    with gr.Row(equal_height=False, elem_id="compare-result"):  # assets/scroll.js brings it into view
        slots = [_slot_widgets(i) for i in range(MAX_MODELS)]
    with gr.Accordion("A/B slider", open=True, elem_id="compare-ab"):
        hint = gr.Markdown("The slider appears here once two results are ready; then pick any two.",
                           elem_id="compare-ab-hint")
        with gr.Row():
            left = gr.Dropdown(choices=[], value=None, label="Left image", elem_id="compare-left", interactive=True)
            right = gr.Dropdown(choices=[], value=None, label="Right image", elem_id="compare-right", interactive=True)
        slider = gr.ImageSlider(type="filepath", interactive=False, label="Drag to compare", elem_id="compare-slider",
                                buttons=["fullscreen"], visible=False, max_height=560)
    exports = gr.File(label="Contact sheet and ZIP (originals, manifest.json, manifest.csv)", file_count="multiple",
                      visible=False, interactive=False, elem_id="compare-exports")
    with gr.Accordion("Blind-vote tally", open=True, elem_id="compare-tally-box"):
        tally_md = gr.Markdown(tally_table(tally), elem_id="compare-tally")
    return _Results(slots, hint, left, right, slider, tally_md, gr.State(None), exports)


# --- wiring -----------------------------------------------------------------------------------------

def _wire_run(runtime: Runtime, available: list[str], form: _Form, res: _Results, gate: QuotaGate) -> None:
    """Compare (streamed), the picks settled after it, and Stop. Like the other generating events it
    takes no per-event worker limit: the gate bounds each deployment instead (see quota_gate.QuotaGate)."""
    run_outputs = [form.row.status, form.seed, form.row.stop, res.views, *(s.column for s in res.slots), *res.images,
                   *res.captions, *res.votes, res.left, res.right, res.slider, res.hint, res.exports]
    assert len(run_outputs) == RUN_OUTPUTS

    async def run_ui(*values: Any) -> AsyncIterator[list[Any]]:
        async for update in run_frames(runtime, available, gate, *values):
            yield update

    run_inputs = [form.row.prompt, form.picked, form.shape, form.randomize, form.seed, form.blind]
    run_event = form.row.run.click(as_caller(run_ui, runtime, len(run_inputs)), run_inputs, run_outputs,
                                   api_visibility="private", preprocess=False, concurrency_limit=None)
    # The picks made mid-stream may have been among the skipped updates: settle them at the end,
    # keeping whatever the person chose meanwhile.
    run_event.then(settle_picks, [res.views, res.left, res.right], [res.left, res.right, res.slider, res.hint],
                   api_visibility="private", preprocess=False)
    form.row.stop.click(stopped, res.views, [form.row.status, form.row.stop, *res.captions], cancels=[run_event],
                        api_visibility="private")


def _wire_picks_and_votes(ctx: TabContext, tally: Tally, status: gr.Markdown, res: _Results) -> None:
    """The slider's two dropdowns, the vote buttons and the tally shown fresh on each page load."""
    def on_pick(views: Mapping[str, Any] | None, a: Any, b: Any) -> Any:
        value = slider_value((views or {}).get("views"), a, b)
        return gr.update(value=value, visible=value is not None)

    for dropdown in (res.left, res.right):
        dropdown.input(on_pick, [res.views, res.left, res.right], res.slider, api_visibility="private",
                       preprocess=False)

    def on_vote(index: int, views: Mapping[str, Any] | None) -> list[Any]:
        return vote(tally, index, views)

    vote_outputs = [status, res.views, *res.images, *res.captions, *res.votes, res.left, res.right, res.tally]
    for i, button in enumerate(res.votes):
        button.click(lambda v, i=i: on_vote(i, v), res.views, vote_outputs, api_visibility="private")
    ctx.demo.load(lambda: tally_table(tally), None, res.tally, api_visibility="private")


def _wire_api(runtime: Runtime, available: list[str], form: _Form, gate: QuotaGate) -> None:
    """The /compare endpoint (and MCP tool), on a hidden button with hidden outputs."""
    trigger = gr.Button(visible=False, elem_id="compare-api")
    gallery = gr.Gallery(visible=False, label="Images", elem_id="compare-api-gallery")
    results = gr.JSON(visible=False, label="Results", elem_id="compare-api-results")

    async def compare_api(prompt: str, models: list[str], aspect_ratio: str = "1:1", randomize_seed: bool = True,
                          seed: int | None = None) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
        """Compare 2 to 5 models on one prompt, one seed and one shape, all sent at once.

        ``models`` is a list of model IDs (e.g. ["FLUX.2-pro", "FLUX-1.1-pro"]); ``aspect_ratio``
        ("1:1", "16:9", …) becomes each model's own size (width/height on its grid, or Kontext's
        aspect_ratio). With ``randomize_seed`` flux-ui picks one seed for all; otherwise ``seed``.

        Returns (images, results, message). ``images`` is a gallery of the saved originals, each
        captioned with its model ID. ``results`` is {prompt, seed, aspect_ratio, elapsed_s, results:
        [one per model, in the order asked: model, image_index (into images, or None), arrival (0 =
        first to finish), error (None or why it failed), and for an image seed, width, height, format,
        time_s, cost_usd, history_id, caption]}. ``message`` is empty, or says why nothing was sent.
        """
        return await handle_compare(runtime, available, prompt, models, aspect_ratio, randomize_seed, seed, gate)

    compare_api.__name__ = "compare"  # MCP names the tool after the function
    compare_api.__signature__ = named_signature(  # type: ignore[attr-defined]
        ["prompt", "models"], {"aspect_ratio": "1:1", "randomize_seed": True, "seed": None})
    trigger.click(as_caller(compare_api, runtime), form.settings, [gallery, results, form.row.status],
                  api_name="compare", preprocess=False, concurrency_limit=None)


def build(ctx: TabContext) -> TabHandle:
    runtime = ctx.runtime
    available = comparable_models(runtime.models)
    tally = runtime.tally
    form = _form(available)
    examples.compare(available, form.row.prompt, form.picked, form.shape, MIN_MODELS)
    res = _results(tally)
    _wire_run(runtime, available, form, res, quota_gate(ctx.demo))
    _wire_picks_and_votes(ctx, tally, form.row.status, res)
    _wire_api(runtime, available, form, quota_gate(ctx.demo))
    wire_prompt_tools(runtime, form.row, TAB)

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        return apply_settings(runtime, available, settings)

    return TabHandle(tab_id="compare", name=TAB, outputs=form.settings, apply=apply, models=available)
