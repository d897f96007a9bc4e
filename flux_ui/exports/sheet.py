"""Contact sheets: a grid of results drawn into one PNG that carries the grid's settings.

One shape serves a grid (X across, Y down, Z as blocks stacked vertically), a Compare run (one
row of K models) and a run of variations (one row of N seeds). The caller says what each cell
shows (image, caption lines, or why there is none); the sheet renders exactly that and embeds
exactly the settings given, so a blind comparison stays blind as long as the caller's labels do
(``blind=True`` checks that they do). :func:`build_sheet` decodes one image at a time at the
smallest size that fills its cell (JPEG draft, reducing resize) through the process-wide decode
gate; :func:`build_sheet_async` runs it in a worker thread so no event loop waits on it.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from flux_ui.exports import Axis, refuse_model_names
from flux_ui.images.formats import container_kind, describe, open_unchecked, short_error
from flux_ui.images.geometry import exif_orientation, upright
from flux_ui.images.memory import DECODE_GATE, decode_cost
from flux_ui.images.metadata import embed_metadata
from flux_ui.images.modes import normalise_mode

#: Default side of the square box each image is fitted into (longest side, aspect kept).
CELL_PX = 384
#: Smallest box a crowded sheet shrinks its cells to (see MAX_SHEET_PIXELS).
MIN_CELL_PX = 96
#: Sheets stay within this many pixels (3 bytes each while drawn): more cells means smaller ones.
MAX_SHEET_PIXELS = 40_000_000
#: Larger sources are shown as failed cells rather than decoded (a 64 MP RGBA decode is 256 MB).
MAX_SOURCE_PIXELS = 64_000_000
MARGIN = 24  # around the whole sheet
GAP = 12  # between cells, and between a band and what follows it
BLOCK_GAP = 36  # between Z blocks
PAD = 6  # between a text box's edge and its text
TITLE_SIZE, HEADING_SIZE, LABEL_SIZE, CAPTION_SIZE = 26, 20, 16, 14
TITLE_LINES = 2
LABEL_LINES = 2  # per column value
CAPTION_LINES = 2  # per cell
ROW_LABEL_W = 168
ELLIPSIS = "…"
SHEET_BG, LETTERBOX = (255, 255, 255), (38, 38, 38)  # letterbox: neutral dark around an image not filling its box
NA_FILL, ERROR_FILL = (212, 212, 212), (247, 221, 221)
TEXT, MUTED, ERROR_TEXT = (22, 22, 22), (96, 96, 96), (150, 24, 24)


def line_height(size: int) -> int:
    """Pixels per line of text at ``size``: the default font's ascent and descent plus leading."""
    ascent, descent = _font(size).getmetrics()
    return ascent + descent + size // 5


_fonts = threading.local()  # FreeType faces are not shared between threads


def _font(size: int) -> ImageFont.FreeTypeFont:
    cache: dict[int, ImageFont.FreeTypeFont] = _fonts.__dict__.setdefault("by_size", {})
    if size not in cache:
        cache[size] = font = ImageFont.load_default(size=size)
        if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow without FreeType: one bitmap size
            raise RuntimeError("contact sheets need Pillow built with FreeType")
    return cache[size]


TITLE_H = TITLE_LINES * line_height(TITLE_SIZE) + GAP
X_TITLE_H = line_height(HEADING_SIZE) + GAP // 2
Z_HEADING_H = line_height(HEADING_SIZE) + GAP // 2
COLUMN_LABEL_H = LABEL_LINES * line_height(LABEL_SIZE) + GAP // 2
CAPTION_H = CAPTION_LINES * line_height(CAPTION_SIZE) + GAP // 2
Y_TITLE_W = line_height(HEADING_SIZE) + GAP // 2
ROW_HEADER_W = Y_TITLE_W + ROW_LABEL_W + GAP

Box = tuple[int, int, int, int]
Colour = tuple[int, int, int]
Line = tuple[str, int, Colour]  # text, font size, colour


@dataclass(frozen=True)
class SheetCell:
    """What one position of the grid shows, at 0-based ``x``, ``y``, ``z``.

    ``image``: the result's encoded bytes (or a path to its file). ``caption``: lines under the
    cell (model display name or blind label, seed). ``na``: why nothing was sent; ``error``: why
    the request failed. Either one replaces the image with a tile saying so.
    """

    x: int = 0
    y: int = 0
    z: int = 0
    image: bytes | os.PathLike[str] | None = None
    caption: tuple[str, ...] = ()
    na: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Layout:
    """Where everything goes. Every size follows from the module's constants and which bands the
    axes call for (:func:`layout_for`), so a test can compute it independently."""

    columns: int
    rows: int
    blocks: int
    cell_px: int = CELL_PX
    has_title: bool = True
    has_x: bool = True
    has_y: bool = True
    has_z: bool = True

    @property
    def left(self) -> int:
        return MARGIN + (ROW_HEADER_W if self.has_y else 0)

    @property
    def grid_top(self) -> int:
        return MARGIN + (TITLE_H if self.has_title else 0) + (X_TITLE_H if self.has_x else 0)

    @property
    def block_head(self) -> int:
        """Height of a block's Z heading and column labels, above its first row."""
        return (Z_HEADING_H if self.has_z else 0) + (COLUMN_LABEL_H if self.has_x else 0)

    @property
    def block_h(self) -> int:
        return self.block_head + self.rows * (self.cell_px + CAPTION_H) + (self.rows - 1) * GAP

    @property
    def size(self) -> tuple[int, int]:
        width = self.left + self.columns * self.cell_px + (self.columns - 1) * GAP + MARGIN
        return width, self.grid_top + self.blocks * self.block_h + (self.blocks - 1) * BLOCK_GAP + MARGIN

    def rows_top(self, z: int) -> int:
        return self.grid_top + z * (self.block_h + BLOCK_GAP) + self.block_head

    def cell_box(self, x: int, y: int, z: int = 0) -> Box:
        left, top = self.left + x * (self.cell_px + GAP), self.rows_top(z) + y * (self.cell_px + CAPTION_H + GAP)
        return left, top, left + self.cell_px, top + self.cell_px

    def caption_box(self, x: int, y: int, z: int = 0) -> Box:
        left, _, right, bottom = self.cell_box(x, y, z)
        return left, bottom, right, bottom + CAPTION_H

    def column_label_box(self, x: int, z: int = 0) -> Box:
        left, top = self.left + x * (self.cell_px + GAP), self.rows_top(z) - COLUMN_LABEL_H
        return left, top, left + self.cell_px, top + COLUMN_LABEL_H - GAP // 2

    def row_label_box(self, y: int, z: int = 0) -> Box:
        top = self.rows_top(z) + y * (self.cell_px + CAPTION_H + GAP)
        return MARGIN + Y_TITLE_W, top, MARGIN + Y_TITLE_W + ROW_LABEL_W, top + self.cell_px

    def heading_boxes(self, z: int) -> tuple[Box, Box]:
        """Block ``z``'s Z heading (across the sheet) and Y title strip (down its rows)."""
        top, width = self.rows_top(z), self.size[0]
        heading = (MARGIN, top - self.block_head, width - MARGIN, top - self.block_head + Z_HEADING_H - GAP // 2)
        return heading, (MARGIN, top, MARGIN + Y_TITLE_W, top + self.block_h - self.block_head)


def layout_for(x: Axis | None, y: Axis | None, z: Axis | None, *, title: str = "",
               cell_px: int = CELL_PX) -> Layout:
    """The layout of a sheet with these axes; cells shrink (to MIN_CELL_PX) to stay within MAX_SHEET_PIXELS."""
    counts = [len(a.values) if a else 1 for a in (x, y, z)]
    if min(counts) < 1:
        raise ValueError("every axis of a contact sheet needs at least one value")
    bands = (bool(clean(title)), x is not None, y is not None, z is not None)
    plan = Layout(*counts, cell_px, *bands)
    while plan.size[0] * plan.size[1] > MAX_SHEET_PIXELS and plan.cell_px > MIN_CELL_PX:
        plan = Layout(*counts, max(MIN_CELL_PX, int(plan.cell_px * 0.9)), *bands)
    if plan.size[0] * plan.size[1] > MAX_SHEET_PIXELS:
        raise ValueError(f"{counts[0] * counts[1] * counts[2]} cells are too many for one contact sheet")
    return plan


def build_sheet(cells: Sequence[SheetCell], *, title: str = "", x: Axis | None = None, y: Axis | None = None,
                z: Axis | None = None, settings: Mapping[str, Any] | None = None, blind: bool = False,
                cell_px: int = CELL_PX) -> bytes:
    """The contact sheet as PNG bytes, with ``settings`` (exactly those) embedded as its flux-ui label.

    ``title`` is the prompt (shortened to fit). A position no cell covers shows "no result".
    ``blind``: refuse (ValueError) when any text drawn or embedded names a model, so a blind
    comparison cannot be given away by a caption, an axis value or the settings.
    """
    plan = layout_for(x, y, z, title=title, cell_px=cell_px)
    by_position = _by_position(cells, plan)
    if blind:
        _check_blind(title, x, y, z, cells, settings)
    canvas = Image.new("RGB", plan.size, SHEET_BG)
    draw = ImageDraw.Draw(canvas)
    _draw_headings(canvas, plan, title, x, y, z)
    for zi, yi, xi in itertools.product(range(plan.blocks), range(plan.rows), range(plan.columns)):
        _draw_cell(canvas, draw, plan, by_position.get((xi, yi, zi)) or SheetCell(xi, yi, zi, na="no result"))
    out = io.BytesIO()
    canvas.save(out, "PNG", compress_level=3)  # level 6 costs several times longer for a few per cent
    canvas.close()
    return embed_metadata(out.getvalue(), settings) if settings is not None else out.getvalue()


async def build_sheet_async(cells: Sequence[SheetCell], **options: Any) -> bytes:
    """:func:`build_sheet` in a worker thread: decoding and encoding take a second the loop cannot spare."""
    return await asyncio.to_thread(build_sheet, cells, **options)


def _by_position(cells: Sequence[SheetCell], plan: Layout) -> dict[tuple[int, int, int], SheetCell]:
    found: dict[tuple[int, int, int], SheetCell] = {}
    for cell in cells:
        key = (cell.x, cell.y, cell.z)
        if not (0 <= cell.x < plan.columns and 0 <= cell.y < plan.rows and 0 <= cell.z < plan.blocks):
            raise ValueError(f"cell {key} lies outside the {plan.columns}×{plan.rows}×{plan.blocks} grid")
        if key in found:
            raise ValueError(f"two cells at {key}")
        found[key] = cell
    return found


def _check_blind(title: str, x: Axis | None, y: Axis | None, z: Axis | None, cells: Sequence[SheetCell],
                 settings: Mapping[str, Any] | None) -> None:
    texts = {"the title": title, "the settings": json.dumps(settings or {}, ensure_ascii=False, default=str)}
    for name, axis in (("X", x), ("Y", y), ("Z", z)):
        if axis:
            texts[f"the {name} axis"] = " | ".join((axis.title, *axis.values))
    for cell in cells:
        texts[f"cell {(cell.x, cell.y, cell.z)}"] = " | ".join((*cell.caption, cell.na or "", cell.error or ""))
    refuse_model_names(texts, "sheet")


def clean(text: str) -> str:
    """One line of printable text: whitespace runs become one space, control and format characters go."""
    text = " ".join(str(text).split())
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))


def _fitting(text: str, font: ImageFont.FreeTypeFont, width: float) -> int:
    """How many leading characters of ``text`` fit in ``width`` (binary search: labels can be long)."""
    if font.getlength(text) <= width:
        return len(text)
    lo, hi = 0, len(text)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if font.getlength(text[:mid]) <= width:
            lo = mid
        else:
            hi = mid
    return lo


def ellipsise(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """``text`` cut to fit ``width`` with "…" when it does not."""
    if font.getlength(text) <= width:
        return text
    return text[: _fitting(text, font, width - font.getlength(ELLIPSIS))].rstrip() + ELLIPSIS


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """At most ``max_lines`` lines no wider than ``width``: broken at spaces where possible, the last ellipsised."""
    text = clean(text)[: 400 * max(1, max_lines)]  # more than any box shows; keeps measuring cheap
    lines: list[str] = []
    while text and len(lines) < max_lines:
        if len(lines) == max_lines - 1:
            lines.append(ellipsise(text, font, width))
            break
        n = _fitting(text, font, width)
        if n >= len(text):
            lines.append(text)
            break
        space = text.rfind(" ", 0, n + 1)
        n = space if space > 0 else max(n, 1)
        lines.append(text[:n].rstrip())
        text = text[n:].lstrip()
    return lines


def _draw_text(canvas: Image.Image, box: Box, lines: Sequence[Line], align: str = "center",
               valign: str = "middle") -> None:
    """Draw (text, size, colour) lines, already wrapped, in ``box`` and clipped to it.

    Drawn on a copy of the box's region and pasted back, so nothing, not even a glyph's overhang,
    lands outside ``box``.
    """
    if not lines or box[2] <= box[0] or box[3] <= box[1]:
        return
    region = canvas.crop(box)
    draw = ImageDraw.Draw(region)
    width, height = region.size
    spare = height - sum(line_height(size) for _, size, _ in lines)
    top = max(0, {"top": 0, "middle": spare // 2, "bottom": spare}[valign])
    for text, size, colour in lines:
        font = _font(size)
        advance = font.getlength(text)
        left = PAD if align == "left" else width - PAD - advance if align == "right" else (width - advance) / 2
        draw.text((left, top), text, font=font, fill=colour)
        top += line_height(size)
    canvas.paste(region, box[:2])


def _text_block(box: Box, text: str, size: int, colour: Colour, max_lines: int) -> list[Line]:
    """``text`` wrapped into as many lines (at most ``max_lines``) as fit in ``box``."""
    fits = max(0, min(max_lines, (box[3] - box[1]) // line_height(size)))
    return [(line, size, colour) for line in wrap(text, _font(size), box[2] - box[0] - 2 * PAD, fits)]


def _draw_headings(canvas: Image.Image, plan: Layout, title: str, x: Axis | None, y: Axis | None,
                   z: Axis | None) -> None:
    width = plan.size[0]
    if plan.has_title:
        box = (MARGIN, MARGIN, width - MARGIN, MARGIN + TITLE_H - GAP)
        _draw_text(canvas, box, _text_block(box, title, TITLE_SIZE, TEXT, TITLE_LINES), align="left", valign="top")
    if x:
        box = (plan.left, plan.grid_top - X_TITLE_H, width - MARGIN, plan.grid_top - GAP // 2)
        _draw_text(canvas, box, _text_block(box, x.title, HEADING_SIZE, TEXT, 1))
    for zi in range(plan.blocks):
        heading, strip = plan.heading_boxes(zi)
        if z:
            _draw_text(canvas, heading, _text_block(heading, f"{z.title}: {z.values[zi]}", HEADING_SIZE, TEXT, 1),
                       align="left")
        for xi, value in enumerate(x.values if x else ()):
            box = plan.column_label_box(xi, zi)
            _draw_text(canvas, box, _text_block(box, value, LABEL_SIZE, TEXT, LABEL_LINES), valign="bottom")
        if y:
            _draw_vertical(canvas, strip, y.title)
        for yi, value in enumerate(y.values if y else ()):
            box = plan.row_label_box(yi, zi)
            _draw_text(canvas, box, _text_block(box, value, LABEL_SIZE, TEXT, 8), align="right")


def _draw_vertical(canvas: Image.Image, box: Box, text: str) -> None:
    """The Y axis title, reading bottom to top along the rows it labels."""
    width, height = box[2] - box[0], box[3] - box[1]
    strip = Image.new("RGB", (height, width), SHEET_BG)  # drawn horizontally, then turned
    _draw_text(strip, (0, 0, height, width), _text_block((0, 0, height, width), text, HEADING_SIZE, TEXT, 1))
    canvas.paste(strip.transpose(Image.Transpose.ROTATE_90), box[:2])


def _draw_cell(canvas: Image.Image, draw: ImageDraw.ImageDraw, plan: Layout, cell: SheetCell) -> None:
    box = plan.cell_box(cell.x, cell.y, cell.z)
    problem = cell.error or (None if cell.na or cell.image is not None else "no image")
    if not problem and not cell.na:
        try:
            thumb = thumbnail(cell.image, plan.cell_px)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            problem = f"cannot show the image: {short_error(exc)}"
        else:
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=LETTERBOX)
            canvas.paste(thumb, (box[0] + (plan.cell_px - thumb.width) // 2,
                                 box[1] + (plan.cell_px - thumb.height) // 2))
            thumb.close()
    if problem or cell.na:
        fill, colour, heading = (ERROR_FILL, ERROR_TEXT, "failed") if problem else (NA_FILL, MUTED, "n/a")
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=fill)
        inner = (box[0] + PAD, box[1] + PAD, box[2] - PAD, box[3] - PAD)
        _draw_text(canvas, inner, [(heading, HEADING_SIZE, colour),
                                   *_text_block(inner, problem or cell.na or "", LABEL_SIZE, colour, 8)])
    caption = plan.caption_box(cell.x, cell.y, cell.z)
    lines = [(ellipsise(clean(text), _font(CAPTION_SIZE), plan.cell_px - 2 * PAD), CAPTION_SIZE,
              TEXT if i == 0 else MUTED) for i, text in enumerate(cell.caption[:CAPTION_LINES])]
    _draw_text(canvas, caption, lines, valign="top")


def thumbnail(image: bytes | os.PathLike[str], box: int) -> Image.Image:
    """The image fitted into ``box``×``box`` (aspect kept), RGB, decoded at the smallest size that serves.

    JPEG decodes at 1/2, 1/4 or 1/8 scale where that still fills the box; other formats are
    reduced by Pillow's resize (which reduces by whole factors first). The decode waits its turn
    at the process-wide gate, and only the small copy outlives this call.
    """
    data = image if isinstance(image, bytes | bytearray) else Path(image).read_bytes()
    kind = container_kind(data)
    if kind is None:
        raise ValueError(f"expected a JPEG, PNG or WebP image but got {describe(bytes(data[:512]))}")
    with open_unchecked(bytes(data), {"jpeg": ("JPEG",), "png": ("PNG",), "webp": ("WEBP",)}[kind]) as img:
        width, height = img.size
        if width * height > MAX_SOURCE_PIXELS or min(width, height) < 1:
            raise ValueError(f"{width}×{height} is outside what a contact sheet shows")
        orientation = exif_orientation(img)
        scale = box / max(width, height)
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        if img.format == "JPEG" and scale < 1:
            img.draft("RGB", target)
        with DECODE_GATE.admit(decode_cost(img, 1)):
            img.load()
            full, _ = normalise_mode(img, img.info.get("icc_profile"))
            # A new image even at the same size (img is closed on leaving the block): the full size goes now.
            current = full.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
            if full is not img:
                full.close()
        current = upright(current, orientation)
    if current.mode == "RGBA":
        flat = Image.new("RGB", current.size, LETTERBOX)
        flat.paste(current, mask=current.getchannel("A"))
        current = flat
    return current if current.mode == "RGB" else current.convert("RGB")
