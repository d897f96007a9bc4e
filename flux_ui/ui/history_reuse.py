"""Saved settings loaded back into a tab: checked field by field, sent where they fit, or read from a dropped file.

A picked History entry and a dropped flux-ui image carry the same settings (the image's
metadata); both go through :func:`reuse_updates`, which changes nothing and says why when a
field is damaged, the model is unknown or not deployed, or no tab takes it.
"""

from __future__ import annotations

import io
import logging
import reprlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from flux_ui.client import check_saved_value
from flux_ui.errors import ValidationError
from flux_ui.images import read_metadata
from flux_ui.registry import MODELS
from flux_ui.ui.common import TabHandle
from flux_ui.ui.history_listing import display_name
from flux_ui.ui.text import inert, inert_code

log = logging.getLogger("flux_ui.ui.history")

FALLBACK_TAB = "text-to-image"  # where settings go when the tab that made them cannot take them
NO_SETTINGS = ("This image has no flux-ui settings in it: only images saved by flux-ui carry them "
               "(PNG text chunks / JPEG EXIF). Pick one from History instead.")
NOT_AN_IMAGE = ("This file is not an image flux-ui can read, so it carries no flux-ui settings: drop a PNG, "
                "JPEG or WebP that flux-ui saved (from its outputs folder), or pick one from History instead.")

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
                  labels: Mapping[str, str] | None = None, inputs: Sequence[Path] = ()) -> tuple[list[Any], str]:
    """Updates for ``[tabs, *every handle's outputs]`` that load ``settings`` into their tab, and a message.

    ``inputs`` are the image's stored input files, in order: those still on disk reach the tab's
    ``apply`` as ``settings["input_files"]`` (paths as text, in order), and the message names any
    gone. Nothing changes (and the message says why) when a field has the wrong type or range, the
    model is unknown or not deployed here, or no tab can take it; a tab that cannot take the model
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
    present = [Path(p) for p in inputs if Path(p).is_file()]
    if inputs:
        settings = {**settings, "input_files": [str(p) for p in present]}
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
    message = reuse_message(settings, label, inputs if made is None else ())
    if made is not None:
        message += (f" {labels.get(made.tab_id, made.name)}, where it was made, cannot take {name} (it takes "
                    f"{models_text(made.models or ())}), so they went into {label}.")
        if inputs:
            message += f" Its {len(inputs)} input image(s) stay in History: {label} takes none."
    return updates, message


def reuse_message(settings: Mapping[str, Any], label: str, inputs: Sequence[Path] = ()) -> str:
    """What was loaded where, what came back of the input images, and what is missing."""
    seed = settings.get("seed")
    message = (f"Loaded {display_name(str(settings['model']))}, the prompt"
               f"{f' and seed {inert(seed)}' if seed is not None else ''} into **{label}**.")
    if inputs:
        message += inputs_message(inputs)
    elif settings.get("references"):
        message += (" Its reference images were not stored (it was saved before flux-ui kept them): add them "
                    "again before you run it.")
    if settings.get("prompt_truncated"):
        message += " The file carried a shortened prompt (the full one is in History)."
    return message


def inputs_message(inputs: Sequence[Path]) -> str:
    """" Its 3 input images came back, in order." or which of them are gone from the outputs folder."""
    gone = [(i, Path(p)) for i, p in enumerate(inputs, start=1) if not Path(p).is_file()]
    if not gone:
        if len(inputs) == 1:
            return " Its input image came back too."
        return f" Its {len(inputs)} input images came back too, in the order they were sent."
    named = ", ".join(f"image {i} ({inert_code(p.name[:12] + '…' + p.suffix)})" for i, p in gone)
    kept = len(inputs) - len(gone)
    return (f" {len(gone)} of its {len(inputs)} input images are missing from the outputs folder: {named}. "
            f"{f'The other {kept} came back, in order; ' if kept else ''}add the missing ones again before you "
            "run it.")


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
