"""The Style and Recent prompts pickers beside every tab's prompt, wired to the runtime's style library.

Picking a style wraps what is in the prompt box in its template and sets the parameters the tab's
model takes (the status line names any it left out); picking a recent prompt puts it back in the box.
Both lists are read afresh whenever one is opened, so a style saved in History shows at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from flux_ui.runtime import Runtime
from flux_ui.ui.layout import PromptRow
from flux_ui.ui.text import inert, inert_code

PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def style_choices(runtime: Runtime) -> Any:
    return gr.update(choices=[s.name for s in runtime.styles.styles()], value=None)


def recent_choices(runtime: Runtime, tab: str) -> Any:
    shown = [(p if len(p) <= 80 else p[:79] + "…", p) for p in runtime.styles.recent(tab)]
    return gr.update(choices=shown, value=None)


def applied(runtime: Runtime, name: Any, prompt: Any, model: Any,
            controls: Mapping[str, Any]) -> list[Any]:
    """[prompt, status, style picker, *one update per control] for picking style ``name``."""
    keep = [gr.update() for _ in controls]
    style = runtime.styles.get(name) if isinstance(name, str) and name else None
    if style is None:
        return [gr.update(), "", gr.update(value=None), *keep]
    styled, params, left = style.apply(prompt if isinstance(prompt, str) else "", model if isinstance(model, str)
                                       else None)
    updates = [gr.update(value=params[n]) if n in params else gr.update() for n in controls]
    unset = [k for k in params if k not in controls]
    notes = [*left, *(f"This tab has no {k} control; the style's {k} is not used here." for k in unset)]
    said = f"Applied the style {inert_code(style.name)}." + "".join(f" {inert(n)}" for n in notes)
    return [styled, said, gr.update(value=None), *updates]


def wire_prompt_tools(runtime: Runtime, row: PromptRow, tab: str, model: gr.components.Component | None = None,
                      controls: Mapping[str, gr.components.Component] | None = None) -> None:
    """Fill and wire the row's pickers for the tab that records its images as ``tab``."""
    controls = dict(controls or {})
    row.style.focus(lambda: style_choices(runtime), None, row.style, **PRIVATE)
    row.recent.focus(lambda: recent_choices(runtime, tab), None, row.recent, **PRIVATE)
    inputs = [row.style, row.prompt, *([model] if model is not None else [])]

    def on_style(name: Any, prompt: Any, chosen: Any = None) -> list[Any]:
        return applied(runtime, name, prompt, chosen, controls)

    row.style.input(on_style, inputs, [row.prompt, row.status, row.style, *controls.values()], **PRIVATE)
    row.recent.input(lambda picked: (picked or gr.update(), gr.update(value=None)), row.recent,
                     [row.prompt, row.recent], **PRIVATE)
