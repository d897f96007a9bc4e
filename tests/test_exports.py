"""Exports of a run: the contact sheet's layout, pixels, text and label, and the ZIP's files and manifests."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from conftest import KEY, LoopGaps, solid_image
from flux_ui.exports import Axis, names_a_model
from flux_ui.exports import sheet as S
from flux_ui.exports.archive import (
    MANIFEST_CSV,
    MANIFEST_JSON,
    RECORD_FIELDS,
    SHEET_NAME,
    ArchiveCell,
    grid_archive,
    history_archive,
)
from flux_ui.exports.sheet import SheetCell, build_sheet, build_sheet_async, layout_for
from flux_ui.history import Entry
from flux_ui.images import embed_metadata, read_metadata

CELL = 128  # small cells keep the tests fast; the layout arithmetic is the same
COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (220, 200, 20), (150, 40, 170), (20, 190, 190)]


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def _close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(p - q) <= tolerance for p, q in zip(a, b, strict=True))


def _colours(img: Image.Image) -> set[tuple[int, ...]]:
    return {colour for _, colour in img.getcolors(1 << 24)}  # type: ignore[union-attr]


def _centre(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


def _grid_2x3(**overrides: object) -> tuple[list[SheetCell], Axis, Axis]:
    x = Axis("guidance", ("2.5", "4"))
    y = Axis("steps", ("20", "28", "50"))
    cells = [SheetCell(i % 2, i // 2, image=solid_image(c), caption=("FLUX.2 [flex]", f"seed {i}"))
             for i, c in enumerate(COLOURS)]
    return cells, x, y


# --- the sheet's layout and pixels ------------------------------------------------------------------


def test_sheet_size_follows_the_axes() -> None:
    cells, x, y = _grid_2x3()
    img = _open(build_sheet(cells, title="a fox", x=x, y=y, cell_px=CELL))
    width = S.MARGIN + S.ROW_HEADER_W + 2 * CELL + S.GAP + S.MARGIN
    height = (S.MARGIN + S.TITLE_H + S.X_TITLE_H + S.COLUMN_LABEL_H + 3 * (CELL + S.CAPTION_H) + 2 * S.GAP
              + S.MARGIN)
    assert img.size == (width, height) == layout_for(x, y, None, title="a fox", cell_px=CELL).size


def test_a_compare_row_has_no_row_header_and_no_title_without_a_prompt() -> None:
    models = Axis("model", ("FLUX.2 [pro]", "FLUX.2 [flex]", "FLUX1.1 [pro]"))
    cells = [SheetCell(i, image=solid_image(c)) for i, c in enumerate(COLOURS[:3])]
    img = _open(build_sheet(cells, x=models, cell_px=CELL))
    assert img.size == (2 * S.MARGIN + 3 * CELL + 2 * S.GAP,
                        2 * S.MARGIN + S.X_TITLE_H + S.COLUMN_LABEL_H + CELL + S.CAPTION_H)


def test_each_cell_shows_its_own_image_letterboxed() -> None:
    cells, x, y = _grid_2x3()
    cells[5] = SheetCell(1, 2, image=solid_image(COLOURS[5], (3000, 2000), "JPEG"))  # a big JPEG: draft decode
    img = _open(build_sheet(cells, title="a fox", x=x, y=y, cell_px=CELL))
    plan = layout_for(x, y, None, title="a fox", cell_px=CELL)
    for i, colour in enumerate(COLOURS):
        box = plan.cell_box(i % 2, i // 2)
        assert _close(img.getpixel(_centre(box)), colour), (i, img.getpixel(_centre(box)))
        # 3:2 images fill the box's width; above and below is the neutral letterbox.
        assert img.getpixel((_centre(box)[0], box[1] + 2)) == S.LETTERBOX
        assert _close(img.getpixel((box[0] + 1, _centre(box)[1])), colour)


def test_na_failed_missing_and_unreadable_cells_get_tiles() -> None:
    x = Axis("model", ("a", "b", "c", "d", "e"))
    cells = [SheetCell(0, na="FLUX.2 [pro] takes no guidance"), SheetCell(1, error="HTTP 500: the service failed"),
             SheetCell(3, image=b"not an image at all"), SheetCell(4, image=solid_image(COLOURS[0]))]
    img = _open(build_sheet(cells, x=x, cell_px=CELL))
    plan = layout_for(x, None, None, cell_px=CELL)
    corner = [img.getpixel((plan.cell_box(i, 0)[0] + 2, plan.cell_box(i, 0)[1] + 2)) for i in range(5)]
    assert corner == [S.NA_FILL, S.ERROR_FILL, S.NA_FILL, S.ERROR_FILL, S.LETTERBOX]  # 2: no cell given
    assert img.getpixel(_centre(plan.cell_box(4, 0))) == COLOURS[0]


def test_z_blocks_stack_vertically_with_their_own_headings() -> None:
    x, z = Axis("seed", ("1", "2")), Axis("model", ("Model A", "Model B", "Model C"))
    cells = [SheetCell(i % 2, 0, i // 2, image=solid_image(c)) for i, c in enumerate(COLOURS)]
    img = _open(build_sheet(cells, x=x, z=z, cell_px=CELL))
    plan = layout_for(x, None, z, cell_px=CELL)
    block_h = S.Z_HEADING_H + S.COLUMN_LABEL_H + CELL + S.CAPTION_H
    assert img.size[1] == S.MARGIN + S.X_TITLE_H + 3 * block_h + 2 * S.BLOCK_GAP + S.MARGIN
    tops = [plan.cell_box(0, 0, zi)[1] for zi in range(3)]
    assert tops[1] - tops[0] == tops[2] - tops[1] == block_h + S.BLOCK_GAP
    for i, colour in enumerate(COLOURS):
        assert _close(img.getpixel(_centre(plan.cell_box(i % 2, 0, i // 2))), colour)
    heading = plan.heading_boxes(1)[0]  # "model: Model B" is drawn in its band
    assert any(img.getpixel((px, py)) != S.SHEET_BG
               for px in range(heading[0], heading[0] + 120) for py in range(heading[1], heading[3]))


def test_the_sheet_carries_exactly_the_settings_given() -> None:
    settings = {"prompt": "a fox", "x_axis": "guidance", "values": [2.5, 4], "note": "日本語"}
    cells, x, y = _grid_2x3()
    assert read_metadata(build_sheet(cells, x=x, y=y, settings=settings, cell_px=CELL)) == settings
    assert read_metadata(build_sheet(cells, x=x, y=y, cell_px=CELL)) is None


LONG = "an extraordinarily long label " * 40
STRANGE = ["日本語のとても長いラベルです" * 30, "مرحبا بالعالم " * 30, "😀🦊" * 200, "tab\there\nnew\x00line\u200b",
           "W" * 5000, ""]


@pytest.mark.parametrize("label", [LONG, *STRANGE], ids=["long", "japanese", "arabic", "emoji", "control", "wide",
                                                           "empty"])
def test_long_and_non_latin_labels_stay_in_their_boxes(label: str) -> None:
    x = Axis(label, (label, label))
    y = Axis(label, (label, label))
    z = Axis(label, (label,))
    cells = [SheetCell(i % 2, i // 2, image=solid_image(c), caption=(label, label, label))
             for i, c in enumerate(COLOURS[:4])]
    data = build_sheet(cells, title=label * 3, x=x, y=y, z=z, cell_px=CELL)
    img = _open(data)
    plan = layout_for(x, y, z, title=label * 3, cell_px=CELL)
    assert img.size == plan.size
    for i, colour in enumerate(COLOURS[:4]):  # nothing drawn over an image: every pixel is it or letterbox
        box = plan.cell_box(i % 2, i // 2)
        assert _colours(img.crop(box)) <= {colour, S.LETTERBOX}
    # The gap between the two columns stays empty from the column labels down to the last caption.
    left = plan.cell_box(0, 0)[2]
    strip = img.crop((left, plan.column_label_box(0)[1], left + S.GAP, plan.caption_box(1, 1)[3]))
    assert _colours(strip) == {S.SHEET_BG}


def test_wrap_and_ellipsise_keep_to_the_width() -> None:
    font = S._font(S.LABEL_SIZE)
    lines = S.wrap(LONG, font, 150, 3)
    assert len(lines) == 3 and lines[-1].endswith(S.ELLIPSIS)
    assert all(font.getlength(line) <= 150 for line in lines)
    assert S.wrap("short", font, 150, 3) == ["short"]
    assert S.ellipsise("W" * 500, font, 40).endswith(S.ELLIPSIS)


def test_thumbnails_follow_exif_orientation() -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90°: portrait
    Image.new("RGB", (300, 200), COLOURS[1]).save(buf, "JPEG", exif=exif)
    assert S.thumbnail(buf.getvalue(), 120).size == (80, 120)
    assert S.thumbnail(solid_image(size=(40, 20)), 120).size == (120, 60)  # small images are scaled up


def test_cells_outside_the_axes_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        build_sheet([SheetCell(2, 0)], x=Axis("seed", ("1", "2")), cell_px=CELL)
    with pytest.raises(ValueError, match="two cells"):
        build_sheet([SheetCell(0), SheetCell(0)], cell_px=CELL)


def test_a_blind_sheet_refuses_model_names_and_adds_none() -> None:
    models = Axis("model", ("Model A", "Model B"))
    cells = [SheetCell(i, image=solid_image(c), caption=(f"Model {'AB'[i]}", "seed 7"))
             for i, c in enumerate(COLOURS[:2])]
    data = build_sheet(cells, title="a fox", x=models, settings={"prompt": "a fox", "models": ["Model A", "Model B"]},
                       blind=True, cell_px=CELL)
    assert names_a_model(data) is None
    leaky = [SheetCell(0, image=solid_image(), caption=("FLUX.2 [pro]",))]
    with pytest.raises(ValueError, match="names the model"):
        build_sheet(leaky, x=Axis("model", ("Model A",)), blind=True, cell_px=CELL)
    with pytest.raises(ValueError, match="the settings"):
        build_sheet(cells, x=models, settings={"model": "FLUX.2-pro"}, blind=True, cell_px=CELL)


async def test_the_async_build_leaves_the_event_loop_free() -> None:
    cells, x, y = _grid_2x3()
    cells = [SheetCell(c.x, c.y, image=solid_image(COLOURS[i], (1024, 1024), "JPEG")) for i, c in enumerate(cells)]
    async with LoopGaps() as gaps:
        data = await build_sheet_async(cells, x=x, y=y, title="a fox")
    assert data == await asyncio.to_thread(build_sheet, cells, x=x, y=y, title="a fox")
    assert max(gaps) < 0.2


# --- the ZIP ----------------------------------------------------------------------------------------


def _settings(model: str, seed: int, guidance: float) -> dict[str, object]:
    return {"generator": "flux-ui", "tab": "grid", "model": model, "deployment": model, "route": "bfl",
            "prompt": "a fox, 日本語", "seed": seed, "params": {"guidance": guidance, "seed": seed},
            "references": [], "size": [96, 64]}


def _saved(folder: Path, name: str, settings: dict[str, object], colour: tuple[int, int, int], fmt: str) -> Path:
    """A result as History saves it: the service's bytes with the settings embedded."""
    path = folder / "2026-01-02" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(embed_metadata(solid_image(colour, fmt=fmt), settings))
    return path


@pytest.fixture
def grid(tmp_path: Path) -> tuple[Path, list[ArchiveCell], Axis, Axis]:
    outputs = tmp_path / "outputs"
    x, y = Axis("guidance", ("2.5", "4")), Axis("model", ("FLUX.2 [pro]", "FLUX.2 [flex]"))
    cells = []
    for yi, model in enumerate(("FLUX.2-pro", "FLUX.2-flex")):
        for xi, guidance in enumerate((2.5, 4.0)):
            s = _settings(model, 40 + xi, guidance)
            fmt = "JPEG" if xi else "PNG"
            path = _saved(outputs, f"20260102-0000{yi}{xi}-abcdef0{yi}.{'jpg' if xi else 'png'}", s,
                          COLOURS[2 * yi + xi], fmt)
            cells.append(ArchiveCell(s, path.relative_to(outputs) if yi else path, xi, yi, label=f"Model {'AB'[yi]}"))
    return outputs, cells, x, y


def _members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def test_the_zip_holds_the_originals_byte_for_byte_and_manifests_that_match(tmp_path: Path, grid) -> None:
    outputs, cells, x, y = grid
    report = grid_archive(cells, tmp_path / "grid.zip", outputs_folder=outputs, x=x, y=y, sheet=b"\x89PNG sheet")
    assert report.files == 4 and report.problems == ()
    members = _members(report.path)
    images = ["y1-x1_FLUX.2-pro_seed40.png", "y1-x2_FLUX.2-pro_seed41.jpg", "y2-x1_FLUX.2-flex_seed40.png",
              "y2-x2_FLUX.2-flex_seed41.jpg"]
    assert sorted(members) == sorted([*images, SHEET_NAME, MANIFEST_JSON, MANIFEST_CSV])
    for name, cell in zip(images, cells, strict=True):
        source = cell.source if cell.source.is_absolute() else outputs / cell.source
        assert members[name] == source.read_bytes()
    with zipfile.ZipFile(report.path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds[images[0]] == kinds[SHEET_NAME] == zipfile.ZIP_STORED
    assert kinds[MANIFEST_JSON] == kinds[MANIFEST_CSV] == zipfile.ZIP_DEFLATED
    manifest = json.loads(members[MANIFEST_JSON])
    assert manifest["axes"] == {"x": {"title": "guidance", "values": ["2.5", "4"]},
                                "y": {"title": "model", "values": ["FLUX.2 [pro]", "FLUX.2 [flex]"]}}
    assert manifest["sheet"] == SHEET_NAME
    first = manifest["cells"][1]
    assert first | {"settings": None} == {
        "x": 2, "x_value": "4", "y": 1, "y_value": "FLUX.2 [pro]", "outcome": "ok", "message": "",
        "file": images[1], "model": "FLUX.2-pro", "prompt": "a fox, 日本語", "seed": 41, "width": 96, "height": 64,
        "params": {"guidance": 4.0, "seed": 41}, "settings": None}
    rows = list(csv.DictReader(io.StringIO(members[MANIFEST_CSV].decode("utf-8-sig"))))
    assert [r["file"] for r in rows] == images
    assert rows[1]["prompt"] == "a fox, 日本語" and json.loads(rows[1]["params"]) == {"guidance": 4.0, "seed": 41}
    assert [json.loads(r["settings"]) for r in rows] == [c.settings for c in cells]


def test_the_manifest_writes_settings_as_given_and_adds_nothing(tmp_path: Path, grid) -> None:
    outputs, cells, x, y = grid
    odd = {"prompt": "p", "whatever": {"nested": [1, 2]}, "seed": None}
    cells = [*cells[:3], ArchiveCell(odd, None, 1, 1, outcome="na", message="FLUX.2 [flex] takes no guidance")]
    report = grid_archive(cells, tmp_path / "g.zip", outputs_folder=outputs, x=x, y=y)
    members = _members(report.path)
    records = json.loads(members[MANIFEST_JSON])["cells"]
    assert [r["settings"] for r in records] == [c.settings for c in cells]
    for record in records:
        assert list(record) == ["x", "x_value", "y", "y_value", *RECORD_FIELDS]
    assert records[3] | {"settings": None} == {
        "x": 2, "x_value": "4", "y": 2, "y_value": "FLUX.2 [flex]", "outcome": "na",
        "message": "FLUX.2 [flex] takes no guidance", "file": "", "model": None, "prompt": "p", "seed": None,
        "width": None, "height": None, "params": {}, "settings": None}
    assert all(KEY.encode() not in data for data in members.values())


def test_a_blind_zip_names_no_model_anywhere(tmp_path: Path, grid) -> None:
    outputs, cells, x, _ = grid
    blind_y = Axis("model", ("Model A", "Model B"))
    sheet = build_sheet([SheetCell(c.x, c.y, image=c.source if c.source.is_absolute() else outputs / c.source,
                                   caption=(c.label or "", f"seed {c.settings['seed']}")) for c in cells],
                        title="a fox", x=x, y=blind_y, settings={"prompt": "a fox", "y_axis": "model"},
                        blind=True, cell_px=CELL)
    report = grid_archive(cells, tmp_path / "blind.zip", outputs_folder=outputs, x=x, y=blind_y, sheet=sheet,
                          blind=True)
    assert report.files == 4 and report.problems == ()
    members = _members(report.path)
    assert "y1-x2_Model-A_seed41.jpg" in members
    for name, data in members.items():
        assert names_a_model(name) is None and names_a_model(data) is None, name
    for cell in cells:  # the pixels are the service's, only the label changed
        source = cell.source if cell.source.is_absolute() else outputs / cell.source
        name = next(n for n in members if n.endswith(source.suffix) and f"seed{cell.settings['seed']}" in n
                    and f"y{cell.y + 1}-" in n)
        assert _open(members[name]).tobytes() == _open(source.read_bytes()).tobytes()
        assert read_metadata(members[name])["model"] == cell.label  # type: ignore[index]
    record = json.loads(members[MANIFEST_JSON])["cells"][0]
    assert record["model"] == "Model A" and "deployment" not in record["settings"]


def test_a_blind_zip_refuses_text_that_names_a_model(tmp_path: Path, grid) -> None:
    outputs, cells, x, y = grid  # y's values are display names
    with pytest.raises(ValueError, match="names the model"):
        grid_archive(cells, tmp_path / "b.zip", outputs_folder=outputs, x=x, y=y, blind=True)
    assert not (tmp_path / "b.zip").exists()


def test_missing_and_outside_sources_are_recorded_and_the_rest_written(tmp_path: Path, grid) -> None:
    outputs, cells, x, y = grid
    (outputs / cells[2].source).unlink()  # type: ignore[operator]
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(solid_image())
    cells[3] = ArchiveCell(cells[3].settings, outside, 1, 1)
    report = grid_archive(cells, tmp_path / "g.zip", outputs_folder=outputs, x=x, y=y)
    assert report.files == 2 and len(report.problems) == 2
    assert "missing from the outputs folder" in report.problems[0] and "2026-01-02/" in report.problems[0]
    assert "outside the outputs folder" in report.problems[1]
    members = _members(report.path)
    assert len([n for n in members if n.startswith("y")]) == 2
    records = json.loads(members[MANIFEST_JSON])["cells"]
    assert [r["outcome"] for r in records] == ["ok", "ok", "error", "error"]
    assert records[2]["file"] == "" and "missing" in records[2]["message"]


def test_history_download_all_has_a_flat_manifest(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    entries = []
    for i, model in enumerate(("FLUX.2-pro", "FLUX-1.1-pro", "FLUX.2-pro")):
        s = _settings(model, i, 3.0)
        path = _saved(outputs, f"20260102-00000{i}-0000000{i}.png", s, COLOURS[i], "PNG")
        entries.append(Entry(f"id{i}", 1_767_312_000.0 + i, "text", model, "a fox", i, 96, 64, "png", path, s))
    entries[2].path.unlink()
    report = history_archive(entries, outputs, tmp_path / "all.zip")
    members = _members(report.path)
    assert sorted(members) == ["1_FLUX.2-pro_seed0.png", "2_FLUX-1.1-pro_seed1.png", MANIFEST_CSV, MANIFEST_JSON]
    assert members["2_FLUX-1.1-pro_seed1.png"] == entries[1].path.read_bytes()
    manifest = json.loads(members[MANIFEST_JSON])
    assert "axes" not in manifest and manifest["kind"] == "history"
    first = manifest["cells"][0]
    assert list(first)[:4] == ["index", "id", "created", "tab"] and first["created"] == "2026-01-02T00:00:00Z"
    assert [r["outcome"] for r in manifest["cells"]] == ["ok", "ok", "error"]
    assert report.problems and "image 3" in report.problems[0]


def test_the_csv_does_not_let_a_spreadsheet_run_a_prompt(tmp_path: Path) -> None:
    cells = [ArchiveCell({"prompt": "=HYPERLINK(\"http://x\")", "seed": 1}, None, outcome="na", message="-")]
    report = grid_archive(cells, tmp_path / "c.zip", outputs_folder=tmp_path)
    rows = list(csv.DictReader(io.StringIO(_members(report.path)[MANIFEST_CSV].decode("utf-8-sig"))))
    assert rows[0]["prompt"] == "'=HYPERLINK(\"http://x\")" and rows[0]["message"] == "'-"
    assert json.loads(_members(report.path)[MANIFEST_JSON])["cells"][0]["prompt"].startswith("=")


def test_the_bench_scenario_runs_quick() -> None:
    from bench import sheet as bench_sheet

    rows = bench_sheet.run(quick=True)
    assert rows[0].ratio is not None and rows[0].ratio > 0
    assert rows[2].met is True and rows[2].value == 2
    assert 0 <= rows[1].value < 10
