"""The text-to-image tab: :func:`handle_generate` on plain values, then layout and wiring (the work is in
handlers and progress)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import gradio as gr

from flux_ui.client import model_id_text
from flux_ui.errors import FluxError
from flux_ui.registry import MODELS, Mode
from flux_ui.runtime import Runtime
from flux_ui.ui import examples, handlers, progress
from flux_ui.ui.common import (
    TabContext,
    TabHandle,
    endpoint,
    error_text,
    flag,
    model_choices,
    unchanged,
    wire_run,
)
from flux_ui.ui.controls import (
    all_param_names,
    make_component,
    merged_declaration,
    reuse_updates,
    seed_after_run,
    wire_model_controls,
    wire_seed,
)

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


def build(ctx: TabContext) -> TabHandle:
    runtime = ctx.runtime
    models = text_models(runtime.models)
    names = all_param_names(models)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            model = gr.Dropdown(choices=model_choices(models), value=models[0], label="Model",
                                info=MODELS[models[0]].summary, elem_id="t2i-model")
            prompt = gr.Textbox(label="Prompt", lines=4, max_lines=12, elem_id="t2i-prompt",
                                placeholder="A red fox in an autumn forest, morning light, 35 mm photo",
                                info="Ctrl+Enter (⌘+Enter) generates.")
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="t2i-run", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="t2i-stop", scale=1, visible=False)
            status = gr.Markdown("", elem_id="t2i-status", elem_classes=["flux-status"])
            presets = gr.Dropdown(label="Size preset", choices=[], value=None, elem_id="t2i-preset",
                                  info="Pick a shape; width and height below can be fine-tuned.")
            randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="t2i-randomize")
            controls: dict[str, Any] = {}
            with gr.Accordion("Parameters", open=True):
                for name in names:
                    controls[name] = make_component(merged_declaration(name))
                    if name == "height":
                        size_note = gr.Markdown("", elem_id="t2i-size-note")
        with gr.Column(scale=3, min_width=320):
            image = gr.Image(label="Result", type="filepath", interactive=False, elem_id="t2i-image",
                             buttons=["download", "fullscreen"], height=560)
            info = gr.Markdown("Your image appears here, saved to History as it arrives.", elem_id="t2i-info")
            reuse = gr.Button("Reuse this seed", size="sm", visible=False, elem_id="t2i-reuse")
            used_seed = gr.State(None)
            shown = examples.text_to_image(models, prompt, model)

    control_list = list(controls.values())

    follow = wire_model_controls(ctx.demo, model, presets, controls)
    examples.follow_text_to_image(shown, models, follow, presets, controls)
    if "width" in controls:
        for side in (controls["width"], controls["height"]):
            side.change(handlers.size_note, [model, controls["width"], controls["height"]], size_note,
                        api_visibility="private", show_progress="hidden")

    async def generate(model_value: str, prompt_text: str, randomize_seed: bool, *values: Any,
                       request: gr.Request | None = None) -> AsyncIterator[tuple]:
        """Generate one image from a prompt with the chosen model.

        Returns the saved image file (the service's original bytes and format), a caption with
        size, seed, time and cost, a status message (empty when all went well; the reason when
        nothing was made) and the seed used. Parameters after ``randomize_seed`` are the
        capability registry's, by name; a model ignores those it does not take, and None means
        the model's default. A bad input comes back as the message, nothing sent.
        """
        keep = unchanged(request)
        try:
            async for step in handle_generate(runtime, model_value, prompt_text, randomize_seed,
                                              dict(zip(names, values, strict=True))):
                if isinstance(step, str):
                    yield keep, keep, step, keep
                else:
                    yield step.path, handlers.caption(step.result), "", step.result.seed
        except FluxError as err:
            yield keep, keep, error_text(err, request), keep

    endpoint_fn = endpoint(generate, "generate", ["model", "prompt"],
                           {"randomize_seed": True, **dict.fromkeys(names)})  # None: the model's default
    inputs = [model, prompt, randomize, *control_list]
    outputs = [image, info, status, controls["seed"]]  # what the API returns, in its order: no State, no button

    def after_run(message: str | None, seed: Any) -> list[Any]:
        """The seed to reuse, and Stop hidden, once a run has ended."""
        return [*seed_after_run(message, seed), gr.update(visible=False)]

    wire_run(endpoint_fn, inputs, outputs, api_name="generate", run=run, submit=prompt, stop=stop, status=status,
             after=after_run, after_inputs=[status, controls["seed"]], after_outputs=[used_seed, reuse, stop])
    wire_seed(controls["seed"], randomize, reuse, used_seed)

    outputs_for_reuse = [model, presets, prompt, randomize, *control_list]

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        """Load a saved image's model, prompt, seed and parameters back into this tab."""
        if settings.get("model") not in models:
            return [gr.update()] * len(outputs_for_reuse)
        return reuse_updates(MODELS[settings["model"]], names, settings)

    return TabHandle(tab_id="t2i", name=TAB, outputs=outputs_for_reuse, apply=apply, models=models)
