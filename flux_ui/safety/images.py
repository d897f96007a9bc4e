"""An image brought within what image:analyze takes: 50 to 7,200 px a side, at most 4 MB.

A FLUX result usually fits as it is and is sent unchanged (JPEG, PNG and WebP are all formats
Content Safety reads). One that does not is resized (down to 7,200 px on its long side, up to
50 px on its short side) and re-encoded as JPEG, stepping the quality and then the size down until
it is under 4 MB. A shape too elongated for both bounds (8000 × 5) is scaled to fit the long side
and padded to 50 px on the short one, so it is checked as it would look, not refused.
Decoding goes through the process's decode gate (:mod:`flux_ui.images.memory`), like references.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

from PIL import Image

from flux_ui.images.formats import container_kind, open_unchecked
from flux_ui.images.memory import DECODE_GATE, decode_cost

MIN_SIDE = 50
MAX_SIDE = 7_200
#: "At most 4 MB": 4,000,000 bytes is under that whichever megabyte the service means.
MAX_BYTES = 4_000_000
#: Larger is no FLUX result, and more than flux-ui decodes for a check.
MAX_PIXELS = 64_000_000
_QUALITIES = (90, 80, 70)
_PAD = (255, 255, 255)


@dataclass(frozen=True)
class AnalysisImage:
    """What is sent to image:analyze, and what was done to get it there."""

    data: bytes = field(repr=False)
    size: tuple[int, int]
    original: tuple[int, int]
    changes: str = ""  # empty when sent as it was

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def plan_size(width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(size to resample to, canvas size) for an image of width × height; equal unless padded."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    if min(width, height) * scale < MIN_SIDE:
        up = MIN_SIDE / min(width, height)
        scale = up if max(width, height) * up <= MAX_SIDE else scale
    resized = (max(1, min(MAX_SIDE, round(width * scale))), max(1, min(MAX_SIDE, round(height * scale))))
    canvas = (max(MIN_SIDE, resized[0]), max(MIN_SIDE, resized[1]))
    return resized, canvas


def fits(data: bytes, width: int, height: int) -> bool:
    """Whether the image can go as it is."""
    return (container_kind(data) is not None and len(data) <= MAX_BYTES
            and min(width, height) >= MIN_SIDE and max(width, height) <= MAX_SIDE)


def fit_for_analysis(data: bytes) -> AnalysisImage:
    """The image as image:analyze takes it; ValueError when it is no image flux-ui can read."""
    try:
        img = open_unchecked(data)
    except Exception as exc:
        raise ValueError(f"the image cannot be read ({type(exc).__name__})") from None
    width, height = img.size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise ValueError(f"the image is {width}×{height} px, more than flux-ui checks ({MAX_PIXELS:,} px at most)")
    if fits(data, width, height):
        return AnalysisImage(data, (width, height), (width, height))
    resized, canvas = plan_size(width, height)
    if img.format == "JPEG" and resized[0] < width:
        img.draft("RGB", resized)  # decode at a fraction of the size when JPEG allows
    with DECODE_GATE.admit(decode_cost(img, 1)):
        rgb = _flattened(img)
        if rgb.size != resized:
            rgb = rgb.resize(resized, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if canvas != resized:
        padded = Image.new("RGB", canvas, _PAD)
        padded.paste(rgb, ((canvas[0] - resized[0]) // 2, (canvas[1] - resized[1]) // 2))
        rgb = padded
    encoded, rgb = _under_limit(rgb)
    changes = f"re-encoded as JPEG at {rgb.width}×{rgb.height}"
    if rgb.size != (width, height):
        changes = f"resized from {width}×{height} to {rgb.width}×{rgb.height} and re-encoded as JPEG"
    if canvas != resized:
        changes += f" (padded to {MIN_SIDE} px on its short side)"
    return AnalysisImage(encoded, rgb.size, (width, height), changes)


def _flattened(img: Image.Image) -> Image.Image:
    """RGB, any transparency laid over white (as a light page shows it)."""
    img.load()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGB", rgba.size, _PAD)
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    return img.convert("RGB")


def _under_limit(rgb: Image.Image) -> tuple[bytes, Image.Image]:
    """JPEG bytes under MAX_BYTES: lower quality first, then a smaller size (never under MIN_SIDE)."""
    while True:
        for quality in _QUALITIES:
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=quality)
            if out.tell() <= MAX_BYTES:
                return out.getvalue(), rgb
        shrink = max(0.5, math.sqrt(MAX_BYTES / out.tell()) * 0.95)
        size = (max(MIN_SIDE, round(rgb.width * shrink)), max(MIN_SIDE, round(rgb.height * shrink)))
        if size == rgb.size:
            raise ValueError("the image cannot be brought under 4 MB")
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
