"""The Compare tab (placeholder until it is built)."""

from __future__ import annotations

import gradio as gr

from flux_ui.ui.common import TabContext, TabHandle


def build(ctx: TabContext) -> TabHandle:
    gr.Markdown("This tab is not built yet.")
    return TabHandle(tab_id="compare", name="compare")
