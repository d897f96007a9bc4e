"""What the tabs share: their context, the handle History uses to reuse settings, small helpers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime


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
