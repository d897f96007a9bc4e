"""Everything that can go wrong between a person's click and an image, as one tree.

    FluxError                       root: every message says what happened and what to do
    ├── ValidationError             refused before anything was sent (field names the input)
    │   └── ReferenceImageError     a reference is not a usable image
    ├── ServiceError                the service answered, but not with an image
    │   ├── BadRequestError         400/422 with a parameter the service did not take
    │   ├── ContentRefusedError     moderation refused the prompt or an image (not retried)
    │   ├── AuthenticationError     401: wrong key or token, or wrong endpoint
    │   ├── PermissionDeniedError   403
    │   ├── DeploymentNotFoundError 404: not deployed, misspelt, or api-version missing
    │   ├── RequestTimeoutError     408 (retried)
    │   ├── ConflictError           409 (retried)
    │   ├── RateLimitError          429 that outlasted the retries
    │   │   └── QuotaExhaustedError the service asked to wait longer than flux-ui will
    │   ├── ServerError             5xx that outlasted the retries
    │   ├── EmptyResultError        200 without an image, again and again
    │   ├── MalformedResponseError  an answer flux-ui cannot read
    │   └── GenerationFailedError   the polling flow ended in Error/Failed/Task not found
    └── TransportError              no answer at all
        ├── ServiceConnectionError  could not connect, or the connection dropped
        └── ServiceTimeoutError     no answer within the deadline

Messages pass through :func:`flux_ui.secrets.redact`, so a key echoed by the service or
a proxy never reaches a person or a log.
"""

from __future__ import annotations

from typing import Any

from flux_ui.secrets import redact


class FluxError(Exception):
    """Root of flux-ui's errors. ``str(err)`` is a message meant for a person."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ValidationError(FluxError):
    """The request cannot be sent as it is; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReferenceImageError(ValidationError):
    """A reference image cannot be read or used; ``index`` is 1-based, as the UI labels it."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message, field="references")
        self.index = index


class ServiceError(FluxError):
    """The service answered with an error; status, code and body are kept (redacted)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = _redact_body(body)
        self.retry_after = retry_after


class BadRequestError(ServiceError):
    pass


class ContentRefusedError(ServiceError):
    """Moderation refused the prompt or an image. Not retried automatically: a person may
    rephrase, or resend (the verdict is not always the same twice [seen])."""


class AuthenticationError(ServiceError):
    pass


class PermissionDeniedError(ServiceError):
    pass


class DeploymentNotFoundError(ServiceError):
    pass


class RequestTimeoutError(ServiceError):
    retryable = True


class ConflictError(ServiceError):
    retryable = True


class RateLimitError(ServiceError):
    retryable = True


class QuotaExhaustedError(RateLimitError):
    """The service wants a longer wait than flux-ui will spend inside one request."""

    retryable = False


class ServerError(ServiceError):
    retryable = True


class EmptyResultError(ServiceError):
    retryable = True


class MalformedResponseError(ServiceError):
    retryable = True


class GenerationFailedError(ServiceError):
    pass


class TransportError(FluxError):
    retryable = True


class ServiceConnectionError(TransportError):
    pass


class ServiceTimeoutError(TransportError):
    retryable = False


def _redact_body(body: Any) -> Any:
    if isinstance(body, str):
        return redact(body)
    if isinstance(body, dict):
        return {k: _redact_body(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_redact_body(v) for v in body]
    return body
