"""The form Text to image and Edit with references share, laid out and wired once for both.

On one side the model, the prompt row, the size preset, "Randomize seed" and the Parameters
accordion (one control per parameter any of the tab's models takes); on the other the result, its
caption and "Reuse this seed". Both tabs' endpoints return the same four outputs (image, caption,
status, seed), end a run the same way and load History's settings the same way; what each adds
(Edit's references) stays in its own module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.errors import FluxError
from flux_ui.registry import MODELS
from flux_ui.ui import handlers
from flux_ui.ui.common import TabHandle, error_text, unchanged, wire_run
from flux_ui.ui.controls import make_component, merged_declaration, reuse_updates, seed_after_run, wire_seed
from flux_ui.ui.layout import PromptRow

#: What an image endpoint yields: the image file, its caption, the status line and the seed used.
Outputs = tuple[Any, Any, str, Any]


@dataclass
class ParamControls:
    """The size preset, "Randomize seed" and one control per parameter name, in the tab's order."""

    presets: gr.Dropdown
    randomize: gr.Checkbox
    controls: dict[str, gr.components.Component]
    size_note: gr.Markdown | None = None


def param_controls(prefix: str, names: Sequence[str], *, own_ids: bool = True,
                   size_note: bool = False) -> ParamControls:
    """The parameter block under the prompt row.

    ``own_ids``: each control's id and key become ``<prefix>-param-<name>``, since ids must be unique
    on the page; Text to image keeps make_component's ``param-<name>``. ``size_note``: a line under the
    height saying what the service will make of the size (wired by the tab).
    """
    presets = gr.Dropdown(label="Size preset", choices=[], value=None, elem_id=f"{prefix}-preset",
                          info="Pick a shape; width and height below can be fine-tuned.")
    randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id=f"{prefix}-randomize")
    controls: dict[str, gr.components.Component] = {}
    note = None
    with gr.Accordion("Parameters", open=True):
        for name in names:
            controls[name] = make_component(merged_declaration(name))
            if own_ids:
                controls[name].elem_id = f"{prefix}-param-{name}"
                controls[name].key = f"{prefix}-param-{name}"
            if size_note and name == "height":
                note = gr.Markdown("", elem_id=f"{prefix}-size-note")
    return ParamControls(presets, randomize, controls, note)


@dataclass
class ResultPanel:
    """The result image, its caption, "Reuse this seed" and the seed that button loads."""

    image: gr.Image
    info: gr.Markdown
    reuse: gr.Button
    used_seed: gr.State


def result_panel(prefix: str, *, caption_label: str | None = None) -> ResultPanel:
    image = gr.Image(label="Result", type="filepath", interactive=False, elem_id=f"{prefix}-image",
                     buttons=["download", "fullscreen"], height=560)
    info = gr.Markdown("Your image appears here, saved to History as it arrives.", elem_id=f"{prefix}-info",
                       label=caption_label)
    reuse = gr.Button("Reuse this seed", size="sm", visible=False, elem_id=f"{prefix}-reuse")
    return ResultPanel(image, info, reuse, gr.State(None))


@dataclass
class ImageForm:
    """One tab's image form, as its layout built it."""

    model: gr.Dropdown
    row: PromptRow
    params: ParamControls
    result: ResultPanel

    @property
    def names(self) -> list[str]:
        return list(self.params.controls)

    @property
    def seed(self) -> gr.components.Component:
        return self.params.controls["seed"]

    @property
    def api_outputs(self) -> list[Any]:
        """What the endpoint returns, in its order: no State, no button."""
        return [self.result.image, self.result.info, self.row.status, self.seed]

    @property
    def reuse_outputs(self) -> list[Any]:
        """What "reuse settings" loads, in :func:`controls.reuse_updates`'s order."""
        return [self.model, self.params.presets, self.row.prompt, self.params.randomize,
                *self.params.controls.values()]


async def shown_steps(steps: AsyncIterator[str | handlers.Generated], request: gr.Request | None,
                      on_error: Callable[[FluxError], None] | None = None) -> AsyncIterator[Outputs]:
    """A run's steps as the endpoint's outputs: a status line leaves the rest as it was, the image fills
    them, and a FluxError (after ``on_error``) becomes the status, with the rest as it was."""
    keep = unchanged(request)
    try:
        async for step in steps:
            if isinstance(step, str):
                yield keep, keep, step, keep
            else:
                yield step.path, handlers.caption(step.result), "", step.result.seed
    except FluxError as err:
        if on_error is not None:
            on_error(err)
        yield keep, keep, error_text(err, request), keep


def wire_image_run(form: ImageForm, fn: Callable[..., Any], inputs: Sequence[Any], *, api_name: str,
                   extra: Callable[..., list[Any]] | None = None, extra_inputs: Sequence[Any] = (),
                   extra_outputs: Sequence[Any] = ()) -> None:
    """The named endpoint on Generate and Enter (common.wire_run), then the seed to reuse, ``extra``'s
    updates for ``extra_outputs`` (from ``extra_inputs``) and Stop hidden; and the seed box's own events."""
    result, row = form.result, form.row

    def after_run(message: str | None, seed: Any, *rest: Any) -> list[Any]:
        """The seed to reuse, the tab's own updates, and Stop hidden, once a run has ended."""
        return [*seed_after_run(message, seed), *(extra(*rest) if extra else []), gr.update(visible=False)]

    wire_run(fn, inputs, form.api_outputs, api_name=api_name, run=row.run, submit=row.prompt, stop=row.stop,
             status=row.status, after=after_run, after_inputs=[row.status, form.seed, *extra_inputs],
             after_outputs=[result.used_seed, result.reuse, *extra_outputs, row.stop])
    wire_seed(form.seed, form.params.randomize, result.reuse, result.used_seed)


def image_handle(tab_id: str, name: str, form: ImageForm, models: Sequence[str],
                 message: Callable[[Mapping[str, Any]], str] | None = None) -> TabHandle:
    """How History loads a saved image's model, prompt, seed and parameters into the form; with
    ``message``, the status then says what History could not load (Edit's references)."""
    outputs = [*form.reuse_outputs, *([form.row.status] if message else [])]
    names = form.names

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        if settings.get("model") not in models:
            return [gr.update()] * len(outputs)
        updates = reuse_updates(MODELS[settings["model"]], names, settings)
        return [*updates, message(settings)] if message else updates

    return TabHandle(tab_id=tab_id, name=name, outputs=outputs, apply=apply, models=models)
