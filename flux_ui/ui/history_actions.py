"""What a person does to one History entry besides reusing it: star it, delete it (after a confirmation,
so one misclick loses nothing), share a link to it; and a page opened from such a link (``?entry=ID``)
showing that entry.

A link is only a way back to this flux-ui's own History: whoever opens it passes the same login
as any other page of the app (Gradio's auth covers the page and every event it fires).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import gradio as gr

from flux_ui.history import Entry, History
from flux_ui.ui.history_listing import ALL_MODELS, PAGE_SIZE, listing
from flux_ui.ui.history_page import STAR, UNSTAR, HistoryPage, listed_updates, picked_updates
from flux_ui.ui.text import inert_code

#: The link to an entry, made in the page (it knows the address people reach this flux-ui at).
LINK_JS = "(id) => (window.fluxHistory ? window.fluxHistory.link(id) : '')"
COPY_JS = "(link) => (window.fluxHistory ? window.fluxHistory.copy(link) : 'Copy the link from the box above.')"
LINK_PARAM = "entry"


def deletion_question(entry: Entry) -> str:
    shared = f" and the {len(entry.inputs)} input image(s) no other image uses" if entry.inputs else ""
    return (f"**Delete this image for good?** {inert_code(entry.path.name)}{shared} will be removed from the "
            "outputs folder, with its settings. This cannot be undone: download it first to keep a copy.")


def wire(history: History, p: HistoryPage, show: Callable[..., list[Any]]) -> None:
    """Star/unstar, and delete after a confirmation, for the entry on show; the gallery is listed again."""
    a = p.actions
    filters = [p.model_filter, p.text_filter, p.favourites_only, p.page]

    def toggle(entry_id: str | None, model: str, text: str, favourites: bool, page: int) -> list[Any]:
        entry = history.get(entry_id) if entry_id else None
        if entry is None:
            return [gr.update(), "Select an image first.", *show(model, text, favourites, page, None)]
        now = history.favourite(entry.id, not entry.favourite)
        starred = bool(now and now.favourite)
        said = "★ In your favourites." if starred else "Removed from your favourites."
        return [gr.update(value=UNSTAR if starred else STAR), said, *show(model, text, favourites, page, entry.id)]

    a.favourite.click(toggle, [p.selected, *filters], [a.favourite, a.said, *p.listed], show_progress="hidden",
                      api_visibility="private")

    def ask(entry_id: str | None) -> list[Any]:
        entry = history.get(entry_id) if entry_id else None
        if entry is None:
            return [gr.update(visible=False), "", "Select an image first."]
        return [gr.update(visible=True), deletion_question(entry), ""]

    a.delete.click(ask, p.selected, [a.confirm, a.confirm_text, a.said], api_visibility="private")
    a.keep.click(lambda: (gr.update(visible=False), "Kept: nothing was deleted."), None, [a.confirm, a.said],
                 api_visibility="private")

    async def remove(entry_id: str | None, model: str, text: str, favourites: bool, page: int) -> list[Any]:
        gone = await asyncio.to_thread(history.delete, entry_id) if entry_id else None
        said = (f"Deleted {inert_code(gone.path.name)}." if gone is not None
                else "That image is not in History any more: nothing was deleted.")
        listed = await asyncio.to_thread(show, model, text, favourites, page, None)
        return [*picked_updates(None)[:-1], said, *listed]

    a.confirm_delete.click(remove, [p.selected, *filters], [*p.picked, *p.listed], show_progress_on=p.gallery,
                           api_visibility="private")
    a.copy_link.click(None, a.link, a.said, js=COPY_JS)


def wire_entry_link(demo: gr.Blocks, history: History, tabs: gr.Tabs, tab_id: str, p: HistoryPage,
                    label_of: Callable[[Entry], str]) -> None:
    """A page opened with ``?entry=ID`` opens on History with that entry shown (its page of the gallery,
    filters cleared); an unknown id says so there. Without the parameter the page loads as ever."""
    outputs = [tabs, p.model_filter, p.text_filter, p.favourites_only, *p.listed, *p.picked]

    def open_link(request: gr.Request) -> list[Any]:
        wanted = dict(request.query_params).get(LINK_PARAM) if request is not None else None
        if not wanted:
            return [gr.update() for _ in outputs]
        entry = history.get(wanted)
        position = history.position(wanted) if entry is not None else None
        found = listing(history, None, None, (position or 0) // PAGE_SIZE)
        listed = listed_updates(found, entry.id if entry else None)
        if entry is None:
            listed[2] = (f"⚠️ The link names an image that is not in History ({inert_code(wanted[:80])}): it may "
                         f"have been deleted. {found.message}")
        picked = picked_updates(entry, label_of(entry) if entry else "")
        return [gr.Tabs(selected=tab_id), ALL_MODELS, "", False, *listed, *picked]

    opened = demo.load(open_link, None, outputs, show_progress="hidden", api_visibility="private")
    opened.then(None, p.actions.entry_id, p.actions.link, js=LINK_JS)
