"""Per-deployment request quotas, enforced with the client's own :class:`SlidingWindow`.

The service enforces RPM over short windows (contract §2), and flux-ui paces with
``Quota.from_rpm``; using the same arithmetic here means a client that paces correctly
never sees a 429 from the emulator, and one that does not, does.

What consumes quota is the emulator's choice where the contract is silent: a request that
was validated and answered (an image, an empty or malformed 200, a content refusal, a
dropped or trickled answer) consumes a slot; a 429, a 4xx validation error and an injected
error status do not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flux_ui.pacing import Quota, SlidingWindow
from flux_ui.registry import MODELS


class QuotaBook:
    """One sliding window per deployment name; quotas looked up by deployment, then model ID."""

    def __init__(
        self,
        overrides: Mapping[str, Quota],
        *,
        enforce: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._overrides = dict(overrides)
        self.enforce = enforce
        self._clock = clock
        self._windows: dict[str, SlidingWindow] = {}
        self._lock = threading.Lock()

    def quota_for(self, deployment: str, model_id: str) -> Quota | None:
        if not self.enforce:
            return None
        quota = self._overrides.get(deployment) or self._overrides.get(model_id)
        if quota is not None:
            return quota
        rpm = MODELS[model_id].default_rpm if model_id in MODELS else None
        return Quota.from_rpm(rpm) if rpm else None  # schnell: the endpoint's own capacity, no quota

    def _window(self, deployment: str, model_id: str) -> SlidingWindow | None:
        quota = self.quota_for(deployment, model_id)
        if quota is None:
            return None
        window = self._windows.get(deployment)
        if window is None or window.quota != quota:
            window = self._windows[deployment] = SlidingWindow(quota)
        return window

    def wait_time(self, deployment: str, model_id: str) -> float:
        """Seconds until the deployment takes another request (0: now). Records nothing."""
        with self._lock:
            window = self._window(deployment, model_id)
            return window.wait_time(self._clock()) if window else 0.0

    def try_consume(self, deployment: str, model_id: str) -> float:
        """Take a slot if one is free and return 0; otherwise return the wait and take nothing."""
        with self._lock:
            window = self._window(deployment, model_id)
            if window is None:
                return 0.0
            now = self._clock()
            wait = window.wait_time(now)
            if wait <= 0:
                window.record(now)
            return wait

    def remaining(self, deployment: str, model_id: str) -> int | None:
        """Requests the deployment would take at once right now (None: no quota)."""
        with self._lock:
            window = self._window(deployment, model_id)
            return window.available(self._clock()) if window else None

    def describe(self, deployment: str, model_id: str) -> str:
        quota = self.quota_for(deployment, model_id)
        return quota.describe() if quota else "no quota"

    def reset(self) -> None:
        """Forget every request sent: all windows start empty."""
        with self._lock:
            self._windows.clear()

    def status(self, deployments: Mapping[str, str]) -> dict[str, Any]:
        """Each deployment's quota and what it would take now, for ``GET /_emulator/quotas``."""
        out: dict[str, Any] = {}
        for name, model_id in sorted(deployments.items()):
            quota = self.quota_for(name, model_id)
            if quota is None:
                out[name] = {"model": model_id, "quota": None, "available": None, "next_slot_in_s": 0.0}
                continue
            out[name] = {
                "model": model_id,
                "quota": {"requests": quota.requests, "window_s": quota.window_s, "rpm": round(quota.rpm, 3)},
                "available": self.remaining(name, model_id),
                "next_slot_in_s": round(self.wait_time(name, model_id), 3),
            }
        return out
