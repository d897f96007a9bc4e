"""Synthetic results that show what was sent: a person (or a test) reads the request off the image.

A real FLUX result shows only whether the model did well; an emulator result should show
whether the *client* did well. So each image carries the model's name, the prompt, the
seed and the size, and every reference that arrived, tiled in order and labelled
"image 1" … "image N". The background colours come from a hash of (model, prompt, seed),
so changing any of them changes the picture at a glance.

Rendering is a pure function of its inputs: the same request gives byte-identical files
(tests rely on it). It is also quick (a few tens of milliseconds for 1 MP), because the
emulator renders on every request and benchmarks measure the client, not the renderer.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps

from flux_ui.emulator.references import Reference
from flux_ui.emulator.safety_marker import draw_marker

OutputFormat = Literal["jpeg", "png", "webp"]
BANNER = "SYNTHETIC — flux-ui emulator"
CONTENT_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BANNER_FG = (255, 214, 10)
#: Fraction of the height where reference tiles start, when there are references.
_TILES_TOP = 0.5


@dataclass(frozen=True)
class RenderRequest:
    model_id: str
    model_name: str
    prompt: str
    seed: int
    width: int
    height: int
    output_format: OutputFormat
    references: tuple[Reference, ...] = ()
    safety_marker: bool = False  # the Content Safety marker (safety_marker.py), asked for by a prompt word


#: A system font with wide coverage (accents, ×, —) when the machine has one; Pillow's built-in
#: font otherwise, which covers plain ASCII only (see ``_printable``).
_PREFERRED_FONT = "DejaVuSans.ttf"
_ASCII_STAND_INS = str.maketrans({"—": "-", "–": "-", "×": "x", "“": '"', "”": '"', "‘": "'", "’": "'"})


@functools.cache
def _font_path() -> str | None:
    try:
        return str(ImageFont.truetype(_PREFERRED_FONT, 12).path)
    except OSError:
        return None


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = max(6, size)
    path = _font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def _printable(text: str) -> str:
    """Text the chosen font can draw: with the built-in font, stand-ins for a few symbols and
    accents dropped (café → cafe) rather than boxes; other scripts still show as boxes."""
    if _font_path():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_STAND_INS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _palette(req: RenderRequest) -> list[tuple[int, int, int]]:
    """Four colours from a hash of (model, prompt, seed): two for the gradient, two for shapes."""
    digest = hashlib.sha256(f"{req.model_id}\0{req.prompt}\0{req.seed}".encode()).digest()
    base = digest[0] / 255
    colours = []
    for i, offset in enumerate((0.0, 0.33, 0.55, 0.8)):
        hue = (base + offset + digest[1 + i] / 255 * 0.12) % 1.0
        sat = 0.45 + digest[5 + i] / 255 * 0.4
        val = 0.45 + digest[9 + i] / 255 * 0.35
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def _shape_params(req: RenderRequest) -> bytes:
    return hashlib.sha256(f"shapes\0{req.model_id}\0{req.prompt}\0{req.seed}".encode()).digest()


def _background(req: RenderRequest) -> Image.Image:
    w, h = req.width, req.height
    c1, c2, c3, c4 = _palette(req)
    bits = _shape_params(req)
    mask = Image.linear_gradient("L")
    mask = mask.transpose((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
                           Image.Transpose.TRANSPOSE)[bits[0] % 4])
    mask = mask.resize((w, h), Image.Resampling.BILINEAR)
    img = Image.composite(Image.new("RGB", (w, h), c1), Image.new("RGB", (w, h), c2), mask)
    draw = ImageDraw.Draw(img)
    s = min(w, h)
    for i in range(4):  # a few discs whose places depend on the seed: seeds differ visibly
        cx = bits[1 + 3 * i] / 255 * w
        cy = bits[2 + 3 * i] / 255 * h
        r = s * (0.12 + bits[3 + 3 * i] / 255 * 0.22)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(c3, c4)[i % 2])
    return img


def _darken(img: Image.Image, box: tuple[int, int, int, int], amount: float = 0.55) -> None:
    """Dim a region so white text on it reads on any background."""
    x0, y0, x1, y1 = (max(0, box[0]), max(0, box[1]), min(img.width, box[2]), min(img.height, box[3]))
    if x1 <= x0 or y1 <= y0:
        return
    region = img.crop((x0, y0, x1, y1))
    img.paste(Image.blend(region, Image.new("RGB", region.size, _BLACK), amount), (x0, y0))


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last line ends in … when text is left over."""
    if max_lines < 1:
        return []
    words = text.split()
    lines: list[str] = []
    current = ""
    i = 0
    while i < len(words):
        word = words[i]
        trial = f"{current} {word}" if current else word
        if font.getlength(trial) <= width:
            current = trial
            i += 1
            continue
        if not current:  # one word wider than the line: cut it
            cut = max(1, _fit_chars(word, font, width))
            lines.append(word[:cut])
            words[i] = word[cut:]
        else:
            lines.append(current)
            current = ""
        if len(lines) == max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
        current = ""
    truncated = i < len(words) or bool(current)
    if truncated and lines:
        last = lines[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return lines


def _fit_chars(word: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> int:
    lo, hi = 0, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fitting_font(text: str, size: int, width: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    font = _font(size)
    length = font.getlength(text)
    if length > width > 0:
        font = _font(int(size * width / length))
    return font


Box = tuple[int, int, int, int]


def reference_tiles(width: int, height: int, count: int) -> list[tuple[Box, Box]]:
    """Where each reference goes: (label strip box, picture box) per tile, in order.

    Tiles fill the lower half in at most two rows (five across for ten references). Public so
    tests can sample a tile's colour and know which reference landed where.
    """
    if count <= 0:
        return []
    s = min(width, height)
    margin = max(2, round(s * 0.03))
    gap = max(2, round(s * 0.015))
    cols = count if count <= 4 else math.ceil(count / 2)
    rows = math.ceil(count / cols)
    top = round(height * _TILES_TOP)
    area_w = width - 2 * margin
    area_h = height - margin - top
    tile_w = max(1, (area_w - gap * (cols - 1)) // cols)
    tile_h = max(2, (area_h - gap * (rows - 1)) // rows)
    label_h = max(1, min(round(tile_h * 0.24), round(tile_w * 0.3)))
    boxes = []
    for k in range(count):
        row, col = divmod(k, cols)
        x0 = margin + col * (tile_w + gap)
        y0 = top + row * (tile_h + gap)
        boxes.append(((x0, y0, x0 + tile_w, y0 + label_h), (x0, y0 + label_h, x0 + tile_w, y0 + tile_h)))
    return boxes


def _draw_references(img: Image.Image, draw: ImageDraw.ImageDraw, refs: Sequence[Reference]) -> None:
    for ref, (label_box, pic_box) in zip(refs, reference_tiles(img.width, img.height, len(refs)), strict=True):
        pw, ph = pic_box[2] - pic_box[0], pic_box[3] - pic_box[1]
        if pw > 0 and ph > 0:
            img.paste(ImageOps.fit(ref.preview, (pw, ph), Image.Resampling.BILINEAR), pic_box[:2])
        draw.rectangle(label_box, fill=_BLACK)
        lw, lh = label_box[2] - label_box[0], label_box[3] - label_box[1]
        text = f"image {ref.index}"
        font = _fitting_font(text, round(lh * 0.8), lw * 0.92)
        draw.text(((label_box[0] + label_box[2]) / 2, (label_box[1] + label_box[3]) / 2), text,
                  font=font, fill=_WHITE, anchor="mm")
        draw.rectangle((label_box[0], label_box[1], pic_box[2] - 1, pic_box[3] - 1), outline=_WHITE,
                       width=max(1, round(min(pw, lh) * 0.02)))


def render_image(req: RenderRequest) -> Image.Image:
    w, h = req.width, req.height
    img = _background(req)
    draw = ImageDraw.Draw(img)
    s = min(w, h)
    margin = max(2, round(s * 0.03))
    inner = w - 2 * margin

    banner = _printable(BANNER)
    banner_font = _fitting_font(banner, round(s * 0.032), inner)
    banner_h = round(banner_font.size * 1.5) if hasattr(banner_font, "size") else 12
    draw.rectangle((0, 0, w, banner_h), fill=_BLACK)
    draw.text((margin, banner_h / 2), banner, font=banner_font, fill=_BANNER_FG, anchor="lm")

    text_bottom = round(h * _TILES_TOP) - margin if req.references else h - margin
    title_font = _fitting_font(req.model_name, round(s * 0.08), inner)
    meta = f"seed {req.seed}  ·  {w}×{h}  ·  {req.output_format.upper()}"
    if req.references:
        meta += f"  ·  {len(req.references)} reference{'s' if len(req.references) > 1 else ''}"
    meta = _printable(meta)
    meta_font = _fitting_font(meta, round(s * 0.04), inner)
    prompt_font = _font(round(s * 0.042))
    line_h = round(getattr(prompt_font, "size", 10) * 1.25)

    y = banner_h + margin
    title_h = round(getattr(title_font, "size", 10) * 1.2)
    meta_h = round(getattr(meta_font, "size", 10) * 1.4)
    max_lines = max(0, (text_bottom - (y + title_h + meta_h + margin)) // max(1, line_h))
    lines = _wrap(_printable(req.prompt), prompt_font, inner - margin, max_lines)
    panel_bottom = y + title_h + meta_h + len(lines) * line_h + margin // 2
    _darken(img, (margin // 2, y - margin // 2, w - margin // 2, min(panel_bottom, text_bottom + margin // 2)))

    draw.text((margin, y), req.model_name, font=title_font, fill=_WHITE)
    y += title_h
    draw.text((margin, y), meta, font=meta_font, fill=_BANNER_FG)
    y += meta_h
    for line in lines:
        draw.text((margin, y), line, font=prompt_font, fill=_WHITE)
        y += line_h

    if req.references:
        _draw_references(img, draw, req.references)
    if req.safety_marker:
        draw_marker(img)
    return img


def encode_image(img: Image.Image, output_format: OutputFormat) -> bytes:
    out = io.BytesIO()
    if output_format == "jpeg":
        img.save(out, "JPEG", quality=88)
    elif output_format == "png":
        img.save(out, "PNG", compress_level=1)
    else:
        img.save(out, "WEBP", quality=80, method=0)
    return out.getvalue()


def render(req: RenderRequest) -> bytes:
    """The encoded result for a request: deterministic in every field of ``req``."""
    return encode_image(render_image(req), req.output_format)
