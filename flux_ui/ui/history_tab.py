"""The History tab: every saved image, newest first, and its settings loaded back where they came from.

This module lays the tab out, then wires it: the filters and gallery, one image's details and
download, "Reuse settings", a dropped file's settings and the /history endpoint. The listings
and texts are :mod:`flux_ui.ui.history_listing`; loading settings back (from an entry or a
dropped file) is :mod:`flux_ui.ui.history_reuse`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from flux_ui.exports.archive import history_archive
from flux_ui.history import History
from flux_ui.runtime import Runtime
from flux_ui.ui import styles_panel
from flux_ui.ui.common import TabContext, TabHandle
from flux_ui.ui.downloads import export_folder, export_stem, offer
from flux_ui.ui.history_listing import (
    ALL_MODELS,
    EMPTY,
    PICK_FIRST,
    api_entries,
    details_of,
    group_listing,
    group_of,
    listing,
    model_filter_choices,
    tab_label,
)
from flux_ui.ui.history_reuse import noop_updates, reuse_updates, settings_in_file
from flux_ui.ui.text import inert, inert_code

log = logging.getLogger("flux_ui.ui.history")

TAB_ID = "history"


# --- layout ---------------------------------------------------------------------------------------

@dataclass
class _Page:
    model_filter: gr.Dropdown
    text_filter: gr.Textbox
    refresh: gr.Button
    take_all: gr.Button
    archive: gr.File
    status: gr.Markdown
    gallery: gr.Gallery
    details: gr.Markdown
    prompt_box: gr.Textbox
    reuse: gr.Button
    download: gr.DownloadButton
    show_group: gr.Button
    reuse_status: gr.Markdown
    drop: gr.File
    drop_status: gr.Markdown
    ids: gr.State
    selected: gr.State


def history_tab_of(tabs: gr.Tabs) -> gr.Tab | None:
    return next((t for t in tabs.children if isinstance(t, gr.Tab) and t.id == TAB_ID), None)


def _layout(history: History) -> _Page:
    gr.Markdown(f"Every image flux-ui made, saved in {inert_code(history.folder)} with its settings inside the file. "
                "Select one to see its settings, download the original or load them back into its tab.",
                elem_id="history-intro")
    with gr.Row(equal_height=False):
        model_filter = gr.Dropdown(choices=model_filter_choices(), value=ALL_MODELS, label="Model", scale=2,
                                   min_width=200, elem_id="history-model")
        text_filter = gr.Textbox(label="Prompt contains", placeholder="words from the prompt, then Enter", scale=3,
                                 min_width=200, elem_id="history-text")
        refresh = gr.Button("Refresh", scale=0, min_width=110, elem_id="history-refresh")
        take_all = gr.Button("Download all shown (ZIP)", scale=0, min_width=200, elem_id="history-download-all")
    status = gr.Markdown(EMPTY, elem_id="history-status")
    archive = gr.File(label="Every image shown, with manifest.json and .csv", visible=False, interactive=False,
                      elem_id="history-archive")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            gallery = gr.Gallery(label="Saved images", show_label=False, columns=3, height="auto",
                                 object_fit="cover", allow_preview=True, interactive=False, buttons=["fullscreen"],
                                 elem_id="history-gallery")
        with gr.Column(scale=2, min_width=300):
            details = gr.Markdown(PICK_FIRST, elem_id="history-details")
            prompt_box = gr.Textbox(label="Prompt", interactive=False, lines=3, max_lines=10, visible=False,
                                    buttons=["copy"], elem_id="history-prompt")
            with gr.Row():
                reuse = gr.Button("Reuse settings", variant="primary", interactive=False, elem_id="history-reuse")
                download = gr.DownloadButton("Download original", interactive=False, elem_id="history-download")
                show_group = gr.Button("Show its group", interactive=False, elem_id="history-group")
            reuse_status = gr.Markdown("", elem_id="history-reuse-status", elem_classes=["flux-status"])
            drop = gr.File(label="Restore settings from a flux-ui image: drop it here", file_count="single",
                           type="filepath", height=120, elem_id="history-drop")
            drop_status = gr.Markdown("", elem_id="history-drop-status", elem_classes=["flux-status"])
    return _Page(model_filter, text_filter, refresh, take_all, archive, status, gallery, details, prompt_box, reuse,
                 download, show_group, reuse_status, drop, drop_status, gr.State([]), gr.State(None))


# --- wiring ---------------------------------------------------------------------------------------

def _wire_listing(history: History, tabs: gr.Tabs, p: _Page) -> None:
    """The gallery listed again on Refresh, a filter change, and whenever the tab is opened."""
    def show(model: str | None, text: str | None, selected_id: str | None) -> tuple[Any, ...]:
        found = listing(history, model, text)
        # The preview keeps showing the selected image where it moved to, or closes: left alone,
        # it would stay at its old position and show whichever image now sits there.
        if selected_id in found.ids:
            view = gr.Gallery(value=found.items, selected_index=found.ids.index(selected_id))
        else:
            view = gr.Gallery(value=found.items, selected_index=None, preview=False)
        return view, found.ids, found.message

    filters, listed = [p.model_filter, p.text_filter, p.selected], [p.gallery, p.ids, p.status]
    p.refresh.click(show, filters, listed, api_visibility="private")
    p.text_filter.submit(show, filters, listed, api_visibility="private")
    p.model_filter.input(show, filters, listed, api_visibility="private")
    history_tab = history_tab_of(tabs)
    if history_tab is not None:  # refresh whenever the tab is opened: one query, only then
        history_tab.select(show, filters, listed, api_visibility="private")
    else:
        log.warning("no tab with id %r among the tabs: History refreshes only with its button", TAB_ID)


def _wire_download_all(history: History, p: _Page) -> None:
    """One ZIP of every image the filters show: the originals, byte for byte, and a manifest of their settings."""
    async def take_all(model: str | None, text: str | None) -> tuple[Any, str]:
        return await asyncio.to_thread(_archive_of_filter, history, model, text)

    p.take_all.click(take_all, [p.model_filter, p.text_filter], [p.archive, p.status], api_visibility="private")


def _archive_of_filter(history: History, model: str | None, text: str | None) -> tuple[Any, str]:
    found = listing(history, model, text)
    if not found.ids:
        return gr.update(visible=False), f"{found.message} Nothing to put in a ZIP."
    entries = [e for e in map(history.get, found.ids) if e is not None]  # whole prompts, not previews
    run_id = uuid.uuid4().hex
    dest = export_folder(history.folder, run_id) / f"{export_stem('history', run_id)}.zip"
    report = history_archive(entries, history.folder, dest)
    offer(history.folder, report.path)
    said = f"{len(entries) - len(report.problems)} image(s) in {inert_code(report.path.name)}."
    problems = " ".join(inert(p) for p in report.problems)
    return gr.update(value=str(report.path), visible=True), f"{said} {problems}".strip()


def _wire_select(history: History, handles: list[TabHandle], labels: Mapping[str, str], p: _Page) -> None:
    """A gallery click shows that image's details, prompt and download, and arms "Reuse settings"."""
    def on_select(shown: list[str], evt: gr.SelectData) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else -1
        entry = history.get(shown[index]) if 0 <= index < len(shown) else None
        if entry is None or not evt.selected:
            return (PICK_FIRST, gr.update(visible=False), gr.update(interactive=False),
                    gr.update(value=None, interactive=False), None, "", gr.update(interactive=False))
        return (details_of(entry, tab_label(entry.tab, handles, labels)), gr.update(value=entry.prompt, visible=True),
                gr.update(interactive=True), gr.update(value=str(entry.path), interactive=True,
                                                       label=f"Download {entry.format.upper()}"),
                entry.id, "", gr.update(interactive=group_of(entry) is not None))

    p.gallery.select(on_select, p.ids, [p.details, p.prompt_box, p.reuse, p.download, p.selected, p.reuse_status,
                                        p.show_group], api_visibility="private")

    def show_group(entry_id: str | None) -> tuple[Any, ...]:
        entry = history.get(entry_id) if entry_id else None
        group = group_of(entry) if entry else None
        if group is None:
            return gr.update(), gr.update(), "Pick an image made in a grid or a run of variations first."
        found = group_listing(history, group)
        return gr.Gallery(value=found.items, selected_index=None, preview=False), found.ids, found.message

    p.show_group.click(show_group, p.selected, [p.gallery, p.ids, p.status], api_visibility="private")


def _wire_reuse(runtime: Runtime, tabs: gr.Tabs, handles: list[TabHandle], labels: Mapping[str, str],
                p: _Page) -> None:
    """"Reuse settings" and a dropped file load settings into the tab that takes them (and switch to it)."""
    reuse_outputs = [tabs, *(c for h in handles for c in h.outputs)]

    def on_reuse(entry_id: str | None) -> list[Any]:
        entry = runtime.history.get(entry_id) if entry_id else None
        if entry is None:
            return [*noop_updates(handles), PICK_FIRST]
        updates, message = reuse_updates(entry.settings, handles, runtime.models, labels)
        return [*updates, message]

    p.reuse.click(on_reuse, p.selected, [*reuse_outputs, p.reuse_status], api_visibility="private")

    def on_drop(path: str | None) -> list[Any]:
        if not path:
            return [*noop_updates(handles), ""]
        settings, problem = settings_in_file(path)
        if settings is None:
            return [*noop_updates(handles), problem]
        updates, message = reuse_updates(settings, handles, runtime.models, labels)
        return [*updates, message]

    p.drop.upload(on_drop, p.drop, [*reuse_outputs, p.drop_status], api_visibility="private")


def _wire_api(history: History) -> None:
    def history_api(model: str | None = None, text: str | None = None,
                    limit: int = 50) -> tuple[list[dict[str, Any]], list[FileData]]:
        """List saved images, newest first, with the settings that made each.

        ``model`` keeps one model's images (a model ID such as "FLUX.2-pro"; empty: all), ``text``
        those whose prompt contains it, ``limit`` caps the count (at most 500). Returns the entries
        (id, created as ISO time, tab, model, prompt, prompt_truncated, seed, width, height, format,
        file: the path inside the outputs folder, settings: what "reuse settings" loads) and,
        pairwise, the image files themselves, which gradio_client downloads. A prompt over 300
        characters comes as its first 300 and "…", here and in settings, with prompt_truncated true.
        """
        return api_entries(history, model, text, limit)

    # gr.api reads the return annotation unevaluated; this module's annotations are strings.
    history_api.__name__ = "history"  # MCP names the tool after the function
    history_api.__signature__ = inspect.signature(history_api, eval_str=True)  # type: ignore[attr-defined]
    gr.api(history_api, api_name="history")


def build(ctx: TabContext) -> TabHandle:
    """The tab, wired to the tabs built before it (``ctx.handles``) and the gr.Tabs it switches
    (``ctx.tabs``); its own handle takes no settings."""
    if ctx.tabs is None:
        raise ValueError("History is built inside the app's gr.Tabs: give TabContext its tabs")
    history, tabs, handles = ctx.runtime.history, ctx.tabs, list(ctx.handles)
    labels = {str(t.id): str(t.label) for t in tabs.children if isinstance(t, gr.Tab)}
    page = _layout(history)
    styles = styles_panel.layout(ctx.runtime.styles)
    styles_panel.wire(ctx.runtime.styles, history.folder, styles)
    _wire_listing(history, tabs, page)
    _wire_download_all(history, page)
    _wire_select(history, handles, labels, page)
    _wire_reuse(ctx.runtime, tabs, handles, labels, page)
    _wire_api(history)
    return TabHandle(tab_id=TAB_ID, name=TAB_ID, models=())
