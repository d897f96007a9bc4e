"""The History tab: every saved image, newest first and page by page, and its settings loaded back where they came from.

This module lays the tab out, then wires it: the filters, the pages and the gallery, one image's
details, input images and download, "Reuse settings", a dropped file's settings and the /history
endpoint. The listings and texts are :mod:`flux_ui.ui.history_listing`; loading settings back
(from an entry or a dropped file) is :mod:`flux_ui.ui.history_reuse`; favourites, delete, the
link to one entry and opening such a link are :mod:`flux_ui.ui.history_actions`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from flux_ui import history_inputs
from flux_ui.exports.archive import history_archive
from flux_ui.history import History
from flux_ui.runtime import Runtime
from flux_ui.ui import history_actions, history_page, styles_panel
from flux_ui.ui.common import TabContext, TabHandle
from flux_ui.ui.downloads import export_folder, export_stem, offer
from flux_ui.ui.history_listing import PICK_FIRST, api_entries, group_listing, group_of, listing, tab_label
from flux_ui.ui.history_page import TAB_ID, HistoryPage, history_tab_of, listed_updates, picked_updates
from flux_ui.ui.history_reuse import noop_updates, reuse_updates, settings_in_file
from flux_ui.ui.text import inert, inert_code

log = logging.getLogger("flux_ui.ui.history")
#: The most images one "Download all" ZIP takes (the newest matching the filters).
ARCHIVE_LIMIT = 500


# --- wiring ---------------------------------------------------------------------------------------

def _wire_listing(history: History, tabs: gr.Tabs, p: HistoryPage) -> None:
    """The gallery listed again on Refresh, a filter change, a page turn, and whenever the tab is opened."""
    def show(model: str | None, text: str | None, favourites: bool, page: int, selected_id: str | None) -> list[Any]:
        return listed_updates(listing(history, model, text, page, favourites), selected_id)

    def first_page(model: str | None, text: str | None, favourites: bool, selected_id: str | None) -> list[Any]:
        return show(model, text, favourites, 0, selected_id)

    def turn(step: int) -> Any:
        def turned(model: str | None, text: str | None, favourites: bool, page: int,
                   selected_id: str | None) -> list[Any]:
            return show(model, text, favourites, (page or 0) + step, selected_id)
        return turned

    filters = [p.model_filter, p.text_filter, p.favourites_only]
    paged, fresh = [*filters, p.page, p.selected], [*filters, p.selected]
    p.refresh.click(show, paged, p.listed, show_progress_on=p.gallery, api_visibility="private")
    p.newer.click(turn(-1), paged, p.listed, show_progress_on=p.gallery, api_visibility="private")
    p.older.click(turn(1), paged, p.listed, show_progress_on=p.gallery, api_visibility="private")
    p.text_filter.submit(first_page, fresh, p.listed, show_progress_on=p.gallery, api_visibility="private")
    p.model_filter.input(first_page, fresh, p.listed, show_progress_on=p.gallery, api_visibility="private")
    p.favourites_only.input(first_page, fresh, p.listed, show_progress_on=p.gallery, api_visibility="private")
    history_tab = history_tab_of(tabs)
    if history_tab is not None:  # refresh whenever the tab is opened: one query, only then
        history_tab.select(show, paged, p.listed, show_progress_on=p.gallery, api_visibility="private")
    else:
        log.warning("no tab with id %r among the tabs: History refreshes only with its button", TAB_ID)
    history_actions.wire(history, p, show)


def _wire_download_all(history: History, p: HistoryPage) -> None:
    """One ZIP of every image the filters match: the originals, byte for byte, and a manifest of their settings."""
    async def take_all(model: str | None, text: str | None, favourites: bool) -> tuple[Any, str]:
        return await asyncio.to_thread(_archive_of_filter, history, model, text, favourites)

    p.take_all.click(take_all, [p.model_filter, p.text_filter, p.favourites_only], [p.archive, p.status],
                     api_visibility="private")


def _archive_of_filter(history: History, model: str | None, text: str | None,
                       favourites: bool = False) -> tuple[Any, str]:
    found = listing(history, model, text, 0, favourites, page_size=ARCHIVE_LIMIT)
    if not found.ids:
        return gr.update(visible=False), f"{found.message} Nothing to put in a ZIP."
    entries = [e for e in map(history.get, found.ids) if e is not None]  # whole prompts, not previews
    run_id = uuid.uuid4().hex
    dest = export_folder(history.folder, run_id) / f"{export_stem('history', run_id)}.zip"
    report = history_archive(entries, history.folder, dest)
    offer(history.folder, report.path)
    said = f"{len(entries) - len(report.problems)} image(s) in {inert_code(report.path.name)}."
    if found.pages > 1:
        said += f" (the newest {ARCHIVE_LIMIT}: filter to reach older ones)"
    problems = " ".join(inert(p) for p in report.problems)
    return gr.update(value=str(report.path), visible=True), f"{said} {problems}".strip()


def _wire_select(history: History, handles: list[TabHandle], labels: Mapping[str, str], p: HistoryPage) -> None:
    """A gallery click shows that image's details, inputs, prompt and download, and arms its buttons."""
    def on_select(shown: list[str], evt: gr.SelectData) -> list[Any]:
        index = evt.index if isinstance(evt.index, int) else -1
        entry = history.get(shown[index]) if 0 <= index < len(shown) else None
        if entry is None or not evt.selected:
            return picked_updates(None)
        return picked_updates(entry, tab_label(entry.tab, handles, labels))

    p.gallery.select(on_select, p.ids, p.picked, api_visibility="private").then(
        None, p.actions.entry_id, p.actions.link, js=history_actions.LINK_JS)

    def show_group(entry_id: str | None) -> tuple[Any, ...]:
        entry = history.get(entry_id) if entry_id else None
        group = group_of(entry) if entry else None
        if group is None:
            return gr.update(), gr.update(), "Pick an image made in a grid or a run of variations first."
        found = group_listing(history, group)
        return gr.Gallery(value=found.items, selected_index=None, preview=False), found.ids, found.message

    p.show_group.click(show_group, p.selected, [p.gallery, p.ids, p.status], api_visibility="private")


def _wire_reuse(runtime: Runtime, tabs: gr.Tabs, handles: list[TabHandle], labels: Mapping[str, str],
                p: HistoryPage) -> None:
    """"Reuse settings" and a dropped file load settings, and the input images kept with them, into the tab
    that takes them (and switch to it)."""
    reuse_outputs = [tabs, *(c for h in handles for c in h.outputs)]

    def on_reuse(entry_id: str | None) -> list[Any]:
        entry = runtime.history.get(entry_id) if entry_id else None
        if entry is None:
            return [*noop_updates(handles), PICK_FIRST]
        updates, message = reuse_updates(entry.settings, handles, runtime.models, labels, entry.inputs)
        return [*updates, message]

    p.reuse.click(on_reuse, p.selected, [*reuse_outputs, p.reuse_status], api_visibility="private")

    def on_drop(path: str | None) -> list[Any]:
        if not path:
            return [*noop_updates(handles), ""]
        settings, problem = settings_in_file(path)
        if settings is None:
            return [*noop_updates(handles), problem]
        inputs = history_inputs.find(runtime.history.folder, settings.get("inputs"))
        runtime.history.files.fetch_all(inputs)  # another replica's, or lost with a restarted container
        updates, message = reuse_updates(settings, handles, runtime.models, labels, inputs)
        return [*updates, message]

    p.drop.upload(on_drop, p.drop, [*reuse_outputs, p.drop_status], api_visibility="private")


def _wire_api(history: History) -> None:
    def history_api(model: str | None = None, text: str | None = None,
                    limit: int = 50) -> tuple[list[dict[str, Any]], list[FileData]]:
        """List saved images, newest first, with the settings that made each.

        ``model`` keeps one model's images (a model ID such as "FLUX.2-pro"; empty: all), ``text``
        those whose prompt contains it, ``limit`` is how many (a whole number from 1 to 500; another
        value is refused with that range). Returns the entries (id, created as ISO time, tab, model,
        prompt, prompt_truncated, seed, width, height, format, file: the path inside the outputs
        folder, settings: what "reuse settings" loads) and, pairwise, the image files themselves,
        which gradio_client downloads. A prompt over 300 characters comes as its first 300 and "…",
        here and in settings, with prompt_truncated true.
        """
        return api_entries(history, model, text, limit)

    # gr.api reads the return annotation unevaluated; this module's annotations are strings.
    history_api.__name__ = "history"  # MCP names the tool after the function
    history_api.__signature__ = inspect.signature(history_api, eval_str=True)  # type: ignore[attr-defined]
    gr.api(history_api, api_name="history")


def build(ctx: TabContext) -> TabHandle:
    """The tab, wired to the tabs built before it (``ctx.handles``) and the gr.Tabs it switches
    (``ctx.tabs``); its own handle takes no settings. A page opened with ``?entry=ID`` opens here on
    that entry."""
    if ctx.tabs is None:
        raise ValueError("History is built inside the app's gr.Tabs: give TabContext its tabs")
    history, tabs, handles = ctx.runtime.history, ctx.tabs, list(ctx.handles)
    labels = {str(t.id): str(t.label) for t in tabs.children if isinstance(t, gr.Tab)}
    page = history_page.layout(history)
    styles = styles_panel.layout(ctx.runtime.styles)
    styles_panel.wire(ctx.runtime.styles, history.folder, styles)
    _wire_listing(history, tabs, page)
    _wire_download_all(history, page)
    _wire_select(history, handles, labels, page)
    _wire_reuse(ctx.runtime, tabs, handles, labels, page)
    _wire_api(history)
    history_actions.wire_entry_link(ctx.demo, history, tabs, TAB_ID, page,
                                    lambda entry: tab_label(entry.tab, handles, labels))
    return TabHandle(tab_id=TAB_ID, name=TAB_ID, models=())

