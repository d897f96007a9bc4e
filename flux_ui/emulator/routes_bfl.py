"""The BFL provider route (contract §2): ``POST /providers/blackforestlabs/v1/<path>`` and its polling.

The path names the model and the body's ``model`` the deployment; when ``bfl_style="polling"``
the answer is a task to poll at ``GET /v1/get_result?id=`` instead of the image.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flux_ui.emulator import bodies, pipeline
from flux_ui.emulator.auth import authenticate
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.delivery import PollingTask, ResultEnding, TaskStatus
from flux_ui.emulator.gates import (
    authenticate_foundry,
    json_body,
    play_faults,
    quota_gate,
    references,
    require_api_version,
    status_fault,
)
from flux_ui.emulator.pipeline import MALFORMED_BODY, respond
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.state import EmulatorState
from flux_ui.emulator.validation.bfl import REFERENCE_FIELD, bfl_reference_fields, validate_bfl
from flux_ui.registry import MODELS


async def bfl_generate(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    authenticate_foundry(request, state, record)
    require_api_version(request)
    spec = MODELS.by_bfl_path(request.path_params["path"])
    if spec is None:
        raise ApiError(404, bodies.resource_not_found())
    body = await json_body(request, "bfl")
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
                  if MODELS.by_bfl_path(name) else f"The route {spec.bfl_path} serves deployments of {spec.id}.")
        raise ApiError(404, bodies.deployment_not_found(name, detail))
    record.model = spec.id
    quota_gate(state, name, spec, "bfl")
    fields = bfl_reference_fields(spec, body)
    decoded = await references(fields, "bfl", from_bytes=False)
    record.references = [r.log_entry() for r in decoded]
    plan = validate_bfl(spec, body, decoded)
    return await pipeline.generate(request, state, record, plan, "bfl", name)


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
        return respond(200, {"id": task_id, "status": "Task not found", "result": None}, {}, None)
    task, status = polled
    record.deployment, record.model, record.prompt = task.deployment, task.model_id, task.prompt
    spec = MODELS[task.model_id]
    outcome = await play_faults(state, record, task.deployment, task.model_id, "poll")
    if outcome is not None and outcome.kind == "status":
        raise status_fault(state, outcome, "poll", task.deployment, spec)
    if outcome is not None and outcome.kind == "malformed":
        return respond(200, MALFORMED_BODY, {}, None)
    payload = _poll_payload(request, state, task, status)
    return respond(200, payload, {}, outcome if outcome is not None and outcome.kind in ("drop", "trickle") else None)


def _poll_payload(request: Request, state: EmulatorState, task: PollingTask, status: TaskStatus) -> dict[str, Any]:
    """A poll's answer in BFL's shape: progress while Pending, then the result or the moderation."""
    payload: dict[str, Any] = {"id": task.id, "status": status, "result": None, "progress": None, "details": None}
    if status == "Pending":
        payload["progress"] = round(task.polls / (task.pending_polls + 1), 2)
    elif status == "Request Moderated":
        payload["details"] = {"moderation_reasons": ["BingBlockList_Prompt"]}
    else:
        result: dict[str, Any] = {"seed": task.seed, "prompt": task.prompt, "start_time": round(task.created, 3),
                                  "end_time": round(task.ready_at or task.created, 3)}
        if task.result_id and task.ending is not ResultEnding.EMPTY:
            path = state.results.signed_path(task.result_id, task.sample_expires_at or time.time())
            result["sample"] = str(request.base_url).rstrip("/") + path
        payload["result"] = result
    return payload
