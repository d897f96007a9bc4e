"""The form Text to image and Edit with references share, laid out and wired once for both.

On one side the model, the prompt row, the size preset, "Randomize seed", "Images per run" with
"Consecutive seeds", and the Parameters accordion (one control per parameter any of the tab's models
takes); on the other the result (one image, or the gallery of a run of variations with its contact
sheet and ZIP), its caption, "Reuse this seed" and View code. Both tabs' endpoints return the same
four outputs (image, caption, status, seed), end a run the same way and load History's settings the
same way; what each adds (Edit's references) stays in its own module. What only the page shows (the
gallery filling, the downloads, the code of the request sent) travels through the handoff box.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.errors import FluxError
from flux_ui.grid import MAX_VARIATIONS
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers, progress, variations, view_code
from flux_ui.ui.common import (
    TabHandle,
    as_caller,
    error_text,
    from_program,
    leave,
    named_signature,
    take,
    unchanged,
    wire_run,
)
from flux_ui.ui.controls import (
    RESET_LABEL,
    make_component,
    merged_declaration,
    reuse_updates,
    seed_after_run,
    seed_boxes,
    wire_seed,
)
from flux_ui.ui.icons import labelled
from flux_ui.ui.layout import PromptRow
from flux_ui.ui.quota_gate import QuotaGate
from flux_ui.ui.text import inert
from flux_ui.ui.variations import Variations

#: What an image endpoint yields: the image file, its caption, the status line and the seed used.
Outputs = tuple[Any, Any, str, Any]
#: What a run's steps are: status lines, one saved image, or a run of variations (updated in place).
Step = str | handlers.Generated | Variations
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


@dataclass
class ParamControls:
    """The size preset, "Randomize seed", "Images per run", "Consecutive seeds" and one control per
    parameter name, in the tab's order."""

    presets: gr.Dropdown
    randomize: gr.Checkbox
    count: gr.Slider
    consecutive: gr.Checkbox
    controls: dict[str, gr.components.Component]
    size_note: gr.Markdown | None = None
    # The seed box, shown with Randomize seed off, and the box saying "random" shown in its place while on.
    seed_typed: gr.Column | None = None
    seed_drawn: gr.Column | None = None


def param_controls(prefix: str, names: Sequence[str], *, own_ids: bool = True,
                   size_note: bool = False) -> ParamControls:
    """The parameter block under the prompt row.

    ``own_ids``: each control's id and key become ``<prefix>-param-<name>``, since ids must be unique
    on the page; Text to image keeps make_component's ``param-<name>``. ``size_note``: a line under the
    height saying what the service will make of the size (wired by the tab).
    """
    presets = gr.Dropdown(label="Size preset", choices=[], value=None, elem_id=f"{prefix}-preset",
                          info="Pick a shape; width and height below can be fine-tuned.")
    with gr.Row(equal_height=True):
        randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id=f"{prefix}-randomize", min_width=140)
        consecutive = gr.Checkbox(value=False, label="Consecutive seeds: seed, seed+1, …", interactive=False,
                                  elem_id=f"{prefix}-consecutive", min_width=200, scale=2)
    count = gr.Slider(1, MAX_VARIATIONS, value=1, step=1, label="Images per run", elem_id=f"{prefix}-count",
                      elem_classes=labelled(RESET_LABEL),
                      info="Each image is its own request with its own seed, all sent at once. Consecutive "
                           "seeds run on from the seed below (with Randomize seed off); otherwise they are random.")
    controls: dict[str, gr.components.Component] = {}
    note = typed = drawn = None
    with gr.Accordion("Parameters", open=True):
        for name in names:
            if name == "seed":
                typed, drawn = seed_boxes(prefix, lambda: controls.setdefault("seed", _control(prefix, "seed",
                                                                                               own_ids)))
                continue
            controls[name] = _control(prefix, name, own_ids)
            if size_note and name == "height":
                note = gr.Markdown("", elem_id=f"{prefix}-size-note")
    return ParamControls(presets, randomize, count, consecutive, controls, note, typed, drawn)


def _control(prefix: str, name: str, own_ids: bool) -> gr.components.Component:
    control = make_component(merged_declaration(name))
    if own_ids:
        control.elem_id = control.key = f"{prefix}-param-{name}"
    return control


@dataclass
class ResultPanel:
    """The result image (or the gallery of variations, the sheet and the ZIP), its caption, "Reuse this
    seed" with the seed it loads, the View code accordion, and the timer that fills the gallery."""

    image: gr.Image
    gallery: gr.Gallery
    info: gr.Markdown
    sheet: gr.DownloadButton
    archive: gr.DownloadButton
    reuse: gr.Button
    used_seed: gr.State
    code: view_code.CodePanel
    timer: gr.Timer

    @property
    def run_view(self) -> list[Any]:
        """What a run's start and end set: the image, the gallery, the two downloads and the timer."""
        return [self.image, self.gallery, self.sheet, self.archive, self.timer]


def result_panel(prefix: str, *, caption_label: str | None = None) -> ResultPanel:
    image = gr.Image(label="Result", type="filepath", interactive=False, elem_id=f"{prefix}-image",
                     buttons=["download", "fullscreen"], height=560)
    gallery = gr.Gallery(label="Variations", show_label=False, visible=False, columns=2, height="fit-content",
                         object_fit="contain", interactive=False, buttons=["download", "fullscreen"],
                         elem_id=f"{prefix}-gallery")
    info = gr.Markdown("Your image appears here, saved to History as it arrives.", elem_id=f"{prefix}-info",
                       label=caption_label)
    with gr.Row():
        sheet = gr.DownloadButton("Contact sheet (PNG)", visible=False, size="sm", elem_id=f"{prefix}-sheet")
        archive = gr.DownloadButton("All originals (ZIP)", visible=False, size="sm", elem_id=f"{prefix}-zip")
    reuse = gr.Button("Reuse this seed", size="sm", visible=False, elem_id=f"{prefix}-reuse")
    code = view_code.code_panel(prefix)
    return ResultPanel(image, gallery, info, sheet, archive, reuse, gr.State(None), code,
                       gr.Timer(progress.TICK_S, active=False))


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

    @property
    def variation_inputs(self) -> list[Any]:
        """The two inputs of a run of variations, after the parameters: count, consecutive seeds."""
        return [self.params.count, self.params.consecutive]


# --- a run's steps as the endpoint's outputs ---------------------------------------------------------

def run_caption(run: Variations) -> str:
    """The page's caption under a run's gallery: the model, how many, which seeds, what it cost."""
    costs = [g.result.cost_estimate_usd for g in run.made]
    cost = f" · ≈ ${sum(costs):.3f} in all (list price)" if costs and None not in costs else ""
    name = MODELS[run.model].display_name
    return (f"**{name}** · {run.images} of {run.count} images · {variations.seeds_text(run.seeds)}{cost}. "
            "Each is saved to History; open one to see it large.")


def run_outputs(run: Variations, request: gr.Request | None) -> Outputs:
    """A finished run as the four outputs: the first image (seed order), a caption, what failed, its seed.

    A program gets the first image's own caption; the page, which shows the gallery, the run's.
    """
    keep = unchanged(request)
    program = from_program(request)
    status = variations.finished_line(run, markdown=not program)
    if not run.made:
        return keep, keep, status, keep
    first = run.made[0]
    return first.path, handlers.caption(first.result) if program else run_caption(run), status, first.result.seed


async def shown_steps(steps: AsyncIterator[Step], request: gr.Request | None,
                      on_error: Callable[[FluxError], None] | None = None, box: Any = None) -> AsyncIterator[Outputs]:
    """A run's steps as the endpoint's outputs: a status line leaves the rest as it was, the image fills
    them, a run of variations says how far it is until it ends (the page's gallery follows it through
    ``box``), and a FluxError (after ``on_error``) becomes the status, with the rest as it was."""
    keep = unchanged(request)
    try:
        async for step in steps:
            if isinstance(step, str):
                yield keep, keep, step, keep
            elif isinstance(step, Variations):
                leave(box, run=step)
                yield run_outputs(step, request) if step.finished else (keep, keep, variations.progress_line(step),
                                                                         keep)
            else:
                leave(box, generated=step)
                yield step.path, handlers.caption(step.result), "", step.result.seed
    except FluxError as err:
        if on_error is not None:
            on_error(err)
        yield keep, keep, error_text(err, request), keep


# --- the page around a run ---------------------------------------------------------------------------

def run_begins(count: Any) -> list[Any]:
    """At the click, before the run: one image, or an empty gallery that the timer fills (run_view's order)."""
    try:
        number = variations.parse_count(count)
    except FluxError:
        number = 1  # the run says why
    hidden = gr.update(visible=False)
    if number == 1:
        return [gr.update(visible=True), hidden, hidden, hidden, gr.Timer(active=False)]
    return [gr.update(visible=False), gr.update(visible=True, value=[], label=f"Variations: {number} images",
                                                columns=2 if number <= 4 else 4),
            hidden, hidden, gr.Timer(active=True)]


async def gallery_tick(box: Any) -> Any:
    """The gallery while a run goes on: refreshed when an image has arrived since the last tick (on the
    event loop, where the run changes, rather than in a worker thread)."""
    run = box.get("run") if isinstance(box, dict) else None
    if not isinstance(run, Variations) or box.get("shown") == len(run.arrivals):
        return gr.update()
    box["shown"] = len(run.arrivals)
    return gr.update(value=variations.gallery(run), label=variations.label(run))


async def run_ended(runtime: Runtime, done: Mapping[str, Any]) -> list[Any]:
    """After a run of variations: the status (after Stop), the gallery, the downloads and the timer off."""
    run = done.get("run")
    off = gr.Timer(active=False)
    if not isinstance(run, Variations):
        return [gr.update(), gr.update(), gr.update(), gr.update(), off]
    view = gr.update(value=variations.gallery(run), label=variations.label(run))
    if run.stopped or not run.finished:  # Stop (or a page gone) ended the wait
        return [variations.stopped_line(run), view, gr.update(), gr.update(), off]
    if not run.made:
        return [gr.update(), view, gr.update(), gr.update(), off]
    exports = await variations.export(runtime, run)
    if exports.problem:
        return [f"⚠️ {inert(exports.problem)}", view, gr.update(), gr.update(), off]  # it quotes a path
    return [gr.update(), view, gr.update(value=str(exports.sheet), visible=True),
            gr.update(value=str(exports.archive), visible=True), off]


def code_after(runtime: Runtime, done: Mapping[str, Any]) -> list[Any]:
    """View code after a run: the request sent for the image shown (the first, for variations)."""
    run, generated = done.get("run"), done.get("generated")
    if isinstance(run, Variations) and run.made:
        first = run.made[0]
        others = [g.result.seed for g in run.made[1:] if g.result.seed is not None]
        return view_code.sent_code(runtime.settings, first.result, others)
    if isinstance(generated, handlers.Generated):
        return view_code.sent_code(runtime.settings, generated.result)
    return [gr.update()] * 4


def reused_seed(message: str | None, seed: Any, done: Mapping[str, Any]) -> list[Any]:
    """The seed "Reuse this seed" offers: the image's, or a run's first (even when others failed)."""
    run = done.get("run")
    if isinstance(run, Variations) and run.made:
        return [run.made[0].result.seed, gr.update(visible=True)]
    return seed_after_run(message, seed)


def wire_image_run(runtime: Runtime, form: ImageForm, fn: Callable[..., Any], inputs: Sequence[Any], *,
                   api_name: str, box: gr.State, extra: Callable[..., list[Any]] | None = None,
                   extra_inputs: Sequence[Any] = (), extra_outputs: Sequence[Any] = ()) -> None:
    """The named endpoint on Generate and Enter (common.wire_run); at the click, the result view for the
    count; while a run of variations goes on, its gallery; after any run, the seed to reuse, the
    downloads, View code, ``extra``'s updates (from what the run left in ``box``, then ``extra_inputs``)
    for ``extra_outputs``, and Stop hidden. Then the seed box's own events."""
    result, row = form.result, form.row

    async def after_run(message: str | None, seed: Any, handed: Any, *rest: Any) -> list[Any]:
        """Everything the page shows once a run has ended (or was stopped)."""
        done = take(handed)
        return [*reused_seed(message, seed, done), *await run_ended(runtime, done), *code_after(runtime, done),
                *(extra(done, *rest) if extra else []), gr.update(visible=False)]

    for listener in (row.run.click, row.prompt.submit):
        listener(run_begins, form.params.count, result.run_view, queue=False, **PRIVATE)
    wire_run(fn, inputs, form.api_outputs, api_name=api_name, run=row.run, submit=row.prompt, stop=row.stop,
             status=row.status, after=after_run, after_inputs=[row.status, form.seed, box, *extra_inputs],
             after_outputs=[result.used_seed, result.reuse, row.status, result.gallery, result.sheet,
                            result.archive, result.timer, *result.code.outputs, *extra_outputs, row.stop])
    result.timer.tick(gallery_tick, box, result.gallery, concurrency_limit=None, **PRIVATE)
    assert form.params.seed_typed is not None and form.params.seed_drawn is not None, "param_controls builds both"
    wire_seed(form.params.randomize, result.reuse, result.used_seed, form.seed, form.params.seed_typed,
              form.params.seed_drawn)
    form.params.randomize.change(lambda on: gr.update(interactive=not on), form.params.randomize,
                                 form.params.consecutive, **PRIVATE)


VARIATIONS_DOC = """{intro}

        Seeds run seed, seed+1, ... with ``consecutive_seeds`` and randomize_seed false (from ``seed``),
        otherwise they are random and distinct (the first keeps a seed given). The other parameters are
        {base}'s. Returns (images, results, message): ``images`` is a gallery of the saved originals in seed
        order, each captioned with its seed; ``results`` is {{group, model, prompt, seeds, images, sent,
        elapsed_s, results: [one per seed: index, seed, image_index (into images, or None), arrival, error,
        and for an image width, height, format, time_s, cost_usd, history_id, caption]}}; ``message`` is
        empty, or says what failed or why nothing was sent.
        """


def wire_variations_api(gate: QuotaGate, form: ImageForm, handler: Callable[..., AsyncIterator[Variations]],
                        required: Sequence[str], inputs: Sequence[Any], *, api_name: str, prefix: str, base: str,
                        intro: str) -> None:
    """A variations endpoint (and MCP tool) on a hidden button with hidden outputs: images, results, message.

    ``handler(*required, randomize_seed, values, count, consecutive_seeds, gate)`` runs the variations;
    ``inputs`` are the components for ``required``, then randomize, the parameters, count and consecutive.
    """
    names, head = form.names, len(required)

    async def call(*args: Any) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
        fixed, randomize_seed, values = args[:head], args[head], args[head + 1:head + 1 + len(names)]
        count, consecutive = args[head + 1 + len(names):]
        with gate.admitted(fixed[0]):  # the model: the rest of the run is counted as it is sent
            return await variations.api_answer(handler(*fixed, randomize_seed, dict(zip(names, values, strict=True)),
                                                       count, consecutive, gate))

    call.__name__ = call.__qualname__ = api_name  # MCP names the tool after the function
    call.__doc__ = VARIATIONS_DOC.format(intro=intro, base=base)
    call.__signature__ = named_signature(  # type: ignore[attr-defined]
        required, {"randomize_seed": True, **dict.fromkeys(names), "count": 4, "consecutive_seeds": False})
    trigger = gr.Button(visible=False, elem_id=f"{prefix}-variations-api")
    # The API's defaults are its input components' values: its own count, 4, rather than the slider's 1.
    count = gr.Number(4, precision=0, visible=False, label="Images per run", elem_id=f"{prefix}-variations-api-count")
    images = gr.Gallery(visible=False, label="Images", elem_id=f"{prefix}-variations-api-images")
    results = gr.JSON(visible=False, label="Results", elem_id=f"{prefix}-variations-api-results")
    trigger.click(as_caller(call, gate.runtime), [*inputs[:-2], count, inputs[-1]], [images, results, form.row.status],
                  api_name=api_name, preprocess=False, concurrency_limit=None)


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
