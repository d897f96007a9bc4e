"""Reference preparation: each upload decoded, checked, turned upright, put on the model's grid and re-encoded.

References are prepared on this machine before they are sent, so the service never receives a
file it would choke on, no EXIF/GPS/ICC or comment leaves with the pixels, and the preview a
person sees is exactly what the model reads (upright, within the model's pixel budget, sides on
the model's grid). Whatever cannot be used is refused with a ReferenceImageError that says what
to do about it: too big, animated, damaged, not an image, a decompression bomb.

Pillow's decompression-bomb guard lives in ``Image.open`` and warns through the global
``warnings`` machinery, which cannot be redirected per thread before Python 3.14. References
are therefore opened through Pillow's plugin registry itself
(:func:`flux_ui.images.formats.open_unchecked`) and flux-ui's stricter limits, and Pillow's
own, are applied as refusals. Pixels are decoded at the smallest size that still serves the
model, through the process-wide gate of :mod:`flux_ui.images.memory`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageFile, UnidentifiedImageError

from flux_ui.errors import ReferenceImageError
from flux_ui.images.colour import to_srgb
from flux_ui.images.formats import container_kind, describe, format_name, open_unchecked, short_error
from flux_ui.images.geometry import (
    Refuse,
    exif_orientation,
    geometry_notes,
    megapixels,
    plan_geometry,
    reduce_factor,
    resize_and_crop,
    upright,
)
from flux_ui.images.memory import DECODE_GATE, MAX_INFLATED_BYTES, decode_cost
from flux_ui.images.modes import drop_unused_alpha, mode_name, normalise_mode, reduce_in_bands

#: Larger uploads are refused before any decoding.
MAX_REFERENCE_BYTES = 50 * 1024 * 1024
#: Header limits checked before pixels are decoded: a 64 MP RGBA image already needs 256 MB.
MAX_REFERENCE_PIXELS = 64_000_000
MAX_REFERENCE_SIDE = 16384
JPEG_QUALITY = 90
#: References handed to worker threads at once per call; how many of them decode at once is
#: the process-wide DECODE_SLOTS.
_PARALLEL = 4
# zlib level for PNG references: level 6 costs several times the time for a few per cent of size.
_PNG_COMPRESS_LEVEL = 3


@dataclass(frozen=True)
class PreparedImage:
    """A reference ready to send, with what was done to it in words a person understands."""

    data: bytes
    format: Literal["jpeg", "png"]
    width: int
    height: int
    original_format: str
    original_width: int  # as stored, before EXIF rotation
    original_height: int
    original_bytes: int
    adjustments: tuple[str, ...]  # metadata removal is always done and not listed

    @property
    def mime(self) -> str:
        return f"image/{self.format}"

    def b64(self) -> str:
        """Plain base64, as the BFL route takes references (no ``data:`` prefix)."""
        return base64.b64encode(self.data).decode("ascii")


def prepare_reference(data: bytes, *, index: int, max_pixels: int | None, multiple: int = 16) -> PreparedImage:
    """Decode, check and re-encode one reference; refusals are ReferenceImageError naming ``image {index}``."""
    name = f"image {index}"

    def refuse(message: str) -> ReferenceImageError:
        return ReferenceImageError(f"{name} {message}", index=index)

    if not data:
        raise refuse("is empty (0 bytes); upload the picture again")
    if len(data) > MAX_REFERENCE_BYTES:
        raise refuse(
            f"is {math.ceil(len(data) / 104_857.6) / 10:g} MB; flux-ui takes at most "
            f"{MAX_REFERENCE_BYTES // 1_048_576} MB per image: export it as a JPEG or at a smaller size first"
        )

    img = _open_reference(data, refuse)
    fmt = img.format or "unknown"
    stored_w, stored_h = img.size
    # The grid plan is symmetric in width and height, so checking it on the stored size also
    # covers the upright one and refuses a hopeless image before its pixels are decoded.
    _, _, scale = plan_geometry(stored_w, stored_h, max_pixels, multiple, refuse)
    try:
        if scale < 1 and fmt in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: never smaller than the target.
            img.draft("RGB", (math.ceil(stored_w * scale), math.ceil(stored_h * scale)))
    except Exception as exc:  # Pillow raises many exception types on malformed input
        raise refuse(_decode_problem(fmt, exc)) from exc
    factor = reduce_factor(img.width, stored_w, scale)
    with DECODE_GATE.admit(decode_cost(img, factor)):
        try:
            img.load()
        except Exception as exc:
            raise refuse(_decode_problem(fmt, exc)) from exc
        source = _Source(fmt, stored_w, stored_h, len(data))
        return _finish(img, source, factor, max_pixels, multiple, refuse)


async def prepare_references(
    images: Sequence[bytes], *, max_pixels: int | None, multiple: int = 16
) -> list[PreparedImage]:
    """Prepare several references in worker threads; report every bad one in a single error."""
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(index: int, data: bytes) -> PreparedImage:
        async with gate:
            return await asyncio.to_thread(
                prepare_reference, data, index=index, max_pixels=max_pixels, multiple=multiple
            )

    results = await asyncio.gather(*(one(i, d) for i, d in enumerate(images, start=1)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ReferenceImageError):
            raise result
    bad = [r for r in results if isinstance(r, ReferenceImageError)]
    if len(bad) == 1:
        raise bad[0]
    if bad:
        lines = "\n".join(err.message for err in bad)
        raise ReferenceImageError(
            f"{len(bad)} of {len(images)} reference images cannot be used:\n{lines}", index=bad[0].index
        )
    return [r for r in results if isinstance(r, PreparedImage)]


@dataclass(frozen=True)
class _Source:
    format: str
    width: int  # as stored, before EXIF rotation
    height: int
    size: int  # bytes


def _finish(
    img: ImageFile.ImageFile, source: _Source, factor: int, max_pixels: int | None, multiple: int, refuse: Refuse
) -> PreparedImage:
    """Turn a decoded reference upright, into L/RGB/RGBA, onto the grid, into sRGB, and encode it."""
    adjustments: list[str] = []
    try:
        current = _reshape(img, source, factor, max_pixels, multiple, refuse, adjustments)
        out_format: Literal["jpeg", "png"] = "png" if current.mode == "RGBA" else "jpeg"
        encoded = _encode(current, out_format)
    except ReferenceImageError:
        raise
    except Exception as exc:  # conversions of exotic modes and broken profiles fail in assorted ways
        raise refuse(f"could not be processed ({short_error(exc)}); re-save it as PNG or JPEG and try again") from exc

    return PreparedImage(
        data=encoded,
        format=out_format,
        width=current.width,
        height=current.height,
        original_format=source.format,
        original_width=source.width,
        original_height=source.height,
        original_bytes=source.size,
        adjustments=tuple(adjustments),
    )


def _reshape(
    img: ImageFile.ImageFile,
    source: _Source,
    factor: int,
    max_pixels: int | None,
    multiple: int,
    refuse: Refuse,
    adjustments: list[str],
) -> Image.Image:
    """The pixels to encode, each step noted in ``adjustments`` as a person would put it.

    Each step's input is closed as soon as its output exists, so at most one big buffer (the
    decoded one) lives beside much smaller ones.
    """
    turn = exif_orientation(img)
    if turn != 1:
        adjustments.append("rotated upright from its EXIF orientation")
    # The upright size at full resolution (a draft decode or a reduce may make img smaller).
    width, height = (source.height, source.width) if turn in (5, 6, 7, 8) else (source.width, source.height)

    icc = img.info.get("icc_profile")
    source_mode = img.mode
    current: Image.Image = img
    if factor > 1:
        current = _release(current, reduce_in_bands(current, factor, icc))
    current = _release(current, upright(current, turn))
    converted, used_icc = normalise_mode(current, icc)
    current = _release(current, converted)
    current = _release(current, drop_unused_alpha(current))  # early, so an opaque image resizes as 3 channels
    if source_mode not in ("L", "RGB", "RGBA"):
        note = f"converted from {mode_name(source_mode)} to {mode_name(current.mode)}"
        adjustments.append(note + (" using its colour profile" if used_icc else ""))

    scaled, grid, scale = plan_geometry(width, height, max_pixels, multiple, refuse)
    current = _release(current, resize_and_crop(current, (width, height), grid, scale, factor))
    current = _release(current, drop_unused_alpha(current))  # the crop may cut it all
    adjustments.extend(geometry_notes((width, height), scaled, grid, scale, max_pixels, multiple))

    if icc and not used_icc and current.mode in ("RGB", "RGBA"):
        converted, profile = to_srgb(current, icc)
        current = _release(current, converted)
        if profile:
            adjustments.append(f"converted colours from its embedded profile ({profile}) to sRGB")
    return current


def _release(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, with ``old``'s pixels freed now rather than whenever the last reference goes."""
    if new is not old:
        old.close()
    return new


def _open_reference(data: bytes, refuse: Refuse) -> ImageFile.ImageFile:
    """Open and check the header: size limits, frame count. No pixels are decoded yet."""
    try:
        img = open_unchecked(data)
    except UnidentifiedImageError:
        if kind := container_kind(data):  # the right signature, but Pillow could not parse the header
            raise refuse(
                f"is a damaged {format_name(kind.upper())} file; re-save it as PNG or JPEG and upload it again"
            ) from None
        raise refuse(
            f"is not an image file flux-ui can read (it looks like {describe(data)}); upload a JPEG, PNG or WebP"
        ) from None
    except Exception as exc:
        raise refuse(_decode_problem("image", exc)) from exc
    fmt = img.format or "image"
    _check_header_size(img.size, refuse)
    try:
        frames = getattr(img, "n_frames", 1)
    except Exception as exc:
        raise refuse(_decode_problem(fmt, exc)) from exc
    _check_header_size(img.size, refuse)  # a GIF's canvas can grow while its frames are counted
    # MPO is a camera JPEG with extra pictures (depth maps, previews) after the main one.
    if frames > 1 and fmt != "MPO":
        if fmt in ("GIF", "PNG", "WEBP"):
            kind = "animated PNG (APNG)" if fmt == "PNG" else f"animated {format_name(fmt)}"
            raise refuse(
                f"is an {kind} with {frames} frames; FLUX takes a still image: export one frame as PNG or JPEG"
            )
        raise refuse(f"is a {fmt} file with {frames} pages or frames; export the one you want as PNG or JPEG")
    return img


def _check_header_size(size: tuple[int, int], refuse: Refuse) -> None:
    w, h = size
    pixels = w * h
    dims = f"{w}×{h} px ({megapixels(pixels)} MP)"
    if pixels > MAX_REFERENCE_PIXELS:
        raise refuse(
            f"is {dims}; flux-ui reads at most {megapixels(MAX_REFERENCE_PIXELS)} MP: "
            f"resize it below {megapixels(MAX_REFERENCE_PIXELS)} MP first"
        )
    if max(w, h) > MAX_REFERENCE_SIDE:
        raise refuse(
            f"is {dims}; flux-ui reads at most {MAX_REFERENCE_SIDE} px on a side: "
            f"resize it below {MAX_REFERENCE_SIDE} px on its longest side first"
        )
    # Pillow's own guard, honoured in case someone lowered it below flux-ui's limit.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and pixels > limit:
        raise refuse(f"is {dims}, over Pillow's decompression-bomb limit; resize it below {limit:,} pixels first")


def _encode(img: Image.Image, out_format: Literal["jpeg", "png"]) -> bytes:
    # Savers copy some of img.info (ICC, JPEG comment, PNG transparency); none of it may leave.
    img.info = {}
    buf = io.BytesIO()
    if out_format == "png":
        img.save(buf, "PNG", compress_level=_PNG_COMPRESS_LEVEL)
    else:
        img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _decode_problem(fmt: str, exc: BaseException) -> str:
    if isinstance(exc, ValueError) and "MAX_TEXT" in str(exc):  # Pillow's text limits, set to ours
        return (
            f"carries text or a colour profile that unpacks to more than {MAX_INFLATED_BYTES // 1_048_576} MB "
            "(a possible decompression bomb); re-save it without its metadata and upload it again"
        )
    if isinstance(exc, Image.DecompressionBombError):
        return (
            "declares more pixels than Pillow will decode (a possible decompression bomb); "
            f"resize it below {megapixels(MAX_REFERENCE_PIXELS)} MP first"
        )
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError):
        return f"is cut short: the {format_name(fmt)} file is truncated; upload the complete file again"
    return (
        f"is a damaged or unsupported {format_name(fmt)} file ({short_error(exc)}); "
        "re-save it as PNG or JPEG and upload it again"
    )
