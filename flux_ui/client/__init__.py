"""The backend client's public surface: one entry point, three routes, and the checks the tabs share.

    from flux_ui.client import FoundryClient, GenerationRequest

Code outside the client imports from here; the modules under it are the client's own. Errors
live in :mod:`flux_ui.errors`.
"""

from __future__ import annotations

from flux_ui.client.core import DEFAULT_DEADLINE_S, FoundryClient, GenerationResult, Timings
from flux_ui.client.events import COMMITTED_STAGES, ProgressEvent, Stage
from flux_ui.client.snippets import form_snippets, request_snippets
from flux_ui.client.validation import (
    GenerationRequest,
    ValidatedRequest,
    check_saved_value,
    check_text_size,
    finite,
    model_id_text,
    snap_size,
    validate,
)
from flux_ui.client.wire import ProbeAnswer

__all__ = [
    "COMMITTED_STAGES",
    "DEFAULT_DEADLINE_S",
    "FoundryClient",
    "GenerationRequest",
    "GenerationResult",
    "ProbeAnswer",
    "ProgressEvent",
    "Stage",
    "Timings",
    "ValidatedRequest",
    "check_saved_value",
    "check_text_size",
    "finite",
    "form_snippets",
    "model_id_text",
    "request_snippets",
    "snap_size",
    "validate",
]
