"""Azure AI Content Safety's two analysis routes, as the emulator plays them, with deterministic verdicts.

    POST /contentsafety/text:analyze?api-version=2024-09-01
    POST /contentsafety/image:analyze?api-version=2024-09-01

Request and answer shapes are the service's (``{"text", "categories", "blocklistNames",
"haltOnBlocklistHit", "outputType"}`` → ``{"blocklistsMatch", "categoriesAnalysis"}``; ``{"image":
{"content"}, ...}`` → ``{"categoriesAnalysis"}``), and so are its limits: 10,000 characters of
text; images of 50 to 7,200 px a side and at most 4 MB, in a format it reads; errors as
``{"error": {"code", "message"}}`` with ``x-ms-error-code``. Verdicts come from the config:
``safety_words`` in a text, the blocklists' terms, and the marker (:mod:`.safety_marker`) in an
image. Only ``api-version=2024-09-01`` is served. The key goes in ``Ocp-Apim-Subscription-Key``
(``content_safety_key``, else the Foundry key); an Entra token as Bearer, checked as elsewhere.
Faults armed with ``routes=("text:analyze", "image:analyze")`` (:func:`safety_fault`) play here;
every call lands in the request log as route ``text:analyze`` or ``image:analyze``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import uuid
from typing import Any

from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from flux_ui.emulator import bodies
from flux_ui.emulator.auth import _key_matches, entra_token_problem
from flux_ui.emulator.bodies import ApiError
from flux_ui.emulator.config import SAFETY_CATEGORIES, Fault
from flux_ui.emulator.faults import DroppedResponse, TrickleResponse
from flux_ui.emulator.requestlog import RequestRecord
from flux_ui.emulator.safety_marker import has_marker
from flux_ui.emulator.state import EmulatorState

API_VERSION = "2024-09-01"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
ROUTES = ("text:analyze", "image:analyze")
#: The fault key a drill may use for Content Safety alone ("*" works too, with the routes named).
FAULT_KEY = "content-safety"
TEXT_LIMIT = 10_000
IMAGE_MAX_BYTES = 4 * 1024 * 1024
IMAGE_MIN_SIDE, IMAGE_MAX_SIDE = 50, 7_200
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
OUTPUT_TYPES = ("FourSeverityLevels", "EightSeverityLevels")
_CODES = {400: "InvalidRequestBody", 401: "401", 403: "Forbidden", 404: "ResourceNotFound",
          429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
_MALFORMED = b'{"categoriesAnalysis": [{"category": "Hate", "sev'


def safety_fault(kind: str, **fields: Any) -> Fault:
    """A fault on both Content Safety routes (``routes`` in ``fields`` narrows it)."""
    return Fault(kind, **{"routes": ROUTES, **fields})  # type: ignore[arg-type]


def cs_error(status: int, message: str, inner: str | None = None, headers: dict[str, str] | None = None) -> ApiError:
    code = _CODES.get(status, "InternalError" if status >= 500 else "InvalidRequest")
    error: dict[str, Any] = {"code": code, "message": message, "details": []}
    if inner:
        error["innererror"] = {"code": inner, "message": message}
    return ApiError(status, {"error": error}, {"x-ms-error-code": inner or code, **(headers or {})})


def authenticate_content_safety(request: Request, state: EmulatorState, record: RequestRecord) -> None:
    """The key in Ocp-Apim-Subscription-Key, or an Entra token as Bearer; a key as Bearer is refused."""
    headers = request.headers
    if KEY_HEADER in headers:
        ok = _key_matches(headers[KEY_HEADER].strip(), state.content_safety_keys())
        record.auth = "subscription-key" if ok else "bad"
        if not ok:
            raise ApiError(401, bodies.unauthorized(f"the {KEY_HEADER} header does not hold a valid key"))
        return
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if not token:
        record.auth = "none"
        raise ApiError(401, bodies.unauthorized(f"no {KEY_HEADER} header and no Entra token"))
    problem = "Entra ID is off" if not state.config.accept_entra else entra_token_problem(token.strip(), (
        "https://cognitiveservices.azure.com", "https://cognitiveservices.azure.com/"))
    if scheme.lower() != "bearer" or problem:
        record.auth = "bad"
        raise ApiError(401, bodies.unauthorized(problem or "the Authorization header is not 'Bearer <token>'"))
    record.auth = "entra"


def require_api_version(request: Request) -> None:
    version = request.query_params.get("api-version")
    if not version:
        raise cs_error(404, "Resource not found: the api-version query parameter is missing; add "
                            f"?api-version={API_VERSION}.")
    if version != API_VERSION:
        raise cs_error(400, f"The API version {version[:40]!r} is not served by the emulator; use "
                            f"api-version={API_VERSION}.", "UnsupportedApiVersion")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise cs_error(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise cs_error(400, "The request body must be a JSON object.")
    return body


def _categories(body: dict[str, Any]) -> list[str]:
    asked = body.get("categories")
    if asked is None:
        return list(SAFETY_CATEGORIES)
    if not isinstance(asked, list) or any(c not in SAFETY_CATEGORIES for c in asked):
        raise cs_error(400, f"categories must be a list of {', '.join(SAFETY_CATEGORIES)}.")
    return list(dict.fromkeys(asked))


def _output_type(body: dict[str, Any], allowed: tuple[str, ...]) -> str:
    output = body.get("outputType", "FourSeverityLevels")
    if output not in allowed:
        raise cs_error(400, f"outputType must be one of {', '.join(allowed)}.")
    return str(output)


def _analysis(found: dict[str, int], categories: list[str], output: str) -> list[dict[str, Any]]:
    def level(severity: int) -> int:
        return severity if output == "EightSeverityLevels" else min(6, severity - severity % 2)

    return [{"category": c, "severity": level(found.get(c, 0))} for c in categories]


async def _play_faults(state: EmulatorState, record: RequestRecord, route: str) -> Fault | None:
    """Latency waited out, a status raised; a transport fault (drop, trickle, malformed, empty) returned."""
    draw = state.faults.draw(FAULT_KEY, FAULT_KEY, route)
    record.fault = draw.label
    if draw.latency_s > 0:
        await asyncio.sleep(draw.latency_s)
    fault = draw.outcome
    if fault is not None and fault.kind == "status":
        headers = {}
        if fault.status == 429 and (fault.retry_after if fault.retry_after is not None
                                    else state.config.retry_after_header):
            headers = {"Retry-After": f"{fault.retry_after_s if fault.retry_after_s is not None else 1.0:g}"}
        raise cs_error(fault.status, fault.message or f"Injected {fault.status}.", headers=headers)
    return fault


def _respond(payload: dict[str, Any], fault: Fault | None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    if fault is not None and fault.kind == "drop":
        return DroppedResponse(body, 200, media_type="application/json")
    if fault is not None and fault.kind == "trickle":
        return TrickleResponse(body, 200, media_type="application/json", seconds=fault.seconds)
    if fault is not None and fault.kind == "malformed":
        return Response(_MALFORMED, 200, media_type="application/json")
    if fault is not None and fault.kind == "empty":
        return Response(b"{}", 200, media_type="application/json")
    return Response(body, 200, media_type="application/json")


def _blocklist_hits(state: EmulatorState, text: str, names: list[str]) -> list[dict[str, str]]:
    lists = state.config.safety_blocklists
    missing = [n for n in names if n not in lists]
    if missing:
        raise cs_error(404, f"The blocklist {missing[0]!r} does not exist.", "BlocklistNotFound")
    folded = text.casefold()
    return [{"blocklistName": name, "blocklistItemId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{term}")),
             "blocklistItemText": term}
            for name in names for term in lists[name] if term and term.casefold() in folded]


async def text_analyze(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    authenticate_content_safety(request, state, record)
    require_api_version(request)
    body = await _json(request)
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise cs_error(400, "text is required and must be a non-empty string.")
    record.prompt = text
    if len(text) > TEXT_LIMIT:
        raise cs_error(400, f"The text is {len(text):,} characters long; the most is {TEXT_LIMIT:,}.", "TextTooLong")
    categories, output = _categories(body), _output_type(body, OUTPUT_TYPES)
    names = body.get("blocklistNames") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise cs_error(400, "blocklistNames must be a list of names.")
    record.params = {k: body[k] for k in ("categories", "blocklistNames", "haltOnBlocklistHit", "outputType")
                     if k in body}
    fault = await _play_faults(state, record, "text:analyze")
    hits = _blocklist_hits(state, text, names)
    folded, found = text.casefold(), {}
    for word, (category, severity) in state.config.safety_words.items():
        if word and word.casefold() in folded:
            found[category] = max(found.get(category, 0), severity)
    halted = bool(hits) and body.get("haltOnBlocklistHit") is True
    payload = {"blocklistsMatch": hits, "categoriesAnalysis": [] if halted else _analysis(found, categories, output)}
    record.output = payload
    return _respond(payload, fault)


def _decode_image(content: Any) -> Image.Image:
    if not isinstance(content, str):
        raise cs_error(400, "image.content must be a base64 string.")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise cs_error(400, "image.content is not valid base64.", "InvalidImage") from None
    if len(data) > IMAGE_MAX_BYTES:
        raise cs_error(400, f"The image is {len(data):,} bytes; the most is {IMAGE_MAX_BYTES:,}.", "InvalidImageSize")
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Exception:
        raise cs_error(400, "The image is not in a format Content Safety reads (JPEG, PNG, GIF, BMP, TIFF, WEBP).",
                       "InvalidImageFormat") from None
    w, h = img.size
    if min(w, h) < IMAGE_MIN_SIDE or max(w, h) > IMAGE_MAX_SIDE:
        raise cs_error(400, f"The image is {w}×{h} px; each side must be {IMAGE_MIN_SIDE} to {IMAGE_MAX_SIDE} px.",
                       "InvalidImageSize")
    img.load()
    return img


async def image_analyze(request: Request, state: EmulatorState, record: RequestRecord) -> Response:
    authenticate_content_safety(request, state, record)
    require_api_version(request)
    body = await _json(request)
    image = body.get("image")
    if not isinstance(image, dict) or "content" not in image:
        raise cs_error(400, "image.content is required (the emulator does not fetch blobUrl).")
    categories, output = _categories(body), _output_type(body, OUTPUT_TYPES[:1])
    record.params = {k: body[k] for k in ("categories", "outputType") if k in body}
    img = await run_in_threadpool(_decode_image, image["content"])
    fault = await _play_faults(state, record, "image:analyze")
    marked = await run_in_threadpool(has_marker, img)
    category, severity = state.config.safety_marker_verdict
    payload = {"categoriesAnalysis": _analysis({category: severity} if marked else {}, categories, output)}
    record.output = {"width": img.width, "height": img.height, "format": img.format, "marker": marked, **payload}
    return _respond(payload, fault)
