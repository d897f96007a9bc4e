"""The checks a request passes before anything is generated: auth, api-version, body parsing, quota, faults.

Each gate either lets the request on or raises :class:`~flux_ui.emulator.bodies.ApiError` with
the body the request's route uses for the problem. The order they run in is the pipeline's
(see :mod:`flux_ui.emulator.pipeline`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from flux_ui.emulator import bodies
from flux_ui.emulator.auth import authenticate
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.config import Fault
from flux_ui.emulator.references import Reference, ReferenceProblem, decode_base64_reference, decode_reference_bytes
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.state import EmulatorState
from flux_ui.registry import ModelSpec

#: A route's handler: the request, the emulator's state, and the log record it fills in.
Handler = Callable[[Request, EmulatorState, RequestRecord], Awaitable[Response]]
#: Largest non-file multipart field (a prompt): 1 MiB is far above any prompt limit.
MAX_FORM_FIELD = 1_048_576


def state_of(request: Request) -> EmulatorState:
    return request.app.state.emulator  # type: ignore[no-any-return]


# --- auth and api-version ---------------------------------------------------------------------


def authenticate_foundry(request: Request, state: EmulatorState, record: RequestRecord) -> None:
    result = authenticate(request.headers, state.foundry_keys(), accept_entra=state.config.accept_entra)
    record.auth = result.kind
    if not result.ok:
        raise ApiError(401, bodies.unauthorized(result.reason))


def require_api_version(request: Request) -> None:
    version = request.query_params.get("api-version")
    if not version:
        # [seen] the service answers 404 without api-version.
        raise ApiError(404, bodies.deployment_not_found(None, "The api-version query parameter is missing; "
                                                              "add ?api-version=preview."))
    if not version.endswith("preview"):
        # The emulator's choice: FLUX is served under preview API versions only.
        raise ApiError(400, bodies.azure_error("BadRequest", f"API version {version[:40]!r} is not supported for "
                                                             "FLUX; use api-version=preview."))


# --- bodies -----------------------------------------------------------------------------------


async def json_body(request: Request, route: str) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        if route == "bfl":
            raise ApiError(422, bodies.bfl_validation([{"loc": ["body", 0], "msg": "JSON decode error",
                                                        "type": "json_invalid"}])) from None
        if route == "aml":
            raise ApiError(400, bodies.schnell_error("The request body is not valid JSON.")) from None
        raise ApiError(400, bodies.azure_error("BadRequest", "The request body is not valid JSON.")) from None


async def multipart_body(request: Request) -> tuple[dict[str, Any], list[tuple[int, str, bytes]]]:
    """An images/edits body: its fields, and its image files as (N, field, bytes) in order."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, bodies.azure_error("BadRequest", "images/edits takes multipart/form-data."))
    try:
        form = await request.form(max_part_size=MAX_FORM_FIELD)
    except Exception as exc:  # Starlette's MultiPartException and malformed bodies alike
        raise ApiError(400, bodies.azure_error("BadRequest", f"The multipart body cannot be read: {exc}")) from None
    fields: dict[str, Any] = {}
    files: list[tuple[int, str, bytes]] = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key in ("image", "image[]"):
                    files.append((len(files) + 1, key, await value.read()))
                else:
                    fields[key] = f"(file {value.filename or 'unnamed'})"
            elif key in ("image", "image[]"):
                raise ApiError(400, bodies.azure_error("BadRequest", f"'{key}' must be a file part.", param=key))
            else:
                fields[key] = value
    finally:
        await form.close()
    return fields, files


def _decode_references(items: list[tuple[int, str, Any]], from_bytes: bool) -> list[Reference]:
    decode = decode_reference_bytes if from_bytes else decode_base64_reference
    return [decode(name, index, value) for index, name, value in items]


async def references(items: list[tuple[int, str, Any]], route: str, from_bytes: bool) -> list[Reference]:
    """The reference images decoded and checked off the event loop; Azure's 400 for a bad one."""
    if not items:
        return []
    try:
        return await run_in_threadpool(_decode_references, items, from_bytes)
    except ReferenceProblem as problem:
        raise ApiError(400, bodies.azure_error(problem.code, str(problem), param=problem.field)) from None


# --- quota ------------------------------------------------------------------------------------


def rate_limited(
    state: EmulatorState, deployment: str, spec: ModelSpec, wait_s: float, route: str,
    *, send_headers: bool | None = None,
) -> ApiError:
    seconds = bodies.retry_after_seconds(wait_s)
    send = state.config.retry_after_header if send_headers is None else send_headers
    headers: dict[str, str] = {}
    if send:
        headers = {
            "Retry-After": str(seconds),
            "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
            "x-ratelimit-remaining-requests": "0",
        }
    if route == "aml":
        body: Any = bodies.schnell_error(f"Too many requests to {deployment}. Please retry after {seconds} seconds.")
    else:
        body = bodies.rate_limited(deployment, state.quotas.describe(deployment, spec.id), seconds)
    return ApiError(429, body, headers)


def quota_gate(state: EmulatorState, deployment: str, spec: ModelSpec, route: str) -> None:
    wait = state.quotas.wait_time(deployment, spec.id)
    if wait > 0:
        raise rate_limited(state, deployment, spec, wait, route)


def quota_headers(state: EmulatorState, deployment: str, spec: ModelSpec) -> dict[str, str]:
    if not state.config.retry_after_header:
        return {}
    remaining = state.quotas.remaining(deployment, spec.id)
    return {} if remaining is None else {"x-ratelimit-remaining-requests": str(remaining)}


# --- faults and the content filter ------------------------------------------------------------


def status_fault(state: EmulatorState, fault: Fault, route: str, deployment: str, spec: ModelSpec) -> ApiError:
    if fault.status == 429:
        wait = fault.retry_after_s if fault.retry_after_s is not None else 1.0
        err = rate_limited(state, deployment, spec, wait, route, send_headers=fault.retry_after)
        if fault.message:
            aml = route == "aml"
            err.body = bodies.schnell_error(fault.message) if aml else bodies.azure_error("429", fault.message)
        return err
    if route == "aml":
        return ApiError(fault.status, bodies.schnell_error(fault.message or f"Injected {fault.status}."))
    return ApiError(fault.status, bodies.status_error(fault.status, fault.message))


async def play_faults(state: EmulatorState, record: RequestRecord, deployment: str, model_id: str,
                      route: str) -> Fault | None:
    """Draw the faults armed for a follow-up request (a poll, a download), log them, wait out their
    latency, and return the outcome left to play."""
    draw = state.faults.draw(deployment, model_id, route)
    record.fault = draw.label
    if draw.latency_s > 0:
        await asyncio.sleep(draw.latency_s)
    return draw.outcome


def refused_by_words(state: EmulatorState, prompt: str) -> bool:
    lowered = prompt.casefold()
    return any(word and word.casefold() in lowered for word in state.config.refuse_words)
