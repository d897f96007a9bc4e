"""Where a reference's pixels land: upright from its EXIF orientation, within the model's pixel budget, on its grid.

Sizes are planned before pixels are decoded (a hopeless shape is refused from the header), and
the scale and centre-crop then happen in one resampling pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PIL import ExifTags, Image

from flux_ui.errors import ReferenceImageError
from flux_ui.registry import fit_area

#: Builds the error refusing one reference, from the words after its name.
Refuse = Callable[[str], ReferenceImageError]

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation to undo (1: none); an unreadable EXIF block keeps the image as stored."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if value in _TRANSPOSE else 1


def upright(img: Image.Image, value: int) -> Image.Image:
    """``img`` with EXIF orientation ``value`` undone (``img`` itself for 1)."""
    return img.transpose(_TRANSPOSE[value]) if value != 1 else img


def plan_geometry(
    width: int, height: int, max_pixels: int | None, multiple: int, refuse: Refuse
) -> tuple[tuple[int, int], tuple[int, int], float]:
    """(size after scaling, size on the grid, scale factor) for an image of width × height."""
    scaled = fit_area(width, height, max_pixels) if max_pixels else (width, height)
    scale = math.sqrt(max_pixels / (width * height)) if scaled != (width, height) else 1.0
    grid = (scaled[0] // multiple * multiple, scaled[1] // multiple * multiple)
    if min(grid) < multiple:
        if scale < 1:
            raise refuse(
                f"is {width}×{height} px, so narrow that it would be {scaled[0]}×{scaled[1]} px at the model's "
                f"pixel budget; FLUX needs at least {multiple} px on each side: crop it to a less elongated shape"
            )
        raise refuse(f"is only {width}×{height} px; FLUX needs at least {multiple} px on each side: use a larger image")
    return scaled, grid, scale


def geometry_notes(
    full: tuple[int, int],
    scaled: tuple[int, int],
    grid: tuple[int, int],
    scale: float,
    max_pixels: int | None,
    multiple: int,
) -> list[str]:
    """What downscaling and cropping did, in words."""
    width, height = full
    if scale < 1:
        notes = [
            f"downscaled from {width}×{height} to {grid[0]}×{grid[1]} "
            f"(the model reads at most {megapixels(max_pixels or 0)} MP)"
        ]
        if grid != scaled:
            notes.append(f"trimmed a few edge pixels (centred) so both sides are multiples of {multiple}")
        return notes
    if grid != full:
        return [f"cropped {width}×{height} to {grid[0]}×{grid[1]} (centred) so both sides are multiples of {multiple}"]
    return []


def reduce_factor(decoded_width: int, stored_width: int, scale: float) -> int:
    """The integer factor to box-reduce a decoded image by before the exact resize (1: none).

    The largest that keeps the image at least the target size, as JPEG's draft decode does: the
    k×k average is itself an anti-aliasing filter, and LANCZOS then has less than 2× to go. Every
    copy made after it (mode, rotation, premultiplied alpha, resize) is k² times smaller.
    """
    if scale >= 1:
        return 1
    return max(1, int(decoded_width / (stored_width * scale)))


def resize_and_crop(
    img: Image.Image, full: tuple[int, int], grid: tuple[int, int], scale: float, factor: int = 1
) -> Image.Image:
    """Scale by ``scale`` and centre-crop onto ``grid`` in one resampling pass.

    ``full`` is the upright size at full resolution; ``img`` may be smaller after a draft decode,
    or ``factor`` times smaller after a reduce.
    """
    width, height = full
    if scale >= 1:
        if grid == img.size:
            return img
        left, top = (width - grid[0]) // 2, (height - grid[1]) // 2
        return img.crop((left, top, left + grid[0], top + grid[1]))
    # The region of the full-size picture that lands on the grid, in the decoded image's pixels.
    # A reduce maps k pixels to one exactly (its last column and row may average fewer).
    fx, fy = (1 / factor, 1 / factor) if factor > 1 else (img.width / width, img.height / height)
    box_w, box_h = grid[0] / scale, grid[1] / scale
    left, top = (width - box_w) / 2, (height - box_h) / 2
    box = (left * fx, top * fy, (left + box_w) * fx, (top + box_h) * fy)
    return img.resize(grid, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def megapixels(pixels: int) -> str:
    """``pixels`` in megapixels, to one decimal at most."""
    return f"{round(pixels / 1_000_000, 1):g}"
