"""View code: a request as flux-ui would send it, written out as curl, Python ``requests`` and ``openai``.

The route, headers and body come from the wire layer's own builder (:func:`build_request`), so a
snippet sends what a click sends. References enter the builder as placeholders and leave as files
the snippet reads when it runs (``image1.png``, ...): a snippet never carries image bytes, nor a key
or token, only where to get one (an environment variable, ``az``, or azure-identity). The renderers
are in :mod:`flux_ui.client.snippets_shell` (curl) and :mod:`flux_ui.client.snippets_python`.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import random
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from flux_ui.client.text import model_id_text
from flux_ui.client.validation import GenerationRequest, ValidatedRequest, validate
from flux_ui.client.wire import WireRequest, build_request
from flux_ui.errors import ValidationError
from flux_ui.images import PreparedImage
from flux_ui.images.formats import container_kind
from flux_ui.registry import Route
from flux_ui.secrets import redact
from flux_ui.settings import ENTRA_SCOPE, Deployment, Settings

__all__ = ["form_snippets", "request_snippets"]

#: Headers that carry a credential: never copied from the wire into a snippet.
CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-key", "ocp-apim-subscription-key"})
#: Reference file names a snippet may name: nothing a shell or a string literal would read twice.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: How a placeholder reference's bytes begin (42 bytes with the nonce: its base64 is a prefix of theirs).
_MARK = b"flux-ui-snippet-reference:"
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
_ROUTE_TITLES = {
    Route.BFL: "BFL provider route",
    Route.IMAGES_GENERATIONS: "Image API, images/generations",
    Route.IMAGES_EDITS: "Image API, images/edits",
    Route.AML: "Azure ML online endpoint",
}


@dataclass(frozen=True)
class Ref:
    """A reference image, read from a file beside the snippet when it runs."""

    name: str

    @property
    def mime(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Credential:
    """Where the snippet gets its credential: a key's environment variable, or Entra ID."""

    env: str | None  # None: a Microsoft Entra ID token
    header: str  # "Authorization" (Bearer) or "api-key"
    what: str  # what the key is, for the message when the variable is unset (no quotes: it goes in shell)

    @property
    def scope(self) -> str:
        return ENTRA_SCOPE

    @property
    def resource(self) -> str:
        """The scope as ``az account get-access-token --resource`` takes it."""
        return ENTRA_SCOPE.removesuffix("/.default")


@dataclass(frozen=True)
class Plan:
    """The wire request with its references swapped for files and its credentials for their source."""

    title: str
    route: Route
    url: str  # without the query
    query: Mapping[str, str]
    headers: Mapping[str, str]  # the wire's own headers, credentials removed
    credential: Credential
    json_body: Mapping[str, Any] | None  # reference values are Ref
    form: Mapping[str, str] | None  # multipart fields as the wire sends them (text)
    typed_form: Mapping[str, Any] | None  # the same fields with their types (n is an int), for openai
    files: Mapping[str, Ref]
    references: tuple[Ref, ...]
    output: str  # output.png, output.jpg, ...

    @property
    def full_url(self) -> str:
        return f"{self.url}?{urlencode(dict(self.query))}" if self.query else self.url

    @property
    def origin(self) -> str:
        """scheme://host[:port]: the only place the credential is sent (polls and links elsewhere go without)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def image_api(self) -> bool:
        return self.route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS)

    def intro(self, tool: str) -> list[str]:
        """What every snippet says first, as plain lines: what it is, what it reads and what it writes."""
        lines = [f"{self.title}: the request flux-ui sends, with {tool}."]
        if self.references:
            names = ", ".join(ref.name for ref in self.references)
            lines += [f"Run it beside {names} (the references, in order); it writes {self.output}.",
                      "flux-ui also fits each reference to the model's grid and strips its metadata before",
                      "sending it; this sends the files as they are."]
        else:
            lines.append(f"It writes {self.output}.")
        return lines


def request_snippets(request: ValidatedRequest, deployment: Deployment, settings: Settings,
                     reference_names: Sequence[str] = ()) -> dict[str, str]:
    """The request as ``curl``, ``python`` (requests) and, on the Image API, ``openai`` code.

    ``reference_names`` name the reference files in order (default ``image1.png``, ``image2.jpg``, ...
    by each reference's format); the snippet reads them when it runs. No snippet holds the key.
    """
    # Imported here: the renderers import Plan and Ref from this module.
    from flux_ui.client.snippets_python import openai_snippet, requests_snippet
    from flux_ui.client.snippets_shell import curl_snippet

    plan = build_plan(request, deployment, settings, reference_names)
    out = {"curl": curl_snippet(plan), "python": requests_snippet(plan)}
    if plan.image_api:
        out["openai"] = openai_snippet(plan)
    return {kind: _without_secrets(text, deployment) for kind, text in out.items()}


def form_snippets(request: GenerationRequest, settings: Settings, reference_names: Sequence[str] = (), *,
                  rng: random.Random | None = None) -> dict[str, str]:
    """View code before generating: the form's request validated as a click validates it.

    Only the references' count and format matter, so they may be placeholders (``b""``, named
    ``image1.png`` ...) when the form holds no bytes yet. Raises ValidationError as a click would.
    """
    deployment = settings.deployments.get(model_id_text(request.model))
    if deployment is None:
        offered = ", ".join(settings.deployments) or "none"
        raise ValidationError(f"{request.model} is not deployed in this installation (deployed: {offered}).",
                              field="model")
    return request_snippets(validate(request, rng=rng), deployment, settings, reference_names)


def build_plan(request: ValidatedRequest, deployment: Deployment, settings: Settings,
               reference_names: Sequence[str] = ()) -> Plan:
    """The wire layer's request for ``request``, built with placeholder references, then made showable."""
    refs = tuple(Ref(name) for name in _reference_names(request.references, reference_names))
    nonce = secrets.token_hex(8).encode()
    placeholders = [_placeholder(i, ref, nonce) for i, ref in enumerate(refs, start=1)]
    wire = build_request(deployment, request.route, request.prompt, request.params, placeholders,
                         api_version=settings.api_version, image_api_path=settings.image_api_path,
                         size=request.size)
    by_b64 = {p.b64(): ref for p, ref in zip(placeholders, refs, strict=True)}
    by_data = {p.data: ref for p, ref in zip(placeholders, refs, strict=True)}
    json_body = _swap(wire.json_body, by_b64) if wire.json_body is not None else None
    files = _files(wire, by_data)
    _check_no_placeholder(wire, json_body, nonce)
    fmt = str(request.params.get("output_format") or "png")
    return Plan(
        title=f"{request.model.display_name}, {_ROUTE_TITLES[request.route]}",
        route=request.route, url=wire.url, query=dict(wire.query),
        headers={k: v for k, v in wire.headers.items() if k.lower() not in CREDENTIAL_HEADERS},
        credential=credential_for(deployment), json_body=json_body, form=wire.form,
        typed_form={k: wire.shown.get(k, v) for k, v in wire.form.items()} if wire.form is not None else None,
        files=files, references=refs, output=f"output.{_EXTENSIONS.get(fmt, fmt)}",
    )


def credential_for(deployment: Deployment) -> Credential:
    """The key's environment variable (``AZURE_API_KEY``, ``<endpoint_env>_KEY``), or Entra ID."""
    if deployment.auth == "entra":
        return Credential(None, "Authorization", "a Microsoft Entra ID token")
    spec = deployment.model
    if spec.aml:
        return Credential(f"{spec.endpoint_env}_KEY", "Authorization", "the endpoint key (its Consume tab)")
    header = "api-key" if deployment.key_header == "api-key" else "Authorization"
    return Credential("AZURE_API_KEY", header, "the resource key (Keys and Endpoint)")


def _reference_names(references: Sequence[bytes], names: Sequence[str]) -> list[str]:
    """The given names, checked, or ``image<i>.<ext>`` by each reference's format (PNG when unknown)."""
    if not names:
        return [f"image{i}.{_EXTENSIONS.get(container_kind(bytes(data)) or 'png')}"
                for i, data in enumerate(references, start=1)]
    if len(names) != len(references):
        raise ValueError(f"{len(names)} reference name(s) for {len(references)} reference(s)")
    for name in names:
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"reference name {name!r} is not a plain file name (letters, digits, . _ -)")
    if len(set(names)) != len(names):
        raise ValueError("reference names must differ")
    return list(names)


def _placeholder(index: int, ref: Ref, nonce: bytes) -> PreparedImage:
    """A stand-in the builder encodes like any reference; its bytes mark where the file goes."""
    fmt = "jpeg" if ref.mime == "image/jpeg" else "png"
    data = _MARK + nonce + b":" + str(index).encode()
    return PreparedImage(data=data, format=fmt, width=0, height=0, original_format=fmt, original_width=0,
                         original_height=0, original_bytes=0, adjustments=())


def _swap(value: Any, by_b64: Mapping[str, Ref]) -> Any:
    if isinstance(value, str):
        return by_b64.get(value, value)
    if isinstance(value, Mapping):
        return {k: _swap(v, by_b64) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_swap(v, by_b64) for v in value]
    return value


def _files(wire: WireRequest, by_data: Mapping[bytes, Ref]) -> dict[str, Ref]:
    """The multipart file parts, each the reference file it stands for."""
    files = {}
    for name, (_, data, _) in (wire.files or {}).items():
        if data not in by_data:
            raise RuntimeError(f"the wire layer sent a file part {name!r} that is no reference; update snippets.py")
        files[name] = by_data[data]
    return files


def _check_no_placeholder(wire: WireRequest, json_body: Mapping[str, Any] | None, nonce: bytes) -> None:
    """Fail loudly if the builder sent a reference some other way (a data: URL, a new field)."""
    marks = (nonce.decode(), base64.b64encode(_MARK + nonce).decode())
    shown = json.dumps(json_body, default=lambda ref: ref.name) + json.dumps(dict(wire.form or {}))
    if any(mark in shown for mark in marks):
        raise RuntimeError("the wire layer sent a reference in a form the snippets do not know; update snippets.py")


def _without_secrets(text: str, deployment: Deployment) -> str:
    """Belt and braces: no remembered secret, and never this deployment's key, in the text."""
    text = redact(text)
    if deployment.api_key and deployment.api_key.reveal():
        text = text.replace(deployment.api_key.reveal(), "***")
    return text
