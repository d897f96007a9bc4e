"""The Gradio app: a header, then one tab per module, all sharing one Runtime."""

from __future__ import annotations

import gradio as gr

from flux_ui.runtime import Runtime
from flux_ui.ui import text_to_image

CSS = """
.flux-banner { padding: 0.6rem 0.9rem; border-radius: 8px; background: #fff7e0; border: 1px solid #f1d38a;
               color: #5c4400; margin-bottom: 0.5rem; }
.dark .flux-banner { background: #3a3016; border-color: #7a6425; color: #f6e3b0; }
#t2i-status p { color: #b42318; font-weight: 600; }
"""


def banner(runtime: Runtime) -> str:
    if runtime.emulator is not None:
        return ("**Local emulator**: images are synthetic and show what was sent. To use your Foundry "
                "resource, set `AZURE_ENDPOINT` and `AZURE_API_KEY` (or `AZURE_AUTH=entra`) in `.env` and "
                "restart; see the README.")
    host = runtime.settings.endpoint or "your Azure ML endpoint"
    return f"Connected to **{host}**: every image is a billed request."


def build_demo(runtime: Runtime) -> gr.Blocks:
    """The whole app; nothing is launched here."""
    with gr.Blocks(title="flux-ui: FLUX playground for Microsoft Foundry") as demo:
        gr.Markdown("# flux-ui\nA playground for the FLUX image models on Microsoft Foundry.")
        gr.Markdown(banner(runtime), elem_classes=["flux-banner"], elem_id="banner")
        with gr.Tabs(), gr.Tab("Text to image", id="t2i"):
            text_to_image.build(runtime, demo)
    return demo
