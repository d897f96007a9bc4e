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
    ├── TransportError              no answer at all
    │   ├── ServiceConnectionError  could not connect, or the connection dropped
    │   └── ServiceTimeoutError     not sent for lack of time, or no answer in time
    ├── StorageError                the outputs folder cannot take an image
    │   ├── NoRoomError             too little free space: refused before sending
    │   └── NotSavedError           an image arrived but could not be written
    ├── BusyError                   flux-ui holds as many generations as it may: refused before sending
    │   └── TooManyQueuedError      this person already has FLUX_UI_USER_MAX_QUEUED requests waiting
    ├── WithdrawnError              the person cancelled a waiting request under "Your requests": not sent
    └── SafetyError                 Azure AI Content Safety kept a prompt from FLUX or a result from the page
        ├── SafetyBlockedError      over the severity limit or on a blocklist; ``verdict`` says which category
        └── SafetyUnavailableError  no verdict, and flux-ui fails closed (see FLUX_UI_SAFETY_FAIL_OPEN)
            ├── SafetyStatusError       Content Safety answered 4xx/5xx (``status``, ``code``)
            ├── SafetyTimeoutError      no answer in time
            └── SafetyConnectionError   could not connect, or the connection dropped

Every error says what happened to the money as fields, not only in words: ``sent`` (the
request reached the service) and ``billed`` ("no", "maybe", "yes"). The client sets them
for the whole click (an earlier attempt may have been billed) and ends the message with
:func:`billing_sentence`, so a person always reads whether anything was sent or billed.

Messages pass through :func:`flux_ui.secrets.redact`, so a key echoed by the service or
a proxy never reaches a person or a log. Whether a failure is worth another attempt is not a
property of its class: :mod:`flux_ui.client.retry` decides from the status and the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from flux_ui.secrets import redact

#: Whether the service bills for what happened: "no" (nothing sent, or an error answer),
#: "maybe" (sent, and the answer never arrived), "yes" (accepted: an image was, or is being, made).
Billed = Literal["no", "maybe", "yes"]
_BILLED_ORDER = {"no": 0, "maybe": 1, "yes": 2}


def more_billed(a: Billed, b: Billed) -> Billed:
    """The worse of two billing states: a click is billed if any of its attempts was."""
    return a if _BILLED_ORDER[a] >= _BILLED_ORDER[b] else b


def billing_sentence(sent: bool, billed: Billed) -> str:
    """The sentence every error from a generation ends with: was anything sent, is anything billed."""
    if not sent:
        return "Nothing was sent, so nothing is billed."
    if billed == "no":
        return "The service answered with an error and made no image, so nothing is billed."
    if billed == "maybe":
        return ("The request was sent: the service may have made the image, or may still finish it, and bill "
                "it, but flux-ui did not receive it.")
    return ("The service accepted the request, so it is billed, but flux-ui could not get the image from it. "
            "Generate again to get one; that is billed again.")


def with_billing(error: FluxError, sent: bool, billed: Billed) -> FluxError:
    """``error`` with what its click cost: the fields set, and :func:`billing_sentence` ending its message."""
    error.sent, error.billed = sent, billed
    error.args = (f"{error.message} {billing_sentence(sent, billed)}",)
    return error


def overdue_error(model_name: str, deadline_s: float, service_timeout_s: float) -> ServiceTimeoutError:
    """The person's wait is over but the request was sent: what they are told while flux-ui keeps waiting."""
    return ServiceTimeoutError(
        f"No image from {model_name} within {deadline_s:g} s. The request was sent, so the service may still "
        f"finish the image and bill it: flux-ui keeps waiting for it (up to {service_timeout_s:g} s after sending) "
        "and saves it to History when it arrives. Look there before you try again: a new request is billed again.",
        sent=True, billed="maybe")


class FluxError(Exception):
    """Root of flux-ui's errors. ``str(err)`` is a message meant for a person.

    ``sent`` and ``billed`` say what reached the service and what it charges for; each class
    has the usual case as its default, and the client sets them for the click as a whole.
    """

    sent: bool = False
    billed: Billed = "no"

    def __init__(self, message: str, *, sent: bool | None = None, billed: Billed | None = None) -> None:
        super().__init__(redact(message))
        if sent is not None:
            self.sent = sent
        if billed is not None:
            self.billed = billed

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
    """The service answered with an error; status, code and body are kept (redacted).

    An error answer made no image, so by default it was sent and is not billed.
    """

    sent = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        sent: bool | None = None,
        billed: Billed | None = None,
    ) -> None:
        super().__init__(message, sent=sent, billed=billed)
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
    pass


class ConflictError(ServiceError):
    pass


class RateLimitError(ServiceError):
    pass


class QuotaExhaustedError(RateLimitError):
    """The service wants a longer wait than flux-ui will spend inside one request."""


class ServerError(ServiceError):
    pass


class EmptyResultError(ServiceError):
    pass


class MalformedResponseError(ServiceError):
    pass


class GenerationFailedError(ServiceError):
    pass


class TransportError(FluxError):
    pass


class ServiceConnectionError(TransportError):
    """Could not connect (nothing sent), or the connection dropped (``sent``, billed "maybe")."""


class ServiceTimeoutError(TransportError):
    """No image in time: either not sent at all (too little of the deadline was left, ``sent``
    False) or sent and not answered in time (billed "maybe"; flux-ui keeps the answer if it comes)."""

    sent = True
    billed = "maybe"


class StorageError(FluxError):
    """The outputs folder cannot take an image; ``folder`` names it."""

    def __init__(self, message: str, *, folder: Path, sent: bool | None = None,
                 billed: Billed | None = None) -> None:
        super().__init__(message, sent=sent, billed=billed)
        self.folder = folder


class NoRoomError(StorageError):
    """Too little free space for the image a request would return: refused before sending,
    because an image that is paid for must have somewhere to go."""


class NotSavedError(StorageError):
    """An image arrived (and is billed) but could not be written; ``placed`` is the file when it
    was written whole but could not be indexed (it is listed when flux-ui next opens the folder)."""

    sent = True
    billed = "yes"

    def __init__(self, message: str, *, folder: Path, placed: Path | None = None) -> None:
        super().__init__(message, folder=folder)
        self.placed = placed


class BusyError(FluxError):
    """flux-ui already holds as many generations as it may (they finish even when nobody waits):
    refused before sending."""


class TooManyQueuedError(BusyError):
    """The person already has as many requests waiting for a deployment's quota as one may
    (``FLUX_UI_USER_MAX_QUEUED``): refused at once, before sending."""


class WithdrawnError(FluxError):
    """The person cancelled a request that was still waiting for its quota slot (``flux_ui.fair_queue``):
    it was never sent, so nothing is billed."""


class SafetyError(FluxError):
    """Content Safety stood between a prompt and FLUX, or between a result and the page. For a prompt
    nothing was sent to FLUX (the defaults); for a result the image was made and billed, which
    :mod:`flux_ui.safety` says by ``sent``/``billed`` and in the message."""


class SafetyBlockedError(SafetyError):
    """Content Safety judged the prompt or the image over the configured limit; ``verdict`` (a
    :class:`flux_ui.safety.Verdict`) names the category, and ``quarantined`` is where a blocked
    result was kept for the owner (None for a prompt)."""

    def __init__(self, message: str, *, verdict: Any, quarantined: Path | None = None,
                 sent: bool | None = None, billed: Billed | None = None) -> None:
        super().__init__(message, sent=sent, billed=billed)
        self.verdict = verdict
        self.quarantined = quarantined


class SafetyUnavailableError(SafetyError):
    """Content Safety gave no verdict. Whether that refuses the prompt or image (fail closed, the
    default) or lets it through is :meth:`flux_ui.settings_safety.SafetySettings.fails_open`'s call."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 quarantined: Path | None = None, sent: bool | None = None, billed: Billed | None = None) -> None:
        super().__init__(message, sent=sent, billed=billed)
        self.status = status
        self.code = code
        self.quarantined = quarantined


class SafetyStatusError(SafetyUnavailableError):
    """Content Safety answered with an error status (a bad key, a missing blocklist, an outage)."""


class SafetyTimeoutError(SafetyUnavailableError):
    """Content Safety did not answer within flux-ui's timeout."""


class SafetyConnectionError(SafetyUnavailableError):
    """Content Safety could not be reached, or the connection dropped before its answer."""


def _redact_body(body: Any) -> Any:
    if isinstance(body, str):
        return redact(body)
    if isinstance(body, dict):
        return {k: _redact_body(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_redact_body(v) for v in body]
    return body

