"""What each route accepts, decided by the capability registry rather than numbers written here.

Each ``validate_*`` function turns one route's request into a :class:`Plan` (what to render
and at what size) or raises :class:`ApiError` with the body that route uses for the problem:
the BFL route answers bad parameters with FastAPI's 422 ``{"detail": [...]}`` and other
refusals with Azure's 400 ``{"error": {...}}``; the Image API uses Azure's 400 shape; the
schnell endpoint answers everything with 400 ``{"error": "<message>"}`` (contract §2–§4).

Sizes follow the contract: FLUX.2 floors width and height to 16 [seen] within 64 px and 4 MP;
FLUX1.1 [pro] takes only multiples of 32 in 256–1440; Kontext sizes by aspect ratio at about
1 MP; schnell floors to 16. Where the contract says nothing, the choice is marked here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flux_ui.emulator.bodies import (
    ApiError,
    azure_error,
    bfl_field_error,
    bfl_validation,
    schnell_error,
)
from flux_ui.emulator.prompt_tokens import count_tokens, truncate_to_tokens
from flux_ui.emulator.references import Reference
from flux_ui.emulator.render import OutputFormat
from flux_ui.registry import (
    MODELS,
    AspectRatioSize,
    ModelSpec,
    Param,
    PixelSize,
    aspect_ratio_size,
    parse_aspect_ratio,
)

#: ``input_image``, ``input_image_2``, ``input_image_3`` …; ``input_image_1`` is not a BFL field.
REFERENCE_FIELD = re.compile(r"^input_image(?:_([2-9]|[1-9]\d+))?$")
#: BFL-route fields every model takes besides its registry parameters. Microsoft's examples
#: send ``num_images`` and its notebook ``n`` (contract §2); both must be 1.
BFL_COMMON_FIELDS = ("model", "prompt", "num_images", "n")
IMAGE_API_FIELDS = ("model", "prompt", "n", "size", "output_format")
SCHNELL = MODELS["FLUX.1-schnell"]
#: Keyword arguments the diffusers FLUX pipeline takes through the toolkit (contract §4), less
#: ``scheduler``, which the FLUX pipeline does not accept.
SCHNELL_PARAMETERS = ("guidance_scale", "negative_prompt", "num_inference_steps", "width", "height", "seed")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


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


# --- shared pieces ----------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    # The emulator's choice: 42.0 counts as an int, as in pydantic's lax mode (the BFL route's 422
    # body is FastAPI's shape); bools are never numbers here.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_param(param: Param, value: object, *, editing: bool) -> tuple[str, str, dict[str, Any]] | None:
    """(message, pydantic-style type, ctx) when ``value`` breaks the registry's rule, else None."""
    kind = param.kind
    if kind == "int" and not _is_int(value):
        kind_type = "int_from_float" if _is_number(value) else "int_type"
        return "Input should be a valid integer", kind_type, {}
    if kind == "float" and not _is_number(value):
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
        maximum = param.edit_maximum if editing and param.edit_maximum is not None else param.maximum
        if param.minimum is not None and number < param.minimum:
            return f"Input should be greater than or equal to {param.minimum:g}", "greater_than_equal", {
                "ge": param.minimum
            }
        if maximum is not None and number > maximum:
            suffix = " when an input image is sent" if maximum == param.edit_maximum and editing else ""
            return f"Input should be less than or equal to {maximum:g}{suffix}", "less_than_equal", {"le": maximum}
    return None


def _prompt_limit_error(spec: ModelSpec, prompt: str) -> ApiError | None:
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


def floor_to(value: int, multiple: int) -> int:
    return value // multiple * multiple


def _reference_output_size(rule: PixelSize, ref: Reference, max_pixels: int | None) -> tuple[int, int]:
    """A FLUX.2 edit without width/height: the first reference's size as the service would
    prepare it (downscaled to the input budget, cropped to the grid) — the emulator's choice,
    since the contract gives no default size for edits."""
    w, h = ref.width, ref.height
    budget = max_pixels or rule.max_pixels
    if budget and w * h > budget:
        scale = math.sqrt(budget / (w * h))
        w, h = int(w * scale), int(h * scale)
    return max(rule.min_side, floor_to(w, rule.multiple)), max(rule.min_side, floor_to(h, rule.multiple))


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
            out[name] = floor_to(value, rule.multiple)
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


def _ratio_in_range(rule: AspectRatioSize, ratio: tuple[float, float]) -> bool:
    value = ratio[0] / ratio[1]
    return rule.tallest[0] / rule.tallest[1] <= value <= rule.widest[0] / rule.widest[1]


def _clamp_ratio(rule: AspectRatioSize, width: int, height: int) -> tuple[int, int]:
    value = width / height
    if value > rule.widest[0] / rule.widest[1]:
        return rule.widest
    if value < rule.tallest[0] / rule.tallest[1]:
        return rule.tallest
    return width, height


def _ratio_text(rule: AspectRatioSize) -> str:
    return f"{rule.widest[0]}:{rule.widest[1]} and {rule.tallest[0]}:{rule.tallest[1]}"


def _default_format(spec: ModelSpec) -> OutputFormat:
    param = spec.param("output_format")
    return param.default if param is not None else "jpeg"  # type: ignore[return-value]


# --- BFL provider route -----------------------------------------------------------------------


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
    errors: list[dict[str, Any]] = []
    notes: list[str] = []
    editing = bool(references)
    known = set(BFL_COMMON_FIELDS) | {p.name for p in spec.all_params}
    unknown = [k for k in body if k not in known and not REFERENCE_FIELD.match(k)]
    if unknown:
        notes.append(f"ignored fields {', '.join(unknown)} (not in {spec.display_name}'s schema)")

    prompt = body.get("prompt")
    if prompt is None:
        errors.append(bfl_field_error("prompt", "Field required", "missing"))
    elif not isinstance(prompt, str):
        errors.append(bfl_field_error("prompt", "Input should be a valid string", "string_type"))
    elif not prompt.strip():
        errors.append(bfl_field_error("prompt", "String should have at least 1 character", "string_too_short",
                                      min_length=1))

    for name in ("num_images", "n"):
        value = body.get(name)
        if value is not None and not (_is_int(value) and int(value) == 1):
            errors.append(bfl_field_error(name, "Input should be 1: a FLUX deployment returns one image per request",
                                          "literal_error", value, expected="1"))

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

    width, height = 0, 0
    if isinstance(spec.size, PixelSize):
        rule = spec.size
        if "width" in values or "height" in values or not references:
            w = int(values.get("width", rule.default[0]))
            h = int(values.get("height", rule.default[1]))
            if not any(e["loc"][1] in ("width", "height") for e in errors):
                width, height, problems, size_notes = pixel_size_problems(rule, w, h)
                notes += size_notes
                errors += [bfl_field_error(f, m, "value_error", values.get(f)) for f, m in problems]
        else:
            width, height = _reference_output_size(rule, references[0], spec.max_input_pixels)
            notes.append(f"no width/height: sized from {references[0].field} ({width}×{height})")
    else:
        rule_ar = spec.size
        text = values.get("aspect_ratio")
        ratio: tuple[int, int] | None = None
        if isinstance(text, str):
            ratio = parse_aspect_ratio(text)
            if ratio is None:
                errors.append(bfl_field_error("aspect_ratio", "aspect_ratio should look like W:H, for example 16:9",
                                              "value_error", text))
            elif not _ratio_in_range(rule_ar, ratio):
                errors.append(bfl_field_error("aspect_ratio", f"aspect_ratio must be between {_ratio_text(rule_ar)}",
                                              "value_error", text))
        elif rule_ar.default is not None:
            ratio = parse_aspect_ratio(rule_ar.default)
        if ratio is None and "aspect_ratio" not in values:
            if references:
                ratio = _clamp_ratio(rule_ar, references[0].width, references[0].height)
                notes.append(f"no aspect_ratio: sized from {references[0].field}")
            else:
                ratio = (1, 1)
        if ratio is not None and not errors:
            width, height = aspect_ratio_size(rule_ar, ratio)

    if errors:
        raise ApiError(422, bfl_validation(errors))
    assert isinstance(prompt, str)
    if (too_long := _prompt_limit_error(spec, prompt)) is not None:
        raise too_long
    seed = values.get("seed")
    return Plan(
        spec=spec,
        prompt=prompt,
        width=width,
        height=height,
        output_format=values.get("output_format", _default_format(spec)),
        seed=int(seed) if seed is not None else None,
        references=tuple(references),
        unknown_params=unknown,
        notes=notes,
    )


# --- Image API --------------------------------------------------------------------------------


def _bad_request(message: str, param: str | None = None) -> ApiError:
    # The code is the emulator's choice: the contract records only the Azure shape for these.
    return ApiError(400, azure_error("BadRequest", message, param=param))


def validate_image_api(
    spec: ModelSpec, operation: str, fields: Mapping[str, Any], references: Sequence[Reference]
) -> Plan:
    """An Image API request (JSON generations or multipart edits) → Plan, or Azure-shaped 400.

    ``size`` is "WxH". Kontext renders about 1 MP whatever the size says, so the emulator reads
    the size as an aspect ratio (its choice: the contract documents only ``"1024x1024"``).
    """
    notes: list[str] = []
    unknown = [k for k in fields if k not in IMAGE_API_FIELDS]
    if unknown:
        notes.append(f"ignored fields {', '.join(unknown)}")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _bad_request("'prompt' is required and must not be empty.", "prompt")

    n = fields.get("n")
    if n is not None and str(n).strip() != "1":
        raise _bad_request("'n' must be 1: a FLUX deployment returns one image per request.", "n")

    if operation == "edits":
        if not references:
            raise _bad_request("'image' is required for an edit.", "image")
        if len(references) > spec.max_references:
            raise _bad_request(f"{spec.display_name} takes {spec.max_references} image; {len(references)} were sent.",
                               "image")

    output_format: OutputFormat = _default_format(spec)
    fmt = fields.get("output_format")
    fmt_param = spec.param("output_format")
    if fmt is not None and fmt_param is not None:
        if fmt not in fmt_param.choices:
            raise _bad_request(f"'output_format' must be one of {', '.join(fmt_param.choices)}.", "output_format")
        output_format = fmt

    size_text = fields.get("size")
    parsed: tuple[int, int] | None = None
    if size_text is not None and str(size_text).strip().lower() != "auto":
        m = _SIZE_RE.match(str(size_text))
        if m is None or int(m.group(1)) == 0 or int(m.group(2)) == 0:
            raise _bad_request(f"'size' must look like 1024x1024, not {str(size_text)[:40]!r}.", "size")
        parsed = int(m.group(1)), int(m.group(2))

    if isinstance(spec.size, AspectRatioSize):
        rule_ar = spec.size
        if parsed is not None:
            if not _ratio_in_range(rule_ar, parsed):
                raise _bad_request(f"'size' must have an aspect ratio between {_ratio_text(rule_ar)}.", "size")
            ratio = parsed
        elif references:
            ratio = _clamp_ratio(rule_ar, references[0].width, references[0].height)
        else:
            ratio = parse_aspect_ratio(rule_ar.default) if rule_ar.default else (1, 1)
            ratio = ratio or (1, 1)
        width, height = aspect_ratio_size(rule_ar, ratio)
        if parsed is not None and parsed != (width, height):
            notes.append(f"size {parsed[0]}x{parsed[1]} rendered as {width}×{height} (about {rule_ar.megapixels:g} MP)")
    else:
        rule = spec.size
        w, h = parsed or rule.default
        width, height, problems, size_notes = pixel_size_problems(rule, w, h)
        if problems:
            raise _bad_request(f"'size' {w}x{h} is not accepted: " + "; ".join(m for _, m in problems) + ".", "size")
        notes += size_notes

    if (too_long := _prompt_limit_error(spec, prompt)) is not None:
        raise too_long
    return Plan(spec, prompt, width, height, output_format, None, tuple(references), unknown, notes)


# --- FLUX.1-schnell on Azure ML ---------------------------------------------------------------


def _schnell_fail(message: str) -> ApiError:
    return ApiError(400, schnell_error(message))


def validate_schnell(body: object, *, square_only: bool) -> Plan:
    """A toolkit request ``{"inputs", "parameters"}`` → Plan, or the toolkit's 400.

    Parameters go to the diffusers pipeline as keyword arguments, so a name it does not take
    fails the call; ``scheduler`` is among them for FLUX (contract §4).
    """
    if not isinstance(body, dict):
        raise _schnell_fail("The request body must be a JSON object with 'inputs'.")
    prompt = body.get("inputs")
    if not isinstance(prompt, str):
        raise _schnell_fail("'inputs' must be the prompt string.")
    unknown_top = [k for k in body if k not in ("inputs", "parameters")]
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _schnell_fail("'parameters' must be a JSON object.")
    if "scheduler" in params:
        raise _schnell_fail("FluxPipeline does not accept a 'scheduler' parameter.")
    for name in params:
        if name not in SCHNELL_PARAMETERS:
            raise _schnell_fail(f"FluxPipeline.__call__() got an unexpected keyword argument '{name}'")

    spec = SCHNELL
    values: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in ("width", "height"):
            if not _is_int(value):
                raise _schnell_fail(f"'{name}' must be an integer.")
            values[name] = int(value)
            continue
        param = spec.param(name)
        if param is None:
            continue
        if name == "num_inference_steps":
            # The registry's maximum (4) is advice for a distilled model; the pipeline runs any
            # positive number of steps, so only the minimum is enforced.
            param = replace(param, maximum=None)
        elif name == "guidance_scale":
            param = replace(param, minimum=None, maximum=None)  # ignored by schnell, any number runs
        problem = check_param(param, value, editing=False)
        if problem:
            raise _schnell_fail(f"'{name}': {problem[0]}")
        values[name] = value

    notes = [f"ignored top-level fields {', '.join(unknown_top)}"] if unknown_top else []
    rule = spec.size
    assert isinstance(rule, PixelSize)
    w = values.get("width", rule.default[0])
    h = values.get("height", rule.default[1])
    width, height, problems, size_notes = pixel_size_problems(rule, w, h)
    if problems:
        raise _schnell_fail("; ".join(m for _, m in problems))
    if square_only and width != height:
        raise _schnell_fail(f"This endpoint only generates square images; got {width}x{height}.")
    notes += size_notes
    limit = spec.prompt
    seen = truncate_to_tokens(prompt, limit.max_tokens, limit.tokenizer)
    if seen != prompt:
        notes.append(f"prompt cut to about {limit.max_tokens} T5 tokens")
    seed = values.get("seed")
    return Plan(spec, seen, width, height, "png", int(seed) if seed is not None else None, (), unknown_top, notes)
