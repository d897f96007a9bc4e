"""What the tabs share: their declaration and context, the handle History uses to reuse settings, small helpers."""

from __future__ import annotations

import base64
import binascii
import inspect
import mimetypes
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import gradio as gr
from gradio.context import Context
from gradio.processing_utils import save_bytes_to_cache
from gradio.route_utils import API_PREFIX
from gradio.utils import get_upload_folder

from flux_ui import identity
from flux_ui.errors import ValidationError
from flux_ui.identity import User
from flux_ui.images import MAX_REFERENCE_BYTES
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui.progress import STOPPED
from flux_ui.ui.quota_gate import _GATE, QuotaGate
from flux_ui.ui.text import inert

_FILE_MARKER = {"_type": "gradio.FileData"}
#: The x-gradio-user header gradio_client sends, and Gradio's MCP server through it.
_PROGRAM_CALLERS = frozenset({"api", "mcp"})
#: Where a Gradio file link names the file: the upload_file_to_gradio MCP helper hands out such links.
_FILE_ROUTE = f"{API_PREFIX}/file="
#: How an MCP client sends a file inline, for messages that say so.
DATA_EXAMPLE = '"data:image/png;base64,…"'
#: A js-only listener's answer that shows its output component, in the browser, with no round trip.
_SHOW_JS = "() => ({__type__: 'update', visible: true})"
#: What marks a failure, on every tab: error_text begins with it, and a run's summary puts it before what
#: failed (a grid's cells, a run of variations).
ALERT_MARK = "⚠️"
#: The class of a run's status line (layout.prompt_row): while what it says holds ALERT_MARK,
#: assets/alerts.js shows it as an alert (role="alert"), and as a plain status line again after. One
#: mechanism for every tab, in the page alone, so the endpoints' outputs stay what programs read.
RUN_STATUS_CLASS = "flux-run-status"


@dataclass
class TabContext:
    """Handed to every tab's ``build``: the runtime and the Blocks being built (given its QuotaGate).

    ``tabs`` and ``handles`` are the gr.Tabs the tab sits in and the handles of the tabs built before
    it: History switches between the tabs and loads settings into those handles; the others ignore them.
    """

    runtime: Runtime
    demo: gr.Blocks
    tabs: gr.Tabs | None = None
    handles: Sequence[TabHandle] = ()

    def __post_init__(self) -> None:
        if getattr(self.demo, _GATE, None) is None:
            setattr(self.demo, _GATE, QuotaGate(self.runtime))


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
    models: Sequence[str] | None = None  # the models it takes (None: any)

    def takes(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class TabSpec:
    """One tab as the app declares it: its gr.Tab id and label, and what builds its contents."""

    id: str
    label: str
    build: Callable[[TabContext], TabHandle]


def model_choices(models: Sequence[str]) -> list[tuple[str, str]]:
    return [(MODELS[m].display_name, m) for m in models]


def error_text(err: Exception, request: gr.Request | None = None) -> str:
    """How an error reads next to the control that caused it: inert Markdown on the page (errors quote
    what they refuse), plain text for a program (:func:`from_program`); on the page, a run's status line
    holding it is shown as an alert (:data:`RUN_STATUS_CLASS`)."""
    return f"{ALERT_MARK} {err}" if from_program(request) else f"{ALERT_MARK} {inert(err)}"


def named_signature(required: Sequence[str], optional: Mapping[str, Any], request: bool = False) -> inspect.Signature:
    """A signature with these names and defaults, so the API lists them instead of param_3…

    With ``request``, a last parameter ``request: gr.Request``, which Gradio fills in and the API
    does not list (see :func:`endpoint`).
    """
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    extra = [inspect.Parameter("request", kind, default=None, annotation=gr.Request)] if request else []
    return inspect.Signature([inspect.Parameter(n, kind) for n in required]
                             + [inspect.Parameter(n, kind, default=d) for n, d in optional.items()] + extra)


# --- named endpoints: one event for the page and for programs ---------------------------------

def endpoint(handler: Callable[..., AsyncIterator[Any]], name: str, required: Sequence[str],
             optional: Mapping[str, Any]) -> Callable[..., AsyncIterator[Any]]:
    """``handler(*values, request=…)`` as the event function of a named endpoint.

    Gradio sees parameters with these names (what the API lists), then a ``gr.Request``, which it
    recognises by signature and annotation, fills in, and leaves out of the API; the handler tells
    the page from gradio_client and MCP by it (:func:`unchanged`). Called with the values alone, as
    tests call an event's function, the handler gets ``request=None``: the page's behaviour.

    Registered in a Blocks with a :class:`QuotaGate` (every TabContext gives one), a call counts
    against its model's deployment while it runs, and is refused when that deployment is full. It runs
    as the person asking (:func:`caller`), whom the pacer, the spend checks and the audit then know.
    """
    count = len(required) + len(optional)
    gate: QuotaGate | None = getattr(Context.root_block, _GATE, None)
    model_at = list(required).index("model") if "model" in required else None

    async def call(*args: Any) -> AsyncIterator[Any]:
        model = args[model_at] if model_at is not None and model_at < len(args) else None
        request = args[count] if len(args) > count else None
        user = caller(gate.runtime if gate is not None else None, request)
        with gate.admitted(model, user) if gate is not None else nullcontext():
            async for outputs in identity.steps_as(user, handler(*args[:count], request=request)):
                yield outputs

    call.__name__ = call.__qualname__ = name  # MCP names the tool after the function
    call.__doc__ = handler.__doc__  # the endpoint's and the tool's description
    call.__signature__ = named_signature(required, optional, request=True)  # type: ignore[attr-defined]
    call.__annotations__ = {"request": gr.Request | None}  # what Gradio reads to find the request
    return call


def caller(runtime: Runtime | None, request: gr.Request | None) -> User:
    """Who an event is for: its login name, visitor cookie or session (:func:`identity.from_request`),
    with this app's owners; a direct call (tests: no request) is the local user."""
    if runtime is None:
        return identity.from_request(request)
    settings = runtime.settings
    return identity.from_request(request, settings.users.owners, bool(settings.logins))


def as_caller(fn: Callable[..., Any], runtime: Runtime, count: int | None = None) -> Callable[..., Any]:
    """``fn`` (an async function or async generator) as an event function that runs as the person asking.

    Gradio hands it a ``gr.Request`` after the inputs: ``fn``'s own parameters (or ``count`` of them,
    for a ``*values`` function) keep their names and defaults for the API, and the request, which the
    API does not list, follows. A direct call without one (tests) runs as the local user.
    """
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = ([inspect.Parameter(f"value_{i}", kind) for i in range(count)] if count is not None else
              [p for p in inspect.signature(fn).parameters.values() if p.kind in (kind, p.POSITIONAL_ONLY)])
    size = len(params)

    def split(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], User]:
        return args[:size], caller(runtime, args[size] if len(args) > size else None)

    if inspect.isasyncgenfunction(fn):
        async def steps(*args: Any) -> AsyncIterator[Any]:
            values, user = split(args)
            async for item in identity.steps_as(user, fn(*values)):
                yield item
        call: Callable[..., Any] = steps
    else:
        async def once(*args: Any) -> Any:
            values, user = split(args)
            with identity.acting_as(user):
                return await fn(*values)
        call = once
    call.__name__ = call.__qualname__ = fn.__name__  # MCP names a tool after its function
    call.__doc__ = fn.__doc__
    request = inspect.Parameter("request", kind, default=None, annotation=gr.Request)
    call.__signature__ = inspect.Signature([*params, request])  # type: ignore[attr-defined]
    call.__annotations__ = {"request": gr.Request | None}
    return call


def from_program(request: gr.Request | None) -> bool:
    """Whether a program made this call, not the page: gradio_client and Gradio's MCP server say so in
    x-gradio-user; curl and other plain HTTP callers use the /call/ route, which the page never does."""
    if request is None:
        return False
    return (request.headers.get("x-gradio-user") in _PROGRAM_CALLERS
            or f"{API_PREFIX}/call/" in request.url.path)


def unchanged(request: gr.Request | None) -> Any:
    """The value for an output a call leaves as it was: the page keeps what it shows (gr.update()),
    a program gets None rather than Gradio's update dict."""
    return None if from_program(request) else gr.update()


def show_on(listener: Callable[..., Any], component: gr.components.Component) -> None:
    """Show ``component`` (a Stop button) in the browser the moment ``listener`` fires.

    A named endpoint's outputs are what its API returns, so its handler cannot show the button;
    the private step after it hides it again.
    """
    listener(None, None, component, js=_SHOW_JS, api_visibility="private")


def wire_run(fn: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any], *, api_name: str,
             run: gr.Button, stop: gr.Button, status: gr.components.Component, after: Callable[..., Any],
             after_inputs: Any, after_outputs: Sequence[Any], submit: gr.Textbox | None = None) -> None:
    """A tab's run: the button (and Enter in ``submit``) starts the named endpoint with Stop shown at
    once, the page-only step ``after`` follows it (its last output is ``stop``, hidden), and Stop
    cancels it, saying honestly what that means.

    The endpoint runs with preprocess=False: values reach the handler as sent, and the client's
    validation, which knows each model's own bounds, answers bad ones; Gradio would check them
    against the bounds the controls were built with, whichever model that was.

    It has no per-event concurrency limit. Gradio queues an event's calls behind that limit first
    come first served, whatever model they name, so 32 requests waiting for FLUX.2 [flex]'s quota
    would hold a schnell request back until they had all been sent. The handler is async and waits
    on the network and the quota, not on a thread or the CPU, so the bound is set where the waiting
    is: the QuotaGate caps each deployment's requests in progress (:func:`endpoint`), and
    flux_ui.ui gives Gradio enough workers for every deployment's cap at once.
    """
    events = []
    for listener, naming in ((run.click, {"api_name": api_name}),
                             *([(submit.submit, {"api_visibility": "private"})] if submit else [])):
        show_on(listener, stop)
        event = listener(fn, inputs, outputs, preprocess=False, concurrency_limit=None, **naming)
        event.then(after, after_inputs, after_outputs, api_visibility="private", show_progress="hidden")
        events.append(event)
    stop.click(lambda: (STOPPED, gr.update(visible=False)), None, [status, stop], cancels=events,
               api_visibility="private")


def handoff() -> gr.State:
    """A per-session box through which an endpoint's handler passes what only the page shows.

    Gradio 6.31's MCP server removes a tool's gr.State outputs by position from a result that
    does not hold them ("pop index out of range", or the wrong value), so a named endpoint outputs
    exactly what its API returns, never a State. What the page alone needs (a reference problem,
    the Kontext trail) is left in this box, an input of the endpoint (:func:`leave`), and moved into
    the page by a private ``.then`` step (:func:`take`).
    """
    return gr.State({})


def leave(box: Any, **values: Any) -> None:
    """Put these values in the box for the step after the run (a direct call may hand no box)."""
    if isinstance(box, dict):
        box.update(values)


def take(box: Any) -> dict[str, Any]:
    """What the run left in the box, which is emptied: a later run that leaves nothing finds nothing."""
    if not isinstance(box, dict):
        return {}
    values = dict(box)
    box.clear()
    return values


# --- values as the API hands them over (events with preprocess=False) ------------------------

def flag(name: str, value: Any, default: bool) -> bool:
    """An on/off input: true or false (None: the default); "yes" or 1 is refused, not guessed."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise ValidationError(f"{name} is on or off: pass true or false; got {value!r}.", field=name)


def upload_roots(runtime: Runtime) -> tuple[Path, ...]:
    """The folders a file named in a request may be read from: Gradio's uploads and flux-ui's outputs."""
    return Path(get_upload_folder()).resolve(), runtime.history.folder.resolve()


def received_files(value: Any, roots: Sequence[Path], label: str, example: str, numbered: bool = True) -> list[str]:
    """The paths in a file input's raw value, each checked before anything is opened.

    A path is accepted only from a Gradio file payload (the browser's, or gradio_client's
    ``handle_file``) or a Gradio file link (what the upload_file_to_gradio MCP helper hands out),
    and only inside ``roots``: a plain string or a bare ``{"path": ...}`` could name any file on
    this machine. A file sent inline as base64 data (how MCP clients send one: Gradio 6.31's MCP
    server converts strings to files only outside lists) is saved to the uploads first. Other
    links are not fetched. ``label`` names a file (numbered: "image" → "image 2"), ``example``
    shows the call that works.
    """
    if value is None:
        return []
    items = list(value) if isinstance(value, list | tuple) else [value]
    return [_received_path(item, roots, f"{label} {number}" if numbered else label, example)
            for number, item in enumerate(items, start=1)]


def _received_path(item: Any, roots: Sequence[Path], name: str, example: str) -> str:
    if isinstance(item, str):
        return _path_in_text(item, roots, name, example)
    path = item.get("path") if isinstance(item, dict) else None
    if not isinstance(path, str) or item.get("meta") != _FILE_MARKER:
        shown = f"dict with keys {sorted(map(str, item))}" if isinstance(item, dict) else type(item).__name__
        raise ValidationError(f"{name} is not a file Gradio received (got {shown}); send the file itself, as "
                              f"{example}.", field="references")
    return _confined(path, roots, name, example)


def _path_in_text(text: str, roots: Sequence[Path], name: str, example: str) -> str:
    """A file sent as text: base64 data, or a link to a file Gradio holds (still confined to ``roots``)."""
    if text.startswith("data:"):
        return _saved_data(text, name, example)
    if text.startswith(("http://", "https://")):
        if _FILE_ROUTE in text:
            return _confined(unquote(text.split(_FILE_ROUTE, 1)[1]), roots, name, example)
        raise ValidationError(f"{name} is a link to {text}: flux-ui does not fetch links. Send the file itself, as "
                              f"{example}, or from an MCP client as base64 data, {DATA_EXAMPLE}.",
                              field="references")
    raise ValidationError(f"{name} must be an uploaded file, not the text {text!r}: flux-ui never opens a path "
                          f"named in a request. Send the file itself, as {example}.", field="references")


def _saved_data(text: str, name: str, example: str) -> str:
    """A base64 data URL decoded into Gradio's uploads, where every received file is read from."""
    head, _, payload = text.partition(",")
    if not head.endswith(";base64") or not payload:
        raise ValidationError(f"{name} is data but not base64 data; send it as {DATA_EXAMPLE}, or as {example}.",
                              field="references")
    size = len(payload) // 4 * 3
    if size > MAX_REFERENCE_BYTES:
        raise ValidationError(f"{name} is {size / 1_048_576:.0f} MB; flux-ui reads at most "
                              f"{MAX_REFERENCE_BYTES // 1_048_576} MB per image: export it as a JPEG or at a smaller "
                              "size first.", field="references")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise ValidationError(f"{name} is not valid base64 data; send it as {DATA_EXAMPLE}.",
                              field="references") from None
    suffix = mimetypes.guess_extension(head.removeprefix("data:").split(";", 1)[0]) or ".bin"
    return save_bytes_to_cache(data, f"reference{suffix}", get_upload_folder())


def _confined(path: str, roots: Sequence[Path], name: str, example: str) -> str:
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ValidationError(f"{name} ({resolved.name}) is not a file uploaded to this app; upload it, as {example}, "
                              "and try again.", field="references")
    return str(resolved)
