"""History's listings: a page of the gallery for the filters, captions, an image's details, the /history records.

Everything reads the outputs folder's SQLite index (:mod:`flux_ui.history`), so the listing
survives restarts; the tab (:mod:`flux_ui.ui.history_tab`) lays it out and wires it. The
gallery shows one page at a time, newest first, so the page grows with nothing (the whole
of History is reached page by page, not by scrolling a box inside the page).
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio.route_utils import API_PREFIX
from gradio_client.utils import encode_file_path

from flux_ui.client import check_text_size, finite
from flux_ui.errors import ValidationError
from flux_ui.history import Entry, History
from flux_ui.registry import MODELS
from flux_ui.ui.common import TabHandle, model_choices
from flux_ui.ui.text import inert, inert_code

ALL_MODELS = "all"
PAGE_SIZE = 24  # thumbnails on one page of the gallery
UI_LIMIT = 120  # the most images one run's group listing shows
API_LIMIT_MAX = 500
CAPTION_PROMPT_CHARS = 40
#: The most of a prompt a listing carries (the gallery's captions, the /history entries); the one
#: entry's details and "reuse settings" read the whole prompt.
PREVIEW_CHARS = 300
ROUTE_NAMES = {"bfl": "the BFL route", "images/generations": "Image API generations", "images/edits": "Image API edits",
               "aml": "the Azure ML endpoint"}

EMPTY = "No images yet: generate one in any tab. Images are saved here before they are shown."
PICK_FIRST = "Select an image in the gallery to see its settings."


@dataclass(frozen=True)
class Listing:
    """What the gallery shows: (file, caption) pairs, the entry id of each, a status line, and which page
    of how many this is (0-based; ``pages`` is at least 1)."""

    items: list[tuple[str, str]]
    ids: list[str]
    message: str
    page: int = 0
    pages: int = 1

    @property
    def pager(self) -> str:
        return f"Page {self.page + 1} of {self.pages}"


def model_filter_choices() -> list[tuple[str, str]]:
    """Every registry model, not only the deployed ones: older images may come from any of them."""
    return [("All models", ALL_MODELS), *model_choices(list(MODELS))]


def model_arg(model: str | None) -> str | None:
    return None if not model or model == ALL_MODELS else model


def display_name(model: str) -> str:
    spec = MODELS.get(model)
    return spec.display_name if spec else model


def caption_of(entry: Entry) -> str:
    """Model · when · the prompt's start · seed: enough to tell thumbnails apart (★ first for a favourite)."""
    prompt = " ".join(entry.prompt.split())
    if len(prompt) > CAPTION_PROMPT_CHARS:
        prompt = prompt[:CAPTION_PROMPT_CHARS - 1].rstrip() + "…"
    parts = [display_name(entry.model), short_date(entry.created), prompt]
    if entry.seed is not None:
        parts.append(f"seed {entry.seed}")
    return ("★ " if entry.favourite else "") + " · ".join(parts)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def short_date(created: float, now: float | None = None) -> str:
    """"1 Dec 15:25" (the year too when it is not this year's): short enough for a thumbnail, in any locale."""
    when = datetime.fromtimestamp(created)
    year = "" if when.year == datetime.fromtimestamp(time.time() if now is None else now).year else f" {when.year}"
    return f"{when.day} {_MONTHS[when.month - 1]}{year} {when:%H:%M}"


def check_filter(text: Any) -> None:
    """Refuse a text filter longer than any prompt flux-ui stores (ValidationError naming it)."""
    if isinstance(text, str):
        check_text_size("The prompt filter", text, "text")


def listing(history: History, model: str | None = None, text: str | None = None, page: int = 0,
            favourites: bool = False, page_size: int = PAGE_SIZE) -> Listing:
    """One page of the gallery for these filters, newest first (a page past the end shows the last one);
    an indexed file missing from disk is left out and counted.

    Prompts come as previews: a caption shows 40 characters, and a long prompt is not read whole.
    """
    try:
        check_filter(text)
    except ValidationError as err:
        return Listing([], [], f"⚠️ {inert(err)}")
    model, favourites = model_arg(model), bool(favourites)
    total = history.count(model=model, text=text, favourites=favourites)
    pages = max(1, -(-total // page_size))
    page = min(max(0, int(page or 0)), pages - 1)
    entries = history.list(model=model, text=text, favourites=favourites, limit=page_size, offset=page * page_size,
                           preview=PREVIEW_CHARS)
    present = [e for e in entries if e.path.is_file()]
    items = [(str(e.path), caption_of(e)) for e in present]
    message = listing_message(history, bool(model or (text and text.strip())), favourites, total,
                              len(entries) - len(present))
    return Listing(items, [e.id for e in present], message, page, pages)


def listing_message(history: History, filtered: bool, favourites: bool, total: int, missing: int) -> str:
    if total == 0:
        if not (filtered or favourites) or not history.count():
            return EMPTY
        if favourites and not filtered:
            return ("No favourites yet: select an image and press **☆ Add to favourites**, or untick "
                    "**Favourites only**.")
        return ("No saved image matches these filters: choose **All models**, clear the text or untick "
                "**Favourites only** to see every image.")
    noun = "image" if total == 1 else "images"
    which = " matching the filters" if filtered else ""
    message = f"{total} {'favourite ' if favourites else ''}{noun}{which}, newest first."
    if missing:
        message += f" {missing} indexed file(s) on this page are missing from the outputs folder and are not shown."
    return message


def tab_label(tab: str, handles: Sequence[TabHandle], labels: Mapping[str, str]) -> str:
    """The label a person sees for the tab named ``tab`` (History records names like "text-to-image")."""
    handle = next((h for h in handles if h.name == tab), None)
    if handle is not None and handle.tab_id in labels:
        return labels[handle.tab_id]
    return tab.replace("-", " ").capitalize() if tab else "unknown tab"


def readable_value(value: Any) -> str:
    """A parameter's value as Markdown: numbers and on/off as they are, anything else (from a file) inert."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if isinstance(value, int) else inert(value)


def readable_params(model: str, params: Mapping[str, Any], size: tuple[int, int] | None = None) -> str:
    """``Label value`` pairs in the registry's order, then any the registry does not know.

    The seed is shown apart, and so is the size when the image came out at the size asked for.
    """
    spec = MODELS.get(model)
    if not isinstance(params, Mapping):  # a file's settings can hold anything
        return "none readable"
    if size is not None and (params.get("width"), params.get("height")) == size:
        params = {k: v for k, v in params.items() if k not in ("width", "height")}
    known = [p.name for p in spec.all_params] if spec else []
    names = [n for n in known if n in params] + [n for n in params if n not in known]
    parts = []
    for name in names:
        if name == "seed" or params[name] is None:
            continue
        param = spec.param(name) if spec else None
        parts.append(f"{param.label if param else inert(name)} **{readable_value(params[name])}**")
    return " · ".join(parts) or "the model's defaults"


def created_text(created: float) -> str:
    return datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")


GROUP_NAMES = {"grid": "grid", "variations": "run of variations", "comparison": "comparison",
               "kontext-trail": "Kontext edit trail"}


def group_of(entry: Entry) -> str | None:
    """The id of the run the image was made in (a grid, a run of variations), if any."""
    group = entry.settings.get("group")
    return str(group["id"]) if isinstance(group, dict) and group.get("id") else None


def group_listing(history: History, group: str) -> Listing:
    """The gallery of one run's images, newest first."""
    entries = [e for e in history.list(group=group, limit=UI_LIMIT, preview=PREVIEW_CHARS) if e.path.is_file()]
    return Listing([(str(e.path), caption_of(e)) for e in entries], [e.id for e in entries],
                   f"The {len(entries)} image(s) of that run. **Refresh** shows every image again.")


def details_of(entry: Entry, tab_name: str) -> str:
    """The selected image's settings as a person reads them (the prompt is shown in its own box)."""
    settings = entry.settings
    head = [f"**{inert(display_name(entry.model))}**", f"{entry.width}×{entry.height}",
            entry.format.upper()]
    head.append(f"seed **{inert(entry.seed)}**" if entry.seed is not None else "no seed")
    lines = [
        " · ".join(head),
        f"Made in **{inert(tab_name)}** on {created_text(entry.created)}",
        f"Parameters: {readable_params(entry.model, settings.get('params') or {}, (entry.width, entry.height))}",
    ]
    references = settings.get("references") or []
    if entry.inputs:
        gone = sum(not p.is_file() for p in entry.inputs)
        lines.append(f"Input images: {len(entry.inputs)}, kept with it in the order sent (shown below); **Reuse "
                     "settings** loads them back" + (f", except the {gone} missing from the outputs folder." if gone
                                                    else "."))
    elif isinstance(references, list) and references:
        lines.append(f"References: {len(references)} sent, in order; saved before flux-ui kept them, so reuse asks "
                     "for them again.")
    group = settings.get("group")
    if isinstance(group, dict) and group.get("kind") and group.get("id"):
        lines.append(f"Part of a {inert(GROUP_NAMES.get(str(group['kind']), group['kind']))} "
                     f"({inert_code(str(group['id'])[:8])}): **Show its group** lists the images made with it.")
    if settings.get("route"):
        route = ROUTE_NAMES.get(str(settings["route"]), str(settings["route"]))
        lines.append(f"Sent by {inert(route)} to deployment {inert(settings.get('deployment', entry.model))}")
    lines.append(f"File: {inert_code(entry.path)}")
    return "\n\n".join(lines)


def relative_file(entry: Entry, folder: Path) -> str:
    """The file's path inside the outputs folder (never an absolute path)."""
    try:
        return entry.path.relative_to(folder).as_posix()
    except ValueError:
        return entry.path.name


def api_record(entry: Entry, folder: Path) -> dict[str, Any]:
    """One entry as the API returns it: JSON-safe, with the file named relative to the outputs folder."""
    return {
        "id": entry.id,
        "created": datetime.fromtimestamp(entry.created).astimezone().isoformat(timespec="seconds"),
        "tab": entry.tab,
        "model": entry.model,
        "prompt": entry.prompt,
        "prompt_truncated": bool(entry.settings.get("prompt_truncated")),
        "seed": entry.seed,
        "width": entry.width,
        "height": entry.height,
        "format": entry.format,
        "file": relative_file(entry, folder),
        "settings": dict(entry.settings),
    }


def api_entries(history: History, model: str | None, text: str | None,
                limit: int) -> tuple[list[dict[str, Any]], list[FileData]]:
    """The /history answer: records and their files, pairwise, newest first (files missing on disk left out).

    A bad filter raises gr.Error: this endpoint has no message output, so gradio_client raises it.
    """
    model = model_arg(model)
    if model is not None and (not isinstance(model, str) or model not in MODELS):
        raise gr.Error(f"Unknown model {reprlib.repr(model)}: use one of {', '.join(MODELS)}, or leave it empty "
                       "for all.")
    if text is not None and not isinstance(text, str):
        raise gr.Error(f"text must be words from the prompt, as a string; got {type(text).__name__} "
                       f"{reprlib.repr(text)}. Leave it empty to list every prompt.")
    try:
        check_filter(text)
    except ValidationError as err:
        raise gr.Error(str(err)) from None
    entries = [e for e in history.list(model=model, text=text, limit=api_limit(limit), preview=PREVIEW_CHARS)
               if e.path.is_file()]
    records = [api_record(e, history.folder) for e in entries]
    files = [saved_file(e) for e in entries]
    return records, files


def saved_file(entry: Entry) -> FileData:
    """An entry's file as the API returns it: gradio_client downloads it by path; an MCP client is
    given the link (Gradio adds its address), as for every other tool's images."""
    return FileData(path=str(entry.path), orig_name=entry.path.name,
                    url=f"{API_PREFIX}/file={encode_file_path(entry.path)}")


def api_limit(value: Any) -> int:
    """The entry count asked for; gr.Error naming the range when it is not a whole number from 1 to
    API_LIMIT_MAX (a limit out of range is refused, not quietly changed)."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value)
    if number is None or not finite(number) or number != int(number) or not 1 <= number <= API_LIMIT_MAX:
        raise gr.Error(f"limit must be a whole number of entries from 1 to {API_LIMIT_MAX}; got "
                       f"{reprlib.repr(value)}. Leave it out for the newest 50.")
    return int(number)
