"""View code: the form as it stands, or the request just sent, as curl, Python and openai code.

An accordion (closed at first) on Text to image, Edit and Kontext: "Show code for this form" validates
the form as a click would (:func:`flux_ui.client.form_snippets`, references as ``image1.png`` …) and
shows the snippets; after a generation it shows the request that was sent for the image, rebuilt
from the result's validated parameters, route and deployment (:func:`flux_ui.client.request_snippets`).
No snippet holds a key: each reads it from the environment. A form the client refuses shows the
client's message, inert, and no code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.client import GenerationRequest, GenerationResult, form_snippets, request_snippets, validate
from flux_ui.errors import FluxError
from flux_ui.registry import Route
from flux_ui.settings import Settings
from flux_ui.ui.text import inert

INTRO = ("The request flux-ui sends, as a script you can run yourself. It reads the key from the environment "
         "(`AZURE_API_KEY`, or an endpoint's own variable; with Entra ID, a token from `az`): no key is shown here.")
RANDOM_SEED = " Randomize seed is on: the seed in it was picked just now; untick it to send your own."


@dataclass
class CodePanel:
    """The accordion's button, its note (what the code is, or why there is none) and the three snippets."""

    show: gr.Button
    note: gr.Markdown
    curl: gr.Code
    python: gr.Code
    openai: gr.Code

    @property
    def outputs(self) -> list[Any]:
        """What :func:`shown` and :func:`refused` update, in their order."""
        return [self.note, self.curl, self.python, self.openai]


def code_panel(prefix: str) -> CodePanel:
    """The "View code" accordion, closed; its ids are ``<prefix>-code``, ``<prefix>-code-show`` and so on."""
    with gr.Accordion("View code", open=False, elem_id=f"{prefix}-code"):
        gr.Markdown(INTRO, elem_id=f"{prefix}-code-intro")
        show = gr.Button("Show code for this form", size="sm", elem_id=f"{prefix}-code-show")
        note = gr.Markdown("", elem_id=f"{prefix}-code-note", elem_classes=["flux-status"])
        common: dict[str, Any] = {"interactive": False, "visible": False, "max_lines": 40, "buttons": ["copy"]}
        curl = gr.Code(language="shell", label="curl (POSIX shell)", elem_id=f"{prefix}-code-curl", **common)
        python = gr.Code(language="python", label="Python (requests)", elem_id=f"{prefix}-code-python", **common)
        openai = gr.Code(language="python", label="Python (openai, the Image API)", elem_id=f"{prefix}-code-openai",
                         **common)
    return CodePanel(show, note, curl, python, openai)


def reference_names(count: int) -> list[str]:
    """The files a snippet reads its references from, in order: image1.png, image2.png, …"""
    return [f"image{i}.png" for i in range(1, count + 1)]


def shown(snippets: Mapping[str, str], note: str) -> list[Any]:
    """The panel showing these snippets (openai only when there is one: the Image API's routes)."""
    return [note, gr.update(value=snippets["curl"], visible=True), gr.update(value=snippets["python"], visible=True),
            gr.update(value=snippets.get("openai", ""), visible="openai" in snippets)]


def refused(err: Exception) -> list[Any]:
    """The panel after a form the client refuses: its message, inert, and no code."""
    return [f"⚠️ {inert(err)}", *[gr.update(value="", visible=False)] * 3]


def form_code(settings: Settings, model: Any, prompt: Any, params: Mapping[str, Any], references: int = 0,
              route: Route | None = None, *, randomized: bool = False, count: int = 1) -> list[Any]:
    """The panel for the form as it stands: validated as a click would be (nothing is sent)."""
    try:
        request = GenerationRequest(model, prompt, (b"",) * references, dict(params), route)
        snippets = form_snippets(request, settings, reference_names(references))
    except (FluxError, ValueError, TypeError) as err:
        return refused(err)
    note = "The form as it stands, as one request."
    if references:
        note += f" It reads the references from {', '.join(reference_names(references))}, in order."
    if count > 1:
        note += f" Images per run is {count}: flux-ui sends this request {count} times at once, each with its own seed."
    return shown(snippets, note + (RANDOM_SEED if randomized else ""))


def sent_code(settings: Settings, result: GenerationResult, others: Sequence[int] = ()) -> list[Any]:
    """The panel for the request sent for ``result``: its validated parameters, route and deployment.

    ``others`` are the seeds of the rest of a run of variations, which differ from it only there.
    """
    try:
        refs = (b"",) * len(result.references)
        checked = validate(GenerationRequest(result.model, result.prompt, refs, dict(result.params), result.route))
        deployment = settings.deployments[result.model]
        snippets = request_snippets(checked, deployment, settings, reference_names(len(refs)))
    except (FluxError, ValueError, KeyError) as err:  # a deployment gone since (settings do not change): unlikely
        return refused(err)
    note = f"The request sent for the image above (seed {result.seed}), as code."
    if others:
        note += f" The other images of the run were the same request with seeds {', '.join(map(str, others))}."
    return shown(snippets, note)


def wire_button(panel: CodePanel, form_values: Callable[..., list[Any]], inputs: Sequence[Any]) -> None:
    """"Show code for this form": ``form_values(*inputs)`` returns the panel's updates (see :func:`form_code`)."""
    panel.show.click(form_values, list(inputs), panel.outputs, api_visibility="private", preprocess=False,
                     show_progress="hidden")
