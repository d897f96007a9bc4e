"""Inspection and control routes under ``/_emulator/``: no key needed, loopback callers only.

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

Keys never appear in these answers, except a key the emulator generated on ``rotate-key``
(the caller needs it; one it supplied is not echoed).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flux_ui.emulator.config import Fault
from flux_ui.emulator.state import EmulatorState

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

ControlHandler = Callable[[Request, EmulatorState], Awaitable[Response]]


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": str(status), "message": message}}, status)


def _loopback_only(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK_HOSTS:
            return _problem(403, "the emulator's control routes answer loopback callers only")
        return await handler(request, request.app.state.emulator)

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
        Route("/_emulator/requests", _loopback_only(get_requests), methods=["GET"]),
        Route("/_emulator/requests", _loopback_only(clear_requests), methods=["DELETE"]),
        Route("/_emulator/faults", _loopback_only(get_faults), methods=["GET"]),
        Route("/_emulator/faults", _loopback_only(put_faults), methods=["PUT"]),
        Route("/_emulator/faults", _loopback_only(clear_faults), methods=["DELETE"]),
        Route("/_emulator/faults/{key}", _loopback_only(put_key_faults), methods=["PUT"]),
        Route("/_emulator/quotas", _loopback_only(get_quotas), methods=["GET"]),
        Route("/_emulator/reset", _loopback_only(reset), methods=["POST"]),
        Route("/_emulator/rotate-key", _loopback_only(rotate_key), methods=["POST"]),
        Route("/_emulator/config", _loopback_only(get_config), methods=["GET"]),
        Route("/_emulator/config", _loopback_only(patch_config), methods=["PATCH"]),
    ]
