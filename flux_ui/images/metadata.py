"""What flux-ui writes into the images it saves, and reads back: the settings label and the AI-generated marking.

Images the service returns are labelled in place: the generation parameters (as JSON, and as a
one-line summary for people) and an AI-generated marking (EXIF Software, IPTC digital source
type in XMP) are spliced into the container without re-encoding, so a saved file carries the
very pixels the service sent. Where each block goes in each format is
:mod:`flux_ui.images.containers`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from PIL import ExifTags, Image

from flux_ui.images.containers import (
    EXIF_HEADER,
    JPEG_SEGMENT_MAX,
    XMP_JPEG_HEADER,
    jpeg_app1,
    jpeg_segment,
    jpeg_segments,
    jpeg_splice_app1,
    png_chunks,
    png_itxt_chunk,
    png_itxt_text,
    png_splice_text,
    riff_chunks,
    webp_extended,
    webp_with_metadata,
)
from flux_ui.images.formats import container_kind, describe

_PNG_KEY_JSON = "flux-ui"
_PNG_KEY_SUMMARY = "parameters"
_PNG_KEY_XMP = "XML:com.adobe.xmp"
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
    kind = container_kind(data)
    if kind == "png":
        return _png_embed(bytes(data), payload, summary)
    if kind == "jpeg":
        return _jpeg_embed(bytes(data), payload, summary)
    if kind == "webp":
        return _webp_embed(bytes(data), payload, summary)
    raise ValueError(f"cannot embed metadata: expected a JPEG, PNG or WebP image but got {describe(bytes(data))}")


def read_metadata(data: bytes) -> dict[str, Any] | None:
    """The dict :func:`embed_metadata` wrote, or None (no flux-ui label, not an image, garbage)."""
    try:
        raw = bytes(data)
        kind = container_kind(raw)
        if kind == "png":
            found = png_itxt_text(raw, _PNG_KEY_JSON)
            text = found.decode("utf-8") if found is not None else None
        elif kind == "jpeg":
            text = _exif_read(next((p[6:] for p in jpeg_app1(raw) if p.startswith(EXIF_HEADER)), None))
        elif kind == "webp":
            text = _exif_read(next((p for c, p in riff_chunks(raw) if c == b"EXIF"), None))
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
        tiff = block[6:] if block.startswith(EXIF_HEADER) else block
        return text.decode("utf-16-le" if tiff[:2] == b"II" else "utf-16-be")
    return None


def _png_embed(data: bytes, payload: str, summary: str) -> bytes:
    try:
        chunks = list(png_chunks(data))
    except ValueError as exc:
        raise ValueError(f"cannot embed metadata: {exc}") from None
    ours = (
        png_itxt_chunk(_PNG_KEY_JSON, payload)
        + png_itxt_chunk(_PNG_KEY_SUMMARY, summary)
        + png_itxt_chunk(_PNG_KEY_XMP, _XMP_PACKET.decode())
    )
    return png_splice_text(data, chunks, {_PNG_KEY_JSON, _PNG_KEY_SUMMARY, _PNG_KEY_XMP}, ours)


def _jpeg_embed(data: bytes, payload: str, summary: str) -> bytes:
    try:
        segments, scan = jpeg_segments(data)
    except ValueError as exc:
        raise ValueError(f"cannot embed metadata: {exc}") from None
    exif = _exif_block(summary, payload)
    while len(exif) > JPEG_SEGMENT_MAX and summary:
        # The description only repeats the JSON for people: shorten it first. Pillow writes
        # it as ASCII, one byte per character.
        keep = len(summary) - (len(exif) - JPEG_SEGMENT_MAX) - 3
        summary = summary[:keep].rstrip() + "..." if keep > 0 else ""
        exif = _exif_block(summary, payload)
    if len(exif) > JPEG_SEGMENT_MAX:
        raise ValueError(
            f"metadata too large for a JPEG: {len(exif)} bytes of EXIF where one segment holds "
            f"{JPEG_SEGMENT_MAX}; shorten the prompt or save as PNG"
        )
    ours = jpeg_segment(0xE1, exif) + jpeg_segment(0xE1, XMP_JPEG_HEADER + _XMP_PACKET)
    return jpeg_splice_app1(data, segments, scan, ours)


def _webp_embed(data: bytes, payload: str, summary: str) -> bytes:
    try:
        header, image = webp_extended(data)
    except ValueError as exc:
        raise ValueError(f"cannot embed metadata: {exc}") from None
    exif = _exif_block(summary, payload)[len(EXIF_HEADER) :]
    return webp_with_metadata(header, image, exif, _XMP_PACKET)
