"""A Kontext edit: the models and routes that edit one picture, what each route carries and its controls, the edit.

An edit reads the input image, sends it with the instruction, saves the result in its place in the
trail's History chain, and extends the edit trail (:mod:`flux_ui.ui.kontext_trail`) with it; the tab
(:mod:`flux_ui.ui.kontext`) lays out the controls and wires these to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from flux_ui.client import model_id_text
from flux_ui.errors import ValidationError
from flux_ui.registry import MODELS, Mode, ModelSpec, Param, Route
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers, progress
from flux_ui.ui.common import flag, received_files, upload_roots
from flux_ui.ui.fanout import in_group
from flux_ui.ui.kontext_trail import TRAIL_KIND, Step, chain_place, digest_of, extend_trail
from flux_ui.ui.text import inert

TAB = "kontext"
#: The routes that carry an input image, as the route choice names them.
ROUTE_LABELS = {Route.BFL: "BFL route", Route.IMAGES_EDITS: "Image API edits"}
#: How an API caller sends the input image, for messages about one that is not a file.
IMAGE_EXAMPLE = 'image=handle_file("street.png")'
MATCH_INPUT = ("Match the input image", "")
NO_INPUT = ("There is no picture to edit: drop it into the Input image box first (or paste it with Ctrl+V; "
            f"from code, pass {IMAGE_EXAMPLE}).")


# --- models, routes, parameters -------------------------------------------------------------

def edit_models(models: Sequence[str]) -> list[str]:
    """The deployed models that edit exactly one picture (Kontext)."""
    return [m for m in models if MODELS[m].does(Mode.INSTRUCTION_EDIT)]


def no_model_text() -> str:
    names = ", ".join(f"`{m.id}`" for m in MODELS.values() if m.does(Mode.INSTRUCTION_EDIT))
    return (f"No model that edits one picture from an instruction is deployed here. Add {names} to "
            "`FLUX_DEPLOYMENTS` (see the README) and restart flux-ui.")


def edit_routes(spec: ModelSpec) -> list[Route]:
    """The model's routes that carry an input image, native first."""
    return [r for r in spec.routes if r in ROUTE_LABELS]


def route_choices(spec: ModelSpec) -> list[tuple[str, str]]:
    return [(ROUTE_LABELS[r], r.value) for r in edit_routes(spec)]


def parse_route(spec: ModelSpec | None, value: str | None) -> Route | None:
    """The route asked for; empty means the model's first editing route."""
    if not value:
        return edit_routes(spec)[0] if spec else None
    try:
        return Route(value)
    except ValueError:
        offered = ", ".join(f"'{r.value}'" for r in ROUTE_LABELS)
        raise ValidationError(f"The route must be one of {offered}; got {value!r}.", field="route") from None


def carried(p: Param, route: Route | None) -> bool:
    """Whether a parameter travels on this route (the Image API carries only a few)."""
    return route is not Route.IMAGES_EDITS or p.image_api


def route_note(spec: ModelSpec, route: Route | None) -> str:
    left_out = [p.label.lower() for p in spec.params if not carried(p, route)]
    if not left_out:
        return ""
    return (f"The Image API edits route carries the instruction, the image, the aspect ratio and the output "
            f"format only: {', '.join(left_out)} are not sent. Choose the BFL route to set them.")


def edit_params(model: str, route: Route | None, values: Mapping[str, Any], randomize_seed: bool) -> dict[str, Any]:
    """The parameters to send: the model's, minus empty ones and those the route does not carry."""
    params = handlers.collect_params(model, values, randomize_seed)
    spec = MODELS.get(model) if isinstance(model, str) else None
    if spec is None:
        return params
    return {k: v for k, v in params.items() if (p := spec.param(k)) is None or carried(p, route)}


# --- a control per parameter, shown for the route that carries it ----------------------------------

def declaration(models: Sequence[str], name: str) -> Param:
    return next(p for m in models for p in MODELS[m].all_params if p.name == name)


def make_control(p: Param, models: Sequence[str]) -> gr.components.Component:
    """A component for one parameter with this tab's elem_id, bounded for every edit model."""
    common: dict[str, Any] = {"label": p.label, "info": p.help, "elem_id": f"kontext-{p.name}",
                              "key": f"kontext-{p.name}"}
    if p.name == "seed":
        # Shown only with "Randomize seed" unticked (controls.seed_boxes); ticked, the client picks the seed.
        return gr.Number(value=None, precision=0, minimum=p.minimum, maximum=p.maximum, **common)
    if p.kind == "aspect_ratio":
        presets = dict.fromkeys(c for m in models if (q := MODELS[m].param(p.name)) for c in q.choices)
        return gr.Dropdown(choices=[MATCH_INPUT, *((c, c) for c in presets)], value=p.default or "",
                           allow_custom_value=True, **common)
    if p.kind in ("int", "float"):
        # This tab always sends an input image, so the editing maximum applies.
        highest = max(q.maximum_for(editing=True) or 0 for m in models if (q := MODELS[m].param(p.name)))
        return gr.Slider(minimum=p.minimum, maximum=highest, step=p.step, value=p.default, **common)
    if p.kind == "bool":
        return gr.Checkbox(value=bool(p.default), **common)
    if p.kind == "choice":
        return gr.Radio(choices=list(p.choices), value=p.default, **common)
    return gr.Textbox(value=p.default, lines=1, **common)


def control_update(spec: ModelSpec, name: str, route: Route | None, reset: bool = True) -> dict[str, Any]:
    """Show (on this route), bound and, with ``reset``, default one control for a model."""
    p = spec.param(name)
    if p is None or not carried(p, route):
        return gr.update(visible=False)
    if not reset or name == "seed":
        return gr.update(visible=True)
    change: dict[str, Any] = {"visible": True, "label": p.label, "info": p.help, "value": p.default}
    if p.kind == "aspect_ratio":
        change.update(value=p.default or "", choices=[MATCH_INPUT, *((c, c) for c in p.choices)])
    elif p.kind in ("int", "float"):
        change.update(minimum=p.minimum, maximum=p.maximum_for(editing=True), step=p.step)
    elif p.kind == "choice":
        change.update(choices=list(p.choices))
    return gr.update(**change)


# --- the edit ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class EditDone:
    generated: handlers.Generated
    trail: list[Step]
    current: int  # the trail index of the image that was edited (still in the input box)
    note: str  # what happened to the trail
    chain: str = ""  # the trail's id in History (a new one when this edit started a new trail)


async def read_input(image_path: str | None) -> bytes:
    if not image_path:
        raise ValidationError(NO_INPUT, field="references")
    try:
        return await asyncio.to_thread(Path(image_path).read_bytes)
    except OSError:
        raise ValidationError("The input image could not be read; drop it in again.", field="references") from None


async def run_edit(
    runtime: Runtime,
    model: str,
    prompt: str,
    image_path: str | None,
    route: Route | None,
    params: Mapping[str, Any],
    trail: Sequence[Step],
    chain: str | None = None,
) -> AsyncIterator[str | EditDone]:
    """Yield status lines, then the saved result with the new trail; errors (FluxError) propagate.

    The result is saved in ``chain`` (the trail's History group) at its step, or in a new chain when
    the input image is not in the trail, so that the trail can be rebuilt from History.
    """
    data = await read_input(image_path)
    assert image_path is not None
    chain_id, place = chain_place(trail, digest_of(data), chain)
    extra = in_group(TRAIL_KIND, chain_id, step=place)
    async for step in progress.stream(runtime, model, prompt, params, [data], route, tab=TAB, extra=extra):
        if isinstance(step, str):
            yield step
            continue
        # The digest of History's file (metadata included): those are the bytes that come back
        # when the result is used as the next input.
        saved = await asyncio.to_thread(Path(step.path).read_bytes)
        result = Step(step.path, digest_of(saved), prompt)
        new_trail, current, note = extend_trail(trail, Step(image_path, digest_of(data)), result)
        yield EditDone(step, new_trail, current, note, chain_id)


async def handle_kontext(runtime: Runtime, models: Sequence[str], model: Any, prompt: Any, image: Any, route: Any,
                         randomize_seed: Any, values: Mapping[str, Any], trail: Sequence[Step],
                         chain: str | None = None) -> AsyncIterator[str | EditDone]:
    """The /kontext endpoint on the values as sent (``image`` as Gradio hands over a file).

    A bad input raises a FluxError (ValidationError) before anything is sent or any file the
    request names outside Gradio's uploads and the outputs folder is opened.
    """
    model = model_id_text(model)  # before the tab looks it up
    if model not in models:
        offered = " or ".join(f"{MODELS[m].display_name} ({m})" for m in models)
        name = MODELS[model].display_name if model in MODELS else repr(model)
        raise ValidationError(f"{name} cannot make a Kontext edit here; choose {offered}.", field="model")
    chosen = parse_route(MODELS[model], route)
    params = edit_params(model, chosen, values, flag("randomize_seed", randomize_seed, True))
    if isinstance(image, list | tuple) and len(image) > 1:
        raise ValidationError(f"A Kontext edit takes one input image; you sent {len(image)}. Send one, as "
                              f"{IMAGE_EXAMPLE}, or combine several with Edit with references (/edit).",
                              field="references")
    paths = received_files(image, upload_roots(runtime), "The input image", IMAGE_EXAMPLE, numbered=False)
    async for step in run_edit(runtime, model, prompt, paths[0] if paths else None, chosen, params, trail, chain):
        yield step


def not_applied(model: str, route: Route | None) -> str:
    """What this route left out of an edit, as one line ("" when the route carries every parameter)."""
    spec = MODELS[model]
    if not route_note(spec, route):
        return ""
    return ("Sent on the Image API edits route: " + ", ".join(p.label.lower() for p in spec.params
                                                              if not carried(p, route)) + " did not apply.")


def done_status(done: EditDone, route: Route | None) -> str:
    """The page's status after an edit, as Markdown (the note quotes instructions)."""
    index = len(done.trail) - 1
    lines = [f"Added edit {index} to the trail. “Use this result as the next input” continues from it."]
    if done.note:
        lines.append(inert(done.note))
    if line := not_applied(done.generated.result.model, route):
        lines.append(line)
    return "\n\n".join(lines)


def done_caption(done: EditDone, route: Route | None, program: bool) -> str:
    """The caption under the result. A program's message is empty after a successful edit (as every
    endpoint's is), so its caption also says what the route left out."""
    text = handlers.caption(done.generated.result)
    line = not_applied(done.generated.result.model, route) if program else ""
    return f"{text}\n- {line}" if line else text
