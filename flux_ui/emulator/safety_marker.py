"""The emulator's Content Safety marker: a pattern its renderer draws and its image analyzer finds.

A prompt carrying ``EmulatorConfig.safety_marker_word`` makes the renderer draw a 4 × 4 checkerboard
of pure magenta and pure green in the bottom-right corner (a quarter of the short side); the
image:analyze route then answers the configured category and severity for any image that carries
it. The pattern is found by sampling the middle of each cell at positions relative to the image's
size, so it survives what flux-ui does before asking (resizing either way, JPEG re-encoding, chroma
subsampling), while the renderer's own backgrounds (colours of at most 80 % value and 85 %
saturation) never produce 16 alternating cells this saturated.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

CELLS = 4
MAGENTA = (255, 0, 255)
GREEN = (0, 255, 0)
#: Largest difference per channel between a sampled cell and its colour that still counts.
TOLERANCE = 90
_SAMPLES = 4  # pixels per cell side once the region is reduced for sampling


def asks_for_marker(prompt: str, word: str) -> bool:
    """Whether a prompt asks the renderer for the marker (``word`` anywhere in it, any case)."""
    return bool(word) and word.casefold() in prompt.casefold()


def marker_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the marker sits in an image of width × height: (left, top, right, bottom)."""
    short = min(width, height)
    side = max(CELLS * 2, round(short * 0.25))
    margin = round(short * 0.03)
    right, bottom = width - margin, height - margin
    return right - side, bottom - side, right, bottom


def _colour(row: int, col: int) -> tuple[int, int, int]:
    return MAGENTA if (row + col) % 2 == 0 else GREEN


def draw_marker(img: Image.Image) -> None:
    """Draw the marker on ``img`` (RGB) in place."""
    left, top, right, bottom = marker_box(img.width, img.height)
    draw = ImageDraw.Draw(img)
    for row in range(CELLS):
        for col in range(CELLS):
            x0 = left + (right - left) * col // CELLS
            y0 = top + (bottom - top) * row // CELLS
            x1 = left + (right - left) * (col + 1) // CELLS
            y1 = top + (bottom - top) * (row + 1) // CELLS
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=_colour(row, col))


def has_marker(img: Image.Image) -> bool:
    """Whether ``img`` carries the marker, however it was resized or re-encoded since."""
    left, top, right, bottom = marker_box(img.width, img.height)
    if right - left < CELLS * 2 or left < 0 or top < 0:
        return False
    size = CELLS * _SAMPLES
    region = img.convert("RGB").crop((left, top, right, bottom)).resize((size, size), Image.Resampling.BOX)
    for row in range(CELLS):
        for col in range(CELLS):
            centre = region.crop((col * _SAMPLES + 1, row * _SAMPLES + 1, (col + 1) * _SAMPLES - 1,
                                  (row + 1) * _SAMPLES - 1)).resize((1, 1), Image.Resampling.BOX)
            pixel = centre.getpixel((0, 0))
            assert isinstance(pixel, tuple)
            if max(abs(a - b) for a, b in zip(pixel, _colour(row, col), strict=False)) > TOLERANCE:
                return False
    return True
