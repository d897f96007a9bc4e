"""What the BFL provider route accepts: a JSON body checked field by field, problems as FastAPI's 422.

Bad parameters are answered with FastAPI's 422 ``{"detail": [...]}``, every problem at once;
a prompt over the model's limit with Azure's 400 ``{"error": {...}}`` (contract §2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flux_ui.emulator.bodies import ApiError, bfl_field_error, bfl_validation
from flux_ui.emulator.references import Reference
from flux_ui.emulator.validation.common import (
    Plan,
    check_param,
    default_format,
    is_int,
    pixel_size_problems,
    prompt_limit_error,
    reference_output_size,
)
from flux_ui.registry import AspectRatioSize, ModelSpec, PixelSize, parse_aspect_ratio

#: ``input_image``, ``input_image_2``, ``input_image_3`` …; ``input_image_1`` is not a BFL field.
REFERENCE_FIELD = re.compile(r"^input_image(?:_([2-9]|[1-9]\d+))?$")
#: BFL-route fields every model takes besides its registry parameters. Microsoft's examples
#: send ``num_images`` and its notebook ``n`` (contract §2); both must be 1.
BFL_COMMON_FIELDS = ("model", "prompt", "num_images", "n")

Errors = list[dict[str, Any]]


def bfl_reference_fields(spec: ModelSpec, body: Mapping[str, Any]) -> list[tuple[int, str, Any]]:
    """The references in a BFL body as (N, field, value), in N order; 422 when the model takes fewer.

    A schema that stops at N would ignore ``input_image_{N+1}``; the emulator refuses it
    instead, so a client that sends too many finds out (the emulator's choice).
    """
    found = []
    for key, value in body.items():
        m = REFERENCE_FIELD.match(key)
        if m is None or value is None:
            continue
        found.append((int(m.group(1)) if m.group(1) else 1, key, value))
    found.sort()
    over = [key for index, key, _ in found if index > spec.max_references]
    if over:
        limit = (
            f"{spec.display_name} takes no reference images"
            if spec.max_references == 0
            else f"{spec.display_name} takes at most {spec.max_references} reference image"
            + ("s" if spec.max_references > 1 else "")
        )
        raise ApiError(422, bfl_validation([bfl_field_error(k, limit, "too_many_references") for k in over]))
    return found


def validate_bfl(spec: ModelSpec, body: Mapping[str, Any], references: Sequence[Reference]) -> Plan:
    """A BFL-route body (already known to name a deployment of ``spec``) → Plan, or 422/400."""
    notes: list[str] = []
    known = set(BFL_COMMON_FIELDS) | {p.name for p in spec.all_params}
    unknown = [k for k in body if k not in known and not REFERENCE_FIELD.match(k)]
    if unknown:
        notes.append(f"ignored fields {', '.join(unknown)} (not in {spec.display_name}'s schema)")

    prompt = body.get("prompt")
    errors = _prompt_errors(prompt) + _count_errors(body)
    values = _param_values(spec, body, bool(references), errors)
    if isinstance(spec.size, PixelSize):
        width, height = _pixel_size(spec, spec.size, values, references, errors, notes)
    else:
        width, height = _aspect_ratio_size(spec.size, values, references, errors, notes)

    if errors:
        raise ApiError(422, bfl_validation(errors))
    assert isinstance(prompt, str)
    if (too_long := prompt_limit_error(spec, prompt)) is not None:
        raise too_long
    seed = values.get("seed")
    return Plan(
        spec=spec,
        prompt=prompt,
        width=width,
        height=height,
        output_format=values.get("output_format", default_format(spec)),
        seed=int(seed) if seed is not None else None,
        references=tuple(references),
        unknown_params=unknown,
        notes=notes,
    )


def _prompt_errors(prompt: object) -> Errors:
    if prompt is None:
        return [bfl_field_error("prompt", "Field required", "missing")]
    if not isinstance(prompt, str):
        return [bfl_field_error("prompt", "Input should be a valid string", "string_type")]
    if not prompt.strip():
        return [bfl_field_error("prompt", "String should have at least 1 character", "string_too_short",
                                min_length=1)]
    return []


def _count_errors(body: Mapping[str, Any]) -> Errors:
    """``num_images`` and ``n``: one image per request, so 1 or absent."""
    errors: Errors = []
    for name in ("num_images", "n"):
        value = body.get(name)
        if value is not None and not (is_int(value) and int(value) == 1):
            errors.append(bfl_field_error(name, "Input should be 1: a FLUX deployment returns one image per request",
                                          "literal_error", value, expected="1"))
    return errors


def _param_values(spec: ModelSpec, body: Mapping[str, Any], editing: bool, errors: Errors) -> dict[str, Any]:
    """The registry parameters the body sets within their rules; the others go to ``errors``."""
    values: dict[str, Any] = {}
    for param in spec.all_params:
        value = body.get(param.name)
        if value is None:
            continue
        problem = check_param(param, value, editing=editing)
        if problem:
            msg, type_, ctx = problem
            errors.append(bfl_field_error(param.name, msg, type_, value, **ctx))
        else:
            values[param.name] = value
    return values


def _pixel_size(
    spec: ModelSpec, rule: PixelSize, values: Mapping[str, Any], references: Sequence[Reference], errors: Errors,
    notes: list[str],
) -> tuple[int, int]:
    """Width and height for a model sized in pixels (0×0 when they are already in ``errors``)."""
    if "width" in values or "height" in values or not references:
        w = int(values.get("width", rule.default[0]))
        h = int(values.get("height", rule.default[1]))
        if any(e["loc"][1] in ("width", "height") for e in errors):
            return 0, 0
        width, height, problems, size_notes = pixel_size_problems(rule, w, h)
        notes += size_notes
        errors += [bfl_field_error(f, m, "value_error", values.get(f)) for f, m in problems]
        return width, height
    width, height = reference_output_size(rule, references[0], spec.max_input_pixels)
    notes.append(f"no width/height: sized from {references[0].field} ({width}×{height})")
    return width, height


def _aspect_ratio_size(
    rule: AspectRatioSize, values: Mapping[str, Any], references: Sequence[Reference], errors: Errors,
    notes: list[str],
) -> tuple[int, int]:
    """Width and height for a model sized by aspect ratio (0×0 when any error is in ``errors``)."""
    text = values.get("aspect_ratio")
    ratio: tuple[int, int] | None = None
    if isinstance(text, str):
        ratio = parse_aspect_ratio(text)
        if ratio is None:
            errors.append(bfl_field_error("aspect_ratio", "aspect_ratio should look like W:H, for example 16:9",
                                          "value_error", text))
        elif not rule.admits(*ratio):
            lo, hi = rule.bounds_text
            errors.append(bfl_field_error("aspect_ratio", f"aspect_ratio must be between {lo} and {hi}",
                                          "value_error", text))
    elif rule.default is not None:
        ratio = parse_aspect_ratio(rule.default)
    if ratio is None and "aspect_ratio" not in values:
        if references:
            ratio = rule.clamp(references[0].width, references[0].height)
            notes.append(f"no aspect_ratio: sized from {references[0].field}")
        else:
            ratio = (1, 1)
    if ratio is not None and not errors:
        return rule.size_for(ratio)
    return 0, 0
