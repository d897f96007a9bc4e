"""Signed result downloads: ``GET /_emulator/delivery/<id>.<ext>``, the links polling and ``url`` results hand out.

A link carries its expiry in ``se`` and an HMAC in ``sig`` (see :mod:`flux_ui.emulator.delivery`);
a bad one is refused as Azure Blob Storage refuses it, with a 403 in XML.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flux_ui.emulator import bodies
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.gates import play_faults
from flux_ui.emulator.pipeline import respond
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.state import EmulatorState


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
    outcome = await play_faults(state, record, stored.deployment, stored.model_id, "delivery")
    if outcome is not None and outcome.kind == "status":
        code = "ServerBusy" if outcome.status == 503 else "InternalError"
        raise ApiError(outcome.status, bodies.blob_error(code, outcome.message or f"Injected {outcome.status}."))
    data = b"" if outcome is not None and outcome.kind == "empty" else stored.data
    transport = outcome if outcome is not None and outcome.kind in ("drop", "trickle") else None
    return respond(200, data, {}, transport, stored.content_type)
