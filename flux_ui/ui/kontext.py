"""The Kontext edit tab: one picture, edited step by step with plain instructions.

The plain functions come first (route and parameter rules, the edit trail, the edit
itself); :func:`build` only lays out and wires.

The edit trail is the input image of the first edit ("original"), then each result with
its instruction. Which step an input image is, is recognised by its bytes (SHA-256), not by
how it reached the box: a result used as the next input, a step picked from the trail and a
re-uploaded original are all recognised, and any other picture starts a new trail.
Stepping back drops nothing. A new edit made from an earlier step starts a branch there:
the later steps leave the trail (History keeps them) and the status line says so.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import Dependency

from flux_ui.client.errors import FluxError, ValidationError
from flux_ui.client.validation import model_id_text
from flux_ui.registry import MODELS, ModelSpec, Param, Route
from flux_ui.runtime import Runtime
from flux_ui.ui import examples, handlers, progress
from flux_ui.ui.common import (
    TabContext,
    TabHandle,
    accept_raw_files,
    endpoint,
    error_text,
    flag,
    from_program,
    handoff,
    leave,
    model_choices,
    received_files,
    take,
    unchanged,
    upload_roots,
    wire_run,
)
from flux_ui.ui.controls import all_param_names
from flux_ui.ui.text import inert

TAB = "kontext"
#: The routes that carry an input image, as the route choice names them.
ROUTE_LABELS = {Route.BFL: "BFL route", Route.IMAGES_EDITS: "Image API edits"}
MATCH_INPUT = ("Match the input image", "")
CAPTION_CHARS = 40  # instruction length shown under a trail thumbnail
TRAIL_COLUMNS = 5
#: How an API caller sends the input image, for messages about one that is not a file.
IMAGE_EXAMPLE = 'image=handle_file("street.png")'
NO_INPUT = ("There is no picture to edit: drop it into **Input image** first (or paste it with Ctrl+V; "
            f"from code, pass {IMAGE_EXAMPLE}).")
EMPTY_TRAIL = ("No edits yet. The trail keeps the input image and each result with its instruction; "
               "click a step to make it the input again.")


# --- models, routes, parameters -------------------------------------------------------------

def edit_models(models: Sequence[str]) -> list[str]:
    """The deployed models that edit exactly one picture (Kontext)."""
    return [m for m in models if MODELS[m].max_references == 1]


def no_model_text() -> str:
    names = ", ".join(f"`{m.id}`" for m in MODELS.values() if m.max_references == 1)
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


def edit_maximum(p: Param) -> float | None:
    """This tab always sends an input image, so the tighter editing maximum applies."""
    return p.edit_maximum if p.edit_maximum is not None else p.maximum


def declaration(models: Sequence[str], name: str) -> Param:
    return next(p for m in models for p in MODELS[m].all_params if p.name == name)


def make_control(p: Param, models: Sequence[str]) -> gr.components.Component:
    """A component for one parameter with this tab's elem_id, bounded for every edit model."""
    common: dict[str, Any] = {"label": p.label, "info": p.help, "elem_id": f"kontext-{p.name}",
                              "key": f"kontext-{p.name}"}
    if p.name == "seed":
        # Greyed out while "Randomize seed" is ticked: the client then picks the seed.
        return gr.Number(value=None, precision=0, minimum=p.minimum, maximum=p.maximum, interactive=False, **common)
    if p.kind == "aspect_ratio":
        presets = dict.fromkeys(c for m in models if (q := MODELS[m].param(p.name)) for c in q.choices)
        return gr.Dropdown(choices=[MATCH_INPUT, *((c, c) for c in presets)], value=p.default or "",
                           allow_custom_value=True, **common)
    if p.kind in ("int", "float"):
        highest = max(edit_maximum(q) or 0 for m in models if (q := MODELS[m].param(p.name)))
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
        change.update(minimum=p.minimum, maximum=edit_maximum(p), step=p.step)
    elif p.kind == "choice":
        change.update(choices=list(p.choices))
    return gr.update(**change)


# --- the edit trail ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One image in the trail: the original (no instruction) or an edit's result."""

    path: str
    digest: str
    instruction: str | None = None


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def step_label(index: int, step: Step, limit: int | None = None, markdown: bool = False) -> str:
    """"edit 2: add snow" (shortened to ``limit``); with ``markdown``, the instruction made inert."""
    if step.instruction is None:
        return "original"
    text = " ".join(step.instruction.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"edit {index}: {inert(text) if markdown else text}"


def find_step(trail: Sequence[Step], digest: str) -> int | None:
    return next((i for i, s in enumerate(trail) if s.digest == digest), None)


def extend_trail(trail: Sequence[Step], source: Step, result: Step) -> tuple[list[Step], int, str]:
    """The trail after an edit of ``source`` gave ``result``: (trail, index of source, note).

    An edit from an earlier step cuts the steps after it (the branch point) before adding
    the result; the note names them so nothing leaves the trail unannounced.
    """
    at = find_step(trail, source.digest)
    if at is None:
        note = ("This input image is not in the trail, so a new trail starts with it (earlier edits are in History)."
                if trail else "")
        return [Step(source.path, source.digest), result], 0, note
    dropped = list(trail[at + 1:])
    note = ""
    if dropped:
        names = ", ".join(step_label(i, s, CAPTION_CHARS) for i, s in enumerate(dropped, start=at + 1))
        note = (f"New branch from {step_label(at, trail[at], CAPTION_CHARS)}: {names} left the trail "
                "(History keeps them).")
    return [*trail[: at + 1], result], at, note


def trail_gallery(trail: Sequence[Step]) -> list[tuple[str, str]]:
    return [(s.path, step_label(i, s, CAPTION_CHARS)) for i, s in enumerate(trail)]


def trail_height(steps: int) -> int:
    """Gallery height in px: one or two rows of thumbnails, then it scrolls (the list shows all)."""
    rows = min(2, max(1, -(-steps // TRAIL_COLUMNS)))
    return 24 + 130 * rows


def trail_text(trail: Sequence[Step], current: int | None) -> str:
    """The trail as a list, the step in the input box marked."""
    if not trail:
        return EMPTY_TRAIL
    lines = []
    for i, s in enumerate(trail):
        mark = " ◀ **input now**" if i == current else ""
        lines.append(f"- {step_label(i, s, markdown=True)}{mark}")
    if current is None:
        lines.append("- *your own picture* ◀ **input now** (its first edit starts a new trail)")
    return "\n".join(lines)


def step_back_text(trail: Sequence[Step], index: int) -> str:
    later = len(trail) - 1 - index
    label = step_label(index, trail[index], CAPTION_CHARS, markdown=True)
    if later <= 0:
        return f"{label} is the input now."
    steps = "step stays" if later == 1 else f"{later} steps stay"
    return (f"Stepped back: {label} is the input now. The later "
            f"{steps} in the trail until you make a new edit from here, which starts a branch.")


# --- the edit ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class EditDone:
    generated: handlers.Generated
    trail: list[Step]
    current: int  # the trail index of the image that was edited (still in the input box)
    note: str  # what happened to the trail


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
) -> AsyncIterator[str | EditDone]:
    """Yield status lines, then the saved result with the new trail; errors (FluxError) propagate."""
    data = await read_input(image_path)
    assert image_path is not None
    async for step in progress.stream(runtime, model, prompt, params, [data], route, tab=TAB):
        if isinstance(step, str):
            yield step
            continue
        # The digest of History's file (metadata included): those are the bytes that come back
        # when the result is used as the next input.
        saved = await asyncio.to_thread(Path(step.path).read_bytes)
        result = Step(step.path, digest_of(saved), prompt)
        new_trail, current, note = extend_trail(trail, Step(image_path, digest_of(data)), result)
        yield EditDone(step, new_trail, current, note)


async def handle_kontext(runtime: Runtime, models: Sequence[str], model: Any, prompt: Any, image: Any, route: Any,
                         randomize_seed: Any, values: Mapping[str, Any],
                         trail: Sequence[Step]) -> AsyncIterator[str | EditDone]:
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
    async for step in run_edit(runtime, model, prompt, paths[0] if paths else None, chosen, params, trail):
        yield step


def done_status(done: EditDone, route: Route | None, markdown: bool = True) -> str:
    """The status after an edit: Markdown for the page (the note quotes instructions), plain for a program."""
    index = len(done.trail) - 1
    lines = [f"Added edit {index} to the trail. “Use this result as the next input” continues from it."]
    if done.note:
        lines.append(inert(done.note) if markdown else done.note)
    spec = MODELS[done.generated.result.model]
    if route_note(spec, route):
        lines.append("Sent on the Image API edits route: " + ", ".join(
            p.label.lower() for p in spec.params if not carried(p, route)) + " did not apply.")
    return "\n\n".join(lines)


# --- layout and wiring ------------------------------------------------------------------------

def build(ctx: TabContext) -> TabHandle:
    models = edit_models(ctx.runtime.models)
    if not models:
        gr.Markdown(no_model_text(), elem_id="kontext-none")
        return TabHandle(tab_id="kontext", name=TAB)
    return _build(ctx, models)


def _build(ctx: TabContext, models: list[str]) -> TabHandle:
    runtime = ctx.runtime
    first = MODELS[models[0]]
    names = all_param_names(models)
    size_names = [n for n in names if n in ("aspect_ratio", "width", "height")]
    other_names = [n for n in names if n not in size_names]
    all_routes = list(dict.fromkeys(r for m in models for r in edit_routes(MODELS[m])))
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            model = gr.Dropdown(choices=model_choices(models), value=models[0], label="Model",
                                info=first.summary, elem_id="kontext-model")
            route = gr.Radio(choices=[(ROUTE_LABELS[r], r.value) for r in all_routes],
                             value=edit_routes(first)[0].value, label="Route", elem_id="kontext-route",
                             info="The same model, reached two ways; the BFL route carries every parameter.",
                             visible=len(route_choices(first)) > 1)
            note = gr.Markdown("", elem_id="kontext-route-note", elem_classes=["flux-status"])
            image = gr.Image(label="Input image", type="filepath", sources=["upload", "clipboard"], image_mode=None,
                             height=320, elem_id="kontext-input", buttons=["fullscreen"])
            prompt = gr.Textbox(label="Instruction", lines=3, max_lines=10, elem_id="kontext-prompt",
                                placeholder="Make it night and add falling snow; keep the person and the pose",
                                info="Say what to change and what to keep. Ctrl+Enter (⌘+Enter) generates.")
            controls: dict[str, Any] = {}
            for name in size_names:  # the shape matters to most edits: kept in view
                controls[name] = make_control(declaration(models, name), models)
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="kontext-run", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="kontext-stop", scale=1, visible=False)
            status = gr.Markdown("", elem_id="kontext-status", elem_classes=["flux-status"])
            more = ", ".join(declaration(models, n).label.lower() for n in other_names)
            with gr.Accordion(f"More parameters: {more}", open=False, elem_id="kontext-more"):
                randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="kontext-randomize",
                                        info="Untick to send the seed below.")
                for name in other_names:
                    controls[name] = make_control(declaration(models, name), models)
        with gr.Column(scale=3, min_width=320):
            result = gr.Image(label="Result", type="filepath", interactive=False, elem_id="kontext-result",
                              buttons=["download", "fullscreen"], height=480)
            info = gr.Markdown("The edited picture appears here, saved to History as it arrives.",
                               elem_id="kontext-info")
            use = gr.Button("Use this result as the next input", elem_id="kontext-use-result", visible=False)
            gr.Markdown("### Edit trail")
            gallery = gr.Gallery(label="Edit trail", show_label=False, columns=TRAIL_COLUMNS, fit_columns=False,
                                 height=trail_height(1), visible=False, buttons=[], allow_preview=False,
                                 object_fit="contain", elem_id="kontext-trail", interactive=False)
            trail_md = gr.Markdown(EMPTY_TRAIL, elem_id="kontext-trail-list")
            shown = examples.kontext(models, image, prompt, model)
            trail_state = gr.State([])
            current_state = gr.State(None)

    ordered = [controls[n] for n in [*size_names, *other_names]]

    def visibility(model_id: str, route_value: str, reset: bool) -> list[Any]:
        spec = MODELS[model_id]
        chosen = parse_route(spec, route_value)
        seed = spec.param("seed")
        return [gr.update(value=route_note(spec, chosen)),
                gr.update(visible=seed is not None and carried(seed, chosen)),
                *(control_update(spec, n, chosen, reset) for n in [*size_names, *other_names])]

    def on_model(model_id: str, route_value: str) -> list[Any]:
        spec = MODELS[model_id]
        offered = [r.value for r in edit_routes(spec)]
        chosen = route_value if route_value in offered else offered[0]
        return [gr.update(info=spec.summary),
                gr.update(choices=route_choices(spec), value=chosen, visible=len(offered) > 1),
                *visibility(model_id, chosen, reset=True)]

    if "seed" in controls:
        randomize.change(lambda r: gr.update(interactive=not r), randomize, controls["seed"],
                         api_visibility="private")

    model_outputs = [model, route, note, randomize, *ordered]
    model.input(on_model, [model, route], model_outputs, api_visibility="private")
    ctx.demo.load(on_model, [model, route], model_outputs, api_visibility="private")
    route.change(lambda m, r: visibility(m, r, reset=False), [model, route], [note, randomize, *ordered],
                 api_visibility="private")

    async def kontext(model_value: str, prompt_text: str, image_value: Any, route_value: str | None,
                      *rest: Any, request: gr.Request | None = None) -> AsyncIterator[tuple]:
        """Edit one picture with a plain instruction (FLUX.1 Kontext).

        Takes the model, the instruction, the image file to edit (from an MCP client, as base64
        data: "data:image/png;base64,…") and the route ("bfl", or "images/edits" for the Image API,
        which carries only the aspect ratio and output format). An empty aspect_ratio matches the
        input image. The other parameters are the capability registry's, by name; None means the
        model's default, and safety_tolerance is at most 2 when editing. Returns the saved result
        file (the service's original bytes and format), a caption with size, seed, time and cost,
        and a status message; a bad input comes back as the message, with nothing sent.
        """
        *values, trail, box = rest
        keep = unchanged(request)
        randomize_seed = values[len(size_names)]
        named = dict(zip([*size_names, *other_names], [*values[:len(size_names)], *values[len(size_names) + 1:]],
                         strict=True))
        try:
            async for step in handle_kontext(runtime, models, model_value, prompt_text, image_value, route_value,
                                             randomize_seed, named, trail or []):
                if isinstance(step, str):
                    yield keep, keep, step
                    continue
                result = step.generated.result
                leave(box, trail=step.trail, current=step.current)
                yield (step.generated.path, handlers.caption(result),
                       done_status(step, result.route, markdown=not from_program(request)))
        except FluxError as err:
            yield keep, keep, error_text(err, request)

    endpoint_fn = endpoint(kontext, "kontext", ["model", "prompt", "image"], {
        "route": None, **dict.fromkeys(size_names), "randomize_seed": True, **dict.fromkeys(other_names),
        "trail": None, "page": None})  # session state, not part of the API (see handoff())
    page_box = handoff()
    inputs = [model, prompt, image, route, *(controls[n] for n in size_names), randomize,
              *(controls[n] for n in other_names), trail_state, page_box]
    outputs = [result, info, status]  # what the API returns, in its order: no State, no button
    # preprocess=False: values reach handle_kontext as sent and are refused there in flux-ui's words (Gradio
    # would check them against the controls' bounds); the image still arrives only as a file Gradio received.
    accept_raw_files(image)

    def show_trail(trail: list[Step], current: int | None) -> tuple[Any, str]:
        return (gr.update(value=trail_gallery(trail), visible=bool(trail), selected_index=current,
                          height=trail_height(len(trail))),
                trail_text(trail, current))

    def after_run(box: dict[str, Any]) -> tuple[Any, ...]:
        """The trail and "Use this result" after an edit, and Stop hidden, once a run has ended."""
        done = take(box)
        if "trail" not in done:  # nothing was made: the trail stays as it was
            return (*[gr.update()] * 5, gr.update(visible=False))
        trail, current = done["trail"], done["current"]
        return (trail, current, *show_trail(trail, current), gr.update(visible=True), gr.update(visible=False))

    wire_run(endpoint_fn, inputs, outputs, api_name="kontext", run=run, stop=stop, status=status, after=after_run,
             after_inputs=page_box, after_outputs=[trail_state, current_state, gallery, trail_md, use, stop])

    def use_result(trail: list[Step]) -> tuple[Any, ...]:
        if not trail:
            return gr.update(), None, gr.update(), gr.update(), gr.update()
        last = len(trail) - 1
        label = step_label(last, trail[last], CAPTION_CHARS, markdown=True)
        text = f"{label} is the input now: write the next instruction."
        return trail[last].path, last, text, trail_text(trail, last), gr.update(selected_index=last)

    use.click(use_result, trail_state, [image, current_state, status, trail_md, gallery], api_visibility="private")

    def step_back(trail: list[Step], evt: gr.SelectData) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(trail):
            return gr.update(), gr.update(), gr.update(), gr.update()
        return trail[index].path, index, step_back_text(trail, index), trail_text(trail, index)

    gallery.select(step_back, trail_state, [image, current_state, status, trail_md], api_visibility="private")

    def own_picture(trail: list[Step]) -> tuple[None, str]:
        return None, trail_text(trail, None) if trail else EMPTY_TRAIL

    image.upload(own_picture, trail_state, [current_state, trail_md], api_visibility="private")

    def after_example(event: Dependency) -> Dependency:
        """An example's model and picture, as if the person had picked the one and dropped the other."""
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        return event.then(on_model, [model, route], model_outputs, **private).then(
            own_picture, trail_state, [current_state, trail_md], **private)

    if shown is not None:
        after_example(shown.load_input_event)

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        """Load a saved edit's model, instruction, route, seed and parameters (not its input image)."""
        model_id = settings.get("model")
        if model_id not in models:
            return [gr.update()] * (5 + len(ordered))
        spec = MODELS[model_id]
        offered = [r.value for r in edit_routes(spec)]
        route_value = settings.get("route") if settings.get("route") in offered else offered[0]
        chosen = Route(route_value)
        params = dict(settings.get("params") or {})
        if isinstance(settings.get("seed"), int):
            params["seed"] = settings["seed"]
        params.setdefault("aspect_ratio", "")  # not recorded: the input image's shape was matched
        updates = []
        for name in [*size_names, *other_names]:
            update = control_update(spec, name, chosen)
            if name in params and spec.param(name) is not None:
                update["value"] = params[name]
            updates.append(update)
        seed = spec.param("seed")
        return [gr.update(value=model_id), gr.update(value=settings.get("prompt", "")),
                gr.update(choices=route_choices(spec), value=route_value, visible=len(offered) > 1),
                gr.update(value="seed" not in params, visible=seed is not None and carried(seed, chosen)),
                *updates,
                "Settings loaded. History keeps results, not the pictures they were made from: drop the input "
                "image in again, then press Generate."]

    return TabHandle(tab_id="kontext", name=TAB, outputs=[model, prompt, route, randomize, *ordered, status],
                     apply=apply, models=models)
