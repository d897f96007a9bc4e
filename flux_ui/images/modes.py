"""Pixel modes: whatever a reference decodes as, brought to 8-bit L, RGB or RGBA, band by band when reduced.

An alpha channel is kept only when some pixel uses it, and CMYK with an embedded profile is
converted through it (:mod:`flux_ui.images.colour`).
"""

from __future__ import annotations

import math

from PIL import Image

from flux_ui.images.colour import to_srgb

#: Rows of a decoded image converted and reduced at a time: bands of about this many bytes.
_BAND_BYTES = 8 * 1024 * 1024

_MODE_NAMES = {
    "1": "1-bit black and white",
    "L": "grayscale",
    "LA": "grayscale with alpha",
    "La": "grayscale with alpha",
    "P": "palette colour",
    "PA": "palette colour with alpha",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "CIELAB",
    "HSV": "HSV",
    "I": "32-bit integer grayscale",
    "F": "32-bit float grayscale",
}


def mode_name(mode: str) -> str:
    """A Pillow mode in words a person understands."""
    if mode.startswith("I;16"):
        return "16-bit grayscale"
    return _MODE_NAMES.get(mode, mode)


def reduce_in_bands(img: Image.Image, factor: int, icc: bytes | None) -> Image.Image:
    """``img`` reduced ``factor`` times, converted band by band as normalise_mode would.

    Converting or premultiplying the whole decoded image would copy it (256 MB at 64 MP); a band
    at a time keeps those copies a few MB. Bands are whole multiples of ``factor`` rows, so the
    result is exactly that of reducing the whole image.
    """
    # Stretching I/F data needs the whole image's range, not a band's (no copy: one band).
    extrema = img.getextrema() if img.mode in ("I", "F") else None
    rows = max(factor, _BAND_BYTES // (img.width * 4) // factor * factor)
    out: Image.Image | None = None
    for top in range(0, img.height, rows):
        band = img.crop((0, top, img.width, min(img.height, top + rows)))
        if not (band.mode == "CMYK" and icc):  # CMYK with a profile is converted once reduced
            band = normalise_mode(band, None, extrema)[0]
        small = band.reduce(factor)  # premultiplied for RGBA, as Image.resize does
        if out is None:
            out = Image.new(small.mode, (math.ceil(img.width / factor), math.ceil(img.height / factor)))
        out.paste(small, (0, top // factor))
    assert out is not None  # an image has at least one row
    return out


def normalise_mode(
    img: Image.Image, icc: bytes | None, extrema: tuple[float, float] | None = None
) -> tuple[Image.Image, bool]:
    """Bring any mode to L, RGB or RGBA; True when an embedded profile did the conversion.

    ``extrema``: an I/F image's range when ``img`` is one band of it.
    """
    mode = img.mode
    if mode.startswith("I;16"):
        return _to_8bit(img.convert("I"), 0, 65535), False
    if mode in ("I", "F"):
        # No bit depth is recorded: assume the smallest usual range that holds the values
        # (0..1 floats, 8 or 16 bits), and stretch anything else to fit.
        lo, hi = extrema or img.getextrema()
        ranges = (1, 255, 65535) if mode == "F" else (255, 65535)
        top = next((r for r in ranges if lo >= 0 and hi <= r), None)
        return (_to_8bit(img, 0, top) if top else _to_8bit(img, lo, hi)), False
    if mode == "CMYK" and icc:
        converted, profile = to_srgb(img, icc, output_mode="RGB")
        if profile is not None:
            return converted, True
    if mode == "RGBA" or (mode in ("L", "RGB") and not img.has_transparency_data):
        return img, False
    if img.has_transparency_data:
        return img.convert("RGBA"), False
    if mode == "1":
        return img.convert("L"), False
    return img.convert("RGB"), False


def drop_unused_alpha(img: Image.Image) -> Image.Image:
    """RGB when every pixel is opaque: an alpha channel nobody uses would force a larger PNG."""
    if img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 255:
        return img.convert("RGB")
    return img


def _to_8bit(img: Image.Image, lo: float, hi: float) -> Image.Image:
    """Map lo..hi linearly onto 0..255 (Pillow's own I→L conversion clips, turning 16-bit data white)."""
    if (lo, hi) == (0, 255):
        return img.convert("L")
    if hi <= lo:
        return Image.new("L", img.size, 0)
    gain = 255 / (hi - lo)
    offset = -lo * gain
    return img.point(lambda v: v * gain + offset).convert("L")
