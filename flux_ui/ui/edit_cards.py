"""The Edit tab's reference cards, "image 1" … "image N", and every way to change their list.

The references are an ordered list of file paths in a ``gr.State`` (the order lives on the server),
shown as fixed slots, as many as the largest limit, shown or hidden, rather than ``@gr.render``: a
re-render replaces its event handlers, so a second quick click on an arrow reached a handler that no
longer existed and was lost. A hidden ``gr.File`` mirrors the list so that Generate and the ``/edit``
endpoint are one event with one file input. Every change runs through one queue (``SERIAL``): adding,
pasting, ⬅ ➡, dragging a card (``assets/edit.js`` writes "from to" into a hidden box, since Gradio has
no drag event of its own), replacing, removing, a model change. The list operations are in
:mod:`flux_ui.ui.references`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from flux_ui.ui import references
from flux_ui.ui.icons import labelled
from flux_ui.ui.text import inert

# Bold arrows that read at button size; U+FE0E asks for the text glyph, not an emoji.
EARLIER, LATER = "\u2b05\ufe0e", "\u27a1\ufe0e"
#: How every change to the reference list runs: one at a time and none dropped, so quick clicks on ← add up.
SERIAL: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "trigger_mode": "multiple",
                          "concurrency_id": "edit-references", "concurrency_limit": 1}
HELP = ("References are sent in the order shown, as *image 1*, *image 2*, …: name them that way in the prompt. "
        f"Drag a card onto another to move it there (or use {EARLIER} {LATER}); ↻ replaces one file, ✕ removes.")


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
        name = f"image {number}"
        with gr.Column(visible=False, min_width=148, scale=0, elem_id=f"edit-card-{number}",
                       elem_classes=["edit-card"]) as card:
            image = gr.Image(label=name, interactive=False, height=130, buttons=["fullscreen"],
                             elem_id=f"edit-ref-{number}")
            unsent = gr.Markdown(f"⚠️ **{references.OVER}**", visible=False, elem_id=f"edit-ref-{number}-unsent")
            with gr.Row():
                earlier = gr.Button(EARLIER, size="sm", min_width=0, elem_id=f"edit-ref-{number}-earlier",
                                    elem_classes=labelled(f"Move {name} earlier"))
                later = gr.Button(LATER, size="sm", min_width=0, elem_id=f"edit-ref-{number}-later",
                                  elem_classes=labelled(f"Move {name} later"))
                replace = gr.UploadButton("↻", size="sm", min_width=0, file_types=["image"],
                                          elem_id=f"edit-ref-{number}-replace",
                                          elem_classes=labelled(f"Replace {name}"))
                remove = gr.Button("✕", size="sm", min_width=0, variant="stop", elem_id=f"edit-ref-{number}-remove",
                                   elem_classes=labelled(f"Remove {name}"))
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


@dataclass
class Cards:
    """Where references are added, listed and reordered: ``refs`` holds the list, ``files`` mirrors it as
    the file input Generate and the /edit endpoint read, ``refused`` says whether ``note`` is about an
    upload that was refused (a model change then clears it), ``drag`` carries a drop from the page."""

    models: Sequence[str]
    add_many: gr.UploadButton
    paste: gr.Image
    refs: gr.State
    files: gr.File
    refused: gr.State
    summary: gr.Markdown
    slots: list[Slot]
    note: gr.Markdown
    drag: gr.Textbox

    @property
    def view(self) -> list[Any]:
        """What shows the list: the summary, then every slot's components."""
        return [self.summary, *(c for slot in self.slots for c in slot.components)]

    @property
    def outputs(self) -> list[Any]:
        """What a change to the list updates, in :meth:`emit`'s order."""
        return [self.refs, self.files, self.note, self.refused, *self.view]

    def shown(self, paths: Sequence[str], model: str) -> list[Any]:
        """The summary and every slot for this list and model (past the limit: marked, never dropped)."""
        limit = references.limit_of(model)
        updates: list[Any] = [references.summary(paths, model, self.models)]
        for index, slot in enumerate(self.slots):
            updates += slot.show(paths[index] if index < len(paths) else None, index, len(paths), index < limit)
        return updates

    def emit(self, paths: Sequence[str], model: str, refusal: str = "") -> list[Any]:
        """The new list everywhere, and the note: a refused upload's, or none (any older note no longer applies)."""
        paths = list(paths)
        return [paths, paths, f"⚠️ {inert(refusal)}" if refusal else "", bool(refusal), *self.shown(paths, model)]

    def unchanged(self) -> list[Any]:
        return [gr.update()] * len(self.outputs)

    def restored(self, settings: Mapping[str, Any]) -> list[Any]:
        """History's "reuse settings": the references it kept, in their order; without any, the cards as they are."""
        paths = references.stored_inputs(settings)
        return self.emit(paths, str(settings["model"])) if paths else self.unchanged()


def build(models: Sequence[str], add_many: gr.UploadButton, paste: gr.Image) -> Cards:
    """The list, its hidden file mirror and the panel of cards, one slot per image the largest limit allows."""
    refs = gr.State([])
    refused = gr.State(False)
    files = gr.File(file_count="multiple", file_types=["image"], label="References", visible=False,
                    elem_id="edit-refs-files")
    with gr.Column(elem_id="edit-refs", variant="panel"):
        gr.Markdown(HELP, elem_id="edit-help")
        summary = gr.Markdown(references.summary([], models[0], models), elem_id="edit-refs-summary")
        with gr.Row(elem_id="edit-cards"):
            slots = [Slot.build(number) for number in range(1, max(map(references.limit_of, models)) + 1)]
        note = gr.Markdown("", elem_id="edit-refs-status", elem_classes=["flux-status"])
        # In the page (so assets/edit.js can write to it) but never seen: "from to nonce" for a dropped card.
        drag = gr.Textbox("", visible="hidden", interactive=True, label="Dragged card", elem_id="edit-drag")
    return Cards(models, add_many, paste, refs, files, refused, summary, slots, note, drag)


def dropped(value: Any) -> tuple[int, int] | None:
    """A drop as ``assets/edit.js`` writes it, "<from> <to> <nonce>" (image numbers), as list indices."""
    parts = str(value or "").split()
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    start, end = int(parts[0]) - 1, int(parts[1]) - 1
    return (start, end) if start >= 0 and end >= 0 else None


def wire(model: gr.Dropdown, c: Cards) -> Callable[..., list[Any]]:
    """Adding, pasting, moving, dragging, replacing and removing references, and a model change, each
    redrawing the list (past the model's limit: marked, never dropped); returns the add step, which
    examples reuse."""
    def on_move(index: int, offset: int, paths: list[str], model_id: str) -> list[Any]:
        return c.emit(references.move(paths, index, offset), model_id)

    def on_remove(index: int, paths: list[str], model_id: str) -> list[Any]:
        return c.emit(references.remove(paths, index), model_id)

    def on_replace(index: int, paths: list[str], new: str | None, model_id: str) -> list[Any]:
        return c.emit(references.replace(paths, index, new), model_id)

    for index, slot in enumerate(c.slots):
        slot.earlier.click(partial(on_move, index, -1), [c.refs, model], c.outputs, **SERIAL)
        slot.later.click(partial(on_move, index, 1), [c.refs, model], c.outputs, **SERIAL)
        slot.remove.click(partial(on_remove, index), [c.refs, model], c.outputs, **SERIAL)
        slot.replace.upload(partial(on_replace, index), [c.refs, slot.replace, model], c.outputs, **SERIAL)

    def on_drag(value: Any, paths: list[str], model_id: str) -> list[Any]:
        move = dropped(value)
        if move is None or move[0] >= len(paths):  # not a drop, or a card from an older list
            return c.unchanged()
        return c.emit(references.move_to(paths, *move), model_id)

    c.drag.change(on_drag, [c.drag, c.refs, model], c.outputs, **SERIAL)
    on_add = _wire_adding(model, c)

    def on_model(paths: list[str], model_id: str, refused: bool) -> list[Any]:
        """Redraw for the new limit; a refused upload's note no longer applies (what fits has changed)."""
        note = ["", False] if refused else [gr.update(), gr.update()]
        return [*note, *c.shown(paths, model_id)]

    model.change(on_model, [c.refs, model, c.refused], [c.note, c.refused, *c.view], **SERIAL)
    return on_add


def _wire_adding(model: gr.Dropdown, c: Cards) -> Callable[..., list[Any]]:
    """"Add images…" and the paste/drop box; returns the add step."""
    def on_add(paths: list[str], new: Any, model_id: str) -> list[Any]:
        kept, refusal = references.add(paths, references.file_paths(new), model_id)
        return c.emit(kept, model_id, refusal)

    def on_paste(paths: list[str], new: str | None, model_id: str) -> list[Any]:
        if not new:  # the field clearing itself
            return [*c.unchanged(), gr.update()]
        return [*on_add(paths, [new], model_id), None]  # clear the field for the next paste

    c.add_many.upload(on_add, [c.refs, c.add_many, model], c.outputs, **SERIAL)
    c.paste.change(on_paste, [c.refs, c.paste, model], [*c.outputs, c.paste], **SERIAL)
    return on_add
