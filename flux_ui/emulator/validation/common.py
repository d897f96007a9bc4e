"""The validation pieces every route shares: the Plan, parameter checks against the registry, size rules.

Sizes follow the contract: FLUX.2 floors width and height to 16 [seen] within 64 px and 4 MP;
FLUX1.1 [pro] takes only multiples of 32 in 256–1440; Kontext sizes by aspect ratio at about
1 MP; schnell floors to 16. Where the contract says nothing, the choice is marked here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from flux_ui.emulator.bodies import ApiError, azure_error
from flux_ui.emulator.prompt_tokens import count_tokens
from flux_ui.emulator.references import Reference
from flux_ui.emulator.render import OutputFormat
from flux_ui.registry import ModelSpec, Param, PixelSize


@dataclass
class Plan:
    """A request the service would carry out: what to render, and what the log should say."""

    spec: ModelSpec
    prompt: str  # what the model sees (schnell: cut to its T5 budget)
    width: int
    height: int
    output_format: OutputFormat
    seed: int | None
    references: tuple[Reference, ...] = ()
    unknown_params: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_int(value: object) -> bool:
    # The emulator's choice: 42.0 counts as an int, as in pydantic's lax mode (the BFL route's 422
    # body is FastAPI's shape); bools are never numbers here.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_param(param: Param, value: object, *, editing: bool) -> tuple[str, str, dict[str, Any]] | None:
    """(message, pydantic-style type, ctx) when ``value`` breaks a rule the service enforces, else None
    (a bound the registry marks as the UI's advice is not checked: ``Param.service_checks``)."""
    param = param.enforced()
    kind = param.kind
    if kind == "int" and not is_int(value):
        kind_type = "int_from_float" if is_number(value) else "int_type"
        return "Input should be a valid integer", kind_type, {}
    if kind == "float" and not is_number(value):
        return "Input should be a valid number", "float_type", {}
    if kind == "bool" and not isinstance(value, bool):
        return "Input should be a valid boolean", "bool_type", {}
    if kind in ("text", "aspect_ratio") and not isinstance(value, str):
        return "Input should be a valid string", "string_type", {}
    if kind == "choice":
        if value not in param.choices:
            expected = " or ".join(f"'{c}'" for c in param.choices)
            return f"Input should be {expected}", "enum", {"expected": expected}
        return None
    if kind in ("int", "float"):
        number = float(value)  # type: ignore[arg-type]
        maximum = param.maximum_for(editing)
        if param.minimum is not None and number < param.minimum:
            return f"Input should be greater than or equal to {param.minimum:g}", "greater_than_equal", {
                "ge": param.minimum
            }
        if maximum is not None and number > maximum:
            suffix = " when an input image is sent" if maximum != param.maximum else ""
            return f"Input should be less than or equal to {maximum:g}{suffix}", "less_than_equal", {"le": maximum}
    return None


def prompt_limit_error(spec: ModelSpec, prompt: str) -> ApiError | None:
    """Azure's 400 for a prompt over a model's token limit, where the model rejects long prompts."""
    limit = spec.prompt
    if limit.over_limit != "rejected":
        return None
    tokens = count_tokens(prompt, limit.tokenizer)
    if tokens <= limit.max_tokens:
        return None
    return ApiError(
        400,
        azure_error(
            "prompt_too_long",
            f"The prompt is about {tokens} tokens; {spec.display_name} takes at most {limit.max_tokens}. "
            "Shorten the prompt.",
        ),
    )


def reference_output_size(rule: PixelSize, ref: Reference, max_pixels: int | None) -> tuple[int, int]:
    """A FLUX.2 edit without width/height: the first reference's size as the service would
    prepare it (downscaled to the input budget, cropped to the grid) — the emulator's choice,
    since the contract gives no default size for edits."""
    return rule.fit(ref.width, ref.height, max_pixels)


def pixel_size_problems(rule: PixelSize, width: int, height: int) -> tuple[int, int, list[tuple[str, str]], list[str]]:
    """The size the service renders for an explicit width/height, with problems and notes.

    Problems are (field, message). A ``floor`` rule floors off-grid sides [seen]; a ``nearest``
    rule is one whose model documents only grid sizes, so the emulator refuses off-grid sides.
    """
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    out: dict[str, int] = {}
    for name, value in (("width", width), ("height", height)):
        if value < rule.min_side:
            problems.append((name, f"{name} must be at least {rule.min_side}"))
        elif rule.max_side is not None and value > rule.max_side:
            problems.append((name, f"{name} must be at most {rule.max_side}"))
        if rule.snap == "floor":
            out[name] = rule.on_grid(value)
            if out[name] != value:
                notes.append(f"{name} {value} floored to {out[name]} (a multiple of {rule.multiple})")
        else:
            out[name] = value
            if value % rule.multiple:
                problems.append((name, f"{name} must be a multiple of {rule.multiple}"))
    w, h = out["width"], out["height"]
    if not problems and rule.max_pixels is not None and w * h > rule.max_pixels:
        budget = f"{rule.max_pixels} ({rule.max_pixels / 1_048_576:g} MP)"
        problems.append(("width", f"width × height is {w * h} pixels; at most {budget}"))
    return w, h, problems, notes


def default_format(spec: ModelSpec) -> OutputFormat:
    param = spec.param("output_format")
    return param.default if param is not None else "jpeg"  # type: ignore[return-value]
