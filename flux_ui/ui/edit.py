"""The "Edit with references" tab: several photos, in order, combined by a FLUX.2 model.

The references are an ordered list of file paths shown as cards "image 1" … "image N" (the names
prompts use): the cards and every change to their list are in :mod:`flux_ui.ui.edit_cards`, the
list operations in :mod:`flux_ui.ui.references`. Here: the layout around them, the request in
``handle_edit`` and ``run_edit`` (plain async generators), a run of variations (``count`` above 1)
in ``handle_edit_variations`` with :mod:`flux_ui.ui.variations`, and History's "reuse settings",
which puts back the references it kept, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from flux_ui.client import model_id_text
from flux_ui.errors import FluxError, ReferenceImageError, ValidationError
from flux_ui.registry import MODELS, Mode
from flux_ui.runtime import Runtime
from flux_ui.ui import edit_cards, examples, handlers, image_form, progress, references, variations, view_code
from flux_ui.ui.common import (
    TabContext,
    TabHandle,
    endpoint,
    error_text,
    flag,
    handoff,
    leave,
    received_files,
    upload_roots,
)
from flux_ui.ui.controls import all_param_names, wire_model_controls
from flux_ui.ui.layout import model_dropdown, prompt_row
from flux_ui.ui.prompt_tools import wire_prompt_tools
from flux_ui.ui.quota_gate import QuotaGate, quota_gate
from flux_ui.ui.references import file_paths
from flux_ui.ui.workarounds import accept_raw_files

TAB = "edit"
#: How an API caller sends references, for messages about ones that are not files.
REFERENCES_EXAMPLE = 'references=[handle_file("cat.jpg"), handle_file("sofa.jpg")]'


def edit_models(models: Sequence[str]) -> list[str]:
    """The deployed models that combine two or more references."""
    return [m for m in models if MODELS[m].does(Mode.MULTI_REFERENCE_EDIT)]


def read_references(paths: Sequence[str]) -> list[bytes]:
    """The files' bytes in slot order; one that has vanished from the cache is named by its slot."""
    out = []
    for number, path in enumerate(paths, start=1):
        try:
            out.append(Path(path).read_bytes())
        except OSError as exc:
            raise ReferenceImageError(f"image {number} can no longer be read ({exc.strerror or exc}); "
                                      "replace it with the file again", index=number) from exc
    return out


def check_sendable(model: str, paths: Sequence[str], models: Sequence[str]) -> None:
    """Refuse, before anything is sent, what this tab must never send: never a silent subset."""
    if model not in models:
        offered = ", ".join(references.display_name(m) for m in models) or "none deployed"
        raise ValidationError(f"{references.display_name(model)} does not edit with several reference images; "
                              f"choose one of: {offered}.", field="model")
    if not paths:
        raise ValidationError("Add at least one reference image (Add images, or paste one); to make an image "
                              "from the prompt alone, use Text to image.", field="references")
    notice = references.over_limit(paths, model, models)
    if notice:
        raise ValidationError(notice, field="references")


async def run_edit(runtime: Runtime, model: str, prompt: str, paths: Sequence[str], params: Mapping[str, Any],
                   models: Sequence[str]) -> AsyncIterator[str | handlers.Generated]:
    """Status lines, then the saved result; the references go in the order given."""
    check_sendable(model, paths, models)
    data = await asyncio.to_thread(read_references, paths)
    async for step in progress.stream(runtime, model, prompt, params, data, tab=TAB):
        yield step


async def handle_edit(runtime: Runtime, models: Sequence[str], model: Any, prompt: Any, references: Any,
                      randomize_seed: Any, values: Mapping[str, Any], count: Any = None,
                      consecutive_seeds: Any = None, gate: QuotaGate | None = None) -> AsyncIterator[image_form.Step]:
    """The /edit endpoint on the values as sent (``references`` as Gradio hands over a file list); with
    ``count`` above 1, the run of variations instead (:func:`handle_edit_variations`).

    A bad input raises a FluxError (ValidationError) before anything is sent or any file the
    request names outside Gradio's uploads and the outputs folder is opened.
    """
    model = model_id_text(model)  # before the tab looks it up
    params = handlers.collect_params(model, values, flag("randomize_seed", randomize_seed, True))
    if variations.parse_count(count) > 1:
        async for run in handle_edit_variations(runtime, models, model, prompt, references, randomize_seed, values,
                                                count, consecutive_seeds, gate):
            yield run
        return
    paths = received_files(references, upload_roots(runtime), "image", REFERENCES_EXAMPLE)
    async for step in run_edit(runtime, model, prompt, paths, params, models):
        yield step


async def handle_edit_variations(runtime: Runtime, models: Sequence[str], model: Any, prompt: Any, references: Any,
                                 randomize_seed: Any, values: Mapping[str, Any], count: Any,
                                 consecutive_seeds: Any = None,
                                 gate: QuotaGate | None = None) -> AsyncIterator[variations.Variations]:
    """``count`` images from the same references, each its own request and seed, all sent at once: the
    run, updated in place, whenever an image arrives and every tick. ValidationError before anything is sent."""
    model = model_id_text(model)
    randomize = flag("randomize_seed", randomize_seed, True)
    params = handlers.collect_params(model, values, randomize)
    number = variations.parse_count(count)
    consecutive = flag("consecutive_seeds", consecutive_seeds, False) and not randomize
    paths = received_files(references, upload_roots(runtime), "image", REFERENCES_EXAMPLE)
    check_sendable(model, paths, models)
    data = await asyncio.to_thread(read_references, paths)
    run = variations.prepare(runtime, model, prompt, params, data, number, consecutive, TAB)
    async for step in variations.run(runtime, run, data, gate):
        yield step


def reuse_message(settings: Mapping[str, Any]) -> str:
    """What the status says after History's "reuse settings": which references came back with the settings."""
    made = len(settings.get("references") or [])
    kept = len(references.stored_inputs(settings))
    if kept and kept >= made:
        return (f"Settings loaded, with {'its' if kept > 1 else 'the'} {references.count_word(kept)} reference "
                f"image{'s' if kept > 1 else ''} in the order {'they were' if kept > 1 else 'it was'} sent.")
    if kept:
        return (f"Settings loaded, with {kept} of the {made} reference images that image was made from; History no "
                "longer has the others: add them again, each in its place, before you run it.")
    if "input_files" in settings:  # kept once, gone from the outputs folder since (History names them)
        return ("Settings loaded. History no longer has the reference images that image was made from: add "
                "them again, in the same order, before you run it.")
    if made == 0:
        return "Settings loaded. History has no reference images for that image: add the reference images again."
    order = ", in the same order" if made > 1 else ""
    return (f"Settings loaded. That image was made from {references.count_word(made)} reference "
            f"image{'s' if made > 1 else ''}, saved before History kept them: add the reference images again{order}.")


# --- layout ---------------------------------------------------------------------------------------

@dataclass
class _Page:
    form: image_form.ImageForm
    refs: edit_cards.Cards
    shown: gr.Examples | None


def _layout(models: Sequence[str]) -> _Page:
    """The model and the ways to add images, the references, their examples, then the form and the result."""
    with gr.Row(equal_height=False):
        model = model_dropdown("edit", models, scale=2, min_width=280)
        add_many = gr.UploadButton("Add images…", file_count="multiple", file_types=["image"],
                                   elem_id="edit-add", variant="secondary", scale=1, min_width=160)
        # Upload first: the box opens as a drop area (click it to browse); the clipboard is the other source.
        paste = gr.Image(sources=["upload", "clipboard"], type="filepath", label="Paste or drop one image",
                         elem_id="edit-paste", height=150, scale=1, min_width=200)
    refs = edit_cards.build(models, add_many, paste)
    shown = examples.edit(models)  # next to the cards it fills
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            row = prompt_row("edit", placeholder="Put the cat from image 2 on the sofa in image 1, soft window light",
                             info="Ctrl+Enter (⌘+Enter) generates.", status_label="Status")
            params = image_form.param_controls("edit", all_param_names(models))
        with gr.Column(scale=3, min_width=320, elem_id="edit-result"):  # assets/scroll.js: <tab>-result
            result = image_form.result_panel("edit", caption_label="Caption")
    return _Page(image_form.ImageForm(model, row, params, result), refs, shown)


# --- wiring ---------------------------------------------------------------------------------------

def _wire_generate(runtime: Runtime, models: Sequence[str], form: image_form.ImageForm, r: edit_cards.Cards,
                   gate: QuotaGate) -> None:
    """Generate: the /edit endpoint, then the seed to reuse, a reference problem by the references, Stop
    hidden; and /edit_variations, every image of a run at once for programs."""
    names = form.names

    def generate(model_value: str, prompt_text: str, reference_files: Any, randomize_seed: bool,
                 *rest: Any, request: gr.Request | None = None) -> AsyncIterator[image_form.Outputs]:
        """Make one image from a prompt and 1–10 reference images with FLUX.2 [pro] or [flex].

        ``references`` are image files, sent in the order given: the prompt calls them image 1,
        image 2, … FLUX.2 [pro] takes up to 8, FLUX.2 [flex] up to 10; more is refused, never
        trimmed. From an MCP client, send each as base64 data ("data:image/png;base64,…") or as a
        link this app gave for an uploaded file. Parameters after ``randomize_seed`` are the
        capability registry's, by name; a model ignores those it does not take, and None means the
        model's default. Returns the saved image file (the service's original bytes), a caption, a
        status message (empty when all went well; the reason when nothing was made) and the seed used.
        """
        *values, count, consecutive, box = rest

        def by_the_references(err: FluxError) -> None:
            if isinstance(err, ReferenceImageError):  # also shown by the references (the API sees the status)
                leave(box, problem=error_text(err))

        steps = handle_edit(runtime, models, model_value, prompt_text, reference_files, randomize_seed,
                            dict(zip(names, values, strict=True)), count, consecutive, gate)
        return image_form.shown_steps(steps, request, by_the_references, box)

    endpoint_fn = endpoint(generate, "edit", ["model", "prompt", "references"],
                           {"randomize_seed": True, **dict.fromkeys(names), "count": 1, "consecutive_seeds": False,
                            "page": None})  # page: see handoff()
    page_box = handoff()
    inputs = [form.model, form.row.prompt, r.files, form.params.randomize, *form.params.controls.values(),
              *form.variation_inputs, page_box]

    def problem(done: dict[str, Any]) -> list[Any]:
        """A reference problem the run left, shown by the references (not a refused upload's note)."""
        found = done.get("problem")
        return [found, False] if found else [gr.update(), gr.update()]

    # preprocess=False: values reach handle_edit as sent, and the client's validation, which knows each
    # model's own bounds, answers bad ones; Gradio would check them against the bounds the controls were
    # built with, in its own words. References still arrive only as files Gradio received (accept_raw_files).
    accept_raw_files(r.files)
    image_form.wire_image_run(runtime, form, endpoint_fn, inputs, api_name="edit", box=page_box, extra=problem,
                              extra_outputs=[r.note, r.refused])

    def handler(model: Any, prompt: Any, *rest: Any) -> AsyncIterator[variations.Variations]:
        return handle_edit_variations(runtime, models, model, prompt, *rest)

    image_form.wire_variations_api(gate, form, handler, ["model", "prompt", "references"], inputs[:-1],
                                   api_name="edit_variations", prefix="edit", base="/edit",
                                   intro="Make ``count`` (1-8, default 4) images from one prompt and the same "
                                         "references at once, each its own request with its own seed.")


def _wire_code(runtime: Runtime, models: Sequence[str], form: image_form.ImageForm, r: edit_cards.Cards) -> None:
    """View code's button: the form as it stands, the references as image1.png … (only their number counts)."""
    names = form.names

    def show(model_value: Any, prompt_text: Any, files: Any, randomize_seed: Any, *rest: Any) -> list[Any]:
        *values, count = rest
        try:
            model_id, paths = model_id_text(model_value), file_paths(files)
            randomize, number = flag("randomize_seed", randomize_seed, True), variations.parse_count(count)
            check_sendable(model_id, paths, models)
        except FluxError as err:
            return view_code.refused(err)
        params = handlers.collect_params(model_id, dict(zip(names, values, strict=True)), randomize)
        return view_code.form_code(runtime.settings, model_id, prompt_text, params, len(paths), randomized=randomize,
                                   count=number)

    view_code.wire_button(form.result.code, show, [form.model, form.row.prompt, r.files, form.params.randomize,
                                                   *form.params.controls.values(), form.params.count])


def build(ctx: TabContext) -> TabHandle:
    models = edit_models(ctx.runtime.models)
    if not models:
        gr.Markdown("None of the deployed models edits with several reference images: deploy FLUX.2 [pro] "
                    "or FLUX.2 [flex] and add it to `FLUX_DEPLOYMENTS`.")
        return TabHandle(tab_id="edit", name=TAB)
    page = _layout(models)
    form = page.form
    on_add = edit_cards.wire(form.model, page.refs)
    follow = wire_model_controls(ctx.demo, form.model, form.params.presets, form.params.controls)
    examples.follow_edit(page.shown, form.row.prompt, form.model, on_add, page.refs.outputs, follow,
                         **edit_cards.SERIAL)  # the list via on_add
    _wire_generate(ctx.runtime, models, form, page.refs, quota_gate(ctx.demo))
    _wire_code(ctx.runtime, models, form, page.refs)
    wire_prompt_tools(ctx.runtime, form.row, TAB, form.model, form.params.controls)
    return _handle(form, page.refs, models)


def _handle(form: image_form.ImageForm, cards: edit_cards.Cards, models: Sequence[str]) -> TabHandle:
    """History's "reuse settings": the form as Text to image loads it, then the references it kept, in
    order (``input_files``); without them the cards stay as they are and the status says so."""
    base = image_form.image_handle("edit", TAB, form, models, message=reuse_message)

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        loaded = base.apply(settings)
        if settings.get("model") not in models:
            return [*loaded, *cards.unchanged()]
        return [*loaded, *cards.restored(settings)]

    return TabHandle(tab_id=base.tab_id, name=base.name, outputs=[*base.outputs, *cards.outputs], apply=apply,
                     models=base.models)
