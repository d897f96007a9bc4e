"""The Content Safety client: text:analyze and image:analyze over REST, answers read, failures typed.

REST over httpx rather than the ``azure-ai-contentsafety`` package (1.0.0 on PyPI): flux-ui is
async throughout and its every HTTP peer is httpx, so the same transports, timeouts and tests
apply (the emulator on loopback, no mocks), and the same credentials (:mod:`flux_ui.client.auth`'s
Entra tokens, cached and refreshed). The SDK's async client would bring azure-core's aiohttp
transport and its own retry and logging policies, whose log lines flux-ui would have to redact
again, and its 1.0.0 calls an older api-version. Two POSTs of small JSON do not need it.

    POST {endpoint}/contentsafety/text:analyze?api-version=2024-09-01
         {"text", "categories", "blocklistNames", "haltOnBlocklistHit", "outputType"}
    POST {endpoint}/contentsafety/image:analyze?api-version=2024-09-01
         {"image": {"content": <base64>}, "categories", "outputType"}
    → {"categoriesAnalysis": [{"category", "severity"}], "blocklistsMatch": [...]}

The key goes in ``Ocp-Apim-Subscription-Key``; an Entra token as ``Authorization: Bearer``. Text
longer than the API's 10,000 characters is checked in parts (:func:`split_text`). A 429 or 5xx is
tried once more after a short wait; every failure is a :class:`~flux_ui.errors.SafetyUnavailableError`
that names the problem and the fix. Whether that refuses is not this module's call.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx

from flux_ui.client.auth import Auth, EntraAuth, TokenCredential
from flux_ui.client.retry import parse_retry_after
from flux_ui.errors import (
    AuthenticationError,
    SafetyConnectionError,
    SafetyStatusError,
    SafetyTimeoutError,
    SafetyUnavailableError,
)
from flux_ui.safety.images import AnalysisImage, fit_for_analysis
from flux_ui.safety.verdict import Analysis, merge, read_analysis
from flux_ui.secrets import Secret
from flux_ui.settings_safety import CATEGORIES, SafetySettings

log = logging.getLogger("flux_ui.safety")

API_VERSION = "2024-09-01"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
#: The text API's limit, in Unicode code points (a Python str's length).
TEXT_LIMIT = 10_000
#: A part ends at the last whitespace within this many characters of the limit...
_BREAK_WINDOW = 1_000
#: ...and where there is none, the next part starts this far back, so a term cut in two is whole in one.
OVERLAP = 200
TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The longest wait flux-ui spends before its one retry; a longer Retry-After fails at once.
MAX_RETRY_WAIT_S = 5.0
DEFAULT_RETRY_WAIT_S = 0.5


def split_text(text: str, limit: int = TEXT_LIMIT, overlap: int = OVERLAP) -> list[str]:
    """``text`` in parts of at most ``limit`` characters that together hold every term whole."""
    parts: list[str] = []
    start, overlap = 0, min(overlap, limit // 2)
    while len(text) - start > limit:
        end = start + limit
        cut = max(text.rfind(c, max(start + 1, end - _BREAK_WINDOW), end) for c in (" ", "\n", "\t"))
        if cut > start:
            parts.append(text[start:cut])
            start = cut + 1
        else:
            parts.append(text[start:end])
            start = end - overlap
    parts.append(text[start:])
    return parts


class SubscriptionKeyAuth:
    """A Content Safety key, as ``Ocp-Apim-Subscription-Key``."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    async def headers(self) -> dict[str, str]:
        return {KEY_HEADER: self._key.reveal()}

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"SubscriptionKeyAuth(key={self._key!r})"


class SafetyClient:
    """One client per running flux-ui; close with :meth:`aclose`."""

    def __init__(self, settings: SafetySettings, *, transport: httpx.AsyncBaseTransport | None = None,
                 credential: TokenCredential | None = None, timeout_s: float = TIMEOUT_S,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        if not settings.enabled or not settings.endpoint:
            raise ValueError("SafetyClient needs safety settings with an endpoint")
        self.settings = settings
        self._base = settings.endpoint.rstrip("/")
        self._host = urlparse(self._base).netloc
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._auth: Auth = SubscriptionKeyAuth(settings.key) if settings.key else EntraAuth(credential)
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False,
                                       timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)))

    async def analyze_text(self, text: str) -> tuple[Analysis, int]:
        """Every part's analysis as one, and how many parts; stops at the first part that blocks."""
        if not text.strip():
            return Analysis(()), 0  # nothing to judge (the text API refuses empty text)
        analyses = []
        parts = split_text(text)
        body: dict[str, Any] = {"categories": list(CATEGORIES), "outputType": "FourSeverityLevels"}
        if self.settings.blocklists:
            body |= {"blocklistNames": list(self.settings.blocklists), "haltOnBlocklistHit": False}
        for part in parts:
            analysis = read_or_fail(await self._post("text:analyze", {"text": part, **body}))
            analyses.append(analysis)
            if analysis.blocklist_hits or any(s.severity > self.settings.limit(s.category)
                                              for s in analysis.categories):
                break
        return merge(analyses), len(analyses)

    async def analyze_image(self, data: bytes) -> tuple[Analysis, AnalysisImage]:
        """The analysis of ``data`` as brought within the API's limits (what was sent is returned too)."""
        try:
            fitted = await asyncio.to_thread(fit_for_analysis, data)
        except ValueError as exc:
            raise SafetyUnavailableError(f"flux-ui could not prepare the image for Content Safety: {exc}.") from None
        content = base64.b64encode(fitted.data).decode("ascii")
        body = {"image": {"content": content}, "categories": list(CATEGORIES), "outputType": "FourSeverityLevels"}
        return read_or_fail(await self._post("image:analyze", body)), fitted

    async def _post(self, operation: str, body: dict[str, Any]) -> Any:
        url = f"{self._base}/contentsafety/{operation}"
        retried = refreshed = False
        while True:
            response = await self._send(url, body)
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError:
                    raise SafetyUnavailableError(f"Content Safety's answer to {operation} is not JSON. "
                                                 f"{_TRY_LATER}", status=200) from None
            if response.status_code == 401 and not refreshed and self._auth.invalidate():
                refreshed = True
                continue
            wait = self._retry_wait(response)
            if wait is None or retried:
                raise status_error(operation, response, self._host)
            retried = True
            log.info("content safety %s answered %s; trying once more in %.1f s", operation,
                     response.status_code, wait)
            await self._sleep(wait)

    async def _send(self, url: str, body: dict[str, Any]) -> httpx.Response:
        try:
            headers = await self._auth.headers()
        except AuthenticationError as err:
            raise SafetyUnavailableError(entra_message(str(err))) from None
        try:
            return await self._http.post(url, params={"api-version": API_VERSION}, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise SafetyConnectionError(f"Could not connect to Content Safety at {self._host} "
                                        f"({type(exc).__name__}). Check CONTENT_SAFETY_ENDPOINT and this "
                                        "machine's network.") from None
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise SafetyTimeoutError(f"Content Safety at {self._host} did not answer within {self._timeout_s:g} s "
                                     f"({type(exc).__name__}). {_TRY_LATER}") from None
        except httpx.TransportError as exc:
            raise SafetyConnectionError(f"The connection to Content Safety at {self._host} dropped "
                                        f"({type(exc).__name__}). {_TRY_LATER}") from None

    def _retry_wait(self, response: httpx.Response) -> float | None:
        if response.status_code not in RETRY_STATUSES:
            return None
        asked = parse_retry_after(response.headers)
        wait = DEFAULT_RETRY_WAIT_S if asked is None else asked
        return wait if wait <= MAX_RETRY_WAIT_S else None

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"SafetyClient({self._host}, auth={self._auth!r})"


_TRY_LATER = "Try again in a moment; if it keeps happening, check the resource's health in the Azure portal."


def read_or_fail(body: Any) -> Analysis:
    try:
        return read_analysis(body)
    except ValueError as exc:
        raise SafetyUnavailableError(f"Content Safety's answer could not be read: {exc}. {_TRY_LATER}",
                                     status=200) from None


def _error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """The answer's error code and message (clipped), from Azure's ``{"error": {"code", "message"}}``."""
    code = response.headers.get("x-ms-error-code")
    try:
        error = response.json().get("error") or {}
        code = str(error.get("code") or code or "") or None
        inner = error.get("innererror") or {}
        code = str(inner.get("code")) if isinstance(inner, dict) and inner.get("code") else code
        message = str(error.get("message") or "")
    except (ValueError, AttributeError):
        message = response.text
    message = " ".join(message.split())
    return code, message[:300] + ("…" if len(message) > 300 else "")


def status_error(operation: str, response: httpx.Response, host: str) -> SafetyStatusError:
    """The error for an answer other than 200, saying what to change."""
    status = response.status_code
    code, message = _error_detail(response)
    said = f"Content Safety answered {operation} with {status}{f' {code}' if code else ''}"
    said += f": {message.rstrip('.')}" if message else ""  # Azure's messages end with a full stop of their own
    if status == 401:
        fix = ("Check CONTENT_SAFETY_KEY against the resource's Keys and Endpoint, or, signing in with Entra ID, "
               "that CONTENT_SAFETY_ENDPOINT is the resource's own endpoint.")
    elif status == 403:
        fix = ("Give your identity the Cognitive Services User role on the Content Safety resource, or set "
               "CONTENT_SAFETY_KEY; check the resource's network rules allow this machine.")
    elif status == 404:
        fix = (f"Check CONTENT_SAFETY_ENDPOINT ({host}) is a Content Safety resource's endpoint, and that every "
               "name in FLUX_UI_SAFETY_BLOCKLISTS is a blocklist on it.")
    elif status == 429:
        fix = "Content Safety is limiting requests; try again in a moment (a higher pricing tier allows more)."
    elif status >= 500:
        fix = _TRY_LATER
    else:
        fix = "flux-ui sent something Content Safety does not take; please report it with this message."
    return SafetyStatusError(f"{said}. {fix}", status=status, code=code)


def entra_message(error: str) -> str:
    """The Entra sign-in failure, with the fix for Content Safety rather than for Foundry."""
    detail = error.split(". Sign in with", 1)[0].removeprefix("Could not get a Microsoft Entra ID token: ")
    return (f"Content Safety needs a Microsoft Entra ID token and none came ({detail}). Sign in with `az login` "
            "(or a managed identity with the Cognitive Services User role on the resource), or set "
            "CONTENT_SAFETY_KEY.")
