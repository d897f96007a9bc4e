"""The three routes on the wire: request bodies out, answers and errors in (contract §2–§4)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux_ui.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContentRefusedError,
    DeploymentNotFoundError,
    EmptyResultError,
    MalformedResponseError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    ServiceError,
)
from flux_ui.images import PreparedImage
from flux_ui.registry import Route
from flux_ui.settings import Deployment

#: Error codes and phrases the service uses for a moderation refusal (contract §2, §3).
REFUSAL_CODES = frozenset(
    {"content_filter", "content_safety_violation", "contentfilter", "content_policy_violation",
     "moderation_blocked", "responsibleaipolicyviolation"}
)
REFUSAL_PHRASES = ("request moderated", "content moderated", "content filter")
BFL_ROUTE_PREFIX = "/providers/blackforestlabs/v1/"


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request, plus what it sent in a form safe to show and store."""

    method: str
    url: str
    query: Mapping[str, str]
    json_body: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    shown: Mapping[str, Any] = field(default_factory=dict)  # the body with images summarised
    content: bytes | None = field(default=None, repr=False)  # json_body, encoded once

    def __post_init__(self) -> None:
        if self.json_body is not None and self.content is None:
            object.__setattr__(self, "content", encode_json_object(self.json_body))
            object.__setattr__(self, "headers", {"Content-Type": "application/json", **self.headers})


def encode_json_object(body: Mapping[str, Any]) -> bytes:
    """``body`` as compact JSON, encoded one member at a time.

    Byte for byte what ``json.dumps(body, separators=(",", ":"))`` gives, but a single
    ``json.dumps`` over megabytes of base64 references is one C call that holds the GIL for
    tens of milliseconds, freezing the event loop even from a worker thread; member by member,
    other threads get the GIL back after each reference.
    """
    members = [json.dumps(str(key)).encode() + b":" + json.dumps(value, separators=(",", ":")).encode()
               for key, value in body.items()]
    return b"{" + b",".join(members) + b"}"


@dataclass(frozen=True)
class Answer:
    """A successful answer, before the image is decoded."""

    image: bytes | None = None
    url: str | None = None
    polling_url: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def summarise_image(index: int, image: PreparedImage) -> str:
    return f"<image {index}: {image.width}×{image.height} {image.format.upper()}, {len(image.data):,} bytes>"


def reference_field(index: int) -> str:
    """``input_image``, ``input_image_2``, … as BFL numbers them (1-based)."""
    return "input_image" if index == 1 else f"input_image_{index}"


def build_request(
    deployment: Deployment,
    route: Route,
    prompt: str,
    params: Mapping[str, Any],
    references: Sequence[PreparedImage],
    *,
    api_version: str,
    image_api_path: str,
    size: tuple[int, int] | None,
) -> WireRequest:
    spec = deployment.model
    query = {"api-version": api_version}
    sendable = {k: v for k, v in params.items() if v is not None}
    if route is Route.BFL:
        body: dict[str, Any] = {"model": deployment.name, "prompt": prompt, **sendable}
        shown = dict(body)
        for i, ref in enumerate(references, start=1):
            body[reference_field(i)] = ref.b64()
            shown[reference_field(i)] = summarise_image(i, ref)
        return WireRequest("POST", f"{deployment.endpoint}{BFL_ROUTE_PREFIX}{spec.bfl_path}", query,
                           json_body=body, shown=shown)
    if route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS):
        action = "generations" if route is Route.IMAGES_GENERATIONS else "edits"
        fields: dict[str, Any] = {"prompt": prompt, "n": 1}
        if size is not None:
            fields["size"] = f"{size[0]}x{size[1]}"
        if "output_format" in sendable:
            fields["output_format"] = sendable["output_format"]
        if image_api_path == "model":
            url = f"{deployment.endpoint}/openai/images/{action}"
            fields["model"] = deployment.name
        else:
            url = f"{deployment.endpoint}/openai/deployments/{deployment.name}/images/{action}"
        if route is Route.IMAGES_GENERATIONS:
            return WireRequest("POST", url, query, json_body=fields, shown=dict(fields))
        image = references[0]
        files = {"image": (f"image.{'jpg' if image.format == 'jpeg' else 'png'}", image.data, image.mime)}
        shown = {**fields, "image": summarise_image(1, image)}
        return WireRequest("POST", url, query, form={k: str(v) for k, v in fields.items()}, files=files,
                           shown=shown)
    # Azure ML endpoint (Hugging Face inference toolkit): the image format goes in Accept.
    fmt = sendable.pop("output_format", "png")
    if not sendable.get("negative_prompt"):
        sendable.pop("negative_prompt", None)
    body = {"inputs": prompt, "parameters": sendable}
    return WireRequest("POST", deployment.endpoint, {}, json_body=body, headers={"Accept": f"image/{fmt}"},
                       shown={**body, "accept": f"image/{fmt}"})


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise MalformedResponseError("The service's answer held an image field that is not base64 text.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponseError("The service's image data is not valid base64.") from None


def _is_refusal(code: str | None, message: str | None) -> bool:
    if code and code.replace("-", "_").lower() in REFUSAL_CODES:
        return True
    return bool(message) and any(p in message.lower() for p in REFUSAL_PHRASES)


def parse_answer(route: Route, content_type: str, content: bytes) -> Answer:
    """Read a 2xx answer; raises EmptyResultError, ContentRefusedError or MalformedResponseError."""
    ctype = content_type.split(";")[0].strip().lower()
    if route is Route.AML and ctype.startswith("image/"):
        if not content:
            raise EmptyResultError("The endpoint answered with an empty image.", status=200)
        return Answer(image=content)
    data = _json(content)
    if not isinstance(data, dict | list):
        raise MalformedResponseError("The service's answer could not be read (it is not JSON).", status=200)
    if isinstance(data, dict) and isinstance(data.get("polling_url"), str):
        return Answer(polling_url=data["polling_url"])
    items = data.get("data") if isinstance(data, dict) else data
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    meta: dict[str, Any] = {}
    if isinstance(data, dict) and isinstance(data.get("request_meta"), dict):
        meta.update(data["request_meta"])
    for key in ("revised_prompt", "content_filter_results", "finish_reason"):
        if first.get(key) is not None:
            meta[key] = first[key]
    if str(first.get("finish_reason", "")).lower() == "content_filter":
        raise ContentRefusedError(
            "The service's safety system withheld the image for this prompt or reference. "
            "Rephrase the prompt, or change the image, and try again.",
            status=200, code="content_filter",
        )
    if first.get("b64_json"):
        return Answer(image=_b64(first["b64_json"]), meta=meta)
    if isinstance(first.get("url"), str) and first["url"]:
        return Answer(url=first["url"], meta=meta)
    if route is Route.AML and isinstance(first.get("image"), str):  # JSON answers from the toolkit
        return Answer(image=_b64(first["image"]), meta=meta)
    raise EmptyResultError("The service answered without an image.", status=200)


def _error_parts(body: Any) -> tuple[str | None, str]:
    """(code, message) from Azure's, BFL's and the inference toolkit's error shapes."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code")
            inner = err.get("innererror") or err.get("inner_error")
            if isinstance(inner, dict) and _is_refusal(str(inner.get("code", "")), None):
                code = inner.get("code")
            return (str(code) if code is not None else None), str(err.get("message") or "")
        if isinstance(err, str):
            return None, err
        detail = body.get("detail")
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = [str(x) for x in item.get("loc", []) if x != "body"]
                    parts.append(f"{'.'.join(loc) or 'request'}: {item.get('msg', '')}")
            return "validation", "; ".join(parts)
        if isinstance(detail, str):
            return None, detail
        if isinstance(body.get("message"), str):
            return None, body["message"]
    return None, ""


def error_from_response(
    deployment: Deployment,
    route: Route,
    status: int,
    content: bytes,
    retry_after: float | None = None,
) -> ServiceError:
    """A typed error with a message that says what happened and what to do."""
    body = _json(content)
    if body is None:
        body = content[:500].decode("utf-8", "replace")
    code, said = _error_parts(body)
    name = deployment.model.display_name
    quoted = f' The service said: "{said.strip()[:300]}"' if said.strip() else ""
    kw: dict[str, Any] = {"status": status, "code": code, "body": body, "retry_after": retry_after}

    if _is_refusal(code, said):
        return ContentRefusedError(
            f"{name} refused this request on content grounds.{quoted} Rephrase the prompt or change the "
            "reference images; the same request can pass on a second try, so resending is fine too.",
            **kw,
        )
    if route is Route.AML and status == 400:
        # The inference toolkit answers every failure with 400, so the text is all we have.
        return BadRequestError(f"The schnell endpoint could not make this image.{quoted} "
                               "Check the size and steps, or the endpoint's logs in Azure ML.", **kw)
    if status in (400, 422):
        return BadRequestError(f"{name} did not accept the request's parameters (HTTP {status}).{quoted} "
                               "Change the parameter it names and try again.", **kw)
    if status == 401:
        where = "FLUX_SCHNELL_KEY" if route is Route.AML else (
            "AZURE_API_KEY" if deployment.auth == "key" else "your Entra sign-in")
        return AuthenticationError(
            f"The service refused the credentials (HTTP 401). Check that {where} belongs to the resource at "
            f"{deployment.endpoint} (Keys and Endpoint in the Azure portal); if the key was rotated, update it "
            "and restart flux-ui.", **kw)
    if status == 403:
        return PermissionDeniedError(
            f"Access to {name} is denied (HTTP 403).{quoted} Your identity needs the Cognitive Services User "
            "role on the resource, or the resource's network rules block this machine.", **kw)
    if status == 404:
        return DeploymentNotFoundError(
            f"No deployment named {deployment.name!r} for {name} was found at {deployment.endpoint} (HTTP 404). "
            f"Deploy {deployment.model.id} in Foundry, or set FLUX_DEPLOYMENTS to the name you gave it "
            f"(for example FLUX_DEPLOYMENTS={deployment.model.id}=my-deployment).", **kw)
    if status == 408:
        return RequestTimeoutError(f"The service timed out on the request (HTTP 408).{quoted} Try again.", **kw)
    if status == 409:
        return ConflictError(f"The service reported a conflict (HTTP 409).{quoted} Try again.", **kw)
    if status == 429:
        return RateLimitError(
            f"{name} is over its request quota (HTTP 429). flux-ui paces requests to the configured tier; if this "
            "keeps happening, set the deployment's real tier in FLUX_DEPLOYMENTS.", **kw)
    if status >= 500:
        return ServerError(f"The service had an internal problem (HTTP {status}).{quoted} It is usually brief: "
                           "try again in a moment.", **kw)
    return ServiceError(f"The service answered HTTP {status}.{quoted}", **kw)


#: A 16×16 grey PNG: the input image a probe of images/edits carries (an edit without one is refused
#: before the deployment is even looked up, which would tell nothing).
_PROBE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAAAAAA6mKC9AAAAEUlEQVR42mNsYEAFTAwjWgAAmZAAoFDIQrAAAAAASUVORK5CYII="
)


@dataclass(frozen=True)
class ProbeAnswer:
    """How a deployment answered a probe (:func:`probe_request`): its status, and the typed error (in the
    client's words, with what to do) for an error status."""

    status: int
    error: ServiceError | None
    elapsed_s: float


def probe_request(deployment: Deployment, route: Route, *, api_version: str, image_api_path: str) -> WireRequest:
    """The route's request made so that the service refuses it before generating: no prompt, and on the
    BFL route a ``safety_tolerance`` above its documented maximum (1.1-pro's prompt is optional), on the
    Image API ``n: 0`` (either fault alone is refused).

    The service checks the credential (401/403) and finds the deployment (404) before it validates the
    body (400/422), so the answer tells those apart without an image made or billed (the doctor's check).
    Azure ML's inference toolkit refuses a body without ``inputs`` (its prompt) with 400 likewise.
    """
    spec = deployment.model
    refs = [PreparedImage(_PROBE_PNG, "png", 16, 16, "PNG", 16, 16, len(_PROBE_PNG), ())] if (
        route is Route.IMAGES_EDITS) else []
    wire = build_request(deployment, route, "", {}, refs, api_version=api_version, image_api_path=image_api_path,
                         size=None)
    if route is Route.IMAGES_EDITS:
        assert wire.form is not None
        form = {k: v for k, v in wire.form.items() if k != "prompt"} | {"n": "0"}
        return WireRequest(wire.method, wire.url, wire.query, form=form, files=wire.files, shown=form)
    assert wire.json_body is not None
    body = {k: v for k, v in wire.json_body.items() if k not in ("prompt", "inputs")}
    if route is Route.BFL:
        safety = spec.param("safety_tolerance")
        if safety is not None and safety.widest_maximum is not None:
            body["safety_tolerance"] = int(safety.widest_maximum) + 1
    elif route is Route.IMAGES_GENERATIONS:
        body["n"] = 0
    headers = {k: v for k, v in wire.headers.items() if k.lower() != "content-type"}
    return WireRequest(wire.method, wire.url, wire.query, json_body=body, headers=headers, shown=body)
