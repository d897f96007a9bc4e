"""Response bodies in the shapes the contract records, one builder per shape.

Shapes come from ``docs/service-contract.md``; where it gives only a shape, the
message wording here is the emulator's own. Codes the contract does not name are marked
as the emulator's choice where they are built.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from flux_ui.emulator.config import Fault

ErrorBody = dict[str, Any]


class ApiError(Exception):
    """An answer other than an image, raised from anywhere in a handler and sent as it is."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers or {}

_STATUS_CODES = {
    # Codes for statuses the contract lists without a code: the emulator's choice of spelling.
    400: "BadRequest",
    403: "PermissionDenied",
    404: "NotFound",
    408: "Timeout",
    409: "Conflict",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def azure_error(code: str, message: str, **extra: Any) -> ErrorBody:
    """Azure's ``{"error": {"code", "message"}}`` [doc]."""
    return {"error": {"code": code, "message": message, **extra}}


def unauthorized(reason: str = "") -> ErrorBody:
    """The 401 body of contract §2. ``reason`` says which check failed, never with the credential."""
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Check the key and the "
        "endpoint shown under Keys and Endpoint for this resource."
    )
    if reason:
        message += f" (emulator: {reason})"
    return azure_error("401", message)


def deployment_not_found(name: str | None, detail: str = "") -> ErrorBody:
    what = f"The API deployment {name!r}" if name else "The API deployment for this resource"
    message = f"{what} does not exist. {detail}".strip()
    return azure_error("DeploymentNotFound", message)


def no_model_name() -> ErrorBody:
    return azure_error("no_model_name", "The request body has no 'model'; send the deployment name in 'model'.")


def resource_not_found() -> ErrorBody:
    # The emulator's choice for a path no route serves.
    return azure_error("404", "Resource not found")


def rate_limited(deployment: str, quota_text: str, retry_after_s: int) -> ErrorBody:
    """The 429 body of contract §2/§3: the message carries "Please retry after N seconds"."""
    return azure_error(
        "429",
        f"Requests to the deployment {deployment} have exceeded the call rate limit of its quota "
        f"({quota_text}). Please retry after {retry_after_s} seconds. "
        "To send more requests, ask for a higher quota for this deployment.",
    )


def status_error(status: int, message: str | None = None) -> ErrorBody:
    """An Azure-shaped body for an injected status fault."""
    code = _STATUS_CODES.get(status, str(status))
    text = message or f"The service answered {status} (injected by the flux-ui emulator)."
    return azure_error(code, text)


def retry_after_seconds(wait_s: float) -> int:
    """Whole seconds a client must wait for a slot: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


def bfl_validation(errors: Sequence[dict[str, Any]]) -> ErrorBody:
    """The BFL validation shape of contract §2: 422 ``{"detail": [{"loc", "msg", "type"}]}``."""
    return {"detail": list(errors)}


def bfl_field_error(field: str, msg: str, type_: str, value: Any = None, **ctx: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"loc": ["body", field], "msg": msg, "type": type_}
    finite = not isinstance(value, float) or math.isfinite(value)
    if value is not None and finite and isinstance(value, int | float | bool | str) and len(str(value)) <= 200:
        item["input"] = value
    if ctx:
        item["ctx"] = ctx
    return item


def bfl_refusal(message: str | None = None) -> ErrorBody:
    """The BFL route's content refusal: 400 ``content_filter`` naming the blocklist (contract §2)."""
    return azure_error(
        "content_filter",
        message
        or "The prompt was stopped by the content filter (BingBlockList_Prompt). Change the prompt and send it again.",
    )


def image_api_refusal(message: str | None = None) -> ErrorBody:
    """The Image API's refusal: 400 ``contentFilter`` with a ResponsibleAIPolicyViolation inner error [doc]."""
    return azure_error(
        "contentFilter",
        message or "The safety system stopped this request; nothing was generated.",
        innererror={"code": "ResponsibleAIPolicyViolation"},
    )


def schnell_error(message: str) -> dict[str, str]:
    """The inference toolkit's only error shape: 400 ``{"error": "<message>"}`` (contract §4)."""
    return {"error": message}


def content_filter_results(filtered: bool = False) -> dict[str, Any]:
    """All six categories as the Image API reports them [seen]."""
    severity = {"filtered": False, "severity": "safe"}
    results: dict[str, Any] = {
        "sexual": dict(severity),
        "violence": dict(severity),
        "hate": dict(severity),
        "self_harm": dict(severity),
        "profanity": {"filtered": False, "detected": False},
        "jailbreak": {"filtered": False, "detected": False},
    }
    if filtered:
        # The emulator's choice of category for a refusal: it cannot know why a word is refused.
        results["violence"] = {"filtered": True, "severity": "high"}
    return results


def bfl_success(b64: str, request_meta: dict[str, Any]) -> dict[str, Any]:
    return {"created": int(time.time()), "data": [{"b64_json": b64}], "request_meta": request_meta}


def bfl_filtered(request_meta: dict[str, Any]) -> dict[str, Any]:
    """A 200 whose only item is a refusal: ``finish_reason`` ``content_filter`` and no image [seen]."""
    return {"created": int(time.time()), "data": [{"finish_reason": "content_filter"}], "request_meta": request_meta}


def image_api_item(b64: str | None, url: str | None) -> dict[str, Any]:
    return {"url": url, "b64_json": b64, "revised_prompt": None, "content_filter_results": content_filter_results()}


def image_api_success(b64: str | None, url: str | None) -> dict[str, Any]:
    return {"created": int(time.time()), "data": [image_api_item(b64, url)]}


def image_api_filtered() -> dict[str, Any]:
    item = {
        "url": None,
        "b64_json": None,
        "revised_prompt": None,
        "finish_reason": "content_filter",
        "content_filter_results": content_filter_results(filtered=True),
    }
    return {"created": int(time.time()), "data": [item]}


def empty_result(route: str, fault: Fault, request_meta: dict[str, Any] | None) -> dict[str, Any]:
    """A 200 without an image (contract §2 [seen]): ``data: [{}]`` or ``data: []``."""
    data: list[dict[str, Any]] = [] if fault.variant == "list" else [{}]
    body: dict[str, Any] = {"created": int(time.time()), "data": data}
    if route == "bfl" and request_meta is not None:
        body["request_meta"] = request_meta
    return body


def blob_error(code: str, message: str) -> bytes:
    """An XML error in the style of Azure Blob Storage for a refused download (the emulator's
    choice: the contract says only that result URLs are signed and expire, §2 [open])."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nTime:{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        "</Message></Error>"
    ).encode()
