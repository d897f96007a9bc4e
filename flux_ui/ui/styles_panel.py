"""The style library on the page: make, change and delete styles, and move them as JSON.

A style is applied on a tab (the "Style" picker beside its prompt); here is where styles are kept.
Everything a person types is checked by :func:`flux_ui.styles.check_style`, whose messages say the fix.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from flux_ui.errors import ValidationError
from flux_ui.styles import PLACEHOLDER, Library, check_style
from flux_ui.ui.downloads import export_folder, export_stem, offer
from flux_ui.ui.text import inert, inert_code

NEW = "(new style)"
EXAMPLE_PARAMS = '{"guidance": 6, "output_format": "png"}'


@dataclass
class StylesPanel:
    picked: gr.Dropdown
    name: gr.Textbox
    template: gr.Textbox
    params: gr.Code
    save: gr.Button
    delete: gr.Button
    export: gr.Button
    exported: gr.File
    upload: gr.File
    status: gr.Markdown


def choices(library: Library) -> list[str]:
    return [NEW, *(s.name for s in library.styles())]


def layout(library: Library) -> StylesPanel:
    with gr.Accordion("Styles", open=False, elem_id="styles"):
        gr.Markdown(f"A style wraps your prompt in a template (write {inert_code(PLACEHOLDER)} where the prompt goes) "
                    "and sets parameters; pick one beside any tab's prompt.", elem_id="styles-help")
        with gr.Row():
            picked = gr.Dropdown(choices(library), value=NEW, label="Style", scale=2, elem_id="styles-picked")
            name = gr.Textbox(label="Name", placeholder="Film noir", scale=2, elem_id="styles-name")
        template = gr.Textbox(label="Template", value=f"{PLACEHOLDER}, ", lines=2, elem_id="styles-template")
        params = gr.Code(value="{}", language="json", label=f"Parameters (JSON), such as {EXAMPLE_PARAMS}",
                         lines=3, elem_id="styles-params")
        with gr.Row():
            save = gr.Button("Save style", variant="primary", elem_id="styles-save")
            delete = gr.Button("Delete", variant="stop", elem_id="styles-delete")
            export = gr.Button("Export all (JSON)", elem_id="styles-export")
        exported = gr.File(label="Styles", visible=False, interactive=False, elem_id="styles-exported")
        upload = gr.File(label="Import styles: drop a flux-ui styles JSON here", file_types=[".json"],
                         type="filepath", height=100, elem_id="styles-import")
        status = gr.Markdown("", elem_id="styles-status", elem_classes=["flux-status"])
    return StylesPanel(picked, name, template, params, save, delete, export, exported, upload, status)


def save_style(library: Library, name: Any, template: Any, params_text: Any) -> tuple[Any, str]:
    """Check and keep a style: (the picker's update, a status line)."""
    try:
        params = json.loads(params_text or "{}")
    except ValueError as err:
        example = inert_code(EXAMPLE_PARAMS)
        return gr.update(), f"⚠️ The parameters are not JSON ({inert(err)}); write them like {example}."
    try:
        style = check_style(name, template, params)
        library.save(style)
    except ValidationError as err:
        return gr.update(), f"⚠️ {inert(err)}"
    return gr.update(choices=choices(library), value=style.name), f"Saved the style {inert_code(style.name)}."


def show_style(library: Library, name: Any) -> tuple[Any, Any, Any]:
    style = library.get(name) if isinstance(name, str) and name != NEW else None
    if style is None:
        return "", f"{PLACEHOLDER}, ", "{}"
    return style.name, style.template, json.dumps(dict(style.params), ensure_ascii=False)


def delete_style(library: Library, name: Any) -> tuple[Any, str]:
    if not isinstance(name, str) or name == NEW or not library.delete(name):
        return gr.update(), "Pick a saved style to delete."
    return gr.update(choices=choices(library), value=NEW), f"Deleted the style {inert_code(name)}."


def export_styles(library: Library, outputs: Path) -> tuple[Any, str]:
    run_id = uuid.uuid4().hex
    path = export_folder(outputs, run_id) / f"{export_stem('styles', run_id)}.json"
    path.write_text(library.export_json(), encoding="utf-8")
    offer(outputs, path)
    return gr.update(value=str(path), visible=True), f"{len(library.styles())} style(s) exported."


def import_styles(library: Library, path: Any) -> tuple[Any, str]:
    if not path:
        return gr.update(), ""
    try:
        text = Path(path).read_text(encoding="utf-8")
        names = library.import_json(text)
    except UnicodeDecodeError:
        return gr.update(), "⚠️ The file is not text; drop the JSON file a styles export wrote."
    except ValidationError as err:
        return gr.update(), f"⚠️ {inert(err)} Nothing was imported."
    return gr.update(choices=choices(library)), f"Imported {len(names)} style(s): {inert(', '.join(names))}."


def wire(library: Library, outputs: Path, p: StylesPanel) -> None:
    private = {"api_visibility": "private"}
    p.save.click(lambda *v: save_style(library, *v), [p.name, p.template, p.params], [p.picked, p.status], **private)
    p.picked.input(lambda n: show_style(library, n), p.picked, [p.name, p.template, p.params], **private)
    p.delete.click(lambda n: delete_style(library, n), p.picked, [p.picked, p.status], **private)
    p.export.click(lambda: export_styles(library, outputs), None, [p.exported, p.status], **private)
    p.upload.upload(lambda f: import_styles(library, f), p.upload, [p.picked, p.status], **private)
