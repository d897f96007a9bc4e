"""The generation pipeline every route shares: quota and faults, then the content filter, the image and the answer.

Every generation request goes through the same order, which is the emulator's reading of
where each check sits in the service: authentication (401), routing and ``api-version``
(404), the body's ``model`` (400/404), the deployment's quota (429, a gateway check that
runs before validation), validation (400/422), faults, then the content filter and the image.
A route runs the checks up to validation (with :mod:`flux_ui.emulator.gates`) and hands the
resulting :class:`~flux_ui.emulator.validation.common.Plan` to :func:`generate`, which runs the
rest and answers in the route's shape: the image inline, a signed link, or a polling task.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from flux_ui.emulator import bodies
from flux_ui.emulator.config import Fault
from flux_ui.emulator.delivery import POLLING_PATH, PollingTask, ResultEnding, new_task_id
from flux_ui.emulator.faults import DroppedResponse, TrickleResponse
from flux_ui.emulator.gates import quota_headers, rate_limited, refused_by_words, status_fault
from flux_ui.emulator.render import CONTENT_TYPES, EXTENSIONS, OutputFormat, RenderRequest, render
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.safety_marker import asks_for_marker
from flux_ui.emulator.state import EmulatorState
from flux_ui.emulator.validation.common import Plan

#: A truncated JSON document: what a body cut off by a proxy looks like.
MALFORMED_BODY = b'{"created": 1700000000, "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUgAA'


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def respond(status: int, payload: Any, headers: dict[str, str], outcome: Fault | None,
            media_type: str = "application/json") -> Response:
    """The answer, played through a transport fault (drop, trickle) when one fired."""
    body = payload if isinstance(payload, bytes) else json_bytes(payload)
    if outcome is not None and outcome.kind == "drop":
        return DroppedResponse(body, status, headers, media_type=media_type)
    if outcome is not None and outcome.kind == "trickle":
        return TrickleResponse(body, status, headers, media_type=media_type, seconds=outcome.seconds)
    return Response(body, status, headers, media_type=media_type)


def request_meta(plan: Plan, width: int, height: int) -> dict[str, Any]:
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


@dataclass(frozen=True)
class _Job:
    """One generation on its way through the pipeline: who asked, what to make, how to answer."""

    request: Request
    state: EmulatorState
    record: RequestRecord
    plan: Plan
    route: str
    deployment: str
    schnell_accept: OutputFormat | None
    polling: bool
    url_result: bool


@dataclass(frozen=True)
class _Result:
    """What was generated: the image (empty for none), its format and seed, and how it ends."""

    image: bytes
    fmt: OutputFormat
    seed: int | None
    ending: ResultEnding


async def generate(
    request: Request, state: EmulatorState, record: RequestRecord, plan: Plan, route: str, deployment: str,
    schnell_accept: OutputFormat | None = None,
) -> Response:
    """Run a validated request to its answer: quota, faults, filter, image, within the drawn latency.

    Routes call it as ``pipeline.generate``, so a benchmark can wrap it to see when a request counts.
    """
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
        raise rate_limited(state, deployment, spec, wait, route)
    draw = state.faults.draw(deployment, spec.id, route, url_result=url_result)
    record.fault = draw.label
    outcome = draw.outcome
    if outcome is None or outcome.kind != "status":
        state.quotas.try_consume(deployment, spec.id)
    # Latency is the service's whole time to answer: the image is rendered within it, as a real
    # deployment generates within its own time, so concurrent requests do not queue behind the
    # emulator's CPU (which a remote service would not share with the caller).
    answer_at = time.monotonic() + draw.latency_s
    job = _Job(request, state, record, plan, route, deployment, schnell_accept, polling, url_result)
    try:
        return await _answer(job, outcome)
    finally:
        await _sleep_until(answer_at)


async def _sleep_until(moment: float) -> None:
    remaining = moment - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)


def _ending(outcome: Fault | None) -> ResultEnding:
    """How a drawn outcome shapes a result that is not refused."""
    if outcome is not None and outcome.kind == "empty":
        return ResultEnding.EMPTY
    if outcome is not None and outcome.kind == "expire_url":
        return ResultEnding.EXPIRED_URL
    return ResultEnding.READY


async def _answer(job: _Job, outcome: Fault | None) -> Response:
    """The answer a drawn outcome calls for, with no latency of its own."""
    state, plan, route = job.state, job.plan, job.route
    if outcome is not None and outcome.kind == "status":
        raise status_fault(state, outcome, route, job.deployment, plan.spec)

    headers = quota_headers(state, job.deployment, plan.spec)
    if outcome is not None and outcome.kind == "malformed":
        if route == "aml" and job.schnell_accept is not None:
            return respond(200, b"this is not an image", headers, None, CONTENT_TYPES[job.schnell_accept])
        return respond(200, MALFORMED_BODY, headers, None)

    refused = (outcome is not None and outcome.kind == "refuse") or (
        route != "aml" and refused_by_words(state, plan.prompt)
    )
    if refused:
        job.record.notes.append("refused by the content filter")
        return _refusal(job, outcome, headers)

    result = await _render(job, _ending(outcome))
    if job.polling:
        return _start_polling(job, result, headers, outcome)
    if route == "bfl":
        return _bfl_answer(job, result, headers, outcome)
    if route.startswith("images/"):
        return _image_api_answer(job, result, headers, outcome)
    return _schnell_answer(job, result, headers, outcome)


async def _render(job: _Job, ending: ResultEnding) -> _Result:
    """The image, rendered off the event loop (none for an empty result), logged as the output."""
    plan = job.plan
    seed = plan.seed if plan.seed is not None else job.state.pick_seed()
    fmt: OutputFormat = job.schnell_accept or plan.output_format
    if job.route == "aml" and job.schnell_accept is None:
        fmt = "png"  # the emulator's JSON answer carries a PNG
    image = b""
    if ending is not ResultEnding.EMPTY:
        spec = plan.spec
        marker = asks_for_marker(plan.prompt, job.state.config.safety_marker_word)
        render_request = RenderRequest(spec.id, spec.display_name, plan.prompt, seed, plan.width, plan.height, fmt,
                                       plan.references, marker)
        image = await run_in_threadpool(render, render_request)
        job.record.output = {"width": plan.width, "height": plan.height, "format": fmt, "seed": seed}
    return _Result(image, fmt, seed, ending)


def _b64(image: bytes) -> str:
    return base64.b64encode(image).decode("ascii")


def _bfl_answer(job: _Job, result: _Result, headers: dict[str, str], outcome: Fault | None) -> Response:
    meta = request_meta(job.plan, job.plan.width, job.plan.height)
    if result.ending is ResultEnding.EMPTY and outcome is not None:
        return respond(200, bodies.empty_result(job.route, outcome, meta), headers, outcome)
    return respond(200, bodies.bfl_success(_b64(result.image), meta), headers, outcome)


def _image_api_answer(job: _Job, result: _Result, headers: dict[str, str], outcome: Fault | None) -> Response:
    if result.ending is ResultEnding.EMPTY and outcome is not None:
        return respond(200, bodies.empty_result(job.route, outcome, None), headers, outcome)
    if job.url_result:
        ttl = -1.0 if result.ending is ResultEnding.EXPIRED_URL else job.state.config.result_url_ttl_s
        url = _signed_url(job, result.image, result.fmt, time.time() + ttl)
        return respond(200, bodies.image_api_success(None, url), headers, outcome)
    return respond(200, bodies.image_api_success(_b64(result.image), None), headers, outcome)


def _schnell_answer(job: _Job, result: _Result, headers: dict[str, str], outcome: Fault | None) -> Response:
    """FLUX.1-schnell: raw bytes in the Accept format, or the emulator's JSON shape."""
    if job.schnell_accept is not None:
        return respond(200, result.image, headers, outcome, CONTENT_TYPES[result.fmt])
    payload = {
        "b64_json": None if result.ending is ResultEnding.EMPTY else _b64(result.image),
        "content_type": CONTENT_TYPES[result.fmt],
        "width": job.plan.width,
        "height": job.plan.height,
        "seed": result.seed,
    }
    return respond(200, payload, headers, outcome)


def _signed_url(job: _Job, image: bytes, fmt: OutputFormat, expires_at: float) -> str:
    results = job.state.results
    result_id = results.put(image, CONTENT_TYPES[fmt], EXTENSIONS[fmt], job.deployment, job.plan.spec.id)
    return str(job.request.base_url).rstrip("/") + results.signed_path(result_id, expires_at)


def _start_polling(job: _Job, result: _Result, headers: dict[str, str], outcome: Fault | None) -> Response:
    """The BFL-native answer: a task id and where to poll it (contract §2 [open])."""
    state, plan = job.state, job.plan
    result_id = (state.results.put(result.image, CONTENT_TYPES[result.fmt], EXTENSIONS[result.fmt], job.deployment,
                                   plan.spec.id)
                 if result.image else None)
    task = PollingTask(
        id=new_task_id(),
        deployment=job.deployment,
        model_id=plan.spec.id,
        prompt=plan.prompt,
        seed=result.seed,
        pending_polls=state.config.polling_pending_polls,
        result_id=result_id,
        ending=result.ending,
    )
    state.tasks.add(task)
    polling_url = f"{str(job.request.base_url).rstrip('/')}{POLLING_PATH}?id={task.id}"
    return respond(200, {"id": task.id, "polling_url": polling_url}, headers, outcome)


def _refusal(job: _Job, outcome: Fault | None, headers: dict[str, str]) -> Response:
    """The content filter's answer, in the route's shape and the configured (or fault's) style."""
    plan = job.plan
    refuse = outcome if outcome is not None and outcome.kind == "refuse" else None
    style = refuse.variant if refuse is not None and refuse.variant else job.state.config.refuse_style
    message = refuse.message if refuse is not None else None
    if job.polling:
        moderated = _Result(b"", plan.output_format, plan.seed, ResultEnding.MODERATED)
        return _start_polling(job, moderated, headers, None)
    if job.route == "aml":
        return respond(400, bodies.schnell_error(message or "The request was refused by a content filter."),
                       headers, None)
    if job.route == "bfl":
        if style == "finish_reason":
            return respond(200, bodies.bfl_filtered(request_meta(plan, 0, 0)), headers, None)
        return respond(400, bodies.bfl_refusal(message), headers, None)
    if style == "finish_reason":
        return respond(200, bodies.image_api_filtered(), headers, None)
    return respond(400, bodies.image_api_refusal(message), headers, None)
