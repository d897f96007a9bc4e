"""The text-to-image tab: :func:`handle_generate` (one image, or a run of variations) on plain values, then
layout and wiring (the work is in handlers, progress and variations; the shared form is image_form)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import gradio as gr

from flux_ui.client import model_id_text
from flux_ui.errors import FluxError
from flux_ui.registry import MODELS, Mode
from flux_ui.runtime import Runtime
from flux_ui.ui import examples, handlers, image_form, progress, variations, view_code
from flux_ui.ui.common import TabContext, TabHandle, endpoint, flag, handoff
from flux_ui.ui.controls import all_param_names, wire_model_controls
from flux_ui.ui.layout import model_dropdown, prompt_row
from flux_ui.ui.prompt_tools import wire_prompt_tools
from flux_ui.ui.quota_gate import QuotaGate, quota_gate

TAB = "text-to-image"


def text_models(models: tuple[str, ...]) -> list[str]:
    return [m for m in models if MODELS[m].does(Mode.GENERATE)]


async def handle_generate(runtime: Runtime, model: Any, prompt: Any, randomize_seed: Any,
                          values: Mapping[str, Any], count: Any = None, consecutive_seeds: Any = None,
                          gate: QuotaGate | None = None) -> AsyncIterator[image_form.Step]:
    """The /generate endpoint on the values as sent: status lines, then the saved image; with ``count``
    above 1, the run of variations instead (:func:`handle_variations`).

    A bad input raises a FluxError (ValidationError) before anything is sent.
    """
    model = model_id_text(model)  # before the tab looks it up
    randomize = flag("randomize_seed", randomize_seed, True)
    params = handlers.collect_params(model, values, randomize)
    if variations.parse_count(count) > 1:
        async for run in handle_variations(runtime, model, prompt, randomize_seed, values, count, consecutive_seeds,
                                           gate):
            yield run
        return
    async for step in progress.stream(runtime, model, prompt, params, tab=TAB):
        yield step


async def handle_variations(runtime: Runtime, model: Any, prompt: Any, randomize_seed: Any,
                            values: Mapping[str, Any], count: Any, consecutive_seeds: Any = None,
                            gate: QuotaGate | None = None) -> AsyncIterator[variations.Variations]:
    """``count`` images of one form, each its own request and seed, all sent at once: the run, updated in
    place, whenever an image arrives and every tick. ValidationError before anything is sent."""
    model = model_id_text(model)
    randomize = flag("randomize_seed", randomize_seed, True)
    params = handlers.collect_params(model, values, randomize)
    number = variations.parse_count(count)
    consecutive = flag("consecutive_seeds", consecutive_seeds, False) and not randomize
    run = variations.prepare(runtime, model, prompt, params, (), number, consecutive, TAB)
    async for step in variations.run(runtime, run, gate=gate):
        yield step


# --- layout ---------------------------------------------------------------------------------------

def _layout(models: Sequence[str]) -> tuple[image_form.ImageForm, gr.Examples | None]:
    """The form on the left, the result (and View code) and the examples that fill the form on the right."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            model = model_dropdown("t2i", models)
            row = prompt_row("t2i", placeholder="A red fox in an autumn forest, morning light, 35 mm photo",
                             info="Ctrl+Enter (⌘+Enter) generates.")
            # make_component's own ids (param-<name>): this tab was first to have them.
            params = image_form.param_controls("t2i", all_param_names(models), own_ids=False, size_note=True)
        with gr.Column(scale=3, min_width=320, elem_id="t2i-result"):  # assets/scroll.js: <tab>-result
            result = image_form.result_panel("t2i")
            shown = examples.text_to_image(models, row.prompt, model)
    return image_form.ImageForm(model, row, params, result), shown


# --- wiring ---------------------------------------------------------------------------------------

def _wire_controls(ctx: TabContext, models: Sequence[str], form: image_form.ImageForm,
                   shown: gr.Examples | None) -> None:
    """The model's controls (also after an example sets the model) and the size note under the height."""
    params = form.params
    follow = wire_model_controls(ctx.demo, form.model, params.presets, params.controls)
    examples.follow_text_to_image(shown, models, follow, params.presets, params.controls)
    if "width" in params.controls:
        width, height = params.controls["width"], params.controls["height"]
        for changed in (width, height, form.model):  # the model too: one sized by aspect ratio has no note
            changed.change(handlers.size_note, [form.model, width, height], params.size_note,
                           api_visibility="private", show_progress="hidden")


def _wire_generate(runtime: Runtime, form: image_form.ImageForm, gate: QuotaGate) -> None:
    """Generate: the /generate endpoint, then the seed to reuse, the run's downloads and code, Stop hidden."""
    names = form.names

    def generate(model_value: str, prompt_text: str, randomize_seed: bool, *rest: Any,
                 request: gr.Request | None = None) -> AsyncIterator[image_form.Outputs]:
        """Generate an image from a prompt with the chosen model (or several at once: ``count``).

        Returns the saved image file (the service's original bytes and format), a caption with size,
        seed, time and cost, a status message (empty when all went well; the reason when nothing was
        made) and the seed used. Parameters after ``randomize_seed`` are the capability registry's, by
        name; a model ignores those it does not take, and None means the model's default. ``count``
        (1-8) sends that many requests at once, each with its own seed: seed, seed+1, ... with
        ``consecutive_seeds`` (and randomize_seed false), otherwise random ones; every image is saved
        to History, and this returns the first (its caption, its seed) and, in the message, any that
        failed. /generate_variations returns them all. A bad input comes back as the message, nothing sent.
        """
        *values, count, consecutive, box = rest
        steps = handle_generate(runtime, model_value, prompt_text, randomize_seed,
                                dict(zip(names, values, strict=True)), count, consecutive, gate)
        return image_form.shown_steps(steps, request, box=box)

    endpoint_fn = endpoint(generate, "generate", ["model", "prompt"],  # None: the model's default
                           {"randomize_seed": True, **dict.fromkeys(names), "count": 1, "consecutive_seeds": False,
                            "page": None})  # page: see handoff()
    page_box = handoff()
    inputs = [form.model, form.row.prompt, form.params.randomize, *form.params.controls.values(),
              *form.variation_inputs, page_box]
    image_form.wire_image_run(runtime, form, endpoint_fn, inputs, api_name="generate", box=page_box)


def _wire_variations_api(runtime: Runtime, form: image_form.ImageForm, gate: QuotaGate) -> None:
    """/generate_variations: every image of a run at once, for programs (gradio_client, MCP)."""
    def handler(model: Any, prompt: Any, *rest: Any) -> AsyncIterator[variations.Variations]:
        return handle_variations(runtime, model, prompt, *rest)

    inputs = [form.model, form.row.prompt, form.params.randomize, *form.params.controls.values(),
              *form.variation_inputs]
    image_form.wire_variations_api(gate, form, handler, ["model", "prompt"], inputs, api_name="generate_variations",
                                   prefix="t2i", base="/generate",
                                   intro="Generate ``count`` (1-8, default 4) images of one prompt at once, each its "
                                         "own request with its own seed.")


def _wire_code(runtime: Runtime, form: image_form.ImageForm) -> None:
    """View code's button: the form as it stands, validated as Generate would validate it."""
    names = form.names

    def show(model_value: Any, prompt_text: Any, randomize_seed: Any, *rest: Any) -> list[Any]:
        *values, count = rest
        try:
            model_id = model_id_text(model_value)
            randomize = flag("randomize_seed", randomize_seed, True)
            number = variations.parse_count(count)
        except FluxError as err:
            return view_code.refused(err)
        params = handlers.collect_params(model_id, dict(zip(names, values, strict=True)), randomize)
        return view_code.form_code(runtime.settings, model_id, prompt_text, params, randomized=randomize,
                                   count=number)

    view_code.wire_button(form.result.code, show, [form.model, form.row.prompt, form.params.randomize,
                                                   *form.params.controls.values(), form.params.count])


def build(ctx: TabContext) -> TabHandle:
    models = text_models(ctx.runtime.models)
    form, shown = _layout(models)
    _wire_controls(ctx, models, form, shown)
    gate = quota_gate(ctx.demo)
    _wire_generate(ctx.runtime, form, gate)
    _wire_variations_api(ctx.runtime, form, gate)
    _wire_code(ctx.runtime, form)
    wire_prompt_tools(ctx.runtime, form.row, TAB, form.model, form.params.controls)
    return image_form.image_handle("t2i", TAB, form, models)
