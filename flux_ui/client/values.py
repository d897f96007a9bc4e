"""Parameter values: each one coerced to what the wire wants, or refused with what the model takes.

Numbers are checked against the model's range (a narrower one when editing, where the model says
so), choices against its list, switches and text by their kind; a value is never silently clamped.
"""

from __future__ import annotations

import math
from typing import Any

from flux_ui.client.text import check_invisible
from flux_ui.errors import ValidationError
from flux_ui.registry import ModelSpec, Param

_FORMAT_ALIASES = {"jpg": "jpeg"}


def finite(number: float) -> bool:
    """Whether a number is finite; an int always is, however large (math.isfinite overflows past 1e308)."""
    return not isinstance(number, float) or math.isfinite(number)


def coerce(spec: ModelSpec, p: Param, value: Any, editing: bool) -> Any:
    """The value as the wire wants it, or a ValidationError that says what fits."""
    if value is None:
        if p.nullable:
            return None
        raise ValidationError(f"{p.label} needs a value; {spec.display_name} uses {p.default!r} by default.",
                              field=p.name)
    if p.kind in ("int", "float"):
        return _coerce_number(spec, p, value, editing)
    if p.kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValidationError(f"{p.label} is on or off (true or false); got {value!r}.", field=p.name)
    if p.kind == "choice":
        text = _FORMAT_ALIASES.get(str(value).strip().lower(), str(value).strip().lower())
        if text not in p.choices:
            raise ValidationError(f"{p.label} must be one of {', '.join(p.choices)}; got {value!r}.", field=p.name)
        return text
    if p.kind == "text":
        if not isinstance(value, str):
            raise ValidationError(f"{p.label} must be text; got {type(value).__name__}: send it as a string, "
                                  "or leave it out.", field=p.name)
        check_invisible(p.label, value, p.name)
        return value
    raise AssertionError(f"unhandled parameter kind {p.kind}")


def _coerce_number(spec: ModelSpec, p: Param, value: Any, editing: bool) -> int | float:
    """A whole number or a number in the parameter's range (its editing range when editing)."""
    maximum = p.maximum_for(editing)
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not finite(number) or (p.kind == "int" and number != int(number)):
        raise ValidationError(f"{p.label} must be {_describe_range(p, maximum)}; got {value!r}.", field=p.name)
    assert p.minimum is not None and maximum is not None
    if not p.minimum <= number <= maximum:
        note = " when editing an image" if maximum != p.maximum else ""
        raise ValidationError(
            f"{p.label} must be {_describe_range(p, maximum)} for {spec.display_name}{note}; got {value!r}.",
            field=p.name,
        )
    return int(number) if p.kind == "int" else float(number)


def _describe_range(p: Param, maximum: float | None) -> str:
    if p.kind == "int":
        return f"a whole number from {p.minimum:.0f} to {maximum:.0f}"
    return f"a number from {p.minimum:g} to {maximum:g}"
