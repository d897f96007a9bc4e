"""The Gradio app: a header, the quota panel, then one tab per module, sharing one Runtime."""

from __future__ import annotations

import gradio as gr

from flux_ui.runtime import Runtime
from flux_ui.ui import compare, edit, history_tab, kontext, progress, sessions, text_to_image
from flux_ui.ui.common import TabContext, TabHandle

CSS = """
.flux-banner { padding: 0.6rem 0.9rem; border-radius: 8px; background: #fff7e0; border: 1px solid #f1d38a;
               color: #5c4400; }
.dark .flux-banner { background: #3a3016; border-color: #7a6425; color: #f6e3b0; }
.flux-status p { margin: 0.2rem 0; }
.flux-status p:has(> :first-child) { font-weight: 600; }
#quota-panel ul { margin: 0; }
#history-gallery .caption { max-width: 100%; }
@media (max-width: 640px) { .flux-hide-narrow { display: none; } }
"""

#: Ctrl/Cmd+Enter in a prompt box presses its tab's run button (#x-prompt → #x-run).
HEAD = """
<script>
document.addEventListener("keydown", (e) => {
  if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
  const box = e.target.closest("[id$='-prompt']");
  if (!box) return;
  const button = document.getElementById(box.id.replace(/-prompt$/, "-run"));
  if (button) { e.preventDefault(); button.click(); }
});
</script>
"""

THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="slate", neutral_hue="slate")


def banner(runtime: Runtime) -> str:
    if runtime.emulator is not None:
        return ("**Local emulator**: images are synthetic and show what was sent. To use your Foundry "
                "resource, set `AZURE_ENDPOINT` and `AZURE_API_KEY` (or `AZURE_AUTH=entra`) in `.env` and "
                "restart; see the README.")
    host = runtime.settings.endpoint or "your Azure ML endpoint"
    return f"Connected to **{host}**: every image is a billed request."


def build_demo(runtime: Runtime) -> gr.Blocks:
    """The whole app; nothing is launched here."""
    with gr.Blocks(title="flux-ui: FLUX playground for Microsoft Foundry", delete_cache=(3600, 24 * 3600),
                   analytics_enabled=False) as demo:
        gr.Markdown("# flux-ui\nTry prompts, edit with up to 10 references, and compare FLUX models side by side.")
        gr.Markdown(banner(runtime), elem_classes=["flux-banner"], elem_id="banner")
        with gr.Accordion("Quota", open=False, elem_id="quota"):
            quota = gr.Markdown(progress.quota_panel(runtime), elem_id="quota-panel")
            gr.Timer(1.0).tick(lambda: progress.quota_panel(runtime), None, quota, api_visibility="private",
                               show_progress="hidden")
        ctx = TabContext(runtime, demo)
        handles: list[TabHandle] = []
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Text to image", id="t2i"):
                handles.append(text_to_image.build(ctx))
            with gr.Tab("Edit with references", id="edit"):
                handles.append(edit.build(ctx))
            with gr.Tab("Kontext edit", id="kontext"):
                handles.append(kontext.build(ctx))
            with gr.Tab("Compare", id="compare"):
                handles.append(compare.build(ctx))
            with gr.Tab("History", id="history"):
                history_tab.build(ctx, tabs, handles)  # type: ignore[call-arg]
    sessions.cache_upload_schemas(demo)
    return demo
