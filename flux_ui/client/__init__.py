"""The backend client: one entry point, three routes, typed errors.

    from flux_ui.client import FoundryClient, GenerationRequest

Names are loaded on first use, so ``flux_ui.settings`` can import the error tree
without importing the client (which imports the settings).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FoundryClient": "flux_ui.client.core",
    "GenerationResult": "flux_ui.client.core",
    "ProgressEvent": "flux_ui.client.core",
    "Timings": "flux_ui.client.core",
    "GenerationRequest": "flux_ui.client.validation",
    "ValidatedRequest": "flux_ui.client.validation",
    "validate": "flux_ui.client.validation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flux_ui.client' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
