"""The History tab (placeholder until it is built)."""

from __future__ import annotations

import gradio as gr

from flux_ui.ui.common import TabContext, TabHandle


def build(ctx: TabContext, tabs: gr.Tabs, handles: list[TabHandle]) -> None:
    gr.Markdown("This tab is not built yet.")
