"""Reference images as they arrive: decoded, checked against the service's input limits, measured.

The measurements (size, format, mean colour) go to the request log so tests can see exactly
which images arrived in which order; a small preview goes to the renderer, which tiles it
into the result.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageStat

#: Contract §2 [doc]: each input image at most 20 MB and 20 MP. MB and MP here are binary
#: (2**20), the same reading as the registry's FOUR_MP = 2048×2048.
MAX_REFERENCE_BYTES = 20 * 1_048_576
MAX_REFERENCE_PIXELS = 20 * 1_048_576
#: Longest side of the preview kept for drawing tiles; plenty for a tile in a 4 MP result.
PREVIEW_SIDE = 768

_BASE64_RE = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_WHITESPACE = re.compile(r"\s+")


class ReferenceProblem(Exception):
    """A reference the service would refuse; the message names the field."""

    def __init__(self, field: str, message: str, *, code: str = "invalid_input_image") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class Reference:
    """One decoded reference image. ``index`` is N of ``input_image_N`` (1 for ``input_image``)."""

    index: int
    field: str
    width: int
    height: int
    bytes: int
    format: str
    mean_rgb: tuple[float, float, float]
    preview: Image.Image = field(repr=False, compare=False)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def log_entry(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "field": self.field,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
            "format": self.format,
            "mean_rgb": list(self.mean_rgb),
        }


def decode_base64_reference(field: str, index: int, text: object) -> Reference:
    """A BFL-route reference: raw base64 in a JSON string (no ``data:`` prefix, contract §2)."""
    if not isinstance(text, str):
        raise ReferenceProblem(field, f"{field} must be a base64 string, not {type(text).__name__}")
    stripped = _WHITESPACE.sub("", text)
    if stripped.startswith("data:"):
        raise ReferenceProblem(field, f"{field} starts with a data: URL prefix; send the raw base64 only")
    if stripped.startswith(("http://", "https://")):
        # The emulator's choice: it has no network to fetch from, so it accepts base64 only.
        raise ReferenceProblem(field, f"{field} is a URL; the emulator accepts base64-encoded images only")
    if len(stripped) * 3 // 4 > MAX_REFERENCE_BYTES:
        raise ReferenceProblem(field, f"{field} is larger than 20 MB", code="input_image_too_large")
    raw = stripped.encode("ascii", errors="replace")
    if len(raw) % 4 or not _BASE64_RE.match(raw):
        raise ReferenceProblem(field, f"{field} is not valid base64")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ReferenceProblem(field, f"{field} is not valid base64") from None
    return decode_reference_bytes(field, index, data)


def decode_reference_bytes(field: str, index: int, data: bytes) -> Reference:
    """A reference from its file bytes (multipart upload, or decoded base64)."""
    if not data:
        raise ReferenceProblem(field, f"{field} is empty")
    if len(data) > MAX_REFERENCE_BYTES:
        raise ReferenceProblem(field, f"{field} is larger than 20 MB", code="input_image_too_large")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ReferenceProblem(field, f"{field} is larger than 20 megapixels", code="input_image_too_large") from None
    except (OSError, ValueError, SyntaxError):
        raise ReferenceProblem(field, f"{field} is not an image the service can read") from None
    width, height = img.size
    fmt = img.format or "unknown"
    if width * height > MAX_REFERENCE_PIXELS:
        raise ReferenceProblem(
            field, f"{field} is {width}×{height}, larger than 20 megapixels", code="input_image_too_large"
        )
    try:
        img.draft("RGB", (PREVIEW_SIDE, PREVIEW_SIDE))  # JPEG decodes straight at a reduced scale
        img.load()
        preview = _flatten(img)
    except (OSError, ValueError, SyntaxError):
        raise ReferenceProblem(field, f"{field} is not a complete image") from None
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
    mean = ImageStat.Stat(preview).mean
    mean_rgb = (round(mean[0], 1), round(mean[1], 1), round(mean[2], 1))
    return Reference(index, field, width, height, len(data), fmt, mean_rgb, preview)


def _flatten(img: Image.Image) -> Image.Image:
    """RGB, with any transparency laid over white (how a person sees a transparent drawing)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
