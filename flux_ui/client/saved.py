"""Saved-value checks: a setting read back from a saved image, refused as a request would be if the model cannot use it.

History loads the settings stored with an image back into a tab; :func:`check_saved_value` checks
each one against the model as a request would, so a damaged or outdated record is refused before use.
"""

from __future__ import annotations

from typing import Any

from flux_ui.client.sizes import check_aspect_ratio
from flux_ui.client.values import coerce
from flux_ui.registry import ModelSpec


def check_saved_value(spec: ModelSpec, name: str, value: Any) -> None:
    """Refuse (ValidationError, in the words a request would get) a parameter value read from a saved
    image that the model cannot take; a value it does not declare, or None (its default), passes."""
    p = spec.param(name)
    if p is None or value is None:
        return
    if p.kind == "aspect_ratio":
        check_aspect_ratio(spec, value)
    else:
        coerce(spec, p, value, editing=False)
