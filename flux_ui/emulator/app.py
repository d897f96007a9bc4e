"""The emulator's Starlette app: one server, one base URL, the route table of every route the client can take.

- ``POST /providers/blackforestlabs/v1/<path>``: the BFL provider route (contract §2;
  :mod:`flux_ui.emulator.routes_bfl`)
- ``POST /openai/deployments/<name>/images/{generations,edits}`` and
  ``POST /openai/images/{generations,edits}`` with ``model`` in the body: the Image API (§3;
  :mod:`flux_ui.emulator.routes_image_api`)
- ``POST /score`` (and ``/endpoints/<model>/score``), ``GET /``, ``GET /health``: models on an Azure ML endpoint (§4;
  :mod:`flux_ui.emulator.routes_aml`)
- ``GET /v1/get_result?id=``: BFL-style polling, when ``bfl_style="polling"``
- ``POST /contentsafety/text:analyze`` and ``/contentsafety/image:analyze``: Azure AI Content Safety
  (:mod:`flux_ui.emulator.content_safety`)
- ``GET /_emulator/delivery/<id>.<ext>``: signed result downloads
  (:mod:`flux_ui.emulator.routes_delivery`)
- ``/_emulator/...``: inspection and control (see :mod:`flux_ui.emulator.control`)

Every answer, error or not, lands in the request log; paths no route serves too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flux_ui.emulator import bodies
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.config import EmulatorConfig
from flux_ui.emulator.content_safety import image_analyze, text_analyze
from flux_ui.emulator.control import control_routes
from flux_ui.emulator.delivery import POLLING_PATH
from flux_ui.emulator.faults import hide_injected_drops_from_uvicorn_log
from flux_ui.emulator.gates import Handler, state_of
from flux_ui.emulator.pipeline import json_bytes
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.routes_aml import health, schnell_score
from flux_ui.emulator.routes_bfl import bfl_generate, poll_result
from flux_ui.emulator.routes_delivery import deliver
from flux_ui.emulator.routes_image_api import images_handler
from flux_ui.emulator.state import EmulatorState
from flux_ui.hosts import emulator_endpoint_path


def _error_response(err: ApiError) -> Response:
    if isinstance(err.body, bytes):
        return Response(err.body, err.status, err.headers, media_type="application/xml")
    return Response(json_bytes(err.body), err.status, err.headers, media_type="application/json")


def logged(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler so every answer, error or not, lands in the request log."""

    async def endpoint(request: Request) -> Response:
        state = state_of(request)
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


async def _unmatched(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    state = state_of(request)
    record = RequestRecord(route="other", path=request.url.path, status=status)
    record.notes.append(f"no route serves {request.method} {request.url.path}")
    state.log.add(record)
    body = bodies.resource_not_found() if status == 404 else bodies.azure_error(str(status), "Method not allowed")
    return Response(json_bytes(body), status, media_type="application/json")


def routes() -> list[Route]:
    """The route table: every route the client can take, then the control routes."""
    return [
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
        Route(emulator_endpoint_path("{model}"), logged("aml", schnell_score), methods=["POST"]),
        Route(POLLING_PATH, logged("poll", poll_result), methods=["GET"]),
        Route("/contentsafety/text:analyze", logged("text:analyze", text_analyze), methods=["POST"]),
        Route("/contentsafety/image:analyze", logged("image:analyze", image_analyze), methods=["POST"]),
        Route("/_emulator/delivery/{name}", logged("delivery", deliver), methods=["GET"]),
        *control_routes(),
    ]


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = EmulatorState(config or EmulatorConfig())
    hide_injected_drops_from_uvicorn_log()
    app = Starlette(routes=routes(), exception_handlers={404: _unmatched, 405: _unmatched})
    app.state.emulator = state
    return app
