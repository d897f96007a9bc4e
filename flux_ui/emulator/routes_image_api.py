"""The Image API (contract §3): ``images/generations`` and ``images/edits``, by deployment path or body ``model``.

``POST /openai/deployments/<name>/images/{generations,edits}`` names the deployment in the
path; ``POST /openai/images/{generations,edits}`` in the body's ``model``. Generations take
JSON, edits multipart with the reference images as ``image`` (or ``image[]``) file parts.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flux_ui.emulator import bodies, pipeline
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.gates import (
    Handler,
    authenticate_foundry,
    json_body,
    multipart_body,
    quota_gate,
    references,
    require_api_version,
)
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.state import EmulatorState
from flux_ui.emulator.validation.image_api import validate_image_api


async def _fields(request: Request, operation: str) -> tuple[dict[str, Any], list[tuple[int, str, bytes]]]:
    """The request's fields, and its image files for an edit."""
    if operation == "edits":
        return await multipart_body(request)
    body = await json_body(request, "images")
    if not isinstance(body, dict):
        raise ApiError(400, bodies.azure_error("BadRequest", "The request body must be a JSON object."))
    return body, []


def images_handler(operation: str) -> Handler:
    """The handler for one operation, ``generations`` or ``edits``."""

    async def handle(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
        authenticate_foundry(request, state, record)
        require_api_version(request)
        fields, files = await _fields(request, operation)
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
        quota_gate(state, name, spec, route)
        decoded = await references(files, route, from_bytes=True)
        record.references = [r.log_entry() for r in decoded]
        plan = validate_image_api(spec, operation, fields, decoded)
        return await pipeline.generate(request, state, record, plan, route, name)

    return handle
