"""What the tabs share: their context, the handle History uses to reuse settings, small helpers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from flux_ui.client.errors import ValidationError
from flux_ui.client.validation import model_id_text
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime

_FILE_MARKER = {"_type": "gradio.FileData"}


@dataclass
class TabContext:
    """Handed to every tab's ``build``: the runtime and the Blocks being built."""

    runtime: Runtime
    demo: gr.Blocks


@dataclass
class TabHandle:
    """How History loads a saved image's settings back into the tab that made it.

    ``apply(settings)`` returns one update per component in ``outputs``; ``settings`` is the
    dict History stored (see ``flux_ui.history.settings_of``): model, prompt, seed, params, …
    """

    tab_id: str  # the gr.Tab id, to switch to it
    name: str  # the ``tab`` value History records for images made here
    outputs: list[gr.components.Component] = field(default_factory=list)
    apply: Callable[[Mapping[str, Any]], list[Any]] = lambda settings: []


def model_choices(models: Sequence[str]) -> list[tuple[str, str]]:
    return [(MODELS[m].display_name, m) for m in models]


def error_text(err: Exception) -> str:
    """How an error reads next to the control that caused it."""
    return f"⚠️ {err}"


def named_signature(required: Sequence[str], optional: Mapping[str, Any]) -> inspect.Signature:
    """A signature with these names and defaults, so the API lists them instead of param_3…"""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(n, kind) for n in required]
                             + [inspect.Parameter(n, kind, default=d) for n, d in optional.items()])


# --- values as the API hands them over (events with preprocess=False) ------------------------

def checked_model(value: Any) -> str:
    """The model as text, checked before the tab looks it up (the client checks it the same way)."""
    return model_id_text(value)


def flag(name: str, value: Any, default: bool) -> bool:
    """An on/off input: true or false (None: the default); "yes" or 1 is refused, not guessed."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise ValidationError(f"{name} is on or off: pass true or false; got {value!r}.", field=name)


def accept_raw_files(component: gr.components.Component) -> None:
    """Let a malformed file payload reach the handler, to be refused there in flux-ui's words.

    Even with preprocess=False, Gradio checks an input's payload against the component's data
    model before any handler runs, and a plain string where a file belongs (``references=
    ["cat.jpg"]``) fails there with its generic "the upstream Gradio app has raised an exception".
    The API schema is computed first and cached, so view_api and MCP still describe a file input.
    Gradio still moves every FileData payload into its cache, refusing one outside its upload
    folder, before the handler; :func:`received_files` checks everything else.
    """
    component.api_info()
    component.data_model = None


def upload_roots(runtime: Runtime) -> tuple[Path, ...]:
    """The folders a file named in a request may be read from: Gradio's uploads and flux-ui's outputs."""
    return Path(get_upload_folder()).resolve(), runtime.history.folder.resolve()


def received_files(value: Any, roots: Sequence[Path], label: str, example: str, numbered: bool = True) -> list[str]:
    """The paths in a file input's raw value, each checked before anything is opened.

    A path is accepted only from a Gradio file payload (the browser's, or gradio_client's
    ``handle_file``) and only inside ``roots``: a plain string or a bare ``{"path": ...}`` could
    name any file on this machine. ``label`` names a file (numbered: "image" → "image 2"),
    ``example`` shows the call that works.
    """
    if value is None:
        return []
    items = list(value) if isinstance(value, list | tuple) else [value]
    return [_received_path(item, roots, f"{label} {number}" if numbered else label, example)
            for number, item in enumerate(items, start=1)]


def _received_path(item: Any, roots: Sequence[Path], name: str, example: str) -> str:
    if isinstance(item, str):
        raise ValidationError(f"{name} must be an uploaded file, not the text {item!r}: flux-ui never opens a path "
                              f"named in a request. Send the file itself, as {example}.", field="references")
    path = item.get("path") if isinstance(item, dict) else None
    if not isinstance(path, str) or item.get("meta") != _FILE_MARKER:
        shown = f"dict with keys {sorted(map(str, item))}" if isinstance(item, dict) else type(item).__name__
        raise ValidationError(f"{name} is not a file Gradio received (got {shown}); send the file itself, as "
                              f"{example}.", field="references")
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ValidationError(f"{name} ({resolved.name}) is not a file uploaded to this app; upload it, as {example}, "
                              "and try again.", field="references")
    return str(resolved)
