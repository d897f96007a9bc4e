"""Output sizes: a width and height put on the model's pixel grid the way the service would, and aspect ratios checked.

A size off the grid is snapped (and the adjustment said); one outside the model's sides or pixel
budget is refused with the nearest size that fits.
"""

from __future__ import annotations

import reprlib
from typing import Any

from flux_ui.client.values import finite
from flux_ui.errors import ValidationError
from flux_ui.registry import AspectRatioSize, ModelSpec, PixelSize, parse_aspect_ratio

_FAR_TOO_LARGE = 2**31  # pixels on a side


def snap_size(spec: ModelSpec, width: Any, height: Any) -> tuple[tuple[int, int], list[str]]:
    """Put a requested size on the model's grid the way the service would, or refuse it."""
    rule = spec.size
    assert isinstance(rule, PixelSize)
    w = _whole_side(spec, rule, "width", width)
    h = _whole_side(spec, rule, "height", height)
    m = rule.multiple
    snapped = (rule.on_grid(w), rule.on_grid(h))
    _check_snapped(spec, rule, w, h, snapped)
    notes = []
    if snapped != (w, h):
        how = "rounded down" if rule.snap == "floor" else "rounded"
        notes.append(
            f"Size {w}×{h} {how} to {snapped[0]}×{snapped[1]}: {spec.display_name} works in multiples of {m} px."
        )
    return snapped, notes


def _whole_side(spec: ModelSpec, rule: PixelSize, name: str, value: Any) -> int:
    """One side as a whole number of pixels, or a refusal (a side far too large before any arithmetic)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and finite(value)
    if not ok or value != int(value) or value <= 0:
        raise ValidationError(f"The {name} must be a whole number of pixels, such as {rule.default[0]}; "
                              f"got {value!r}.", field=name)
    if value > _FAR_TOO_LARGE:  # refused below anyway, where arithmetic on it would overflow a float
        raise ValidationError(f"The {name} {reprlib.repr(value)} is far above {spec.display_name}'s largest "
                              f"side of {rule.side_limit} px; use {rule.side_limit} or less.", field=name)
    return int(value)


def _check_snapped(spec: ModelSpec, rule: PixelSize, w: int, h: int, snapped: tuple[int, int]) -> None:
    """Refuse a snapped size below the smallest side, above the largest, or over the pixel budget."""
    for name, value, on_grid in (("width", w, snapped[0]), ("height", h, snapped[1])):
        if on_grid < rule.min_side:
            raise ValidationError(
                f"The {name} {value} is below {spec.display_name}'s smallest side of {rule.min_side} px; "
                f"use {rule.min_side} or more.",
                field=name,
            )
    if rule.max_side is not None:
        for name, value in zip(("width", "height"), snapped, strict=True):
            if value > rule.max_side:
                raise ValidationError(
                    f"The {name} {value} is above {spec.display_name}'s largest side of {rule.max_side} px; "
                    f"use {rule.max_side} or less.",
                    field=name,
                )
    if rule.max_pixels is not None and snapped[0] * snapped[1] > rule.max_pixels:
        fit = rule.fit(w, h)
        raise ValidationError(
            f"{w}×{h} is {w * h / 1_048_576:.1f} MP, and {spec.display_name} makes at most "
            f"{rule.max_pixels / 1_048_576:g} MP. Try {fit[0]}×{fit[1]}, the largest size of that shape.",
            field="width",
        )


def check_aspect_ratio(spec: ModelSpec, value: Any) -> str | None:
    """The aspect ratio as ``w:h`` when it is in the model's range, None when none is given; else refused."""
    rule = spec.size
    assert isinstance(rule, AspectRatioSize)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    ratio = parse_aspect_ratio(value) if isinstance(value, str) else None
    lo, hi = rule.bounds_text
    if ratio is None:
        raise ValidationError(
            f"The aspect ratio must be written width:height, such as 16:9; got {value!r}.", field="aspect_ratio"
        )
    w, h = ratio
    if not rule.admits(w, h):
        raise ValidationError(
            f"The aspect ratio {w}:{h} is outside {spec.display_name}'s range of {lo} to {hi}; "
            "pick one in between.",
            field="aspect_ratio",
        )
    return f"{w}:{h}"
