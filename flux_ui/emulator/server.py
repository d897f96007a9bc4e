"""The emulator's HTTP routes: one server, one base URL, every route the client can take.

- ``POST /providers/blackforestlabs/v1/<path>``: the BFL provider route (contract §2)
- ``POST /openai/deployments/<name>/images/{generations,edits}`` and
  ``POST /openai/images/{generations,edits}`` with ``model`` in the body: the Image API (§3)
- ``POST /score``, ``GET /``, ``GET /health``: FLUX.1-schnell on an Azure ML endpoint (§4)
- ``GET /v1/get_result?id=``: BFL-style polling, when ``bfl_style="polling"``
- ``GET /_emulator/delivery/<id>.<ext>``: signed result downloads
- ``/_emulator/...``: inspection and control (see :mod:`flux_ui.emulator.control`)

Every generation request goes through the same order, which is the emulator's reading of
where each check sits in the service: authentication (401), routing and ``api-version``
(404), the body's ``model`` (400/404), the deployment's quota (429, a gateway check that
runs before validation), validation (400/422), faults, then the content filter and the image.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from flux_ui.emulator import bodies
from flux_ui.emulator.auth import AZURE_ML_AUDIENCES, authenticate
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.config import EmulatorConfig, Fault
from flux_ui.emulator.control import control_routes
from flux_ui.emulator.delivery import POLLING_PATH, PollingTask, new_task_id
from flux_ui.emulator.faults import DroppedResponse, TrickleResponse, hide_injected_drops_from_uvicorn_log
from flux_ui.emulator.references import Reference, ReferenceProblem, decode_base64_reference, decode_reference_bytes
from flux_ui.emulator.render import CONTENT_TYPES, EXTENSIONS, OutputFormat, RenderRequest, render
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.state import EmulatorState
from flux_ui.emulator.validation import (
    REFERENCE_FIELD,
    Plan,
    bfl_reference_fields,
    validate_bfl,
    validate_image_api,
    validate_schnell,
)
from flux_ui.registry import MODELS, ModelSpec

Handler = Callable[[Request, EmulatorState, RequestRecord], Awaitable[Response]]

MODELS_BY_BFL_PATH: dict[str, ModelSpec] = {m.bfl_path: m for m in MODELS.values() if m.bfl_path}
#: A truncated JSON document: what a body cut off by a proxy looks like.
MALFORMED_BODY = b'{"created": 1700000000, "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUgAA'
#: Largest non-file multipart field (a prompt): 1 MiB is far above any prompt limit.
MAX_FORM_FIELD = 1_048_576


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator  # type: ignore[no-any-return]


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error_response(err: ApiError) -> Response:
    if isinstance(err.body, bytes):
        return Response(err.body, err.status, err.headers, media_type="application/xml")
    return Response(_json_bytes(err.body), err.status, err.headers, media_type="application/json")


def logged(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler so every answer, error or not, lands in the request log."""

    async def endpoint(request: Request) -> Response:
        state = _state(request)
        epoch = state.log.epoch
        record = RequestRecord(route=route, path=request.url.path)
        try:
            response = await handler(request, state, record)
        except ApiError as err:
            response = _error_response(err)
        except Exception as exc:
            # An emulator bug: keep it visible in the log too, and let uvicorn report it.
            record.status = 500
            record.notes.append(f"emulator error: {type(exc).__name__}")
            state.log.add(record, epoch)
            raise
        record.status = response.status_code
        state.log.add(record, epoch)
        return response

    return endpoint


# --- shared checks ------------------------------------------------------------------------------


def _authenticate_foundry(request: Request, state: EmulatorState, record: RequestRecord) -> None:
    result = authenticate(request.headers, state.foundry_keys(), accept_entra=state.config.accept_entra)
    record.auth = result.kind
    if not result.ok:
        raise ApiError(401, bodies.unauthorized(result.reason))


def _require_api_version(request: Request) -> None:
    version = request.query_params.get("api-version")
    if not version:
        # [seen] the service answers 404 without api-version.
        raise ApiError(404, bodies.deployment_not_found(None, "The api-version query parameter is missing; "
                                                              "add ?api-version=preview."))
    if not version.endswith("preview"):
        # The emulator's choice: FLUX is served under preview API versions only.
        raise ApiError(400, bodies.azure_error("BadRequest", f"API version {version[:40]!r} is not supported for "
                                                             "FLUX; use api-version=preview."))


async def _json_body(request: Request, route: str) -> Any:
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


def _rate_limited(
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


def _quota_gate(state: EmulatorState, deployment: str, spec: ModelSpec, route: str) -> None:
    wait = state.quotas.wait_time(deployment, spec.id)
    if wait > 0:
        raise _rate_limited(state, deployment, spec, wait, route)


def _quota_headers(state: EmulatorState, deployment: str, spec: ModelSpec) -> dict[str, str]:
    if not state.config.retry_after_header:
        return {}
    remaining = state.quotas.remaining(deployment, spec.id)
    return {} if remaining is None else {"x-ratelimit-remaining-requests": str(remaining)}


def _status_fault(state: EmulatorState, fault: Fault, route: str, deployment: str, spec: ModelSpec) -> ApiError:
    if fault.status == 429:
        wait = fault.retry_after_s if fault.retry_after_s is not None else 1.0
        err = _rate_limited(state, deployment, spec, wait, route, send_headers=fault.retry_after)
        if fault.message:
            aml = route == "aml"
            err.body = bodies.schnell_error(fault.message) if aml else bodies.azure_error("429", fault.message)
        return err
    if route == "aml":
        return ApiError(fault.status, bodies.schnell_error(fault.message or f"Injected {fault.status}."))
    return ApiError(fault.status, bodies.status_error(fault.status, fault.message))


def _refused_by_words(state: EmulatorState, prompt: str) -> bool:
    lowered = prompt.casefold()
    return any(word and word.casefold() in lowered for word in state.config.refuse_words)


def _decode_references(items: list[tuple[int, str, Any]], from_bytes: bool) -> list[Reference]:
    decode = decode_reference_bytes if from_bytes else decode_base64_reference
    return [decode(name, index, value) for index, name, value in items]


async def _references(items: list[tuple[int, str, Any]], route: str, from_bytes: bool) -> list[Reference]:
    if not items:
        return []
    try:
        return await run_in_threadpool(_decode_references, items, from_bytes)
    except ReferenceProblem as problem:
        raise ApiError(400, bodies.azure_error(problem.code, str(problem), param=problem.field)) from None


def _respond(status: int, payload: Any, headers: dict[str, str], outcome: Fault | None,
             media_type: str = "application/json") -> Response:
    """The answer, played through a transport fault (drop, trickle) when one fired."""
    body = payload if isinstance(payload, bytes) else _json_bytes(payload)
    if outcome is not None and outcome.kind == "drop":
        return DroppedResponse(body, status, headers, media_type=media_type)
    if outcome is not None and outcome.kind == "trickle":
        return TrickleResponse(body, status, headers, media_type=media_type, seconds=outcome.seconds)
    return Response(body, status, headers, media_type=media_type)


def _request_meta(plan: Plan, width: int, height: int) -> dict[str, Any]:
    """``request_meta`` as FLUX.2 answers carry it [seen]; cost in credits of $0.01 from the
    registry's price hint (the emulator's estimate), left out where the registry has no price."""
    meta: dict[str, Any] = {}
    estimate = plan.spec.price.estimate(width * height)
    if estimate is not None:
        meta["cost"] = round(estimate * 100, 2)
    meta["input_mp"] = round(sum(r.pixels for r in plan.references) / 1_000_000, 2)
    meta["output_mp"] = round(width * height / 1_000_000, 2)
    meta["total_pixels"] = width * height
    return meta


# --- the generation pipeline shared by every route ------------------------------------------------


async def _generate(
    request: Request, state: EmulatorState, record: RequestRecord, plan: Plan, route: str, deployment: str,
    schnell_accept: OutputFormat | None = None,
) -> Response:
    cfg = state.config
    spec = plan.spec
    record.unknown_params = list(plan.unknown_params)
    record.notes += plan.notes
    polling = route == "bfl" and cfg.bfl_style == "polling"
    url_result = polling or (route.startswith("images/") and cfg.image_api_result == "url")

    # Quota check, fault draw and quota record run with no await between them, so two
    # concurrent requests on this event loop cannot both take the last slot.
    wait = state.quotas.wait_time(deployment, spec.id)
    if wait > 0:
        raise _rate_limited(state, deployment, spec, wait, route)
    draw = state.faults.draw(deployment, spec.id, route, url_result=url_result)
    record.fault = draw.label
    outcome = draw.outcome
    if outcome is None or outcome.kind != "status":
        state.quotas.try_consume(deployment, spec.id)
    # Latency is the service's whole time to answer: the image is rendered within it, as a real
    # deployment generates within its own time, so concurrent requests do not queue behind the
    # emulator's CPU (which a remote service would not share with the caller).
    answer_at = time.monotonic() + draw.latency_s
    try:
        return await _answer(request, state, record, plan, route, deployment, outcome, polling, url_result,
                             schnell_accept)
    finally:
        await _sleep_until(answer_at)


async def _sleep_until(moment: float) -> None:
    remaining = moment - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)


async def _answer(
    request: Request, state: EmulatorState, record: RequestRecord, plan: Plan, route: str, deployment: str,
    outcome: Fault | None, polling: bool, url_result: bool, schnell_accept: OutputFormat | None,
) -> Response:
    """The answer a drawn outcome calls for, with no latency of its own."""
    cfg = state.config
    spec = plan.spec
    if outcome is not None and outcome.kind == "status":
        raise _status_fault(state, outcome, route, deployment, spec)

    headers = _quota_headers(state, deployment, spec)
    if outcome is not None and outcome.kind == "malformed":
        if route == "aml" and schnell_accept is not None:
            return _respond(200, b"this is not an image", headers, None, CONTENT_TYPES[schnell_accept])
        return _respond(200, MALFORMED_BODY, headers, None)

    refused = (outcome is not None and outcome.kind == "refuse") or (
        route != "aml" and _refused_by_words(state, plan.prompt)
    )
    if refused:
        record.notes.append("refused by the content filter")
        return _refusal(request, state, record, plan, route, deployment, outcome, headers, polling)

    empty = outcome is not None and outcome.kind == "empty"
    seed = plan.seed if plan.seed is not None else state.pick_seed()
    fmt: OutputFormat = schnell_accept or plan.output_format
    if route == "aml" and schnell_accept is None:
        fmt = "png"  # the emulator's JSON answer carries a PNG
    image = b""
    if not empty:
        render_request = RenderRequest(spec.id, spec.display_name, plan.prompt, seed, plan.width, plan.height, fmt,
                                       plan.references)
        image = await run_in_threadpool(render, render_request)
        record.output = {"width": plan.width, "height": plan.height, "format": fmt, "seed": seed}

    expired = outcome is not None and outcome.kind == "expire_url"
    if polling:
        return _start_polling(request, state, plan, deployment, seed, image, fmt, headers, outcome,
                              empty=empty, expired=expired)
    if route == "bfl":
        meta = _request_meta(plan, plan.width, plan.height)
        payload = bodies.empty_result(route, outcome, meta) if empty and outcome else bodies.bfl_success(
            base64.b64encode(image).decode("ascii"), meta)
        return _respond(200, payload, headers, outcome)
    if route.startswith("images/"):
        if empty and outcome:
            return _respond(200, bodies.empty_result(route, outcome, None), headers, outcome)
        if url_result:
            ttl = -1.0 if expired else cfg.result_url_ttl_s
            url = _signed_url(request, state, image, fmt, time.time() + ttl, deployment, spec.id)
            return _respond(200, bodies.image_api_success(None, url), headers, outcome)
        return _respond(200, bodies.image_api_success(base64.b64encode(image).decode("ascii"), None), headers, outcome)
    # FLUX.1-schnell: raw bytes in the Accept format, or the emulator's JSON shape.
    if schnell_accept is not None:
        return _respond(200, image, headers, outcome, CONTENT_TYPES[fmt])
    payload = {
        "b64_json": None if empty else base64.b64encode(image).decode("ascii"),
        "content_type": CONTENT_TYPES[fmt],
        "width": plan.width,
        "height": plan.height,
        "seed": seed,
    }
    return _respond(200, payload, headers, outcome)


def _signed_url(request: Request, state: EmulatorState, image: bytes, fmt: OutputFormat, expires_at: float,
                deployment: str, model_id: str) -> str:
    result_id = state.results.put(image, CONTENT_TYPES[fmt], EXTENSIONS[fmt], deployment, model_id)
    return str(request.base_url).rstrip("/") + state.results.signed_path(result_id, expires_at)


def _start_polling(
    request: Request, state: EmulatorState, plan: Plan, deployment: str, seed: int | None, image: bytes,
    fmt: OutputFormat, headers: dict[str, str], outcome: Fault | None, *, empty: bool = False, expired: bool = False,
    moderated: bool = False,
) -> Response:
    """The BFL-native answer: a task id and where to poll it (contract §2 [open])."""
    result_id = (state.results.put(image, CONTENT_TYPES[fmt], EXTENSIONS[fmt], deployment, plan.spec.id)
                 if image else None)
    task = PollingTask(
        id=new_task_id(),
        deployment=deployment,
        model_id=plan.spec.id,
        prompt=plan.prompt,
        seed=seed,
        final_status="Request Moderated" if moderated else "Ready",
        pending_polls=state.config.polling_pending_polls,
        result_id=result_id,
        empty=empty,
        expired_url=expired,
    )
    state.tasks.add(task)
    polling_url = f"{str(request.base_url).rstrip('/')}{POLLING_PATH}?id={task.id}"
    return _respond(200, {"id": task.id, "polling_url": polling_url}, headers, outcome)


def _refusal(
    request: Request, state: EmulatorState, record: RequestRecord, plan: Plan, route: str, deployment: str,
    outcome: Fault | None, headers: dict[str, str], polling: bool,
) -> Response:
    style = outcome.variant if outcome is not None and outcome.kind == "refuse" and outcome.variant else (
        state.config.refuse_style)
    message = outcome.message if outcome is not None and outcome.kind == "refuse" else None
    if polling:
        return _start_polling(request, state, plan, deployment, plan.seed, b"", plan.output_format, headers,
                              None, moderated=True)
    if route == "aml":
        return _respond(400, bodies.schnell_error(message or "The request was refused by a content filter."),
                        headers, None)
    if route == "bfl":
        if style == "finish_reason":
            return _respond(200, bodies.bfl_filtered(_request_meta(plan, 0, 0)), headers, None)
        return _respond(400, bodies.bfl_refusal(message), headers, None)
    if style == "finish_reason":
        return _respond(200, bodies.image_api_filtered(), headers, None)
    return _respond(400, bodies.image_api_refusal(message), headers, None)


# --- BFL provider route ---------------------------------------------------------------------------


async def bfl_generate(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    _authenticate_foundry(request, state, record)
    _require_api_version(request)
    spec = MODELS_BY_BFL_PATH.get(request.path_params["path"])
    if spec is None:
        raise ApiError(404, bodies.resource_not_found())
    body = await _json_body(request, "bfl")
    if not isinstance(body, dict):
        raise ApiError(422, bodies.bfl_validation([{"loc": ["body"], "msg": "Input should be a valid dictionary",
                                                    "type": "dict_type"}]))
    record.params = {k: v for k, v in body.items() if k != "prompt" and not REFERENCE_FIELD.match(k)}
    record.prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else None
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, bodies.no_model_name())
    record.deployment = name
    served = state.model_of(name)
    if served is None or served.id != spec.id:
        detail = (f"{name!r} is the route path, not a deployment; send the model ID, e.g. {spec.id!r}."
                  if name in MODELS_BY_BFL_PATH else f"The route {spec.bfl_path} serves deployments of {spec.id}.")
        raise ApiError(404, bodies.deployment_not_found(name, detail))
    record.model = spec.id
    _quota_gate(state, name, spec, "bfl")
    fields = bfl_reference_fields(spec, body)
    references = await _references(fields, "bfl", from_bytes=False)
    record.references = [r.log_entry() for r in references]
    plan = validate_bfl(spec, body, references)
    return await _generate(request, state, record, plan, "bfl", name)


# --- Image API ----------------------------------------------------------------------------------


async def _multipart(request: Request) -> tuple[dict[str, Any], list[tuple[int, str, bytes]]]:
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


def images_handler(operation: str) -> Handler:
    async def handle(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
        _authenticate_foundry(request, state, record)
        _require_api_version(request)
        files: list[tuple[int, str, bytes]] = []
        if operation == "edits":
            fields, files = await _multipart(request)
        else:
            body = await _json_body(request, "images")
            if not isinstance(body, dict):
                raise ApiError(400, bodies.azure_error("BadRequest", "The request body must be a JSON object."))
            fields = body
        record.params = {k: v for k, v in fields.items() if k != "prompt"}
        record.prompt = fields.get("prompt") if isinstance(fields.get("prompt"), str) else None
        name = request.path_params.get("deployment") or fields.get("model")
        if not isinstance(name, str) or not name:
            raise ApiError(400, bodies.no_model_name())
        record.deployment = name
        spec = state.model_of(name)
        if spec is None:
            raise ApiError(404, bodies.deployment_not_found(name))
        record.model = spec.id
        if operation not in spec.image_api:
            if not spec.image_api:
                raise ApiError(404, bodies.deployment_not_found(
                    name, f"{spec.display_name} is not on the Image API; use /providers/blackforestlabs/v1/"
                          f"{spec.bfl_path}."))
            # The emulator's choice of code: the contract does not say how 1.1-pro refuses edits.
            raise ApiError(400, bodies.azure_error(
                "OperationNotSupported", f"The images/{operation} operation does not work with {spec.display_name}."))
        route = f"images/{operation}"
        _quota_gate(state, name, spec, route)
        references = await _references(files, route, from_bytes=True)
        record.references = [r.log_entry() for r in references]
        plan = validate_image_api(spec, operation, fields, references)
        return await _generate(request, state, record, plan, route, name)

    return handle


# --- FLUX.1-schnell on Azure ML -----------------------------------------------------------------


def _schnell_accept(header: str | None) -> OutputFormat | None:
    """The image format asked for, or None for JSON (no Accept, ``application/json``, ``*/*``)."""
    if not header:
        return None
    for part in header.split(","):
        media = part.split(";")[0].strip().lower()
        for fmt, content_type in CONTENT_TYPES.items():
            if media == content_type:
                return fmt  # type: ignore[return-value]
        if media == "image/*":
            return "png"
        if media in ("application/json", "*/*", "application/*"):
            return None
    raise ApiError(400, bodies.schnell_error(f"Accept {header[:60]!r} is not supported; use image/png, image/jpeg, "
                                             "image/webp or application/json."))


async def schnell_score(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    # The emulator's choice: contract §4 describes the toolkit in the container, not the endpoint
    # in front of it, so the key is checked first and a bad one is a 401 (body in the toolkit's
    # shape); everything after that is the toolkit's 400.
    result = authenticate(request.headers, state.schnell_keys(), accept_entra=state.config.accept_entra,
                          audiences=AZURE_ML_AUDIENCES, allow_api_key_header=False)
    record.auth = result.kind
    if not result.ok:
        raise ApiError(401, bodies.schnell_error(f"Unauthorized: {result.reason}."))
    spec = MODELS[state.schnell_deployment]
    record.deployment = record.model = spec.id
    body = await _json_body(request, "aml")
    if isinstance(body, dict):
        record.prompt = body.get("inputs") if isinstance(body.get("inputs"), str) else None
        params = body.get("parameters")
        record.params = dict(params) if isinstance(params, dict) else {}
    accept = _schnell_accept(request.headers.get("accept"))
    _quota_gate(state, spec.id, spec, "aml")
    plan = validate_schnell(body, square_only=state.config.schnell_square_only)
    return await _generate(request, state, record, plan, "aml", spec.id, schnell_accept=accept)


async def health(request: Request) -> Response:
    return PlainTextResponse("Ok")


# --- polling and delivery -----------------------------------------------------------------------


async def _play_faults(state: EmulatorState, record: RequestRecord, deployment: str, model_id: str,
                       route: str) -> Fault | None:
    """Draw the faults armed for a follow-up request (a poll, a download), log them, wait out their
    latency, and return the outcome left to play."""
    draw = state.faults.draw(deployment, model_id, route)
    record.fault = draw.label
    if draw.latency_s > 0:
        await asyncio.sleep(draw.latency_s)
    return draw.outcome


async def poll_result(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    """``GET polling_url``: Pending for a few polls, then Ready (or Request Moderated).

    No credential is required (the emulator's choice: the id is the capability, as with BFL's
    own polling URLs); whatever the caller sent is classified for the log all the same.
    """
    record.auth = authenticate(request.headers, state.foundry_keys(), accept_entra=state.config.accept_entra).kind
    task_id = request.query_params.get("id")
    record.params = {"id": task_id}
    if not task_id:
        raise ApiError(422, bodies.bfl_validation([{"loc": ["query", "id"], "msg": "Field required",
                                                    "type": "missing"}]))
    polled = state.tasks.poll(task_id, state.config.result_url_ttl_s)
    if polled is None:
        return _respond(200, {"id": task_id, "status": "Task not found", "result": None}, {}, None)
    task, status = polled
    record.deployment, record.model, record.prompt = task.deployment, task.model_id, task.prompt
    spec = MODELS[task.model_id]
    outcome = await _play_faults(state, record, task.deployment, task.model_id, "poll")
    if outcome is not None and outcome.kind == "status":
        raise _status_fault(state, outcome, "poll", task.deployment, spec)
    if outcome is not None and outcome.kind == "malformed":
        return _respond(200, MALFORMED_BODY, {}, None)
    payload: dict[str, Any] = {"id": task.id, "status": status, "result": None, "progress": None, "details": None}
    if status == "Pending":
        payload["progress"] = round(task.polls / (task.pending_polls + 1), 2)
    elif status == "Request Moderated":
        payload["details"] = {"moderation_reasons": ["BingBlockList_Prompt"]}
    else:
        result: dict[str, Any] = {"seed": task.seed, "prompt": task.prompt, "start_time": round(task.created, 3),
                                  "end_time": round(task.ready_at or task.created, 3)}
        if task.result_id and not task.empty:
            path = state.results.signed_path(task.result_id, task.sample_expires_at or time.time())
            result["sample"] = str(request.base_url).rstrip("/") + path
        payload["result"] = result
    return _respond(200, payload, {}, outcome if outcome is not None and outcome.kind in ("drop", "trickle") else None)


async def deliver(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    """A signed result download: 403 in Azure Blob Storage's XML when expired or tampered with.

    Faults armed for the "delivery" route play here, keyed by the deployment whose result it is.
    """
    name = request.path_params["name"]
    se, sig = request.query_params.get("se"), request.query_params.get("sig")
    record.params = {"se": se}
    problem = state.results.check(name, se, sig)
    if problem:
        raise ApiError(403, bodies.blob_error("AuthenticationFailed", f"Server failed to authenticate the request: "
                                                                       f"{problem}."))
    result_id, _, extension = name.partition(".")
    stored = state.results.get(result_id)
    if stored is None or stored.extension != extension:
        raise ApiError(404, bodies.blob_error("BlobNotFound", "The specified blob does not exist."))
    record.deployment, record.model = stored.deployment, stored.model_id
    outcome = await _play_faults(state, record, stored.deployment, stored.model_id, "delivery")
    if outcome is not None and outcome.kind == "status":
        code = "ServerBusy" if outcome.status == 503 else "InternalError"
        raise ApiError(outcome.status, bodies.blob_error(code, outcome.message or f"Injected {outcome.status}."))
    data = b"" if outcome is not None and outcome.kind == "empty" else stored.data
    transport = outcome if outcome is not None and outcome.kind in ("drop", "trickle") else None
    return _respond(200, data, {}, transport, stored.content_type)


# --- unmatched paths ----------------------------------------------------------------------------


async def _unmatched(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    state = _state(request)
    record = RequestRecord(route="other", path=request.url.path, status=status)
    record.notes.append(f"no route serves {request.method} {request.url.path}")
    state.log.add(record)
    body = bodies.resource_not_found() if status == 404 else bodies.azure_error(str(status), "Method not allowed")
    return Response(_json_bytes(body), status, media_type="application/json")


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = EmulatorState(config or EmulatorConfig())
    hide_injected_drops_from_uvicorn_log()
    routes = [
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/providers/blackforestlabs/v1/{path:path}", logged("bfl", bfl_generate), methods=["POST"]),
        Route("/openai/deployments/{deployment}/images/generations",
              logged("images/generations", images_handler("generations")), methods=["POST"]),
        Route("/openai/deployments/{deployment}/images/edits",
              logged("images/edits", images_handler("edits")), methods=["POST"]),
        Route("/openai/images/generations", logged("images/generations", images_handler("generations")),
              methods=["POST"]),
        Route("/openai/images/edits", logged("images/edits", images_handler("edits")), methods=["POST"]),
        Route("/score", logged("aml", schnell_score), methods=["POST"]),
        Route(POLLING_PATH, logged("poll", poll_result), methods=["GET"]),
        Route("/_emulator/delivery/{name}", logged("delivery", deliver), methods=["GET"]),
        *control_routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _unmatched, 405: _unmatched})
    app.state.emulator = state
    return app
