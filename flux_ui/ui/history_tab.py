"""The History tab: every saved image, newest first, and its settings loaded back where they came from.

The plain functions come first (listing, captions, details, the API records, reuse, reading a
dropped file); ``build`` at the bottom only lays out and wires. Everything reads the outputs
folder's SQLite index, so the gallery survives restarts.
"""

from __future__ import annotations

import inspect
import io
import logging
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio.route_utils import API_PREFIX
from gradio_client.utils import encode_file_path
from PIL import Image

from flux_ui.client.errors import ValidationError
from flux_ui.client.validation import check_saved_value, check_text_size, finite
from flux_ui.history import Entry, History
from flux_ui.images import read_metadata
from flux_ui.registry import MODELS
from flux_ui.ui.common import TabContext, TabHandle, model_choices
from flux_ui.ui.text import inert, inert_code

log = logging.getLogger("flux_ui.ui.history")

TAB_ID = "history"
FALLBACK_TAB = "text-to-image"  # where settings go when the tab that made them cannot take them
ALL_MODELS = "all"
UI_LIMIT = 120  # thumbnails in the gallery; the filters reach older ones
API_LIMIT_MAX = 500
CAPTION_PROMPT_CHARS = 40
#: The most of a prompt a listing carries (the gallery's captions, the /history entries); the one
#: entry's details and "reuse settings" read the whole prompt.
PREVIEW_CHARS = 300
ROUTE_NAMES = {"bfl": "the BFL route", "images/generations": "Image API generations", "images/edits": "Image API edits",
               "aml": "the Azure ML endpoint"}

EMPTY = "No images yet: generate one in any tab. Images are saved here before they are shown."
PICK_FIRST = "Select an image in the gallery to see its settings."
NO_SETTINGS = ("This image has no flux-ui settings in it: only images saved by flux-ui carry them "
               "(PNG text chunks / JPEG EXIF). Pick one from History instead.")
NOT_AN_IMAGE = ("This file is not an image flux-ui can read, so it carries no flux-ui settings: drop a PNG, "
                "JPEG or WebP that flux-ui saved (from its outputs folder), or pick one from History instead.")


@dataclass(frozen=True)
class Listing:
    """What the gallery shows: (file, caption) pairs, the entry id of each, and a status line."""

    items: list[tuple[str, str]]
    ids: list[str]
    message: str


# ── plain functions ─────────────────────────────────────────────────────────────────────────────

def model_filter_choices() -> list[tuple[str, str]]:
    """Every registry model, not only the deployed ones: older images may come from any of them."""
    return [("All models", ALL_MODELS), *model_choices(list(MODELS))]


def model_arg(model: str | None) -> str | None:
    return None if not model or model == ALL_MODELS else model


def display_name(model: str) -> str:
    spec = MODELS.get(model)
    return spec.display_name if spec else model


def caption_of(entry: Entry) -> str:
    """Model · the prompt's start · seed: enough to tell thumbnails apart."""
    prompt = " ".join(entry.prompt.split())
    if len(prompt) > CAPTION_PROMPT_CHARS:
        prompt = prompt[:CAPTION_PROMPT_CHARS - 1].rstrip() + "…"
    parts = [display_name(entry.model), prompt]
    if entry.seed is not None:
        parts.append(f"seed {entry.seed}")
    return " · ".join(parts)


def check_filter(text: Any) -> None:
    """Refuse a text filter longer than any prompt flux-ui stores (ValidationError naming it)."""
    if isinstance(text, str):
        check_text_size("The prompt filter", text, "text")


def listing(history: History, model: str | None = None, text: str | None = None, limit: int = UI_LIMIT) -> Listing:
    """The gallery for these filters, newest first; an indexed file missing from disk is left out and counted.

    Prompts come as previews: a caption shows 40 characters, and a long prompt is not read whole.
    """
    try:
        check_filter(text)
    except ValidationError as err:
        return Listing([], [], f"⚠️ {inert(err)}")
    entries = history.list(model=model_arg(model), text=text, limit=limit, preview=PREVIEW_CHARS)
    present = [e for e in entries if e.path.is_file()]
    items = [(str(e.path), caption_of(e)) for e in present]
    ids = [e.id for e in present]
    return Listing(items, ids, listing_message(history, model, text, len(present), len(entries) - len(present), limit))


def listing_message(history: History, model: str | None, text: str | None, shown: int, missing: int,
                    limit: int) -> str:
    filtered = bool(model_arg(model) or (text and text.strip()))
    if shown == 0 and missing == 0:
        if not filtered or not history.list(limit=1, preview=PREVIEW_CHARS):
            return EMPTY
        return "No saved image matches these filters: choose **All models** or clear the text to see every image."
    noun = "image" if shown == 1 else "images"
    message = f"{shown} {noun}{' matching the filters' if filtered else ''}, newest first."
    if shown + missing >= limit:
        message = f"The newest {shown} {noun}{' matching the filters' if filtered else ''}: filter to reach older ones."
    if missing:
        message += f" {missing} indexed file(s) are missing from the outputs folder and are not shown."
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
    if isinstance(references, list) and references:
        lines.append(f"References: {len(references)} sent, in order; they are not stored, so reuse asks for "
                     "them again.")
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
    """The entry count asked for, clamped to 1..API_LIMIT_MAX; gr.Error when it is not a whole number."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value)
    if number is None or not finite(number) or number != int(number):
        raise gr.Error(f"limit must be a whole number of entries, at most {API_LIMIT_MAX}; got {value!r}. "
                       "Leave it out for the newest 50.")
    return max(1, min(int(number), API_LIMIT_MAX))


#: The settings fields the tabs read, the type each must have, and how a person would say it.
FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("model", str, "a model ID written as text, such as 'FLUX.2-pro'"),
    ("prompt", str, "text"),
    ("tab", str, "a tab name written as text, such as 'text-to-image'"),
    ("route", str, "a route name written as text, such as 'bfl'"),
    ("params", Mapping, "a set of parameter names and values (a JSON object)"),
    ("references", list, "a list"),
    ("size", list, "a list of the width and height"),
)
DAMAGED = ("Nothing was loaded. The file's settings were edited or damaged: pick the image in History instead, or "
           "set that value by hand.")
_KINDS = {bool: "true or false", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}


def described(value: Any) -> str:
    """A value from a file as a person reads it, kind first, shortened: "a list ([1, 2])"."""
    return f"{_KINDS.get(type(value), type(value).__name__)} ({inert(reprlib.repr(value))})"


def settings_problem(settings: Mapping[str, Any], deployed: Sequence[str]) -> str | None:
    """Why saved settings (a dropped file's, or an entry indexed from one) cannot be loaded, naming the field,
    what it must be and what to do; None when every field a tab reads fits."""
    for name, kind, expected in FIELD_TYPES:
        value = settings.get(name)
        if value is not None and not isinstance(value, kind):
            return f"These settings' {name} must be {expected}; it is {described(value)}. {DAMAGED}"
    model = settings.get("model")
    if model not in MODELS:
        return (f"These settings name a model flux-ui does not know ({described(model) if model else 'none'}), "
                f"so nothing was loaded: it knows {', '.join(MODELS)}. Choose one in a tab and type the settings in.")
    if model not in deployed:
        return (f"{display_name(model)} is not deployed in this flux-ui, so its settings cannot be loaded: add it "
                f"to FLUX_DEPLOYMENTS and restart. Deployed here: {', '.join(map(display_name, deployed))}.")
    return value_problem(settings)


def value_problem(settings: Mapping[str, Any]) -> str | None:
    """A saved parameter (or seed) the model cannot take, in the words a request would get."""
    spec = MODELS[settings["model"]]
    for name, value in [*(settings.get("params") or {}).items(), ("seed", settings.get("seed"))]:
        try:
            check_saved_value(spec, str(name), value)
        except ValidationError as err:
            return f"These settings' {inert(name)} cannot be loaded: {inert(err)} {DAMAGED}"
    return None


def models_text(models: Sequence[str]) -> str:
    return " or ".join(display_name(m) for m in models)


def target_handle(handles: Sequence[TabHandle], settings: Mapping[str, Any]) -> tuple[TabHandle | None,
                                                                                     TabHandle | None]:
    """(the tab to load into, the tab that made the image when it cannot take its model).

    The tab that made the image if it takes settings and the model, else the first that does,
    text to image first.
    """
    model = settings["model"]
    ready = [h for h in handles if h.outputs]
    made = next((h for h in ready if h.name == settings.get("tab")), None)
    if made is not None and made.takes(model):
        return made, None
    order = sorted(ready, key=lambda h: h.name != FALLBACK_TAB)
    return next((h for h in order if h.takes(model)), None), made


def noop_updates(handles: Sequence[TabHandle]) -> list[Any]:
    return [gr.update()] + [gr.update() for h in handles for _ in h.outputs]


def reuse_updates(settings: Mapping[str, Any], handles: Sequence[TabHandle], deployed: Sequence[str],
                  labels: Mapping[str, str] | None = None) -> tuple[list[Any], str]:
    """Updates for ``[tabs, *every handle's outputs]`` that load ``settings`` into their tab, and a message.

    Nothing changes (and the message says why) when a field has the wrong type or range, the model
    is unknown or not deployed here, or no tab can take it; a tab that cannot take the model
    hands the settings to one that can, and the message says so.
    """
    labels = labels or {}
    problem = settings_problem(settings, deployed)
    if problem:
        return noop_updates(handles), f"⚠️ {problem}"
    handle, made = target_handle(handles, settings)
    name = display_name(settings["model"])
    if handle is None:
        if made is None:
            return noop_updates(handles), "⚠️ No tab can take saved settings yet."
        return noop_updates(handles), (f"⚠️ {labels.get(made.tab_id, made.name)} cannot take {name} (it takes "
                                       f"{models_text(made.models or ())}), and no other tab here takes it.")
    label = labels.get(handle.tab_id, handle.name)
    try:
        loaded = list(handle.apply(settings))
    except Exception:
        log.exception("tab %s could not apply saved settings", handle.name)
        loaded = []
    if len(loaded) != len(handle.outputs):
        log.error("tab %s returned %d updates for %d outputs", handle.name, len(loaded), len(handle.outputs))
        return noop_updates(handles), f"⚠️ The {label} tab could not take these settings. {DAMAGED}"
    updates: list[Any] = [gr.Tabs(selected=handle.tab_id)]
    for h in handles:
        updates += loaded if h is handle else [gr.update()] * len(h.outputs)
    message = reuse_message(settings, label)
    if made is not None:
        message += (f" {labels.get(made.tab_id, made.name)}, where it was made, cannot take {name} (it takes "
                    f"{models_text(made.models or ())}), so they went into {label}.")
    return updates, message


def reuse_message(settings: Mapping[str, Any], label: str) -> str:
    seed = settings.get("seed")
    message = (f"Loaded {display_name(str(settings['model']))}, the prompt"
               f"{f' and seed {inert(seed)}' if seed is not None else ''} into **{label}**.")
    if settings.get("references"):
        message += " Reference images are not stored: add them again before you run it."
    if settings.get("prompt_truncated"):
        message += " The file carried a shortened prompt (the full one is in History)."
    return message


def is_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except Exception:
        return False


def settings_in_file(path: str | Path) -> tuple[dict[str, Any] | None, str]:
    """The flux-ui settings a dropped file carries, or None and a message naming the problem and the fix."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return None, f"⚠️ Could not read the dropped file ({inert(err.strerror)}): drop it again."
    meta = read_metadata(data)
    if not isinstance(meta, dict) or meta.get("generator") != "flux-ui" or not meta.get("model"):
        return None, f"⚠️ {NO_SETTINGS if is_image(data) else NOT_AN_IMAGE}"
    return meta, ""


# ── layout and wiring ───────────────────────────────────────────────────────────────────────────

def history_tab_of(tabs: gr.Tabs) -> gr.Tab | None:
    return next((t for t in tabs.children if isinstance(t, gr.Tab) and t.id == TAB_ID), None)


def build(ctx: TabContext, tabs: gr.Tabs, handles: list[TabHandle]) -> None:
    runtime = ctx.runtime
    history = runtime.history
    labels = {str(t.id): str(t.label) for t in tabs.children if isinstance(t, gr.Tab)}
    gr.Markdown(f"Every image flux-ui made, saved in {inert_code(history.folder)} with its settings inside the file. "
                "Select one to see its settings, download the original or load them back into its tab.",
                elem_id="history-intro")
    with gr.Row(equal_height=False):
        model_filter = gr.Dropdown(choices=model_filter_choices(), value=ALL_MODELS, label="Model", scale=2,
                                   min_width=200, elem_id="history-model")
        text_filter = gr.Textbox(label="Prompt contains", placeholder="words from the prompt, then Enter", scale=3,
                                 min_width=200, elem_id="history-text")
        refresh = gr.Button("Refresh", scale=0, min_width=110, elem_id="history-refresh")
    status = gr.Markdown(EMPTY, elem_id="history-status")
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
            reuse_status = gr.Markdown("", elem_id="history-reuse-status", elem_classes=["flux-status"])
            drop = gr.File(label="Restore settings from a flux-ui image: drop it here", file_count="single",
                           type="filepath", height=120, elem_id="history-drop")
            drop_status = gr.Markdown("", elem_id="history-drop-status", elem_classes=["flux-status"])
    ids = gr.State([])
    selected = gr.State(None)

    def show(model: str | None, text: str | None, selected_id: str | None) -> tuple[Any, ...]:
        found = listing(history, model, text)
        # The preview keeps showing the selected image where it moved to, or closes: left alone,
        # it would stay at its old position and show whichever image now sits there.
        if selected_id in found.ids:
            view = gr.Gallery(value=found.items, selected_index=found.ids.index(selected_id))
        else:
            view = gr.Gallery(value=found.items, selected_index=None, preview=False)
        return view, found.ids, found.message

    filters, listed = [model_filter, text_filter, selected], [gallery, ids, status]
    refresh.click(show, filters, listed, api_visibility="private")
    text_filter.submit(show, filters, listed, api_visibility="private")
    model_filter.input(show, filters, listed, api_visibility="private")
    history_tab = history_tab_of(tabs)
    if history_tab is not None:  # refresh whenever the tab is opened: one query, only then
        history_tab.select(show, filters, listed, api_visibility="private")
    else:
        log.warning("no tab with id %r among the tabs: History refreshes only with its button", TAB_ID)

    def on_select(shown: list[str], evt: gr.SelectData) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else -1
        entry = history.get(shown[index]) if 0 <= index < len(shown) else None
        if entry is None or not evt.selected:
            return (PICK_FIRST, gr.update(visible=False), gr.update(interactive=False),
                    gr.update(value=None, interactive=False), None, "")
        return (details_of(entry, tab_label(entry.tab, handles, labels)), gr.update(value=entry.prompt, visible=True),
                gr.update(interactive=True), gr.update(value=str(entry.path), interactive=True,
                                                       label=f"Download {entry.format.upper()}"),
                entry.id, "")

    gallery.select(on_select, ids, [details, prompt_box, reuse, download, selected, reuse_status],
                   api_visibility="private")

    reuse_outputs = [tabs, *(c for h in handles for c in h.outputs)]

    def on_reuse(entry_id: str | None) -> list[Any]:
        entry = history.get(entry_id) if entry_id else None
        if entry is None:
            return [*noop_updates(handles), PICK_FIRST]
        updates, message = reuse_updates(entry.settings, handles, runtime.models, labels)
        return [*updates, message]

    reuse.click(on_reuse, selected, [*reuse_outputs, reuse_status], api_visibility="private")

    def on_drop(path: str | None) -> list[Any]:
        if not path:
            return [*noop_updates(handles), ""]
        settings, problem = settings_in_file(path)
        if settings is None:
            return [*noop_updates(handles), problem]
        updates, message = reuse_updates(settings, handles, runtime.models, labels)
        return [*updates, message]

    drop.upload(on_drop, drop, [*reuse_outputs, drop_status], api_visibility="private")

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
