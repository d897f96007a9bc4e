"""Injected faults: which fire on a request, and the raw ASGI answers that play the nasty ones.

A drill asks for "the next two FLUX.2-pro requests get a 503" or "every request is slow";
:class:`FaultBook` keeps those per deployment key (deployment name, model ID or ``"*"``),
counts them down and rolls their probability on a seeded RNG, so a drill replays the same
way every run. Latency faults stack; of the others, the first that fires decides the answer.

Dropping a connection halfway cannot be said with an ordinary response: :class:`DroppedResponse`
sends the headers and part of the body and then raises, which makes uvicorn close the socket.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flux_ui.emulator.config import ALL_DEPLOYMENTS, GENERATION_ROUTES, Fault


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None


@dataclass(frozen=True)
class FaultDraw:
    """What the faults decided for one request."""

    latency_s: float = 0.0
    outcome: Fault | None = None
    fired: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str | None:
        """How the request log names the faults that fired, e.g. ``"latency+status:503"``."""
        return "+".join(self.fired) or None


def _label(fault: Fault) -> str:
    if fault.kind == "status":
        return f"status:{fault.status}"
    if fault.kind in ("empty", "refuse") and fault.variant:
        return f"{fault.kind}:{fault.variant}"
    return fault.kind


class FaultBook:
    """Faults per deployment key; safe to change from another thread while the server runs."""

    def __init__(self, faults: Mapping[str, Sequence[Fault]], rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Armed]] = {}
        self.replace_all(faults)

    def replace_all(self, faults: Mapping[str, Sequence[Fault]]) -> None:
        with self._lock:
            self._faults = {key: [_Armed(f, f.count) for f in items] for key, items in faults.items() if items}

    def set(self, key: str, faults: Sequence[Fault]) -> None:
        with self._lock:
            if faults:
                self._faults[key] = [_Armed(f, f.count) for f in faults]
            else:
                self._faults.pop(key, None)

    def clear(self) -> None:
        self.replace_all({})

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """The faults still armed, with ``count`` showing what is left of each."""
        with self._lock:
            return {
                key: [replace(a.fault, count=a.remaining).to_json() for a in items]
                for key, items in self._faults.items()
            }

    def draw(self, deployment: str, model_id: str, route: str, *, url_result: bool = False) -> FaultDraw:
        """Decide the faults for one request and use up their counts.

        Keys are tried from the most specific (deployment name) to ``"*"``. An ``expire_url``
        fault only fires when the answer carries a URL (``url_result``).
        """
        keys = list(dict.fromkeys((deployment, model_id, ALL_DEPLOYMENTS)))
        latency = 0.0
        outcome: Fault | None = None
        fired: list[str] = []
        with self._lock:
            for key in keys:
                for armed in self._faults.get(key, ()):
                    fault = armed.fault
                    if not _applies(fault, route, url_result):
                        continue
                    if fault.kind != "latency" and outcome is not None:
                        continue
                    if armed.remaining is not None and armed.remaining <= 0:
                        continue
                    if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                        continue
                    if armed.remaining is not None:
                        armed.remaining -= 1
                    if fault.kind == "latency":
                        latency += fault.seconds + (self._rng.uniform(0.0, fault.jitter_s) if fault.jitter_s else 0.0)
                        fired.append(f"latency:{fault.seconds:g}s")
                    else:
                        outcome = fault
                        fired.append(_label(fault))
        return FaultDraw(latency, outcome, tuple(fired))


def _applies(fault: Fault, route: str, url_result: bool) -> bool:
    if fault.routes:
        if route not in fault.routes:
            return False
    elif route not in GENERATION_ROUTES:
        return False
    return fault.kind != "expire_url" or url_result


class InjectedDrop(Exception):
    """Raised after a partial body so uvicorn closes the connection; filtered from its error log."""


class _HideInjectedDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedDrop)


_filter_installed = False
_filter_lock = threading.Lock()


def hide_injected_drops_from_uvicorn_log() -> None:
    """Keep uvicorn from logging a traceback for each drop the drill asked for (and only those)."""
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            logging.getLogger("uvicorn.error").addFilter(_HideInjectedDrops())
            _filter_installed = True


class DroppedResponse(Response):
    """Headers (with the full Content-Length) and about a third of the body, then a cut connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        part = self.body[: max(1, len(self.body) // 3)]
        await send({"type": "http.response.body", "body": part, "more_body": True})
        raise InjectedDrop("connection dropped by an injected fault")


class TrickleResponse(Response):
    """The whole answer, sent in small chunks spread over ``seconds``."""

    def __init__(self, *args: Any, seconds: float, chunks: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = seconds
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body = self.body
        n = max(1, min(self.chunks, len(body)))
        step = -(-len(body) // n)
        for i in range(n):
            await asyncio.sleep(self.seconds / n)
            await send({"type": "http.response.body", "body": body[i * step : (i + 1) * step], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
