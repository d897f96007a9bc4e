"""The pieces every generating tab is laid out from: its model dropdown and its prompt/run/stop/status row.

Built here once so each tab's layout says only what it adds, and so the element ids follow the one
convention assets/shortcuts.js relies on: ``<prefix>-prompt`` and its tab's ``<prefix>-run`` (Ctrl+Enter
presses the second from the first), with ``<prefix>-stop`` and ``<prefix>-status`` beside them. The
status line is where a failed run is shown as an alert, the same way on every tab (assets/alerts.js).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.registry import MODELS
from flux_ui.ui.common import RUN_STATUS_CLASS, model_choices


@dataclass
class PromptRow:
    """A tab's prompt, its run and Stop buttons (Stop shown only while a run goes on), and its status line
    (an alert while it says what failed)."""

    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button
    status: gr.Markdown
    style: gr.Dropdown  # a saved style, applied to the prompt when picked (ui/prompt_tools.py)
    recent: gr.Dropdown  # this tab's recent prompts, one pick puts it back in the box


def prompt_row(prefix: str, *, placeholder: str, info: str, label: str = "Prompt", run_label: str = "Generate",
               lines: int = 4, max_lines: int = 12, status_label: str | None = None,
               between: Callable[[], Any] | None = None) -> PromptRow:
    """The prompt box, then (after whatever ``between`` builds: Kontext keeps its shape controls in view
    there) the run button with its hidden Stop, then the status line."""
    prompt = gr.Textbox(label=label, lines=lines, max_lines=max_lines, elem_id=f"{prefix}-prompt",
                        placeholder=placeholder, info=info)
    with gr.Row(elem_classes=["flux-prompt-tools"]):
        style = gr.Dropdown(choices=[], value=None, label="Style", info="Wraps the prompt; sets its parameters.",
                            elem_id=f"{prefix}-style", min_width=160)
        recent = gr.Dropdown(choices=[], value=None, label="Recent prompts", info="Puts one back in the box.",
                             elem_id=f"{prefix}-recent", min_width=160)
    if between is not None:
        between()
    with gr.Row():
        run = gr.Button(run_label, variant="primary", elem_id=f"{prefix}-run", scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", scale=1, visible=False)
    # A failed run's message makes it an alert next to the run button, on the page alone (common.RUN_STATUS_CLASS).
    status = gr.Markdown("", elem_id=f"{prefix}-status", elem_classes=["flux-status", RUN_STATUS_CLASS],
                         label=status_label)
    return PromptRow(prompt, run, stop, status, style, recent)


def model_dropdown(prefix: str, models: Sequence[str], **layout: Any) -> gr.Dropdown:
    """The model choice, first model selected, its summary as the info line (each tab updates it on a
    change); ``layout`` is the tab's own scale and width."""
    return gr.Dropdown(choices=model_choices(models), value=models[0], label="Model", info=MODELS[models[0]].summary,
                       elem_id=f"{prefix}-model", **layout)
