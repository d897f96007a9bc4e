"""Inspection and control routes under ``/_emulator/``: loopback callers with the control token only.

    GET    /_emulator/requests        the request log, oldest first
    DELETE /_emulator/requests        clear it
    GET    /_emulator/faults          armed faults by key, with counts left
    PUT    /_emulator/faults          replace all: {"<key>": [<fault>, ...], ...}
    PUT    /_emulator/faults/{key}    replace one key's list: [<fault>, ...]
    DELETE /_emulator/faults          disarm everything
    GET    /_emulator/quotas          each deployment's quota and requests it would take now
    POST   /_emulator/reset           clear faults, log, quota windows and pending results
    POST   /_emulator/rotate-key      {"key"?: str, "target"?: "foundry"|"schnell"|"both"}
    GET    /_emulator/config          the run-time switches (never the keys)
    PATCH  /_emulator/config          change run-time switches

Loopback is not a boundary on a shared machine (any local user can reach the port), and these
routes hand out every prompt and can rotate the key the app relies on. So each one wants the
config's ``control_token`` in the ``X-Emulator-Control-Token`` header (compared in constant
time) unless the config sets ``open_controls``, as the standalone emulator does by default.
The embedded emulator's token never leaves the process: its owner calls the
:class:`~flux_ui.emulator.runner.Emulator` methods instead.

Keys never appear in these answers, except a key the emulator generated on ``rotate-key``
(the caller needs it; one it supplied is not echoed).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flux_ui.emulator.config import Fault
from flux_ui.emulator.state import EmulatorState
from flux_ui.hosts import LOOPBACK_NAMES

CONTROL_TOKEN_HEADER = "X-Emulator-Control-Token"

ControlHandler = Callable[[Request, EmulatorState], Awaitable[Response]]


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": str(status), "message": message}}, status)


def _token_ok(request: Request, state: EmulatorState) -> bool:
    """Open controls, or the configured token; compare_digest so timing does not spell it out."""
    if state.config.open_controls:
        return True
    given = request.headers.get(CONTROL_TOKEN_HEADER, "")
    return hmac.compare_digest(given.encode(), state.config.control_token.encode())


def _refusal(request: Request, state: EmulatorState) -> JSONResponse | None:
    host = request.client.host if request.client else ""
    if host not in LOOPBACK_NAMES:
        return _problem(403, "the emulator's control routes answer loopback callers only")
    if not _token_ok(request, state):
        return _problem(401, f"the emulator's control routes need its control token in {CONTROL_TOKEN_HEADER}")
    return None


def _guarded(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    """A control endpoint that answers only its owner: loopback and, unless open, the token."""

    async def endpoint(request: Request) -> Response:
        state: EmulatorState = request.app.state.emulator
        return _refusal(request, state) or await handler(request, state)

    return endpoint


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None


def _faults_from(data: Any) -> list[Fault]:
    if not isinstance(data, list):
        raise ValueError("a key's faults must be a JSON list of fault objects")
    return [Fault.from_json(item) for item in data]


async def get_requests(request: Request, state: EmulatorState) -> Response:
    return JSONResponse(state.log.entries())


async def clear_requests(request: Request, state: EmulatorState) -> Response:
    state.log.clear()
    return Response(status_code=204)


async def get_faults(request: Request, state: EmulatorState) -> Response:
    return JSONResponse(state.faults.snapshot())


async def put_faults(request: Request, state: EmulatorState) -> Response:
    try:
        data = await _json(request)
        if not isinstance(data, dict):
            raise ValueError('send {"<deployment, model ID or *>": [<fault>, ...]}')
        faults = {str(key): _faults_from(items) for key, items in data.items()}
    except (ValueError, TypeError) as exc:
        return _problem(400, str(exc))
    state.faults.replace_all(faults)
    return JSONResponse(state.faults.snapshot())


async def put_key_faults(request: Request, state: EmulatorState) -> Response:
    try:
        faults = _faults_from(await _json(request))
    except (ValueError, TypeError) as exc:
        return _problem(400, str(exc))
    state.faults.set(request.path_params["key"], faults)
    return JSONResponse(state.faults.snapshot())


async def clear_faults(request: Request, state: EmulatorState) -> Response:
    state.faults.clear()
    return Response(status_code=204)


async def get_quotas(request: Request, state: EmulatorState) -> Response:
    return JSONResponse(state.quotas.status(state.all_deployments()))


async def reset(request: Request, state: EmulatorState) -> Response:
    state.reset()
    return Response(status_code=204)


async def rotate_key(request: Request, state: EmulatorState) -> Response:
    try:
        data = await _json(request) or {}
        if not isinstance(data, dict):
            raise ValueError('send {"key": "<new key>"} or nothing to generate one')
        key = data.get("key")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise ValueError("key must be a non-empty string")
        new_key = state.rotate_key(key, str(data.get("target", "foundry")))
    except ValueError as exc:
        return _problem(400, str(exc))
    answer: dict[str, Any] = {"rotated": data.get("target", "foundry")}
    if key is None:
        answer["key"] = new_key
    return JSONResponse(answer)


async def get_config(request: Request, state: EmulatorState) -> Response:
    return JSONResponse(state.switches())


async def patch_config(request: Request, state: EmulatorState) -> Response:
    try:
        data = await _json(request)
        if not isinstance(data, dict):
            raise ValueError("send a JSON object of switches to change")
        return JSONResponse(state.configure(data))
    except (ValueError, TypeError) as exc:
        return _problem(400, str(exc))


def control_routes() -> list[Route]:
    return [
        Route("/_emulator/requests", _guarded(get_requests), methods=["GET"]),
        Route("/_emulator/requests", _guarded(clear_requests), methods=["DELETE"]),
        Route("/_emulator/faults", _guarded(get_faults), methods=["GET"]),
        Route("/_emulator/faults", _guarded(put_faults), methods=["PUT"]),
        Route("/_emulator/faults", _guarded(clear_faults), methods=["DELETE"]),
        Route("/_emulator/faults/{key}", _guarded(put_key_faults), methods=["PUT"]),
        Route("/_emulator/quotas", _guarded(get_quotas), methods=["GET"]),
        Route("/_emulator/reset", _guarded(reset), methods=["POST"]),
        Route("/_emulator/rotate-key", _guarded(rotate_key), methods=["POST"]),
        Route("/_emulator/config", _guarded(get_config), methods=["GET"]),
        Route("/_emulator/config", _guarded(patch_config), methods=["PATCH"]),
    ]
