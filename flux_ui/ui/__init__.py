"""The Gradio app: a header, the quota panel, then one tab per module, sharing one Runtime."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gradio as gr

from flux_ui.assets import LOGO
from flux_ui.identity import User
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.safety import service_text
from flux_ui.ui import compare, edit, grid_tab, history_tab, kontext, progress, queue_panel, text_to_image, usage_tab
from flux_ui.ui.common import TabContext, TabHandle, TabSpec, caller
from flux_ui.ui.quota_gate import MAX_IN_PROGRESS
from flux_ui.ui.text import inert_code
from flux_ui.ui.workarounds import cache_upload_schemas

#: Calls of one listener handled at once, for the listeners that keep a limit: those that run in
#: threads (disk, SQLite, images). The generating ones (the three endpoints through common.wire_run,
#: and Compare's two) have none: quota_gate.QuotaGate bounds each deployment instead.
EVENT_LIMIT = 32
#: Events waiting for a worker; beyond it Gradio answers "Queue is full" at once.
QUEUE_SIZE = 256
#: Gradio's workers (launch's max_threads, 40 by default): every event being handled holds one, from
#: any listener, and a request waiting for its deployment's quota holds its one all the while. So
#: there are enough for every deployment's QuotaGate to be full at once (a comparison counts against
#: each of its models but holds one worker), with room for the quick steps beside them; one
#: deployment's waiting requests then never take a worker another deployment's request needs.
WORKERS = MAX_IN_PROGRESS * len(MODELS) + 4 * EVENT_LIMIT
#: The tabs, in their order. History follows the tabs it loads settings into (those built before it);
#: Usage, which History loads nothing into, comes after it.
TABS = (
    TabSpec(id="t2i", label="Text to image", build=text_to_image.build),
    TabSpec(id="edit", label="Edit with references", build=edit.build),
    TabSpec(id="kontext", label="Kontext edit", build=kontext.build),
    TabSpec(id="compare", label="Compare", build=compare.build),
    TabSpec(id="grid", label="Grid", build=grid_tab.build),
    TabSpec(id="history", label="History", build=history_tab.build),
    TabSpec(id="usage", label="Usage", build=usage_tab.build),
)


def queue_options() -> dict[str, Any]:
    """What ``demo.queue`` is given, wherever the app is launched (see :func:`launch_queued`)."""
    return {"default_concurrency_limit": EVENT_LIMIT, "max_size": QUEUE_SIZE}


def launch_queued(demo: gr.Blocks, **options: Any) -> None:
    """Queue and launch the app with flux-ui's queue and worker settings: app.py, the tests and the
    benchmarks all launch through here, so they measure what runs."""
    demo.queue(**queue_options()).launch(max_threads=WORKERS, **options)


def header() -> str:
    """The logo (inline, so the page fetches nothing for it), the name and one line of purpose; a phone
    gets the short purpose (assets/style.css), so the header keeps to one line there."""
    return (f'<div id="flux-header">{LOGO.read_text()}<div><h1>flux-ui</h1><p>'
            '<span class="flux-hide-narrow">Try prompts, edit with up to 10 references, and compare FLUX models '
            'side by side.</span><span class="flux-show-narrow">FLUX playground for Foundry</span>'
            "</p></div></div>")


def banner_parts(runtime: Runtime, public_demo: bool = False) -> tuple[str, str]:
    """(what every screen shows, what a phone leaves out), as HTML: which service the images come from,
    in a line, then how to change it. Nothing in it comes from a person; the endpoint is escaped."""
    if public_demo:
        return ("<strong>Public demo on the local emulator</strong>: everyone who opens this page shares its "
                "History, so do not type anything private.",
                "No login is needed because nothing here reaches a paid service. Images are synthetic and show "
                "what was sent.")
    if runtime.emulator is not None:
        return ("<strong>Local emulator</strong>: images are synthetic and show what was sent.",
                "To use your Foundry resource, set <code>AZURE_ENDPOINT</code> and <code>AZURE_API_KEY</code> (or "
                "<code>AZURE_AUTH=entra</code>) in <code>.env</code> and restart; see the README.")
    host = html.escape(runtime.settings.endpoint or "your Azure ML endpoint")
    return f"Connected to <strong>{host}</strong>: every image is a billed request.", ""


def safety_note(runtime: Runtime) -> str:
    """The banner's word on content safety when it is on: which service checks (escaped; never a key)."""
    if runtime.safety is None:
        return ""
    return (f' <span id="banner-safety"><strong>Content safety on</strong>: prompts and results are checked by '
            f"{html.escape(service_text(runtime.safety.settings))}.</span>")


def quarantine_line(runtime: Runtime, user: User) -> str:
    """For an owner, when content safety is on: how many results it kept from the page, and where."""
    if runtime.safety is None or not user.owner:
        return ""
    count = runtime.safety.quarantined()
    what = "1 result blocked by Content Safety, kept with its verdict" if count == 1 else (
        f"{count} results blocked by Content Safety, kept with their verdicts")
    return f"- **Quarantine** (only owners see this): {what} in {inert_code(runtime.safety.quarantine.folder)}"


def quota_view(runtime: Runtime) -> Callable[..., str]:
    """The quota panel's refresh: one line per deployment, then, for an owner, the quarantine's count."""

    def refresh(request: gr.Request | None = None) -> str:
        extra = quarantine_line(runtime, caller(runtime, request))
        return progress.quota_panel(runtime) + (f"\n{extra}" if extra else "")

    refresh.__annotations__ = {"request": gr.Request | None, "return": str}  # how Gradio finds the request
    return refresh


def banner(runtime: Runtime, public_demo: bool = False) -> str:
    """The banner's HTML: the first part always, the rest hidden on a phone (``flux-hide-narrow``)."""
    lead, rest = banner_parts(runtime, public_demo)
    lead += safety_note(runtime)
    tail = f' <span class="flux-hide-narrow">{rest}</span>' if rest else ""
    return f'<p role="note">{lead}{tail}</p>'


def build_demo(runtime: Runtime, public_demo: bool = False) -> gr.Blocks:
    """The whole app; nothing is launched here. ``public_demo``: served to strangers without a login
    (a Space on the emulator alone), which the banner says."""
    with gr.Blocks(title="flux-ui: FLUX playground for Microsoft Foundry", delete_cache=(3600, 24 * 3600),
                   analytics_enabled=False) as demo:
        gr.HTML(header(), padding=False)
        gr.HTML(banner(runtime, public_demo), elem_classes=["flux-banner"], elem_id="banner", padding=False)
        with gr.Row(equal_height=False, elem_id="status-row"):  # side by side: the tabs stay high on a phone
            with gr.Accordion("Quota", open=False, elem_id="quota"):
                quota = gr.Markdown(progress.quota_panel(runtime), elem_id="quota-panel")
                gr.Timer(1.0).tick(quota_view(runtime), None, quota, api_visibility="private", show_progress="hidden")
            queue_panel.build(runtime)  # "Your requests": the person's own, in line per deployment, cancellable
        ctx = TabContext(runtime, demo)
        handles: list[TabHandle] = []
        # "wrap": every tab stays in the bar on a narrow screen (rows of tabs, assets/layout.css) instead of
        # Gradio's default "…" menu, which hides all but the first and the selected one on a phone.
        with gr.Tabs(elem_id="tabs", overflow_behavior="wrap") as tabs:
            for spec in TABS:
                with gr.Tab(spec.label, id=spec.id):
                    handles.append(spec.build(replace(ctx, tabs=tabs, handles=tuple(handles))))
    cache_upload_schemas(demo)
    return demo
