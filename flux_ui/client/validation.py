"""Check a request against the registry before anything is sent.

Refuse what the service would refuse, with a message that says how to fix it; adjust what
the service would adjust itself (sizes off the grid) and say so; never refuse what the
service would accept (prompt length is judged by honest bounds, contract §6). This module
holds the request and :func:`validate`; the text checks are in :mod:`flux_ui.client.text`,
parameter values in :mod:`flux_ui.client.values`, sizes in :mod:`flux_ui.client.sizes` and
saved-value checks in :mod:`flux_ui.client.saved` (their names are importable from here too).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux_ui.client.saved import check_saved_value
from flux_ui.client.sizes import check_aspect_ratio, snap_size
from flux_ui.client.text import _FORMAT as _FORMAT  # the format-character class, for its test
from flux_ui.client.text import (
    MAX_NAME_BYTES,
    MAX_TEXT_BYTES,
    check_prompt,
    check_request_text,
    check_text_size,
    model_id_text,
    prompt_token_bounds,
)
from flux_ui.client.values import coerce, finite
from flux_ui.errors import ValidationError
from flux_ui.fair_queue import next_order
from flux_ui.registry import MODELS, ModelSpec, PixelSize, Route, parse_aspect_ratio

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_TEXT_BYTES",
    "GenerationRequest",
    "ValidatedRequest",
    "check_aspect_ratio",
    "check_request_text",
    "check_saved_value",
    "check_text_size",
    "finite",
    "model_id_text",
    "prompt_token_bounds",
    "snap_size",
    "unknown_model",
    "validate",
]


@dataclass(frozen=True)
class GenerationRequest:
    """What a person asked for: a model, a prompt, ordered references, parameters."""

    model: str
    prompt: str
    references: Sequence[bytes] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    route: Route | None = None  # None: the model's native route (Image API edits if only that fits)
    #: When it was asked for, among everyone's: the order a person's requests keep in a deployment's fair queue
    #: (flux_ui.fair_queue), even when their checks and bodies finish in another order.
    asked: int = field(default_factory=next_order, compare=False, repr=False)


@dataclass(frozen=True)
class ValidatedRequest:
    """A request the client can send: every parameter resolved and on the model's grid."""

    model: ModelSpec
    route: Route
    prompt: str
    references: tuple[bytes, ...]
    params: dict[str, Any]  # native names; size as width/height or aspect_ratio; seed chosen
    size: tuple[int, int] | None  # the output size flux-ui expects, when it can know it
    adjustments: tuple[str, ...]
    warnings: tuple[str, ...]


def unknown_model(model: object, choices: Iterable[str]) -> ValidationError:
    """The refusal of a model ID flux-ui does not know (or this installation does not offer)."""
    return ValidationError(f"Unknown model {model!r}; choose one of {', '.join(choices)}.", field="model")


def validate(request: GenerationRequest, *, rng: random.Random | None = None) -> ValidatedRequest:
    """Check a request and resolve every parameter; raises ValidationError."""
    check_request_text(request)
    spec = MODELS.get(request.model) if isinstance(request.model, str) else None
    if spec is None:
        raise unknown_model(request.model, MODELS)
    warnings: list[str] = []
    adjustments: list[str] = []
    route = _choose_route(spec, request.route)
    prompt = check_prompt(spec, request.prompt, warnings)
    refs = _check_references(spec, request.references, route)
    editing = bool(refs)
    given = dict(request.params)
    _refuse_unknown(spec, given)
    params = _resolve_params(spec, given, route, editing, rng)
    size = _resolve_size(spec, given, editing, params, adjustments)
    return ValidatedRequest(
        model=spec,
        route=route,
        prompt=prompt,
        references=refs,
        params=params,
        size=size,
        adjustments=tuple(adjustments),
        warnings=tuple(warnings),
    )


def _check_references(spec: ModelSpec, references: Sequence[bytes], route: Route) -> tuple[bytes, ...]:
    refs = tuple(references)
    for i, ref in enumerate(refs, start=1):
        if not isinstance(ref, bytes | bytearray):
            raise ValidationError(f"Reference image {i} must be image bytes, not {type(ref).__name__}.",
                                  field="references")
    if len(refs) > spec.max_references:
        editors = ", ".join(
            f"{m.display_name} (up to {m.max_references})" for m in MODELS.values() if m.max_references >= len(refs)
        )
        if spec.max_references == 0:
            head = (f"{spec.display_name} generates from text only and takes no reference images; "
                    f"remove the {len(refs)} image{'s' if len(refs) > 1 else ''}")
        else:
            extra = len(refs) - spec.max_references
            head = (f"{spec.display_name} takes at most {spec.max_references} reference "
                    f"image{'s' if spec.max_references > 1 else ''}; you gave {len(refs)}. Remove {extra}")
        tail = f", or choose a model that takes {len(refs)}: {editors}." if editors else "."
        raise ValidationError(head + tail, field="references")
    if route is Route.IMAGES_EDITS and not refs:
        raise ValidationError("An Image API edit needs an input image; add one, or use text to image.",
                              field="references")
    if route is Route.IMAGES_GENERATIONS and refs:
        raise ValidationError("Image API generations take no input image; use the edits route to edit one.",
                              field="route")
    return refs


def _choose_route(spec: ModelSpec, wanted: Route | None) -> Route:
    if wanted is None:
        return spec.routes[0]
    if wanted not in spec.routes:
        offered = ", ".join(r.value for r in spec.routes)
        raise ValidationError(f"{spec.display_name} is not served on the {wanted.value} route; it is on {offered}.",
                              field="route")
    return wanted


def _refuse_unknown(spec: ModelSpec, given: Mapping[str, Any]) -> None:
    """Refuse a parameter the model does not take, naming what it takes and which models take that one."""
    unknown = [name for name in given if spec.param(name) is None]
    if unknown:
        name = unknown[0]
        takes = ", ".join(p.name for p in spec.all_params)
        others = [m.display_name for m in MODELS.values() if m.param(name) is not None]
        hint = f" {', '.join(others)} {'does' if len(others) == 1 else 'do'}." if others else ""
        raise ValidationError(
            f"{spec.display_name} does not take {name!r}; it takes {takes}.{hint}", field=name
        )


def _resolve_params(spec: ModelSpec, given: Mapping[str, Any], route: Route, editing: bool,
                    rng: random.Random | None) -> dict[str, Any]:
    """Every parameter the route carries, coerced (defaults filled in, a seed chosen when none is given)."""
    params: dict[str, Any] = {}
    on_image_api = route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS)
    for p in spec.params:
        if on_image_api and not p.image_api:
            if given.get(p.name) not in (None, p.default):
                raise ValidationError(
                    f"The Image API route does not carry {p.label.lower()}; use the BFL route to set it.",
                    field=p.name,
                )
            continue
        value = coerce(spec, p, given.get(p.name, p.default), editing)
        if p.name == "seed" and value is None:
            value = (rng or random.SystemRandom()).randint(0, 2**31 - 1)
        params[p.name] = value
    return params


def _resolve_size(spec: ModelSpec, given: Mapping[str, Any], editing: bool, params: dict[str, Any],
                  adjustments: list[str]) -> tuple[int, int] | None:
    """The size (or aspect ratio) into ``params``; returns the output size flux-ui expects, when it can know it."""
    size: tuple[int, int] | None
    if isinstance(spec.size, PixelSize):
        size, notes = snap_size(
            spec, given.get("width", spec.size.default[0]), given.get("height", spec.size.default[1])
        )
        adjustments.extend(notes)
        params["width"], params["height"] = size
    else:
        ratio = check_aspect_ratio(spec, given.get("aspect_ratio", spec.size.default))
        parsed = parse_aspect_ratio(ratio) if ratio else None
        size = spec.size.size_for(parsed) if parsed else (None if editing else
                                                                    spec.size.size_for((1, 1)))
        if ratio is not None:
            params["aspect_ratio"] = ratio
    return size
