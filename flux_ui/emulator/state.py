"""One emulator's live state: keys, deployments, quotas, faults, the log and pending results.

The server reads it on its event-loop thread while tests and drills change it from theirs
(rotate a key, arm a fault, clear the log), so every part guards itself with a lock.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from flux_ui.emulator.config import EmulatorConfig, Fault
from flux_ui.emulator.delivery import ResultStore, TaskBook
from flux_ui.emulator.faults import FaultBook
from flux_ui.emulator.quotas import QuotaBook
from flux_ui.emulator.requestlog import RequestLog
from flux_ui.registry import MODELS, SEED_MAX, ModelSpec, Route

#: Switches that may change while the emulator runs (``PATCH /_emulator/config``).
RUNTIME_SWITCHES = (
    "retry_after_header",
    "bfl_style",
    "polling_pending_polls",
    "image_api_result",
    "result_url_ttl_s",
    "refuse_words",
    "refuse_style",
    "schnell_square_only",
    "enforce_quotas",
    "accept_entra",
)

KeyTarget = str  # "foundry", "schnell" or "both"


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._api_key = config.api_key
        self._schnell_key = config.schnell_key
        # Every key ever valid, so the log can scrub one a client keeps sending after a rotation.
        self._all_keys: list[str] = [k for k in (config.api_key, config.schnell_key, config.content_safety_key) if k]
        self.deployments: dict[str, str] = {}
        if config.default_deployments:
            self.deployments.update({m: m for m in MODELS.foundry})
        for name, model_id in config.deployments.items():
            if model_id not in MODELS or MODELS[model_id].aml:
                raise ValueError(f"deployment {name!r} names {model_id!r}, which is not a Foundry FLUX model")
            self.deployments[name] = model_id
        self.quotas = QuotaBook(config.quotas, enforce=config.enforce_quotas)
        self.faults = FaultBook(config.faults, random.Random(config.rng_seed))
        self.log = RequestLog(config.log_limit, self.secrets)
        self.results = ResultStore(config.results_limit)
        self.tasks = TaskBook(config.results_limit)
        self._seed_rng = random.Random(config.rng_seed + 1)

    # --- keys -----------------------------------------------------------------------------------

    def foundry_keys(self) -> tuple[str, ...]:
        with self._lock:
            return (self._api_key,)

    def schnell_keys(self) -> tuple[str, ...]:
        with self._lock:
            return (self._schnell_key or self._api_key,)

    def content_safety_keys(self) -> tuple[str, ...]:
        with self._lock:
            return (self.config.content_safety_key or self._api_key,)

    @property
    def api_key(self) -> str:
        with self._lock:
            return self._api_key

    @property
    def schnell_key(self) -> str:
        with self._lock:
            return self._schnell_key or self._api_key

    def secrets(self) -> tuple[str, ...]:
        """What the log scrubs: every key ever valid, and the control token (never a log's business)."""
        with self._lock:
            return (*self._all_keys, self.config.control_token)

    def rotate_key(self, new_key: str | None = None, target: KeyTarget = "foundry") -> str:
        """Replace a key at once (the old one stops working); returns the new key.

        A schnell key that was never set separately follows the Foundry key.
        """
        if target not in ("foundry", "schnell", "both"):
            raise ValueError(f"key target must be foundry, schnell or both, not {target!r}")
        key = new_key or secrets.token_urlsafe(24)
        with self._lock:
            if target in ("foundry", "both"):
                self._api_key = key
            if target in ("schnell", "both"):
                self._schnell_key = key
            self._all_keys.append(key)
        return key

    # --- deployments and seeds ------------------------------------------------------------------

    def model_of(self, deployment: str) -> ModelSpec | None:
        model_id = self.deployments.get(deployment)
        return MODELS[model_id] if model_id else None

    def endpoint_model(self, name: str | None) -> ModelSpec | None:
        """The model an Azure ML endpoint serves: by its ID, or the first such model for ``/score``."""
        served = MODELS.on_route(Route.AML)
        if name is None:
            return served[0] if served else None
        return next((spec for spec in served if spec.id == name), None)

    def all_deployments(self) -> dict[str, str]:
        """Foundry deployments plus every Azure ML endpoint, name → model ID."""
        return {**self.deployments, **{spec.id: spec.id for spec in MODELS.on_route(Route.AML)}}

    def pick_seed(self) -> int:
        """A seed for a request that sent none, as the service picks one at random."""
        with self._lock:
            return self._seed_rng.randint(0, SEED_MAX)

    # --- run-time changes -----------------------------------------------------------------------

    def set_faults(self, key: str, faults: Sequence[Fault]) -> None:
        self.faults.set(key, faults)

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change run-time switches; validated by rebuilding the config, so a bad value changes nothing."""
        bad = sorted(set(changes) - set(RUNTIME_SWITCHES))
        if bad:
            raise ValueError(f"cannot change {', '.join(bad)} at run time; switches: {', '.join(RUNTIME_SWITCHES)}")
        values = {name: getattr(self.config, name) for name in RUNTIME_SWITCHES}
        values.update(changes)
        if isinstance(values["refuse_words"], list):
            values["refuse_words"] = tuple(values["refuse_words"])
        EmulatorConfig(api_key="validation-only", **values)  # raises ValueError on a bad value
        for name, value in values.items():
            setattr(self.config, name, value)
        self.quotas.enforce = self.config.enforce_quotas
        return self.switches()

    def switches(self) -> dict[str, Any]:
        data = {name: getattr(self.config, name) for name in RUNTIME_SWITCHES}
        data["refuse_words"] = list(data["refuse_words"])
        return data

    def reset(self) -> None:
        """Back to a fresh start: no faults, no log, empty quota windows, no pending results."""
        self.faults.clear()
        self.log.clear()
        self.quotas.reset()
        self.results.clear()
        self.tasks.clear()
