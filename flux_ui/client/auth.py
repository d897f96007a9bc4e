"""Credentials for requests: an API key, or Microsoft Entra ID tokens.

Entra tokens come from azure-identity's synchronous ``DefaultAzureCredential``; fetching
one can take seconds (a CLI call, a metadata endpoint), so it runs in a worker thread and
one refresh serves every request waiting for it. A token is reused until five minutes
before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from flux_ui.errors import AuthenticationError
from flux_ui.secrets import Secret, redact, remember
from flux_ui.settings import ENTRA_SCOPE, KeyHeader

REFRESH_MARGIN_S = 300.0


class Auth(Protocol):
    async def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> bool:
        """Forget cached credentials after a 401; True when a fresh try could succeed."""
        ...


class KeyAuth:
    """An API key, as ``Authorization: Bearer`` or as an ``api-key`` header."""

    def __init__(self, key: Secret, header: KeyHeader = "bearer") -> None:
        self._key = key
        self._header = header

    async def headers(self) -> dict[str, str]:
        if self._header == "api-key":
            return {"api-key": self._key.reveal()}
        return {"Authorization": f"Bearer {self._key.reveal()}"}

    def invalidate(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"KeyAuth(header={self._header!r}, key={self._key!r})"


class TokenCredential(Protocol):
    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class EntraAuth:
    """Bearer tokens for ``https://cognitiveservices.azure.com/.default``, cached."""

    def __init__(
        self,
        credential: TokenCredential | None = None,
        scope: str = ENTRA_SCOPE,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN_S,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._margin = margin
        self._token: Secret | None = None
        self._expires_on = 0.0
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> bool:
        return self._token is not None and self._expires_on - self._margin > self._clock()

    async def headers(self) -> dict[str, str]:
        if not self._fresh():
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if not self._fresh():  # another request may have refreshed it meanwhile
                    await self._refresh()
        assert self._token is not None
        return {"Authorization": f"Bearer {self._token.reveal()}"}

    async def _refresh(self) -> None:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        try:
            token = await asyncio.to_thread(self._credential.get_token, self._scope)
        except Exception as exc:  # azure-identity raises its own ClientAuthenticationError tree
            raise AuthenticationError(
                "Could not get a Microsoft Entra ID token: "
                f"{redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}. "
                "Sign in with `az login` (or configure a managed identity), or set AZURE_API_KEY and "
                "AZURE_AUTH=key instead."
            ) from None
        remember(token.token)
        self._token = Secret(token.token)
        self._expires_on = float(token.expires_on)

    def invalidate(self) -> bool:
        self._token = None
        self._expires_on = 0.0
        return True

    def __repr__(self) -> str:
        return f"EntraAuth(scope={self._scope!r}, cached={self._token is not None})"
