"""The text-to-image tab: layout and wiring only; the work is in handlers."""

from __future__ import annotations

import inspect
from typing import Any

import gradio as gr

from flux_ui.client.errors import FluxError
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers
from flux_ui.ui.controls import all_param_names, first_declaration, make_component, preset_sizes, update_for


def text_models(runtime: Runtime) -> list[str]:
    return [m for m in runtime.models if MODELS[m].text_to_image]


def build(runtime: Runtime, demo: gr.Blocks) -> None:
    models = text_models(runtime)
    names = all_param_names(models)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            model = gr.Dropdown(
                choices=[(MODELS[m].display_name, m) for m in models], value=models[0] if models else None,
                label="Model", info=MODELS[models[0]].summary if models else "No model is configured.",
                elem_id="t2i-model",
            )
            prompt = gr.Textbox(label="Prompt", lines=4, max_lines=12, elem_id="t2i-prompt",
                                placeholder="A red fox in an autumn forest, morning light, 35 mm photo",
                                info="Ctrl+Enter to generate.")
            run = gr.Button("Generate", variant="primary", elem_id="t2i-run")
            status = gr.Markdown("", elem_id="t2i-status")
            presets = gr.Dropdown(label="Size preset", choices=[], value=None, elem_id="t2i-preset",
                                  info="Pick a shape; width and height below can be fine-tuned.")
            randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="t2i-randomize")
            controls: dict[str, Any] = {}
            with gr.Accordion("Parameters", open=True):
                for name in names:
                    controls[name] = make_component(first_declaration(name))
        with gr.Column(scale=3, min_width=320):
            image = gr.Image(label="Result", type="filepath", interactive=False, elem_id="t2i-image",
                             buttons=["download", "fullscreen"], height=560)
            info = gr.Markdown("Your image appears here.", elem_id="t2i-info")
            reuse = gr.Button("Reuse this seed", size="sm", visible=False, elem_id="t2i-reuse")
            used_seed = gr.State(None)

    def on_model(model_id: str) -> list[Any]:
        spec = MODELS[model_id]
        choices = preset_sizes(spec)
        return [gr.update(info=spec.summary),
                gr.update(choices=choices, value=None, visible=bool(choices))] + [
            update_for(spec, n) for n in names]

    model.change(on_model, model, [model, presets, *controls.values()], api_visibility="private")

    def on_preset(value: str | None) -> list[Any]:
        if not value:
            return [gr.update(), gr.update()]
        w, h = (int(v) for v in value.split("x"))
        return [gr.update(value=w), gr.update(value=h)]

    if "width" in controls:
        presets.change(on_preset, presets, [controls["width"], controls["height"]], api_visibility="private")

    async def generate(model_id: str, prompt_text: str, randomize_seed: bool, *values: Any) -> tuple[Any, ...]:
        """Generate one image from a prompt; returns the saved file, a caption, and a message.

        Parameters after ``randomize_seed`` are the registry's parameters by name; a model
        ignores those it does not take. Errors come back as the message, inputs untouched.
        """
        params = handlers.collect_params(model_id, dict(zip(names, values, strict=True)), randomize_seed)
        try:
            done = await handlers.generate(runtime, model_id, prompt_text, params)
        except FluxError as err:
            return gr.update(), gr.update(), f"⚠️ {err}", gr.update(), None
        result = done.result
        return (done.path, handlers.caption(result), "", gr.update(visible=result.seed is not None), result.seed)

    generate.__signature__ = named_signature(  # type: ignore[attr-defined]
        ["model", "prompt"], {"randomize_seed": True, **dict.fromkeys(names)}  # None: the model's default
    )
    inputs = [model, prompt, randomize, *controls.values()]
    outputs = [image, info, status, reuse, used_seed]
    run.click(generate, inputs, outputs, api_name="generate")
    prompt.submit(generate, inputs, outputs, api_visibility="private")
    reuse.click(lambda s: (gr.update(value=s), gr.update(value=False)), used_seed,
                [controls["seed"], randomize], api_visibility="private")
    demo.load(on_model, model, [model, presets, *controls.values()], api_visibility="private")


def named_signature(required: list[str], optional: dict[str, Any]) -> inspect.Signature:
    """A signature with these names and defaults, so the API lists them instead of param_3…"""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(n, kind) for n in required]
                             + [inspect.Parameter(n, kind, default=d) for n, d in optional.items()])
