"""The History tab's page: its components, and what showing a page of the gallery or one entry makes of them.

:mod:`flux_ui.ui.history_tab` and :mod:`flux_ui.ui.history_actions` wire these components; the
updates here are plain lists in the order of :attr:`HistoryPage.listed` and :attr:`HistoryPage.picked`,
so every event that lists the gallery or shows an entry says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.history import Entry, History
from flux_ui.ui.history_listing import (
    ALL_MODELS,
    EMPTY,
    PICK_FIRST,
    Listing,
    details_of,
    group_of,
    model_filter_choices,
)
from flux_ui.ui.text import inert, inert_code

TAB_ID = "history"
STAR, UNSTAR = "☆ Add to favourites", "★ Remove from favourites"


@dataclass
class Actions:
    favourite: gr.Button
    copy_link: gr.Button
    delete: gr.Button
    link: gr.Textbox
    entry_id: gr.Textbox
    confirm: gr.Column
    confirm_text: gr.Markdown
    confirm_delete: gr.Button
    keep: gr.Button
    said: gr.Markdown

    @property
    def picked(self) -> list[Any]:
        """What showing one entry updates here; ``said`` last."""
        return [self.favourite, self.copy_link, self.delete, self.entry_id, self.link, self.confirm, self.said]


def actions_layout() -> Actions:
    with gr.Row(elem_id="history-actions"):
        favourite = gr.Button(STAR, interactive=False, size="sm", elem_id="history-favourite")
        copy_link = gr.Button("Copy link", interactive=False, size="sm", elem_id="history-copy-link")
        delete = gr.Button("Delete…", interactive=False, size="sm", variant="stop", elem_id="history-delete")
    link = gr.Textbox(label="Link to this image (for anyone who can sign in to this flux-ui)", interactive=False,
                      visible=False, buttons=["copy"], elem_id="history-link")
    entry_id = gr.Textbox(visible="hidden", elem_id="history-entry-id")
    with gr.Column(visible=False, elem_id="history-confirm") as confirm:
        confirm_text = gr.Markdown("", elem_id="history-confirm-text")
        with gr.Row():
            confirm_delete = gr.Button("Delete for good", variant="stop", size="sm", elem_id="history-confirm-delete")
            keep = gr.Button("Keep it", size="sm", elem_id="history-keep")
    said = gr.Markdown("", elem_id="history-said", elem_classes=["flux-status"])
    return Actions(favourite, copy_link, delete, link, entry_id, confirm, confirm_text, confirm_delete, keep, said)


def action_updates(entry: Entry | None) -> list[Any]:
    """Updates for :attr:`Actions.picked` when ``entry`` (or nothing) is shown."""
    on = entry is not None
    return [gr.update(value=UNSTAR if on and entry.favourite else STAR, interactive=on),
            gr.update(interactive=on), gr.update(interactive=on), entry.id if on else "",
            gr.update(visible=on), gr.update(visible=False), ""]


# --- the page ---------------------------------------------------------------------------------------

@dataclass
class HistoryPage:
    model_filter: gr.Dropdown
    text_filter: gr.Textbox
    favourites_only: gr.Checkbox
    refresh: gr.Button
    take_all: gr.Button
    archive: gr.File
    status: gr.Markdown
    gallery: gr.Gallery
    newer: gr.Button
    pager: gr.Markdown
    older: gr.Button
    details: gr.Markdown
    inputs: gr.Gallery
    prompt_box: gr.Textbox
    reuse: gr.Button
    download: gr.DownloadButton
    show_group: gr.Button
    actions: Actions
    reuse_status: gr.Markdown
    drop: gr.File
    drop_status: gr.Markdown
    ids: gr.State
    selected: gr.State
    page: gr.State

    @property
    def listed(self) -> list[Any]:
        """What a listing updates: the gallery, its ids and status, and the pager."""
        return [self.gallery, self.ids, self.status, self.page, self.pager, self.newer, self.older]

    @property
    def picked(self) -> list[Any]:
        """What showing one entry (or none) updates; the prompt box second (tests read it there)."""
        return [self.details, self.prompt_box, self.reuse, self.download, self.selected, self.reuse_status,
                self.show_group, self.inputs, *self.actions.picked]


def history_tab_of(tabs: gr.Tabs) -> gr.Tab | None:
    return next((t for t in tabs.children if isinstance(t, gr.Tab) and t.id == TAB_ID), None)


def layout(history: History) -> HistoryPage:
    store = getattr(history.files, "where", None)  # Blob Storage's container; the folder is then its cache
    where = f"the {inert(store)} (this replica's copy: {inert_code(history.folder)})" if store else \
        inert_code(history.folder)
    gr.Markdown(f"Every image flux-ui made, saved in {where} with its settings inside the file. "
                "Select one to see its settings and input images, download the original, load them back into its "
                "tab, star it, share a link to it or delete it.", elem_id="history-intro")
    with gr.Row(equal_height=False, elem_id="history-filters"):
        model_filter = gr.Dropdown(choices=model_filter_choices(), value=ALL_MODELS, label="Model", scale=2,
                                   min_width=200, elem_id="history-model")
        text_filter = gr.Textbox(label="Prompt contains", placeholder="words from the prompt, then Enter", scale=3,
                                 min_width=200, elem_id="history-text")
        favourites_only = gr.Checkbox(label="★ Favourites only", value=False, scale=0, min_width=160,
                                      elem_id="history-favourites")
        refresh = gr.Button("Refresh", scale=0, min_width=110, elem_id="history-refresh")
        take_all = gr.Button("Download all matching (ZIP)", scale=0, min_width=220, elem_id="history-download-all")
    status = gr.Markdown(EMPTY, elem_id="history-status")
    archive = gr.File(label="Every image matching the filters, with manifest.json and .csv", visible=False,
                      interactive=False, elem_id="history-archive")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            gallery = gr.Gallery(label="Saved images", show_label=False, columns=4, height="auto",
                                 object_fit="cover", allow_preview=True, interactive=False, buttons=["fullscreen"],
                                 elem_id="history-gallery")
            with gr.Row(elem_id="history-pager"):
                newer = gr.Button("← Newer", size="sm", interactive=False, scale=0, min_width=110,
                                  elem_id="history-newer")
                pager = gr.Markdown("Page 1 of 1", elem_id="history-page")
                older = gr.Button("Older →", size="sm", interactive=False, scale=0, min_width=110,
                                  elem_id="history-older")
        with gr.Column(scale=2, min_width=300):
            details = gr.Markdown(PICK_FIRST, elem_id="history-details")
            inputs = gr.Gallery(label="Input images, in the order sent", columns=5, height="auto", object_fit="contain",
                                allow_preview=True, interactive=False, visible=False, buttons=["fullscreen"],
                                elem_id="history-inputs")
            prompt_box = gr.Textbox(label="Prompt", interactive=False, lines=3, max_lines=10, visible=False,
                                    buttons=["copy"], elem_id="history-prompt")
            with gr.Row():
                reuse = gr.Button("Reuse settings", variant="primary", interactive=False, elem_id="history-reuse")
                download = gr.DownloadButton("Download original", interactive=False, elem_id="history-download")
                show_group = gr.Button("Show its group", interactive=False, elem_id="history-group")
            actions = actions_layout()
            reuse_status = gr.Markdown("", elem_id="history-reuse-status", elem_classes=["flux-status"])
            drop = gr.File(label="Restore settings from a flux-ui image: drop it here", file_count="single",
                           type="filepath", height=120, elem_id="history-drop")
            drop_status = gr.Markdown("", elem_id="history-drop-status", elem_classes=["flux-status"])
    return HistoryPage(model_filter, text_filter, favourites_only, refresh, take_all, archive, status, gallery, newer,
                       pager, older, details, inputs, prompt_box, reuse, download, show_group, actions, reuse_status,
                       drop, drop_status, gr.State([]), gr.State(None), gr.State(0))


# --- what the outputs become ----------------------------------------------------------------------

def listed_updates(found: Listing, selected_id: str | None) -> list[Any]:
    """Updates for :attr:`HistoryPage.listed`. The preview keeps showing the selected image where it moved
    to, or closes: left alone, it would stay at its old position and show whichever image now sits there."""
    if selected_id in found.ids:
        view = gr.Gallery(value=found.items, selected_index=found.ids.index(selected_id))
    else:
        view = gr.Gallery(value=found.items, selected_index=None, preview=False)
    return [view, found.ids, found.message, found.page, found.pager,
            gr.update(interactive=found.page > 0), gr.update(interactive=found.page + 1 < found.pages)]


def picked_updates(entry: Entry | None, label: str = "") -> list[Any]:
    """Updates for :attr:`HistoryPage.picked`: one entry's details, prompt, inputs and buttons, or none."""
    if entry is None:
        return [PICK_FIRST, gr.update(visible=False), gr.update(interactive=False),
                gr.update(value=None, interactive=False), None, "", gr.update(interactive=False),
                gr.update(value=None, visible=False), *action_updates(None)]
    shown = [str(p) for p in entry.inputs if p.is_file()]
    return [details_of(entry, label), gr.update(value=entry.prompt, visible=True), gr.update(interactive=True),
            gr.update(value=str(entry.path), interactive=True, label=f"Download {entry.format.upper()}"),
            entry.id, "", gr.update(interactive=group_of(entry) is not None),
            gr.update(value=shown or None, visible=bool(shown)), *action_updates(entry)]


