"""Pictures in and out: preparing references, checking results, labelling saved images.

References are decoded, checked and re-encoded on this machine before they are sent, so the
service never receives a file it would choke on, no EXIF/GPS/ICC or comment leaves with the
pixels, and the preview a person sees is exactly what the model reads (upright, within the
model's pixel budget, sides on the model's grid).

Images the service returns are only inspected (cheaply: this is on every result's path) and
labelled in place: generation parameters and an AI-generated marking are spliced into the
container without re-encoding, so a saved file carries the very pixels the service sent.

Pillow's decompression-bomb guard lives in ``Image.open`` and warns through the global
``warnings`` machinery, which cannot be redirected per thread before Python 3.14. Reference
decoding therefore opens files through Pillow's plugin registry itself (see
:func:`_open_unchecked`) and applies flux-ui's stricter limits, and Pillow's own, as refusals.

Memory is bounded for whatever a stranger uploads. Everything compressed that flux-ui unpacks
goes through :func:`inflate_capped` (Pillow's own text limits are set to the same cap), and a
reference's pixels are decoded at the smallest size that still serves the model, a few at a
time across the whole process (:data:`DECODE_SLOTS`, :data:`DECODE_BUDGET_BYTES`).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import io
import json
import math
import struct
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from PIL import ExifTags, Image, ImageFile, PngImagePlugin, UnidentifiedImageError

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS: colours are passed through unmanaged
    ImageCms = None  # type: ignore[assignment]

from flux_ui.client.errors import ReferenceImageError

_Refuse = Callable[[str], ReferenceImageError]

#: Larger uploads are refused before any decoding.
MAX_REFERENCE_BYTES = 50 * 1024 * 1024
#: Header limits checked before pixels are decoded: a 64 MP RGBA image already needs 256 MB.
MAX_REFERENCE_PIXELS = 64_000_000
MAX_REFERENCE_SIDE = 16384
JPEG_QUALITY = 90
#: References handed to worker threads at once per call; how many of them decode at once is
#: the process-wide DECODE_SLOTS.
_PARALLEL = 4
#: Reference decodes running at once across the whole process: one 64 MP decode holds 256 MB,
#: so three 10-image edits must not decode 30 at once. Two keeps both cores of a small host busy.
DECODE_SLOTS = 2
#: Estimated bytes of pixels those decodes may hold together; a decode needing more runs alone.
#: Two 64 MP PNGs (each ~0.3 GB at peak) then take turns, while small ones share.
DECODE_BUDGET_BYTES = 512 * 1024 * 1024
#: Most bytes any compressed block flux-ui reads may unpack to (PNG text here; PNG text and ICC
#: profiles in Pillow). flux-ui writes its label uncompressed, and the longest prompt validation
#: lets through (32,000 tokens at up to 128 bytes each: 4 MB), JSON-escaped, still fits; a bomb
#: is stopped at a size that, decoded once more as text, stays far below the 50 MB budget.
MAX_INFLATED_BYTES = 8 * 1024 * 1024
#: Rows of a decoded image converted and reduced at a time: bands of about this many bytes.
_BAND_BYTES = 8 * 1024 * 1024
# zlib level for PNG references: level 6 costs several times the time for a few per cent of size.
_PNG_COMPRESS_LEVEL = 3

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

# Pillow unpacks PNG text and ICC profiles itself (when references and results are opened):
# the same cap per block, and at most two blocks' worth per image.
PngImagePlugin.MAX_TEXT_CHUNK = MAX_INFLATED_BYTES
PngImagePlugin.MAX_TEXT_MEMORY = 2 * MAX_INFLATED_BYTES

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_EXIF_HEADER = b"Exif\x00\x00"
_PNG_KEY_JSON = "flux-ui"
_PNG_KEY_SUMMARY = "parameters"
_PNG_KEY_XMP = "XML:com.adobe.xmp"
_JPEG_SEGMENT_MAX = 65533  # payload bytes: the 16-bit length field also counts itself
_SOFTWARE = "flux-ui"
_AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_XMP_PACKET = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmp:CreatorTool="{_SOFTWARE}"
    Iptc4xmpExt:DigitalSourceType="{_AI_SOURCE_TYPE}"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


# --- bounded memory -----------------------------------------------------------------------


class InflateLimitError(ValueError):
    """Compressed data that unpacks to more than flux-ui will hold (a possible decompression bomb)."""


def inflate_capped(data: bytes | memoryview, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib-inflate ``data``, refusing (InflateLimitError) output over ``limit`` bytes.

    ``zlib.decompress`` has no bound: deflate packs about 1,000:1, so a 3 MB upload unpacks to
    gigabytes. This stops once ``limit`` + 1 bytes exist, whatever the ratio. A stream cut short
    is a ValueError too, as zlib.decompress would raise.
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"damaged compressed data ({exc})") from None
    if len(out) > limit:
        raise InflateLimitError(f"compressed data unpacks to more than {limit:,} bytes")
    if not inflater.eof:
        raise ValueError("the compressed data is cut short")
    return out


class _DecodeGate:
    """Admits reference decodes in arrival order while DECODE_SLOTS and DECODE_BUDGET_BYTES allow.

    Process-wide, and waited on in the worker threads that prepare references, never on an event
    loop. The limits are read from the module at each admission, so they can be changed live.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self.running = 0
        self.held = 0

    @contextmanager
    def admit(self, cost: int) -> Iterator[None]:
        """Hold a slot and ``cost`` bytes of the budget (all of it, if cost is more) while decoding."""
        cost = min(cost, DECODE_BUDGET_BYTES)  # alone, any decode fits: it must run some time
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                self._cond.wait_for(lambda: self._queue[0] is ticket and self._fits(cost))
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit beside this one
            self.running += 1
            self.held += cost
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self.held -= cost
                self._cond.notify_all()

    def _fits(self, cost: int) -> bool:
        return self.running < DECODE_SLOTS and self.held + cost <= DECODE_BUDGET_BYTES


_DECODE_GATE = _DecodeGate()


#: Freed buffers at least this big go straight back to the OS (see _return_big_buffers).
_MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def _return_big_buffers() -> bool:
    """Have glibc give buffers of _MMAP_THRESHOLD bytes or more their own mappings; True if it took.

    By default glibc raises that threshold as big blocks are freed (up to 32 MB), after which
    Pillow's 16 MB pixel blocks come from per-thread arenas, where one worker thread cannot
    reuse what another freed: ten 64 MP references kept ~3 GB after the edit, and peaks grew
    with every worker thread that had decoded once. malloc_trim(0) after a batch brought the
    "after" level down but left each thread arena's top (up to 64 MB) in place and cost up to
    0.1 s a call under an arena lock; a fixed threshold frees each big buffer as it is
    released. Process-wide by nature; a no-op (False) without glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt  # glibc only: musl has none
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))


_return_big_buffers()


# --- references ---------------------------------------------------------------------------


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
    _, _, scale = _plan_geometry(stored_w, stored_h, max_pixels, multiple, refuse)
    try:
        if scale < 1 and fmt in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: never smaller than the target.
            img.draft("RGB", (math.ceil(stored_w * scale), math.ceil(stored_h * scale)))
    except Exception as exc:  # Pillow raises many exception types on malformed input
        raise refuse(_decode_problem(fmt, exc)) from exc
    factor = _reduce_factor(img.width, stored_w, scale)
    with _DECODE_GATE.admit(_decode_cost(img, factor)):
        try:
            img.load()
        except Exception as exc:
            raise refuse(_decode_problem(fmt, exc)) from exc
        source = _Source(fmt, stored_w, stored_h, len(data))
        return _finish(img, source, factor, max_pixels, multiple, refuse)


@dataclass(frozen=True)
class _Source:
    format: str
    width: int  # as stored, before EXIF rotation
    height: int
    size: int  # bytes


def _finish(
    img: ImageFile.ImageFile, source: _Source, factor: int, max_pixels: int | None, multiple: int, refuse: _Refuse
) -> PreparedImage:
    """Turn a decoded reference upright, into L/RGB/RGBA, onto the grid, into sRGB, and encode it.

    Each step's input is closed as soon as its output exists, so at most one big buffer (the
    decoded one) lives beside much smaller ones.
    """
    adjustments: list[str] = []
    orientation = _orientation(img)
    if orientation != 1:
        adjustments.append("rotated upright from its EXIF orientation")
    # The upright size at full resolution (a draft decode or a reduce may make img smaller).
    width, height = (source.height, source.width) if orientation in (5, 6, 7, 8) else (source.width, source.height)

    icc = img.info.get("icc_profile")
    source_mode = img.mode
    current: Image.Image = img
    try:
        if factor > 1:
            current = _release(current, _reduce_in_bands(current, factor, icc))
        current = _release(current, current.transpose(_TRANSPOSE[orientation]) if orientation != 1 else current)
        converted, used_icc = _normalise_mode(current, icc)
        current = _release(current, converted)
        current = _release(current, _drop_unused_alpha(current))  # early, so an opaque image resizes as 3 channels
        if source_mode not in ("L", "RGB", "RGBA"):
            note = f"converted from {_mode_name(source_mode)} to {_mode_name(current.mode)}"
            adjustments.append(note + (" using its colour profile" if used_icc else ""))

        scaled, grid, scale = _plan_geometry(width, height, max_pixels, multiple, refuse)
        current = _release(current, _resize_and_crop(current, (width, height), grid, scale, factor))
        current = _release(current, _drop_unused_alpha(current))  # the crop may cut it all
        adjustments.extend(_geometry_notes((width, height), scaled, grid, scale, max_pixels, multiple))

        if icc and not used_icc and current.mode in ("RGB", "RGBA"):
            converted, profile = _to_srgb(current, icc)
            current = _release(current, converted)
            if profile:
                adjustments.append(f"converted colours from its embedded profile ({profile}) to sRGB")

        out_format: Literal["jpeg", "png"] = "png" if current.mode == "RGBA" else "jpeg"
        encoded = _encode(current, out_format)
    except ReferenceImageError:
        raise
    except Exception as exc:  # conversions of exotic modes and broken profiles fail in assorted ways
        raise refuse(f"could not be processed ({_short(exc)}); re-save it as PNG or JPEG and try again") from exc

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


def _geometry_notes(
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
            f"(the model reads at most {_megapixels(max_pixels or 0)} MP)"
        ]
        if grid != scaled:
            notes.append(f"trimmed a few edge pixels (centred) so both sides are multiples of {multiple}")
        return notes
    if grid != full:
        return [f"cropped {width}×{height} to {grid[0]}×{grid[1]} (centred) so both sides are multiples of {multiple}"]
    return []


def _release(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, with ``old``'s pixels freed now rather than whenever the last reference goes."""
    if new is not old:
        old.close()
    return new


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


def _open_unchecked(data: bytes, formats: Sequence[str] | None = None) -> ImageFile.ImageFile:
    """``Image.open`` minus its size check, which the caller makes itself.

    Image.open warns about large images through the process-wide warnings filters; turning
    that warning into an error for one call would mean changing them for every thread. This is
    the same loop over Pillow's registered openers, without the check.
    """
    Image.preinit()  # the common formats first, as Image.open orders them
    Image.init()
    prefix = data[:16]
    for fmt in tuple(formats or Image.ID):
        if fmt not in Image.OPEN:
            continue
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # not this format after all: Image.open tries the next one too
    raise UnidentifiedImageError("cannot identify image file")


def _open_reference(data: bytes, refuse: _Refuse) -> ImageFile.ImageFile:
    """Open and check the header: size limits, frame count. No pixels are decoded yet."""
    try:
        img = _open_unchecked(data)
    except UnidentifiedImageError:
        if kind := _container(data):  # the right signature, but Pillow could not parse the header
            raise refuse(
                f"is a damaged {_format_name(kind.upper())} file; re-save it as PNG or JPEG and upload it again"
            ) from None
        raise refuse(
            f"is not an image file flux-ui can read (it looks like {_describe(data)}); upload a JPEG, PNG or WebP"
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
            kind = "animated PNG (APNG)" if fmt == "PNG" else f"animated {_format_name(fmt)}"
            raise refuse(
                f"is an {kind} with {frames} frames; FLUX takes a still image: export one frame as PNG or JPEG"
            )
        raise refuse(f"is a {fmt} file with {frames} pages or frames; export the one you want as PNG or JPEG")
    return img


def _check_header_size(size: tuple[int, int], refuse: _Refuse) -> None:
    w, h = size
    pixels = w * h
    dims = f"{w}×{h} px ({_megapixels(pixels)} MP)"
    if pixels > MAX_REFERENCE_PIXELS:
        raise refuse(
            f"is {dims}; flux-ui reads at most {_megapixels(MAX_REFERENCE_PIXELS)} MP: "
            f"resize it below {_megapixels(MAX_REFERENCE_PIXELS)} MP first"
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


def _plan_geometry(
    width: int, height: int, max_pixels: int | None, multiple: int, refuse: _Refuse
) -> tuple[tuple[int, int], tuple[int, int], float]:
    """(size after scaling, size on the grid, scale factor) for an image of width × height."""
    scale = 1.0
    scaled = (width, height)
    if max_pixels and width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        sw, sh = max(1, int(width * scale)), max(1, int(height * scale))
        while sw * sh > max_pixels:  # float rounding; shave the longer side
            sw, sh = (sw - 1, sh) if sw >= sh else (sw, sh - 1)
        scaled = (sw, sh)
    grid = (scaled[0] // multiple * multiple, scaled[1] // multiple * multiple)
    if min(grid) < multiple:
        if scale < 1:
            raise refuse(
                f"is {width}×{height} px, so narrow that it would be {scaled[0]}×{scaled[1]} px at the model's "
                f"pixel budget; FLUX needs at least {multiple} px on each side: crop it to a less elongated shape"
            )
        raise refuse(f"is only {width}×{height} px; FLUX needs at least {multiple} px on each side: use a larger image")
    return scaled, grid, scale


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation to undo (1: none); an unreadable EXIF block keeps the image as stored."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return orientation if orientation in _TRANSPOSE else 1


def _reduce_factor(decoded_width: int, stored_width: int, scale: float) -> int:
    """The integer factor to box-reduce a decoded image by before the exact resize (1: none).

    The largest that keeps the image at least the target size, as JPEG's draft decode does: the
    k×k average is itself an anti-aliasing filter, and LANCZOS then has less than 2× to go. Every
    copy made after it (mode, rotation, premultiplied alpha, resize) is k² times smaller.
    """
    if scale >= 1:
        return 1
    return max(1, int(decoded_width / (stored_width * scale)))


def _decode_cost(img: Image.Image, factor: int) -> int:
    """Estimated peak bytes of preparing ``img`` decoded at its current (draft) size.

    The decoded buffer (Pillow keeps most modes at 4 bytes a pixel; WebP's decoder holds its
    canvas and a raw copy beside the image), plus two copies at the reduced size.
    """
    pixels = img.width * img.height
    depth = 1 if img.mode in ("1", "L", "P") else 2 if img.mode.startswith("I;16") else 4
    if img.format == "WEBP":
        depth = 12
    return pixels * depth + 2 * pixels * 4 // factor**2


def _reduce_in_bands(img: Image.Image, factor: int, icc: bytes | None) -> Image.Image:
    """``img`` reduced ``factor`` times, converted band by band as _normalise_mode would.

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
            band = _normalise_mode(band, None, extrema)[0]
        small = band.reduce(factor)  # premultiplied for RGBA, as Image.resize does
        if out is None:
            out = Image.new(small.mode, (math.ceil(img.width / factor), math.ceil(img.height / factor)))
        out.paste(small, (0, top // factor))
    assert out is not None  # an image has at least one row
    return out


def _normalise_mode(
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
        converted, profile = _to_srgb(img, icc, output_mode="RGB")
        if profile is not None:
            return converted, True
    if mode == "RGBA" or (mode in ("L", "RGB") and not img.has_transparency_data):
        return img, False
    if img.has_transparency_data:
        return img.convert("RGBA"), False
    if mode == "1":
        return img.convert("L"), False
    return img.convert("RGB"), False


def _drop_unused_alpha(img: Image.Image) -> Image.Image:
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


def _resize_and_crop(
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


def _to_srgb(img: Image.Image, icc: bytes, output_mode: str | None = None) -> tuple[Image.Image, str | None]:
    """Convert through an embedded ICC profile to sRGB; (image, profile name) or (image, None) if not done."""
    if ImageCms is None:
        return img, None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(source) or "").strip() or "unnamed"
        if "srgb" in description.lower():
            return img, None  # already sRGB: dropping the tag changes nothing
        # A profile object is not safe to share between threads, so sRGB is built per call.
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(img, source, srgb, outputMode=output_mode or img.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img, None
    if converted is None:
        return img, None
    return converted, description


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
            f"resize it below {_megapixels(MAX_REFERENCE_PIXELS)} MP first"
        )
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError):
        return f"is cut short: the {_format_name(fmt)} file is truncated; upload the complete file again"
    return (
        f"is a damaged or unsupported {_format_name(fmt)} file ({_short(exc)}); "
        "re-save it as PNG or JPEG and upload it again"
    )


def _format_name(fmt: str) -> str:
    return "WebP" if fmt == "WEBP" else fmt


def _mode_name(mode: str) -> str:
    if mode.startswith("I;16"):
        return "16-bit grayscale"
    return _MODE_NAMES.get(mode, mode)


def _megapixels(pixels: int) -> str:
    return f"{round(pixels / 1_000_000, 1):g}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _describe(data: bytes) -> str:
    """What a non-image looks like, in words a person recognises."""
    head = data[:512]
    low = head.lstrip().lower()
    if not data:
        return "an empty file"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive or Office document"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "a HEIC/HEIF photo"
        if brand in (b"avif", b"avis"):
            return "an AVIF image"
        return "a video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a video"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image"
    if head.startswith(b"BM") and head[6:10] == bytes(4):  # BMP's reserved header fields are zero
        return "a BMP image"
    if low.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML)"
    if b"<svg" in low[:256]:
        return "an SVG drawing"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the 512-byte boundary is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "JSON" if text.lstrip().startswith(("{", "[")) else "a text file"
    return "a file of an unknown type"


# --- images the service returned ----------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """Format and size of an image the service returned."""

    format: Literal["jpeg", "png", "webp"]
    width: int
    height: int

    @property
    def mime(self) -> str:
        return f"image/{self.format}"


def inspect_image(data: bytes) -> ImageInfo:
    """Format and size of a returned image, after checking it is complete; ValueError otherwise.

    Cheap by design: only the header is parsed and completeness is checked from the container
    (PNG chunk CRCs up to IEND, JPEG's end marker, the RIFF length for WebP), no pixels decoded.
    """
    kind = _container(data)
    if kind is None:
        raise ValueError(f"expected a JPEG, PNG or WebP image but got {_describe(bytes(data[:512]))}")
    label = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP"}[kind]
    if not _looks_complete(data, kind):
        raise ValueError(f"the {label} image is truncated ({len(data)} bytes): the data ends before the image does")
    try:
        img = _open_unchecked(bytes(data), {"jpeg": ("JPEG",), "png": ("PNG",), "webp": ("WEBP",)}[kind])
        width, height = img.size
        if kind == "png":
            img.verify()
    except Exception as exc:
        raise ValueError(f"the {label} image is damaged ({_short(exc)})") from exc
    if width < 1 or height < 1:
        raise ValueError(f"the {label} image has no pixels ({width}×{height})")
    return ImageInfo(kind, width, height)


def _container(data: bytes) -> Literal["jpeg", "png", "webp"] | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == _PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _looks_complete(data: bytes, kind: str) -> bool:
    if kind == "jpeg":
        # Some encoders pad after the end-of-image marker.
        return data[-64:].rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if kind == "png":
        return _png_end(data) is not None
    return len(data) >= 8 + int.from_bytes(data[4:8], "little")


def _png_end(data: bytes) -> int | None:
    """Offset just past IEND when the chunk walk reaches it; None for a cut-short PNG."""
    try:
        chunks = list(_png_chunks(data))
    except ValueError:
        return None
    return chunks[-1][2] if chunks and chunks[-1][0] == b"IEND" else None


# --- metadata in saved images -------------------------------------------------------------


def embed_metadata(data: bytes, metadata: Mapping[str, Any]) -> bytes:
    """Label an image the service returned with its parameters and as AI-generated, pixels untouched.

    PNG gets iTXt chunks, JPEG an EXIF and an XMP APP1 segment, WebP EXIF and XMP chunks (a
    simple VP8/VP8L file is promoted to the extended VP8X layout). Exactly ``metadata`` is
    written as JSON, nothing merged from elsewhere; earlier flux-ui labels (and any other EXIF
    or XMP block, of which a file may hold only one) are replaced. ValueError for other formats,
    damaged containers and JPEG metadata over the 64 KB segment limit.
    """
    payload = json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False, default=str)
    summary = _summary(metadata)
    kind = _container(data)
    if kind == "png":
        return _png_embed(bytes(data), payload, summary)
    if kind == "jpeg":
        return _jpeg_embed(bytes(data), payload, summary)
    if kind == "webp":
        return _webp_embed(bytes(data), payload, summary)
    raise ValueError(f"cannot embed metadata: expected a JPEG, PNG or WebP image but got {_describe(bytes(data))}")


def read_metadata(data: bytes) -> dict[str, Any] | None:
    """The dict :func:`embed_metadata` wrote, or None (no flux-ui label, not an image, garbage)."""
    try:
        raw = bytes(data)
        kind = _container(raw)
        if kind == "png":
            text = _png_read(raw)
        elif kind == "jpeg":
            text = _exif_read(next((p[6:] for p in _jpeg_app1(raw) if p.startswith(_EXIF_HEADER)), None))
        elif kind == "webp":
            text = _exif_read(next((p for c, p in _riff_chunks(raw) if c == b"EXIF"), None))
        else:
            return None
        value = json.loads(text) if text is not None else None
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def _summary(metadata: Mapping[str, Any]) -> str:
    """A one-line human reading: the prompt, then ``key: value`` pairs in the caller's order."""
    parts: list[str] = []
    prompt = metadata.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        parts.append(" ".join(prompt.split()))
    pairs = []
    for key, value in metadata.items():
        if key == "prompt" or value is None or value == "":
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        pairs.append(f"{key}: {' '.join(text.split())}")
    if pairs:
        parts.append(", ".join(pairs))
    return " | ".join(parts)


def _exif_block(summary: str, payload: str) -> bytes:
    """APP1-ready EXIF (``Exif\\0\\0`` + TIFF): description, software, and the JSON as UserComment."""
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = summary
    exif[ExifTags.Base.Software] = _SOFTWARE
    # UserComment starts with an 8-byte character-code field; UNICODE text follows the TIFF
    # byte order, which Pillow writes big-endian.
    if payload.isascii():
        comment = b"ASCII\x00\x00\x00" + payload.encode("ascii")
    else:
        comment = b"UNICODE\x00" + payload.encode("utf-16-be")
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = comment
    return exif.tobytes()


def _exif_read(block: bytes | None) -> str | None:
    if not block:
        return None
    exif = Image.Exif()
    exif.load(block)
    if exif.get(ExifTags.Base.Software) != _SOFTWARE:
        return None
    comment = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    if not isinstance(comment, bytes):
        return None
    code, text = comment[:8], comment[8:]
    if code == b"ASCII\x00\x00\x00":
        return text.decode("ascii")
    if code == b"UNICODE\x00":
        tiff = block[6:] if block.startswith(_EXIF_HEADER) else block
        return text.decode("utf-16-le" if tiff[:2] == b"II" else "utf-16-be")
    return None


# PNG


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, start, end) for each chunk up to and including IEND; ValueError when cut short."""
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG")
    pos = 8
    while True:
        if pos + 12 > len(data):
            raise ValueError("the PNG is truncated")
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("the PNG is truncated")
        yield ctype, pos, end
        if ctype == b"IEND":
            return
        pos = end


def _png_text_key(data: bytes, start: int, end: int) -> str:
    stop = data.find(b"\x00", start + 8, end - 4)  # found in place: a text chunk can be megabytes
    return data[start + 8 : stop if stop >= 0 else end - 4].decode("latin-1")


def _png_itxt(keyword: str, text: str) -> bytes:
    # keyword, NUL, compression flag 0, method 0, empty language tag + NUL, empty translated keyword + NUL
    body = keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    crc = zlib.crc32(b"iTXt" + body)
    return len(body).to_bytes(4, "big") + b"iTXt" + body + crc.to_bytes(4, "big")


def _png_embed(data: bytes, payload: str, summary: str) -> bytes:
    ours = {_PNG_KEY_JSON, _PNG_KEY_SUMMARY, _PNG_KEY_XMP}
    try:
        chunks = list(_png_chunks(data))
    except ValueError as exc:
        raise ValueError(f"cannot embed metadata: {exc}") from None
    kept = bytearray(data[:8])
    for ctype, start, end in chunks:
        if ctype in (b"tEXt", b"zTXt", b"iTXt") and _png_text_key(data, start, end) in ours:
            continue
        if ctype == b"IEND":
            kept += _png_itxt(_PNG_KEY_JSON, payload)
            kept += _png_itxt(_PNG_KEY_SUMMARY, summary)
            kept += _png_itxt(_PNG_KEY_XMP, _XMP_PACKET.decode())
        kept += data[start:end]
    kept += data[chunks[-1][2] :]  # whatever trailed IEND stays where it was
    return bytes(kept)


def _png_read(data: bytes) -> str | None:
    for ctype, start, end in _png_chunks(data):
        if ctype != b"iTXt" or _png_text_key(data, start, end) != _PNG_KEY_JSON:
            continue
        # keyword NUL, compression flag and method, language NUL, translated keyword NUL, text;
        # walked by offset (ValueError when a NUL is missing) so the chunk is never copied.
        pos = data.index(b"\x00", start + 8, end - 4) + 1
        compressed = data[pos]
        pos = data.index(b"\x00", pos + 2, end - 4) + 1
        pos = data.index(b"\x00", pos, end - 4) + 1
        text = memoryview(data)[pos : end - 4]
        return (inflate_capped(text) if compressed else bytes(text)).decode("utf-8")
    return None


# JPEG


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Header segments as (marker, start, end), and where the first scan (or EOI) starts."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    segments: list[tuple[int, int, int]] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("the JPEG header is damaged")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: the rest is copied as it is
            return segments, pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data):
            raise ValueError("the JPEG header is truncated")
        segments.append((marker, pos, end))
        pos = end
    raise ValueError("the JPEG has no image data")


def _jpeg_app1(data: bytes) -> list[bytes]:
    segments, _ = _jpeg_segments(data)
    return [data[start + 4 : end] for marker, start, end in segments if marker == 0xE1]


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _jpeg_embed(data: bytes, payload: str, summary: str) -> bytes:
    try:
        segments, scan = _jpeg_segments(data)
    except ValueError as exc:
        raise ValueError(f"cannot embed metadata: {exc}") from None
    exif = _exif_block(summary, payload)
    while len(exif) > _JPEG_SEGMENT_MAX and summary:
        # The description only repeats the JSON for people: shorten it first. Pillow writes
        # it as ASCII, one byte per character.
        keep = len(summary) - (len(exif) - _JPEG_SEGMENT_MAX) - 3
        summary = summary[:keep].rstrip() + "..." if keep > 0 else ""
        exif = _exif_block(summary, payload)
    if len(exif) > _JPEG_SEGMENT_MAX:
        raise ValueError(
            f"metadata too large for a JPEG: {len(exif)} bytes of EXIF where one segment holds "
            f"{_JPEG_SEGMENT_MAX}; shorten the prompt or save as PNG"
        )
    ours = _jpeg_segment(0xE1, exif) + _jpeg_segment(0xE1, _XMP_JPEG_HEADER + _XMP_PACKET)
    out = bytearray(data[:2])
    placed = False
    for n, (marker, start, end) in enumerate(segments):
        body = data[start + 4 : end]
        if marker == 0xE1 and body.startswith((_EXIF_HEADER, _XMP_JPEG_HEADER)):
            continue  # a file holds one EXIF and one main XMP block: ours replace them
        if not placed and not (n == 0 and marker == 0xE0 and body.startswith(b"JFIF\x00")):
            out += ours
            placed = True
        out += data[start:end]
    if not placed:
        out += ours
    out += data[scan:]
    return bytes(out)


# WebP


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data):
        raise ValueError("the WebP is truncated")
    chunks = []
    pos = 12
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > end:
            raise ValueError("the WebP is truncated")
        chunks.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + len(payload).to_bytes(4, "little") + payload + (b"\x00" if len(payload) & 1 else b"")


def _webp_canvas(fourcc: bytes, bitstream: bytes) -> tuple[int, int, bool]:
    """(width, height, has alpha) from a simple WebP's VP8 or VP8L bitstream header."""
    if fourcc == b"VP8 " and len(bitstream) >= 10 and bitstream[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(bitstream[6:8], "little") & 0x3FFF
        height = int.from_bytes(bitstream[8:10], "little") & 0x3FFF
        if width and height:
            return width, height, False
    if fourcc == b"VP8L" and len(bitstream) >= 5 and bitstream[0] == 0x2F:
        bits = int.from_bytes(bitstream[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    raise ValueError("the WebP bitstream header is not recognised")


def _webp_embed(data: bytes, payload: str, summary: str) -> bytes:
    try:
        chunks = _riff_chunks(data)
        if not chunks:
            raise ValueError("the WebP has no image data")
        first, body = chunks[0]
        if first == b"VP8X" and len(body) >= 10:
            header, image = body, chunks[1:]
        else:
            # A simple file (one VP8/VP8L chunk) cannot carry metadata: promote it to VP8X.
            width, height, alpha = _webp_canvas(first, body)
            flags = 0x10 if alpha else 0
            header = bytes((flags, 0, 0, 0)) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
            image = chunks
    except ValueError as exc:
        raise ValueError(f"cannot embed metadata: {exc}") from None
    rest = [c for c in image if c[0] not in (b"EXIF", b"XMP ")]
    vp8x = bytes((header[0] | 0x08 | 0x04,)) + header[1:]  # flags: EXIF and XMP present
    # Chunk order per the container spec: VP8X, ICCP, ANIM, image data, then EXIF and XMP.
    exif = _exif_block(summary, payload)[len(_EXIF_HEADER) :]
    body_bytes = (
        _riff_chunk(b"VP8X", vp8x)
        + b"".join(_riff_chunk(c, p) for c, p in rest)
        + _riff_chunk(b"EXIF", exif)
        + _riff_chunk(b"XMP ", _XMP_PACKET)
    )
    return b"RIFF" + (4 + len(body_bytes)).to_bytes(4, "little") + b"WEBP" + body_bytes
