"""The text-to-image tab: :func:`handle_generate` on plain values, then layout and wiring (the work is in
handlers and progress)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import gradio as gr

from flux_ui.client import model_id_text
from flux_ui.registry import MODELS, Mode
from flux_ui.runtime import Runtime
from flux_ui.ui import examples, handlers, image_form, progress
from flux_ui.ui.common import TabContext, TabHandle, endpoint, flag
from flux_ui.ui.controls import all_param_names, wire_model_controls
from flux_ui.ui.layout import model_dropdown, prompt_row

TAB = "text-to-image"


def text_models(models: tuple[str, ...]) -> list[str]:
    return [m for m in models if MODELS[m].does(Mode.GENERATE)]


async def handle_generate(runtime: Runtime, model: Any, prompt: Any, randomize_seed: Any,
                          values: Mapping[str, Any]) -> AsyncIterator[str | handlers.Generated]:
    """The /generate endpoint on the values as sent: status lines, then the saved image.

    A bad input raises a FluxError (ValidationError) before anything is sent.
    """
    model = model_id_text(model)  # before the tab looks it up
    params = handlers.collect_params(model, values, flag("randomize_seed", randomize_seed, True))
    async for step in progress.stream(runtime, model, prompt, params, tab=TAB):
        yield step


# --- layout ---------------------------------------------------------------------------------------

def _layout(models: Sequence[str]) -> tuple[image_form.ImageForm, gr.Examples | None]:
    """The form on the left, the result and the examples that fill the form on the right."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            model = model_dropdown("t2i", models)
            row = prompt_row("t2i", placeholder="A red fox in an autumn forest, morning light, 35 mm photo",
                             info="Ctrl+Enter (⌘+Enter) generates.")
            # make_component's own ids (param-<name>): this tab was first to have them.
            params = image_form.param_controls("t2i", all_param_names(models), own_ids=False, size_note=True)
        with gr.Column(scale=3, min_width=320):
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
        for side in (width, height):
            side.change(handlers.size_note, [form.model, width, height], params.size_note,
                        api_visibility="private", show_progress="hidden")


def _wire_generate(runtime: Runtime, form: image_form.ImageForm) -> None:
    """Generate: the /generate endpoint, then the seed to reuse and Stop hidden."""
    names = form.names

    def generate(model_value: str, prompt_text: str, randomize_seed: bool, *values: Any,
                 request: gr.Request | None = None) -> AsyncIterator[image_form.Outputs]:
        """Generate one image from a prompt with the chosen model.

        Returns the saved image file (the service's original bytes and format), a caption with
        size, seed, time and cost, a status message (empty when all went well; the reason when
        nothing was made) and the seed used. Parameters after ``randomize_seed`` are the
        capability registry's, by name; a model ignores those it does not take, and None means
        the model's default. A bad input comes back as the message, nothing sent.
        """
        steps = handle_generate(runtime, model_value, prompt_text, randomize_seed,
                                dict(zip(names, values, strict=True)))
        return image_form.shown_steps(steps, request)

    endpoint_fn = endpoint(generate, "generate", ["model", "prompt"],
                           {"randomize_seed": True, **dict.fromkeys(names)})  # None: the model's default
    inputs = [form.model, form.row.prompt, form.params.randomize, *form.params.controls.values()]
    image_form.wire_image_run(form, endpoint_fn, inputs, api_name="generate")


def build(ctx: TabContext) -> TabHandle:
    models = text_models(ctx.runtime.models)
    form, shown = _layout(models)
    _wire_controls(ctx, models, form, shown)
    _wire_generate(ctx.runtime, form)
    return image_form.image_handle("t2i", TAB, form, models)
