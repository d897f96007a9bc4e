"""Format sniffing and result inspection: which container some bytes are, and whether a returned image is whole.

Also the words for what a file is when it is not an image flux-ui reads, and Pillow's opener
without its process-wide size warning (callers apply the limits themselves).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageFile, UnidentifiedImageError

from flux_ui.images.containers import PNG_SIGNATURE, png_chunks


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
    kind = container_kind(data)
    if kind is None:
        raise ValueError(f"expected a JPEG, PNG or WebP image but got {describe(bytes(data[:512]))}")
    label = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP"}[kind]
    if not _looks_complete(data, kind):
        raise ValueError(f"the {label} image is truncated ({len(data)} bytes): the data ends before the image does")
    try:
        img = open_unchecked(bytes(data), {"jpeg": ("JPEG",), "png": ("PNG",), "webp": ("WEBP",)}[kind])
        width, height = img.size
        if kind == "png":
            img.verify()
    except Exception as exc:
        raise ValueError(f"the {label} image is damaged ({short_error(exc)})") from exc
    if width < 1 or height < 1:
        raise ValueError(f"the {label} image has no pixels ({width}×{height})")
    return ImageInfo(kind, width, height)


def container_kind(data: bytes) -> Literal["jpeg", "png", "webp"] | None:
    """Which of the containers flux-ui handles ``data`` starts as, from its signature alone."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == PNG_SIGNATURE:
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
        chunks = list(png_chunks(data))
    except ValueError:
        return None
    return chunks[-1][2] if chunks and chunks[-1][0] == b"IEND" else None


def open_unchecked(data: bytes, formats: Sequence[str] | None = None) -> ImageFile.ImageFile:
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


def format_name(fmt: str) -> str:
    """Pillow's format name as people write it."""
    return "WebP" if fmt == "WEBP" else fmt


def short_error(exc: BaseException) -> str:
    """An exception's message, at most 120 characters of it."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def describe(data: bytes) -> str:
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
