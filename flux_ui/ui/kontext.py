"""The Kontext edit tab: one picture, edited step by step with plain instructions.

This module lays the tab out, then wires it: the model and route choices, the /kontext endpoint,
the edit trail's gallery, View code (:mod:`flux_ui.ui.view_code`) and "reuse settings". The edit
itself (models, routes, parameters and their controls, sending it) is :mod:`flux_ui.ui.kontext_edit`;
the trail as plain data is :mod:`flux_ui.ui.kontext_trail`, and bringing it back after a reload
:mod:`flux_ui.ui.kontext_restore`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.events import Dependency

from flux_ui.client import model_id_text
from flux_ui.errors import FluxError
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import examples, view_code
from flux_ui.ui.common import (
    TabContext,
    TabHandle,
    endpoint,
    error_text,
    flag,
    from_program,
    handoff,
    leave,
    received_files,
    take,
    unchanged,
    upload_roots,
    wire_run,
)
from flux_ui.ui.controls import all_param_names, seed_boxes, toggle_seed
from flux_ui.ui.kontext_edit import (
    IMAGE_EXAMPLE,
    ROUTE_LABELS,
    TAB,
    carried,
    control_update,
    declaration,
    done_caption,
    done_status,
    edit_models,
    edit_params,
    edit_routes,
    handle_kontext,
    make_control,
    no_model_text,
    parse_route,
    route_choices,
    route_note,
)
from flux_ui.ui.kontext_restore import (
    RESTORE_OUTPUTS,
    apply_settings,
    browser_state,
    remembered,
    restore_updates,
    show_trail,
)
from flux_ui.ui.kontext_trail import (
    EMPTY_TRAIL,
    TRAIL_COLUMNS,
    Step,
    next_input_text,
    step_back_text,
    step_index,
    trail_height,
    trail_text,
)
from flux_ui.ui.layout import PromptRow, model_dropdown, prompt_row
from flux_ui.ui.prompt_tools import wire_prompt_tools
from flux_ui.ui.workarounds import accept_raw_files

# --- layout ---------------------------------------------------------------------------------------

@dataclass
class _Inputs:
    """The left column: what an edit is made from, and its run controls."""

    size_names: list[str]
    other_names: list[str]
    model: gr.Dropdown
    route: gr.Radio
    note: gr.Markdown
    image: gr.Image
    row: PromptRow
    controls: dict[str, Any]
    randomize: gr.Checkbox
    seed_group: gr.Column  # Randomize seed and the seed boxes
    seed_boxes: tuple[gr.Column, gr.Column] | None  # the seed box and the "random" box (controls.seed_boxes)

    @property
    def names(self) -> list[str]:
        return [*self.size_names, *self.other_names]

    @property
    def ordered(self) -> list[Any]:
        return [self.controls[n] for n in self.names]


@dataclass
class _Outputs:
    """The right column: the result, the trail, and the examples that fill the left one."""

    result: gr.Image
    info: gr.Markdown
    use: gr.Button
    gallery: gr.Gallery
    trail_md: gr.Markdown
    shown: gr.Examples | None
    trail: gr.State
    current: gr.State
    chain: gr.State  # the trail's id in History
    saved: gr.BrowserState  # the same id, kept in the browser for the next visit
    code: view_code.CodePanel


def _inputs(models: list[str]) -> _Inputs:
    first = MODELS[models[0]]
    names = all_param_names(models)
    size_names = [n for n in names if n in ("aspect_ratio", "width", "height")]
    other_names = [n for n in names if n not in size_names]
    all_routes = list(dict.fromkeys(r for m in models for r in edit_routes(MODELS[m])))
    model = model_dropdown("kontext", models)
    route = gr.Radio(choices=[(ROUTE_LABELS[r], r.value) for r in all_routes],
                     value=edit_routes(first)[0].value, label="Route", elem_id="kontext-route",
                     info="The same model, reached two ways; the BFL route carries every parameter.",
                     visible=len(route_choices(first)) > 1)
    note = gr.Markdown("", elem_id="kontext-route-note", elem_classes=["flux-status"])
    image = gr.Image(label="Input image", type="filepath", sources=["upload", "clipboard"], image_mode=None,
                     height=320, elem_id="kontext-input", buttons=["fullscreen"],
                     elem_classes=["flux-picture"])
    controls: dict[str, Any] = {}

    def shape_controls() -> None:  # the shape matters to most edits: kept in view, above Generate
        for name in size_names:
            controls[name] = make_control(declaration(models, name), models)

    row = prompt_row("kontext", label="Instruction", lines=3, max_lines=10, between=shape_controls,
                     placeholder="Make it night and add falling snow; keep the person and the pose",
                     info="Say what to change and what to keep. Ctrl+Enter (⌘+Enter) generates.")
    more = ", ".join(declaration(models, n).label.lower() for n in other_names)
    with gr.Accordion(f"More parameters: {more}", open=False, elem_id="kontext-more"):
        with gr.Column(elem_id="kontext-seed-group") as seed_group:  # hidden on a route that sends no seed
            randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="kontext-randomize",
                                    info="Untick to send the seed below.")
            boxes = None
            if "seed" in other_names:
                seed = declaration(models, "seed")
                boxes = seed_boxes("kontext", lambda: controls.setdefault("seed", make_control(seed, models)))
        for name in other_names:
            if name != "seed":
                controls[name] = make_control(declaration(models, name), models)
    return _Inputs(size_names, other_names, model, route, note, image, row, controls, randomize, seed_group, boxes)


def _outputs(models: list[str], i: _Inputs) -> _Outputs:
    result = gr.Image(label="Result", type="filepath", interactive=False, elem_id="kontext-result",
                      elem_classes=["flux-picture", "flux-result"], buttons=["download", "fullscreen"], height=480,
                      alt_text="The latest edit's result")
    info = gr.Markdown("The edited picture appears here, saved to History as it arrives.", elem_id="kontext-info")
    use = gr.Button("Use this result as the next input", elem_id="kontext-use-result", visible=False)
    gr.Markdown("### Edit trail")
    gallery = gr.Gallery(label="Edit trail", show_label=False, columns=TRAIL_COLUMNS, fit_columns=False,
                         height=trail_height(1), visible=False, buttons=[], allow_preview=False,
                         object_fit="contain", elem_id="kontext-trail", interactive=False)
    trail_md = gr.Markdown(EMPTY_TRAIL, elem_id="kontext-trail-list")
    code = view_code.code_panel("kontext")
    shown = examples.kontext(models, i.image, i.row.prompt, i.model)
    return _Outputs(result, info, use, gallery, trail_md, shown, gr.State([]), gr.State(None), gr.State(None),
                    browser_state(), code)


# --- wiring ---------------------------------------------------------------------------------------

def _wire_model(ctx: TabContext, i: _Inputs) -> Callable[[str, str], list[Any]]:
    """A model or route choice shows that model's controls for that route; returns the model's handler."""
    def visibility(model_id: str, route_value: str, reset: bool) -> list[Any]:
        spec = MODELS[model_id]
        chosen = parse_route(spec, route_value)
        seed = spec.param("seed")
        return [gr.update(value=route_note(spec, chosen)),
                gr.update(visible=seed is not None and carried(seed, chosen)),
                *(control_update(spec, n, chosen, reset) for n in i.names)]

    def on_model(model_id: str, route_value: str) -> list[Any]:
        spec = MODELS[model_id]
        offered = [r.value for r in edit_routes(spec)]
        chosen = route_value if route_value in offered else offered[0]
        return [gr.update(info=spec.summary),
                gr.update(choices=route_choices(spec), value=chosen, visible=len(offered) > 1),
                *visibility(model_id, chosen, reset=True)]

    if i.seed_boxes is not None:
        toggle_seed(i.randomize, *i.seed_boxes)
    model_outputs = [i.model, i.route, i.note, i.seed_group, *i.ordered]
    i.model.input(on_model, [i.model, i.route], model_outputs, api_visibility="private")
    ctx.demo.load(on_model, [i.model, i.route], model_outputs, api_visibility="private")
    i.route.change(lambda m, r: visibility(m, r, reset=False), [i.model, i.route], [i.note, i.seed_group, *i.ordered],
                   api_visibility="private")
    return on_model


def _edit_endpoint(runtime: Runtime, models: list[str], i: _Inputs) -> Callable[..., AsyncIterator[Any]]:
    """The /kontext endpoint's function: the API's values, then the trail and the handoff box."""
    sizes = len(i.size_names)

    async def kontext(model_value: str, prompt_text: str, image_value: Any, route_value: str | None,
                      *rest: Any, request: gr.Request | None = None) -> AsyncIterator[tuple]:
        """Edit one picture with a plain instruction (FLUX.1 Kontext).

        Takes the model, the instruction, the image file to edit (from an MCP client, as base64
        data: "data:image/png;base64,…") and the route ("bfl", or "images/edits" for the Image API,
        which carries only the aspect ratio and output format). An empty aspect_ratio matches the
        input image. The other parameters are the capability registry's, by name; None means the
        model's default, and safety_tolerance is at most 2 when editing. Returns the saved result
        file (the service's original bytes and format), a caption with size, seed, time and cost
        (and, on the Image API route, the parameters it did not carry), and a message: empty when
        all went well; a bad input comes back as the message, with nothing sent.
        """
        *values, trail, chain, box = rest
        keep = unchanged(request)
        program = from_program(request)
        named = dict(zip(i.names, [*values[:sizes], *values[sizes + 1:]], strict=True))
        try:
            async for step in handle_kontext(runtime, models, model_value, prompt_text, image_value, route_value,
                                             values[sizes], named, trail or [], chain):
                if isinstance(step, str):
                    yield keep, keep, step
                    continue
                result = step.generated.result
                leave(box, trail=step.trail, current=step.current, result=result, chain=step.chain)
                yield (step.generated.path, done_caption(step, result.route, program),
                       "" if program else done_status(step, result.route))
        except FluxError as err:
            yield keep, keep, error_text(err, request)

    return endpoint(kontext, "kontext", ["model", "prompt", "image"], {
        "route": None, **dict.fromkeys(i.size_names), "randomize_seed": True, **dict.fromkeys(i.other_names),
        "trail": None, "chain": None, "page": None})  # session state, not part of the API (see handoff())


def _wire_edit(runtime: Runtime, models: list[str], i: _Inputs, o: _Outputs) -> None:
    """Generate (the /kontext endpoint), then the trail and "Use this result" from what it left; Stop."""
    endpoint_fn = _edit_endpoint(runtime, models, i)
    page_box = handoff()
    inputs = [i.model, i.row.prompt, i.image, i.route, *(i.controls[n] for n in i.size_names), i.randomize,
              *(i.controls[n] for n in i.other_names), o.trail, o.chain, page_box]
    outputs = [o.result, o.info, i.row.status]  # what the API returns, in its order: no State, no button
    # preprocess=False: values reach handle_kontext as sent and are refused there in flux-ui's words (Gradio
    # would check them against the controls' bounds); the image still arrives only as a file Gradio received.
    accept_raw_files(i.image)

    def after_run(box: dict[str, Any], request: gr.Request) -> tuple[Any, ...]:
        """The trail (and its id, for this session and the browser), "Use this result" and the code of the
        request sent after an edit, and Stop hidden, once a run has ended."""
        done = take(box)
        if "trail" not in done:  # nothing was made: the trail stays as it was
            return (*[gr.update()] * (7 + len(o.code.outputs)), gr.update(visible=False))
        trail, current, chain = done["trail"], done["current"], done["chain"]
        return (trail, current, chain, remembered(chain, request.username), *show_trail(trail, current),
                gr.update(visible=True), *view_code.sent_code(runtime.settings, done["result"]),
                gr.update(visible=False))

    wire_run(endpoint_fn, inputs, outputs, api_name="kontext", run=i.row.run, stop=i.row.stop, status=i.row.status,
             after=after_run, after_inputs=page_box,
             after_outputs=[o.trail, o.current, o.chain, o.saved, o.gallery, o.trail_md, o.use, *o.code.outputs,
                            i.row.stop])


def _wire_restore(ctx: TabContext, i: _Inputs, o: _Outputs) -> None:
    """When the tab first shows, the browser's latest trail back from History, as after its last edit.

    The browser state reads its value when the tab first renders (a tab not shown at page load is not
    rendered), and that fires its change event: so the restore hangs on it, not on the page's load. It
    changes again after each edit, when this session's trail is already the one it names.
    """
    def restore(value: Any, chain: str | None, image: Any, prompt: Any, request: gr.Request) -> list[Any]:
        if chain is not None:  # this session has a trail of its own
            return [gr.update()] * RESTORE_OUTPUTS
        held = None
        if image is not None:  # checked as an edit checks it before reading it: "" when it cannot be read
            try:
                held = (received_files(image, upload_roots(ctx.runtime), "The input image", IMAGE_EXAMPLE,
                                       numbered=False) or [""])[0]
            except FluxError:
                held = ""
        return restore_updates(ctx.runtime.history, value, request.username, held, prompt)

    outputs = [o.trail, o.current, o.chain, o.gallery, o.trail_md, i.image, o.result, o.info, o.use, i.row.prompt,
               i.row.status]
    assert len(outputs) == RESTORE_OUTPUTS
    # preprocess=False: the input box takes raw payloads (accept_raw_files); only whether it holds one matters.
    # Progress on the (invisible) chain state: in a tab rendered late, Gradio showed a timer on every output.
    o.saved.change(restore, [o.saved, o.chain, i.image, i.row.prompt], outputs, api_visibility="private",
                   show_progress="hidden", show_progress_on=o.chain, preprocess=False)


def _wire_code(runtime: Runtime, models: list[str], i: _Inputs, o: _Outputs) -> None:
    """View code's button: the form as it stands on its route, the input image as image1.png."""
    sizes = len(i.size_names)

    def show(model_value: Any, prompt_text: Any, route_value: Any, *values: Any) -> list[Any]:
        named = dict(zip(i.names, [*values[:sizes], *values[sizes + 1:]], strict=True))
        try:
            model_id = model_id_text(model_value)
            route = parse_route(MODELS.get(model_id), route_value)
            randomize = flag("randomize_seed", values[sizes], True)
        except FluxError as err:
            return view_code.refused(err)
        params = edit_params(model_id, route, named, randomize)
        return view_code.form_code(runtime.settings, model_id, prompt_text, params, 1, route, randomized=randomize)

    view_code.wire_button(o.code, show, [i.model, i.row.prompt, i.route, *(i.controls[n] for n in i.size_names),
                                         i.randomize, *(i.controls[n] for n in i.other_names)])


def _wire_trail(i: _Inputs, o: _Outputs, on_model: Callable[[str, str], list[Any]]) -> None:
    """Moving along the trail: the latest result as the next input, a step picked, an own picture."""
    def use_result(trail: list[Step]) -> tuple[Any, ...]:
        if not trail:
            return gr.update(), None, gr.update(), gr.update(), gr.update()
        last = len(trail) - 1
        return trail[last].path, last, next_input_text(trail), trail_text(trail, last), gr.update(selected_index=last)

    o.use.click(use_result, o.trail, [i.image, o.current, i.row.status, o.trail_md, o.gallery],
                api_visibility="private")

    def step_back(trail: list[Step], evt: gr.SelectData) -> tuple[Any, ...]:
        index = step_index(trail, evt.index)
        if index is None:
            return gr.update(), gr.update(), gr.update(), gr.update()
        return trail[index].path, index, step_back_text(trail, index), trail_text(trail, index)

    o.gallery.select(step_back, o.trail, [i.image, o.current, i.row.status, o.trail_md], api_visibility="private")

    def own_picture(trail: list[Step]) -> tuple[None, str]:
        return None, trail_text(trail, None) if trail else EMPTY_TRAIL

    i.image.upload(own_picture, o.trail, [o.current, o.trail_md], api_visibility="private")

    def after_example(event: Dependency) -> Dependency:
        """An example's model and picture, as if the person had picked the one and dropped the other."""
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        model_outputs = [i.model, i.route, i.note, i.seed_group, *i.ordered]
        return event.then(on_model, [i.model, i.route], model_outputs, **private).then(
            own_picture, o.trail, [o.current, o.trail_md], **private)

    if o.shown is not None:
        after_example(o.shown.load_input_event)


def build(ctx: TabContext) -> TabHandle:
    models = edit_models(ctx.runtime.models)
    if not models:
        gr.Markdown(no_model_text(), elem_id="kontext-none")
        return TabHandle(tab_id="kontext", name=TAB)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            i = _inputs(models)
        with gr.Column(scale=3, min_width=320):
            o = _outputs(models, i)
    on_model = _wire_model(ctx, i)
    _wire_edit(ctx.runtime, models, i, o)
    _wire_restore(ctx, i, o)
    _wire_trail(i, o, on_model)
    _wire_code(ctx.runtime, models, i, o)
    wire_prompt_tools(ctx.runtime, i.row, TAB, i.model, i.controls)

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        return apply_settings(models, i.names, settings)

    return TabHandle(tab_id="kontext", name=TAB, outputs=[i.model, i.row.prompt, i.route, i.randomize, *i.ordered,
                                                          i.image, i.row.status], apply=apply, models=models)
