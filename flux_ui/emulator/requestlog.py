"""The request log: what every request carried and how it was answered, never its credentials.

Tests and drills read it to check what the client really sent (which parameters, which
references in which order, how it authenticated) without parsing images. It records *how*
a caller authenticated ("bearer-key", "api-key", "entra", "none", "bad") and never the key
or token; as a second line of defence every string is scrubbed of the configured keys,
in case a client put one somewhere it should not (a prompt, a parameter).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flux_ui.emulator.auth import AuthKind

SCRUBBED = "[key removed by the emulator]"
#: Long strings are clipped so a bounded log stays bounded in bytes too (a 32 000-token prompt,
#: an image sent in the wrong field).
MAX_PROMPT_CHARS = 10_000
MAX_PARAM_CHARS = 500


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _clip_params(value: Any) -> Any:
    if isinstance(value, str):
        return _clip(value, MAX_PARAM_CHARS)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # NaN and Infinity parse from a body but are not JSON
    if isinstance(value, dict):
        return {k: _clip_params(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_params(v) for v in value]
    return value


@dataclass
class RequestRecord:
    """Filled in while a request is handled; becomes one log entry when it is answered."""

    route: str
    path: str
    deployment: str | None = None
    model: str | None = None
    auth: AuthKind = "none"
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    unknown_params: list[str] = field(default_factory=list)
    references: list[dict[str, Any]] = field(default_factory=list)
    status: int | None = None
    fault: str | None = None
    output: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_entry(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "path": self.path,
            "deployment": self.deployment,
            "model": self.model,
            "auth": self.auth,
            "params": self.params,
            "prompt": self.prompt,
            "unknown_params": self.unknown_params,
            "references": self.references,
            "status": self.status,
            "fault": self.fault,
            "output": self.output,
            "notes": self.notes,
        }


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, SCRUBBED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value


class RequestLog:
    """The last ``limit`` entries, oldest first; ``seq`` keeps counting across clears.

    A request is logged when it is answered, so one that arrived before a clear but is
    answered after it (a slow or abandoned request) would land in the next test's log;
    ``epoch`` lets :meth:`add` drop such stragglers.
    """

    def __init__(self, limit: int, secrets: Callable[[], Iterable[str]]) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self._secrets = secrets
        self._seq = 0
        self._epoch = 0
        self._lock = threading.Lock()

    @property
    def epoch(self) -> int:
        """Increases on every clear; read it when a request arrives and pass it to :meth:`add`."""
        with self._lock:
            return self._epoch

    def add(self, record: RequestRecord, epoch: int | None = None) -> dict[str, Any] | None:
        """Log an answered request; None (and nothing logged) if it arrived before the last clear."""
        # Scrub before clipping: a clip must never leave the first half of a key behind.
        entry = _scrub(record.to_entry(), tuple(self._secrets()))
        entry["params"] = _clip_params(entry["params"])
        if entry["prompt"] is not None:
            entry["prompt"] = _clip(entry["prompt"], MAX_PROMPT_CHARS)
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return None
            self._seq += 1
            entry = {"seq": self._seq, "time": round(time.time(), 3), **entry}
            self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._entries))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._epoch += 1
