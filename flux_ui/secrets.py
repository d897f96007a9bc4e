"""Keep API keys and tokens out of every string flux-ui produces.

A key lives in a :class:`Secret`, whose str and repr are masked. Every secret ever wrapped
is also remembered, so :func:`redact` can scrub text that came from elsewhere (a service
error body that echoes a header, a traceback) and :class:`RedactingFilter` can do the same
for every log record. Every key flux-ui reads is wrapped or remembered as it is loaded: the
Foundry key, each Azure ML endpoint's key, the Content Safety key (``CONTENT_SAFETY_KEY``, even
while safety is off) and each Entra token as it arrives.
"""

from __future__ import annotations

import logging
import threading

_MASK = "***"
_known: set[str] = set()
_lock = threading.Lock()
# Shorter values are not worth scrubbing and would mangle ordinary text.
_MIN_SECRET_LEN = 8


class Secret:
    """A string that never shows itself unless asked with :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def remember(value: str) -> None:
    """Register a secret value (an API key, a fresh token) for redaction."""
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """The text with every remembered secret replaced by a mask."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for value in secrets:
        if value in text:
            text = text.replace(value, _MASK)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs secrets from a record's final message, whatever its arguments held."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, so a handler cannot print it raw.
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every handler of the root logger, once."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
