"""Workarounds for Gradio 6.31 behaviour, kept together so they can be checked and removed together.

Each one changes a Gradio object in place, and each says which behaviour it answers:

- :func:`accept_raw_files` (with :func:`_without_refs`): Gradio checks a file input's payload
  against the component's data model even with preprocess=False, and answers a malformed one with
  its generic "the upstream Gradio app has raised an exception"; its MCP server also refuses every
  call whose schema keeps a ``$ref`` into the component's own ``$defs``.
- :func:`refuse_unuploaded_in_own_words`: a file payload naming a server file Gradio did not
  receive is refused before any handler, reported as ``{"error": null}``.
- :func:`cache_upload_schemas`: ``UploadButton.api_info`` builds a pydantic JSON schema on every
  call, three times per button for each new session, on the server's event loop.
- :func:`hide_api_info_from_strangers`: the login page Gradio serves to someone not signed in
  embeds the whole API description, which ``/gradio_api/info`` refuses them.
- :func:`plot_redraw` (with :func:`plot_series`): a native plot given a new value keeps the colour
  scale of its first drawing, so a series that was not in it (a model or user new since the page
  opened) is never drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr
import gradio.routes
from gradio.context import Context
from gradio.exceptions import InvalidPathError

from flux_ui.ui.common import DATA_EXAMPLE

#: What a request gets that names a file on the server as if Gradio had received it (Gradio refuses it
#: before any handler runs, and by itself says only {"error": null}).
NOT_UPLOADED = ("A file in this request was not uploaded to this app: it names a path on the server, and flux-ui "
                "reads only files sent with the request. Send the file itself: from gradio_client, pass "
                'handle_file("cat.jpg"), which uploads it first; from an MCP client, send base64 data, '
                f"{DATA_EXAMPLE}.")
#: An empty API description, for the login page (see hide_api_info_from_strangers).
NO_API_INFO: dict[str, Any] = {"named_endpoints": {}, "unnamed_endpoints": {}}
#: The template context's changes a page may add, given the request and the context (see
#: :func:`hide_api_info_from_strangers`).
PageContext = Callable[[Any, dict[str, Any]], dict[str, Any]]


def accept_raw_files(component: gr.components.Component) -> None:
    """Let a malformed file payload reach the handler, to be refused there in flux-ui's words.

    Even with preprocess=False, Gradio checks an input's payload against the component's data
    model before any handler runs, and a plain string where a file belongs (``references=
    ["cat.jpg"]``) fails there with its generic "the upstream Gradio app has raised an exception".
    The API schema is computed first and kept, so view_api and MCP still describe a file input;
    its ``$ref``s are resolved in place, because MCP lifts the schema under a tool's parameter,
    where a reference to the component's own ``$defs`` points nowhere and the MCP server refuses
    every call. Gradio still moves every FileData payload into its cache, refusing one outside its
    upload folder, before the handler; ``common.received_files`` checks everything else.
    """
    schema = component.api_info()
    inlined = _without_refs(schema, schema.get("$defs", {}))
    component.api_info = lambda: inlined  # type: ignore[method-assign]
    component.data_model = None
    if Context.root_block is not None:
        refuse_unuploaded_in_own_words(Context.root_block)


def refuse_unuploaded_in_own_words(blocks: gr.Blocks) -> None:
    """Answer a file payload that names a server file Gradio did not receive with :data:`NOT_UPLOADED`.

    Gradio refuses such a payload while preparing an event's inputs, before any handler, with an
    exception it reports as ``{"error": null}``: the refusal is kept, its words are flux-ui's.
    """
    if getattr(blocks, "_flux_ui_refuses_unuploaded", False):
        return
    prepare = blocks.preprocess_data

    async def preprocess_data(*args: Any, **kwargs: Any) -> Any:
        try:
            return await prepare(*args, **kwargs)
        except InvalidPathError:
            raise gr.Error(NOT_UPLOADED, title="File not uploaded", print_exception=False) from None

    blocks.preprocess_data = preprocess_data  # type: ignore[method-assign]
    blocks._flux_ui_refuses_unuploaded = True  # type: ignore[attr-defined]


def _without_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """A JSON schema with every local ``$ref`` replaced by its definition, and no ``$defs``."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _without_refs(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _without_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_without_refs(v, defs) for v in node]
    return node


def cache_upload_schemas(demo: gr.Blocks) -> int:
    """Give each UploadButton a fixed ``api_info``; returns how many were changed.

    Gradio copies every block's config, API schemas included, when a session makes its first
    call, on the server's event loop: while it does, every other user's page waits. Gradio 6.31's
    ``UploadButton.api_info`` builds a pydantic JSON schema on every call (the base component
    caches its own), and each new session calls it three times per button: about 13 ms per button
    per session on this project's machines (bench/RESULTS.md, "app under load"), for a schema that
    never changes after the button is built.
    """
    changed = 0
    for block in demo.blocks.values():
        if isinstance(block, gr.UploadButton):
            schema: dict[str, Any] = block.api_info()
            block.api_info = lambda schema=schema: schema  # type: ignore[method-assign]
            changed += 1
    return changed


def hide_api_info_from_strangers(amend: PageContext | None = None) -> None:
    """Gradio 6.31 (gradio/routes.py, the ``/`` route ``main``) renders ``window.gradio_api_info``
    (every endpoint, its parameters, the model IDs it accepts) into the login page it serves to
    someone not signed in, although ``/gradio_api/info`` refuses them. This wraps, in one place,
    the template call of that route: a page with ``auth_required`` loses the description.

    ``amend`` (launch's lockout message) changes that page's context too, through the same wrap,
    which is the only hook on it: removing this workaround means giving ``amend`` a hook of its own.
    It only touches pages Gradio already renders without the app. Idempotent (the first ``amend``
    stays); it patches Gradio's module-wide template object."""
    templates = gradio.routes.templates
    render = templates.TemplateResponse
    if getattr(render, "flux_ui_login_page", False):
        return

    def template_response(*args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context")
        if isinstance(context, dict) and isinstance(context.get("config"), dict) \
                and context["config"].get("auth_required"):
            amended = amend(kwargs.get("request"), context) if amend is not None else context
            kwargs["context"] = {**amended, "gradio_api_info": NO_API_INFO}
        return render(*args, **kwargs)

    template_response.flux_ui_login_page = True  # type: ignore[attr-defined]
    templates.TemplateResponse = template_response  # type: ignore[method-assign]


def plot_series(value: Any, color: str) -> list[str]:
    """Every series of a native plot's ``value`` (a DataFrame; ``color`` its series column), for :func:`plot_redraw`."""
    return sorted({str(v) for v in value[color]}) if value is not None and color in value else []


def plot_redraw(series: list[str]) -> dict[str, Any]:
    """The second step of updating a native plot (gr.BarPlot, gr.LinePlot) whose series may have changed.

    Given a new value, the page's plot swaps its data only and keeps the colour domain of the value it was
    first drawn with, so a row of any other series is never drawn; a change of a prop such as
    ``colors_in_legend`` redraws it whole, but with the value it had before when both come in one update.
    So the value goes first, and this, in a step of its own (``.then``), names every series: a new list
    redraws the plot with its new value, the same list leaves the (then enough) swap alone.
    """
    return gr.update(colors_in_legend=series)
