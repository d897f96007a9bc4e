"""Models on an Azure ML endpoint of their own, as FLUX.1-schnell (contract §4): ``POST /score``, ``GET /``.

Each such model in the registry is an endpoint of its own at ``/endpoints/<model ID>/score``
(``flux_ui.hosts.emulator_endpoint_path``); ``/score`` is the first one's.

The endpoint runs the Azure ML inference toolkit in front of a diffusers pipeline; it answers
JSON, or the image's bytes when ``Accept`` asks for an image type.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from flux_ui.emulator import bodies, pipeline
from flux_ui.emulator.auth import AZURE_ML_AUDIENCES, authenticate
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.gates import json_body, quota_gate
from flux_ui.emulator.render import CONTENT_TYPES, OutputFormat
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.state import EmulatorState
from flux_ui.emulator.validation.aml import validate_endpoint


def schnell_accept(header: str | None) -> OutputFormat | None:
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
    spec = state.endpoint_model(request.path_params.get("model"))
    if spec is None:
        raise ApiError(404, bodies.schnell_error(f"No endpoint serves {request.url.path}."))
    record.deployment = record.model = spec.id
    body = await json_body(request, "aml")
    if isinstance(body, dict):
        record.prompt = body.get("inputs") if isinstance(body.get("inputs"), str) else None
        params = body.get("parameters")
        record.params = dict(params) if isinstance(params, dict) else {}
    accept = schnell_accept(request.headers.get("accept"))
    quota_gate(state, spec.id, spec, "aml")
    plan = validate_endpoint(spec, body, square_only=state.config.schnell_square_only)
    return await pipeline.generate(request, state, record, plan, "aml", spec.id, schnell_accept=accept)


async def health(request: Request) -> Response:
    """The toolkit's liveness answer."""
    return PlainTextResponse("Ok")
