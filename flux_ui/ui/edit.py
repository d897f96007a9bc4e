"""The "Edit with references" tab: several photos, in order, combined by a FLUX.2 model.

The references are an ordered list of file paths in a ``gr.State``, shown as cards "image 1" …
"image N" (the names prompts use). The cards are fixed slots, as many as the largest limit,
shown or hidden, rather than ``@gr.render``: a re-render replaces its event handlers, so a
second quick click on an arrow reached a handler that no longer existed and was lost. A
hidden ``gr.File`` mirrors the list so that Generate and the ``/edit`` API endpoint are one
event with one file input. Layout and wiring only: the list operations are in
``references``, the request in ``handle_edit`` and ``run_edit`` (plain async generators), a run of
variations (``count`` above 1) in ``handle_edit_variations`` with :mod:`flux_ui.ui.variations`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from flux_ui.client import model_id_text
from flux_ui.errors import FluxError, ReferenceImageError, ValidationError
from flux_ui.registry import MODELS, Mode
from flux_ui.runtime import Runtime
from flux_ui.ui import examples, handlers, image_form, progress, references, variations, view_code
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
from flux_ui.ui.text import inert
from flux_ui.ui.workarounds import accept_raw_files

TAB = "edit"
#: How an API caller sends references, for messages about ones that are not files.
REFERENCES_EXAMPLE = 'references=[handle_file("cat.jpg"), handle_file("sofa.jpg")]'
# Bold arrows that read at button size; U+FE0E asks for the text glyph, not an emoji.
EARLIER, LATER = "\u2b05\ufe0e", "\u27a1\ufe0e"
#: How every change to the reference list runs: one at a time and none dropped, so quick clicks on ← add up.
SERIAL: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "trigger_mode": "multiple",
                          "concurrency_id": "edit-references", "concurrency_limit": 1}


@dataclass
class Slot:
    """One reference card: "image N", its picture and its buttons. Built once, shown as needed."""

    card: gr.Column
    image: gr.Image
    unsent: gr.Markdown
    earlier: gr.Button
    later: gr.Button
    replace: gr.UploadButton
    remove: gr.Button

    @classmethod
    def build(cls, number: int) -> Slot:
        with gr.Column(visible=False, min_width=148, scale=0, elem_id=f"edit-card-{number}",
                       elem_classes=["edit-card"]) as card:
            image = gr.Image(label=f"image {number}", interactive=False, height=130, buttons=["fullscreen"],
                             elem_id=f"edit-ref-{number}")
            unsent = gr.Markdown("⚠️ **not sent**", visible=False, elem_id=f"edit-ref-{number}-unsent")
            with gr.Row():
                earlier = gr.Button(EARLIER, size="sm", min_width=0, elem_id=f"edit-ref-{number}-earlier")
                later = gr.Button(LATER, size="sm", min_width=0, elem_id=f"edit-ref-{number}-later")
                replace = gr.UploadButton("↻", size="sm", min_width=0, file_types=["image"],
                                          elem_id=f"edit-ref-{number}-replace")
                remove = gr.Button("✕", size="sm", min_width=0, variant="stop", elem_id=f"edit-ref-{number}-remove")
        return cls(card, image, unsent, earlier, later, replace, remove)

    @property
    def components(self) -> list[Any]:
        """What :meth:`show` updates, in its order."""
        return [self.card, self.image, self.unsent, self.earlier, self.later]

    def show(self, path: str | None, index: int, count: int, sent: bool) -> list[Any]:
        if path is None:
            return [gr.update(visible=False), None, gr.update(visible=False), gr.update(), gr.update()]
        return [gr.update(visible=True), path, gr.update(visible=not sent), gr.update(interactive=index > 0),
                gr.update(interactive=index < count - 1)]


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


def reuse_message(count: int) -> str:
    """What the status says after History's "reuse settings": references are not stored there."""
    if count == 0:
        return "Settings loaded. History does not keep reference images: add the reference images again."
    order = ", in the same order" if count > 1 else ""
    return (f"Settings loaded. That image was made from {references.count_word(count)} reference "
            f"image{'s' if count > 1 else ''}, which History does not keep: add the reference images again{order}.")


def file_paths(value: Any) -> list[str]:
    """Gradio hands a multi-file input over as paths (or None when empty)."""
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [str(getattr(v, "path", v)) for v in items]


# --- layout ---------------------------------------------------------------------------------------

@dataclass
class _References:
    """Where references are added, listed and reordered: ``refs`` holds the list, ``files`` mirrors it as
    the file input Generate and the /edit endpoint read."""

    add_many: gr.UploadButton
    paste: gr.Image
    refs: gr.State
    files: gr.File
    summary: gr.Markdown
    slots: list[Slot]
    note: gr.Markdown

    @property
    def view(self) -> list[Any]:
        """What shows the list: the summary, then every slot's components."""
        return [self.summary, *(c for slot in self.slots for c in slot.components)]

    @property
    def outputs(self) -> list[Any]:
        """What a change to the list updates, in :func:`_wire_references`' ``emit`` order."""
        return [self.refs, self.files, self.note, *self.view]


@dataclass
class _Page:
    form: image_form.ImageForm
    refs: _References
    shown: gr.Examples | None


def _references(models: Sequence[str], add_many: gr.UploadButton, paste: gr.Image) -> _References:
    """The list, its hidden file mirror and the panel of cards, one slot per image the largest limit allows."""
    refs = gr.State([])
    files = gr.File(file_count="multiple", file_types=["image"], label="References", visible=False,
                    elem_id="edit-refs-files")
    with gr.Column(elem_id="edit-refs", variant="panel"):
        gr.Markdown("References are sent in the order shown, as *image 1*, *image 2*, …: name them that way in "
                    f"the prompt. {EARLIER} {LATER} reorder, ↻ replaces one file, ✕ removes.", elem_id="edit-help")
        summary = gr.Markdown(references.summary([], models[0], models), elem_id="edit-refs-summary")
        with gr.Row(elem_id="edit-cards"):
            slots = [Slot.build(number) for number in range(1, max(map(references.limit_of, models)) + 1)]
        note = gr.Markdown("", elem_id="edit-refs-status", elem_classes=["flux-status"])
    return _References(add_many, paste, refs, files, summary, slots, note)


def _layout(models: Sequence[str]) -> _Page:
    """The model and the ways to add images, the references, their examples, then the form and the result."""
    with gr.Row(equal_height=False):
        model = model_dropdown("edit", models, scale=2, min_width=280)
        add_many = gr.UploadButton("Add images…", file_count="multiple", file_types=["image"],
                                   elem_id="edit-add", variant="secondary", scale=1, min_width=160)
        paste = gr.Image(sources=["clipboard", "upload"], type="filepath", label="Paste or drop one image",
                         elem_id="edit-paste", height=150, scale=1, min_width=200)
    refs = _references(models, add_many, paste)
    shown = examples.edit(models)  # next to the cards it fills
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            row = prompt_row("edit", placeholder="Put the cat from image 2 on the sofa in image 1, soft window light",
                             info="Ctrl+Enter (⌘+Enter) generates.", status_label="Status")
            params = image_form.param_controls("edit", all_param_names(models))
        with gr.Column(scale=3, min_width=320):
            result = image_form.result_panel("edit", caption_label="Caption")
    return _Page(image_form.ImageForm(model, row, params, result), refs, shown)


# --- wiring ---------------------------------------------------------------------------------------

def _wire_references(models: Sequence[str], model: gr.Dropdown, r: _References) -> Callable[..., list[Any]]:
    """Adding, pasting, moving, replacing and removing references, and a model change, each redrawing the
    list (past the model's limit: marked, never dropped); returns the add step, which examples reuse."""
    def show(paths: list[str], model_id: str) -> list[Any]:
        """The summary and every slot for this list and model (past the limit: marked, never dropped)."""
        limit = references.limit_of(model_id)
        updates: list[Any] = [references.summary(paths, model_id, models)]
        for index, slot in enumerate(r.slots):
            updates += slot.show(paths[index] if index < len(paths) else None, index, len(paths), index < limit)
        return updates

    def emit(paths: list[str], model_id: str, message: str = "") -> list[Any]:
        return [paths, paths, f"⚠️ {inert(message)}" if message else "", *show(paths, model_id)]

    def on_move(index: int, offset: int, paths: list[str], model_id: str) -> list[Any]:
        return emit(references.move(paths, index, offset), model_id)

    def on_remove(index: int, paths: list[str], model_id: str) -> list[Any]:
        return emit(references.remove(paths, index), model_id)

    def on_replace(index: int, paths: list[str], new: str | None, model_id: str) -> list[Any]:
        return emit(references.replace(paths, index, new), model_id)

    for index, slot in enumerate(r.slots):
        slot.earlier.click(partial(on_move, index, -1), [r.refs, model], r.outputs, **SERIAL)
        slot.later.click(partial(on_move, index, 1), [r.refs, model], r.outputs, **SERIAL)
        slot.remove.click(partial(on_remove, index), [r.refs, model], r.outputs, **SERIAL)
        slot.replace.upload(partial(on_replace, index), [r.refs, slot.replace, model], r.outputs, **SERIAL)

    def on_add(paths: list[str], new: Any, model_id: str) -> list[Any]:
        kept, message = references.add(paths, file_paths(new), model_id)
        return emit(kept, model_id, message)

    def on_paste(paths: list[str], new: str | None, model_id: str) -> list[Any]:
        if not new:  # the field clearing itself
            return [gr.update()] * (len(r.outputs) + 1)
        return [*on_add(paths, [new], model_id), None]  # clear the field for the next paste

    r.add_many.upload(on_add, [r.refs, r.add_many, model], r.outputs, **SERIAL)
    r.paste.change(on_paste, [r.refs, r.paste, model], [*r.outputs, r.paste], **SERIAL)
    model.change(show, [r.refs, model], r.view, **SERIAL)
    return on_add


def _wire_generate(runtime: Runtime, models: Sequence[str], form: image_form.ImageForm, r: _References,
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
        """A reference problem the run left, shown by the references."""
        return [done.get("problem") or gr.update()]

    # preprocess=False: values reach handle_edit as sent, and the client's validation, which knows each
    # model's own bounds, answers bad ones; Gradio would check them against the bounds the controls were
    # built with, in its own words. References still arrive only as files Gradio received (accept_raw_files).
    accept_raw_files(r.files)
    image_form.wire_image_run(runtime, form, endpoint_fn, inputs, api_name="edit", box=page_box, extra=problem,
                              extra_outputs=[r.note])

    def handler(model: Any, prompt: Any, *rest: Any) -> AsyncIterator[variations.Variations]:
        return handle_edit_variations(runtime, models, model, prompt, *rest)

    image_form.wire_variations_api(gate, form, handler, ["model", "prompt", "references"], inputs[:-1],
                                   api_name="edit_variations", prefix="edit", base="/edit",
                                   intro="Make ``count`` (1-8, default 4) images from one prompt and the same "
                                         "references at once, each its own request with its own seed.")


def _wire_code(runtime: Runtime, models: Sequence[str], form: image_form.ImageForm, r: _References) -> None:
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
    on_add = _wire_references(models, form.model, page.refs)
    follow = wire_model_controls(ctx.demo, form.model, form.params.presets, form.params.controls)
    examples.follow_edit(page.shown, form.row.prompt, form.model, on_add, page.refs.outputs, follow,
                         **SERIAL)  # the list via on_add
    _wire_generate(ctx.runtime, models, form, page.refs, quota_gate(ctx.demo))
    _wire_code(ctx.runtime, models, form, page.refs)
    wire_prompt_tools(ctx.runtime, form.row, TAB, form.model, form.params.controls)
    return image_form.image_handle("edit", TAB, form, models,
                        message=lambda settings: reuse_message(len(settings.get("references") or [])))
