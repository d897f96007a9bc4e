"""What the Image API accepts: JSON generations and multipart edits, every problem as Azure's 400.

``size`` is "WxH". Kontext renders about 1 MP whatever the size says, so the emulator reads the
size as an aspect ratio (its choice: the contract documents only ``"1024x1024"``; §3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flux_ui.emulator.bodies import ApiError, azure_error
from flux_ui.emulator.references import Reference
from flux_ui.emulator.render import OutputFormat
from flux_ui.emulator.validation.common import (
    Plan,
    default_format,
    pixel_size_problems,
    prompt_limit_error,
)
from flux_ui.registry import AspectRatioSize, ModelSpec, PixelSize, parse_aspect_ratio

IMAGE_API_FIELDS = ("model", "prompt", "n", "size", "output_format")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def _bad_request(message: str, param: str | None = None) -> ApiError:
    # The code is the emulator's choice: the contract records only the Azure shape for these.
    return ApiError(400, azure_error("BadRequest", message, param=param))


def validate_image_api(
    spec: ModelSpec, operation: str, fields: Mapping[str, Any], references: Sequence[Reference]
) -> Plan:
    """An Image API request (JSON generations or multipart edits) → Plan, or Azure-shaped 400."""
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

    output_format = _output_format(spec, fields.get("output_format"))
    parsed = _parse_size(fields.get("size"))
    if isinstance(spec.size, AspectRatioSize):
        width, height = _aspect_ratio_size(spec.size, parsed, references, notes)
    else:
        width, height = _pixel_size(spec.size, parsed, notes)

    if (too_long := prompt_limit_error(spec, prompt)) is not None:
        raise too_long
    return Plan(spec, prompt, width, height, output_format, None, tuple(references), unknown, notes)


def _output_format(spec: ModelSpec, fmt: object) -> OutputFormat:
    fmt_param = spec.param("output_format")
    if fmt is None or fmt_param is None:
        return default_format(spec)
    if fmt not in fmt_param.choices:
        raise _bad_request(f"'output_format' must be one of {', '.join(fmt_param.choices)}.", "output_format")
    return fmt  # type: ignore[return-value]


def _parse_size(size_text: object) -> tuple[int, int] | None:
    """``size`` as (width, height); None when absent or ``auto``."""
    if size_text is None or str(size_text).strip().lower() == "auto":
        return None
    m = _SIZE_RE.match(str(size_text))
    if m is None or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise _bad_request(f"'size' must look like 1024x1024, not {str(size_text)[:40]!r}.", "size")
    return int(m.group(1)), int(m.group(2))


def _aspect_ratio_size(
    rule: AspectRatioSize, parsed: tuple[int, int] | None, references: Sequence[Reference], notes: list[str]
) -> tuple[int, int]:
    if parsed is not None:
        if not rule.admits(*parsed):
            raise _bad_request(f"'size' must have an aspect ratio between {' and '.join(rule.bounds_text)}.", "size")
        ratio = parsed
    elif references:
        ratio = rule.clamp(references[0].width, references[0].height)
    else:
        ratio = (parse_aspect_ratio(rule.default) if rule.default else (1, 1)) or (1, 1)
    width, height = rule.size_for(ratio)
    if parsed is not None and parsed != (width, height):
        notes.append(f"size {parsed[0]}x{parsed[1]} rendered as {width}×{height} (about {rule.megapixels:g} MP)")
    return width, height


def _pixel_size(rule: PixelSize, parsed: tuple[int, int] | None, notes: list[str]) -> tuple[int, int]:
    w, h = parsed or rule.default
    width, height, problems, size_notes = pixel_size_problems(rule, w, h)
    if problems:
        raise _bad_request(f"'size' {w}x{h} is not accepted: " + "; ".join(m for _, m in problems) + ".", "size")
    notes += size_notes
    return width, height
