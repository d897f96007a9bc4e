"""Who sent a request: an API key in either header, an Entra token, or nobody.

The service accepts ``Authorization: Bearer <key or Entra token>`` [doc] and ``api-key: <key>``
[seen]. The emulator cannot verify an Entra signature, so it checks only what a client can
get wrong: the token's shape, its audience and its expiry. The result names *how* the caller
authenticated, never the credential: it is what the request log records.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

AuthKind = Literal["bearer-key", "api-key", "subscription-key", "entra", "none", "bad"]

#: Audiences an Entra token for Foundry may carry (scope ``https://cognitiveservices.azure.com/.default``).
COGNITIVE_SERVICES_AUDIENCES = ("https://cognitiveservices.azure.com", "https://cognitiveservices.azure.com/")
#: Audiences of an Azure ML endpoint token (the emulator's choice for the schnell route).
AZURE_ML_AUDIENCES = ("https://ml.azure.com", "https://ml.azure.com/")


@dataclass(frozen=True)
class AuthResult:
    kind: AuthKind
    reason: str = ""  # why a credential was refused, for the 401 message; never the credential

    @property
    def ok(self) -> bool:
        return self.kind in ("bearer-key", "api-key", "subscription-key", "entra")


def _key_matches(given: str, keys: Iterable[str]) -> bool:
    # compare_digest on every key: the time taken does not reveal which key, or how much, matched.
    matched = False
    for key in keys:
        if key and hmac.compare_digest(given.encode(), key.encode()):
            matched = True
    return matched


def _b64url_json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def entra_token_problem(token: str, audiences: tuple[str, ...], now: float | None = None) -> str | None:
    """None when ``token`` looks like a live Entra access token for ``audiences``; else why not."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return "the bearer value is neither the key nor a JWT"
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
    except (ValueError, binascii.Error, UnicodeError):
        return "the token's segments are not base64url JSON"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "the token's segments are not JSON objects"
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if not any(a in audiences for a in auds):
        return f"the token's audience is not {audiences[0]}"
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return "the token has no expiry"
    if exp <= (time.time() if now is None else now):
        return "the token has expired"
    return None


def authenticate(
    headers: Mapping[str, str],
    keys: Iterable[str],
    *,
    accept_entra: bool,
    audiences: tuple[str, ...] = COGNITIVE_SERVICES_AUDIENCES,
    allow_api_key_header: bool = True,
) -> AuthResult:
    """Classify the request's credential. ``headers`` is case-insensitive (Starlette's Headers).

    An ``api-key`` header, when present, decides on its own (the emulator's choice when a client
    sends both). ``keys`` holds every key valid right now.
    """
    keys = tuple(keys)
    if allow_api_key_header and "api-key" in headers:
        if _key_matches(headers["api-key"].strip(), keys):
            return AuthResult("api-key")
        return AuthResult("bad", "the api-key header does not hold a valid key")
    authorization = headers.get("authorization", "").strip()
    if not authorization:
        return AuthResult("none", "no Authorization header")
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return AuthResult("bad", "the Authorization header is not 'Bearer <key or token>'")
    if _key_matches(value, keys):
        return AuthResult("bearer-key")
    if accept_entra:
        problem = entra_token_problem(value, audiences)
        if problem is None:
            return AuthResult("entra")
        return AuthResult("bad", problem)
    return AuthResult("bad", "the bearer value is not a valid key")


def make_entra_token(
    audience: str = COGNITIVE_SERVICES_AUDIENCES[0], expires_in: float = 3600.0, now: float | None = None
) -> str:
    """An unsigned JWT-shaped token as DefaultAzureCredential would hand out, for drills and tests."""

    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode("ascii")

    issued = int(time.time() if now is None else now)
    claims = {"aud": audience, "iat": issued, "nbf": issued, "exp": int(issued + expires_in), "oid": "emulator"}
    return f"{seg({'alg': 'RS256', 'typ': 'JWT'})}.{seg(claims)}.{seg('unsigned')}"
