"""Container surgery: PNG chunks, JPEG header segments and WebP RIFF chunks walked and rebuilt, pixels untouched.

Only the layout of each format lives here; what flux-ui writes into those places is
:mod:`flux_ui.images.metadata`. Walkers raise ValueError for a damaged or cut-short container.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from flux_ui.images.memory import inflate_capped

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXIF_HEADER = b"Exif\x00\x00"
XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_SEGMENT_MAX = 65533  # payload bytes: the 16-bit length field also counts itself

# PNG


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, start, end) for each chunk up to and including IEND; ValueError when cut short."""
    if data[:8] != PNG_SIGNATURE:
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


def png_itxt_chunk(keyword: str, text: str) -> bytes:
    """An uncompressed iTXt chunk, ready to splice in."""
    # keyword, NUL, compression flag 0, method 0, empty language tag + NUL, empty translated keyword + NUL
    body = keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    crc = zlib.crc32(b"iTXt" + body)
    return len(body).to_bytes(4, "big") + b"iTXt" + body + crc.to_bytes(4, "big")


def png_itxt_text(data: bytes, keyword: str) -> bytes | None:
    """The UTF-8 text of the first iTXt chunk called ``keyword`` (inflated, capped), or None."""
    for ctype, start, end in png_chunks(data):
        if ctype != b"iTXt" or _png_text_key(data, start, end) != keyword:
            continue
        # keyword NUL, compression flag and method, language NUL, translated keyword NUL, text;
        # walked by offset (ValueError when a NUL is missing) so the chunk is never copied.
        pos = data.index(b"\x00", start + 8, end - 4) + 1
        compressed = data[pos]
        pos = data.index(b"\x00", pos + 2, end - 4) + 1
        pos = data.index(b"\x00", pos, end - 4) + 1
        text = memoryview(data)[pos : end - 4]
        return inflate_capped(text) if compressed else bytes(text)
    return None


def png_splice_text(data: bytes, chunks: list[tuple[bytes, int, int]], drop: set[str], add: bytes) -> bytes:
    """``data`` without its text chunks keyed in ``drop``, with the chunks ``add`` just before IEND.

    ``chunks`` is :func:`png_chunks` of ``data``; whatever trailed IEND stays where it was.
    """
    kept = bytearray(data[:8])
    for ctype, start, end in chunks:
        if ctype in (b"tEXt", b"zTXt", b"iTXt") and _png_text_key(data, start, end) in drop:
            continue
        if ctype == b"IEND":
            kept += add
        kept += data[start:end]
    kept += data[chunks[-1][2] :]
    return bytes(kept)


# JPEG


def jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
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


def jpeg_app1(data: bytes) -> list[bytes]:
    """The payloads of the header's APP1 segments (EXIF, XMP and others), in file order."""
    segments, _ = jpeg_segments(data)
    return [data[start + 4 : end] for marker, start, end in segments if marker == 0xE1]


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_splice_app1(data: bytes, segments: list[tuple[int, int, int]], scan: int, ours: bytes) -> bytes:
    """``data`` with its EXIF and main XMP segments replaced by ``ours``, placed after a leading JFIF.

    ``segments`` and ``scan`` are :func:`jpeg_segments` of ``data``.
    """
    out = bytearray(data[:2])
    placed = False
    for n, (marker, start, end) in enumerate(segments):
        body = data[start + 4 : end]
        if marker == 0xE1 and body.startswith((EXIF_HEADER, XMP_JPEG_HEADER)):
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


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A WebP's chunks as (fourcc, payload), within the length its RIFF header declares."""
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


def webp_extended(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(VP8X header payload, the chunks after it) of a WebP; a simple VP8/VP8L file is promoted."""
    chunks = riff_chunks(data)
    if not chunks:
        raise ValueError("the WebP has no image data")
    first, body = chunks[0]
    if first == b"VP8X" and len(body) >= 10:
        return body, chunks[1:]
    # A simple file (one VP8/VP8L chunk) cannot carry metadata: promote it to VP8X.
    width, height, alpha = _webp_canvas(first, body)
    flags = 0x10 if alpha else 0
    header = bytes((flags, 0, 0, 0)) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return header, chunks


def webp_with_metadata(header: bytes, image: list[tuple[bytes, bytes]], exif: bytes, xmp: bytes) -> bytes:
    """An extended WebP from :func:`webp_extended`'s parts, its EXIF and XMP chunks replaced."""
    rest = [c for c in image if c[0] not in (b"EXIF", b"XMP ")]
    vp8x = bytes((header[0] | 0x08 | 0x04,)) + header[1:]  # flags: EXIF and XMP present
    # Chunk order per the container spec: VP8X, ICCP, ANIM, image data, then EXIF and XMP.
    body_bytes = (
        _riff_chunk(b"VP8X", vp8x)
        + b"".join(_riff_chunk(c, p) for c, p in rest)
        + _riff_chunk(b"EXIF", exif)
        + _riff_chunk(b"XMP ", xmp)
    )
    return b"RIFF" + (4 + len(body_bytes)).to_bytes(4, "little") + b"WEBP" + body_bytes
