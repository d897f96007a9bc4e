"""Files flux-ui writes for a person to take away (contact sheets, ZIPs, style exports): where they go
and how the page may serve them.

They live under the outputs folder's ``exports/``, one folder per run, and join the file gate's
registry of files flux-ui wrote (``ui/edge/files.py``), the only ones it serves from that folder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from flux_ui.blob_store import files_for
from flux_ui.exports import Axis
from flux_ui.exports.archive import ArchiveCell, ArchiveReport, grid_archive
from flux_ui.exports.sheet import SheetCell, build_sheet_async
from flux_ui.ui.edge.files import written_files
from flux_ui.ui.fanout import Slot

EXPORTS = "exports"


def export_folder(outputs: Path, run_id: str) -> Path:
    """A run's own folder for what it exports, made if need be (blocking: call it from a worker thread)."""
    where = Path(outputs) / EXPORTS / run_id
    where.mkdir(parents=True, exist_ok=True)
    return where


def export_stem(kind: str, run_id: str) -> str:
    """A file name that sorts by time and says what it is: ``grid-20261201-134501-1a2b3c4d``."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:8]}"


def offer(outputs: Path, *paths: Path) -> None:
    """Let the page serve these files flux-ui just wrote in the outputs folder."""
    served = written_files(outputs)
    for path in paths:
        served.add(path)


def save_sheet_and_archive(outputs: Path, kind: str, run_id: str, sheet: bytes,
                           archive: Callable[[Path], ArchiveReport]) -> tuple[Path, ArchiveReport]:
    """Write a run's contact sheet, then its ZIP (``archive(dest)``), into the run's export folder and let
    the page serve both. Blocking: call it from a worker thread."""
    where, stem = export_folder(outputs, run_id), export_stem(kind, run_id)
    sheet_path = where / f"{stem}.png"
    sheet_path.write_bytes(sheet)
    report = archive(where / f"{stem}.zip")
    for path in (sheet_path, report.path):  # stored for good (Blob Storage, when used) before they are offered
        files_for(outputs).saved(path)
    offer(outputs, sheet_path, report.path)
    return sheet_path, report


@dataclass(frozen=True)
class Exports:
    """A run's contact sheet and ZIP (None when they could not be written: ``problem`` says why)."""

    sheet: Path | None = None
    archive: Path | None = None
    problem: str | None = None


def row_cells(slots: Sequence[Slot], names: Sequence[str], planned: Mapping[str, Any],
              blind: bool = False) -> tuple[list[SheetCell], list[ArchiveCell]]:
    """One row of a fan-out (a run of variations, a comparison) as sheet and archive cells: ``names``
    says what each cell is called (a model, or a blind letter), ``planned`` what a cell that made no
    image was to be."""
    sheet, archive = [], []
    for i, (slot, name) in enumerate(zip(slots, names, strict=True)):
        made = slot.generated
        # ASCII: the sheet's font (Pillow's default) has no "×"
        size = f"{made.result.info.width} x {made.result.info.height}" if made else ""
        error = None if made else (slot.error or "not sent: the run was stopped")
        sheet.append(SheetCell(i, image=Path(made.path) if made else None, caption=(name, size), error=error))
        if made is not None:
            archive.append(ArchiveCell(made.entry.settings, Path(made.path), i, label=name if blind else None))
        else:
            settings = {**planned, "model": slot.model, "prompt": slot.prompt, "seed": slot.params.get("seed"),
                        "params": dict(slot.params), **dict(slot.extra or {})}
            archive.append(ArchiveCell(settings, None, i, outcome="error", message=error or "",
                                       label=name if blind else None))
    return sheet, archive


async def export_row(outputs: Path, kind: str, run_id: str, cells: tuple[list[SheetCell], list[ArchiveCell]], *,
                     title: str, axis: Axis, settings: Mapping[str, Any], blind: bool = False) -> Exports:
    """Draw a one-row contact sheet and write the ZIP into the run's own export folder, both served to the
    page; a problem is said, and the images stay in History whatever happens here."""
    sheet_cells, archive_cells = cells
    try:
        sheet = await build_sheet_async(sheet_cells, title=title, x=axis, settings=dict(settings), blind=blind)
        archive = partial(grid_archive, archive_cells, outputs_folder=outputs, x=axis, sheet=sheet, blind=blind)
        sheet_path, report = await asyncio.to_thread(save_sheet_and_archive, outputs, kind, run_id, sheet, archive)
    except (OSError, ValueError) as err:
        return Exports(problem=f"The contact sheet and ZIP could not be written ({err}); every image is in "
                               "History all the same.")
    return Exports(sheet_path, report.path)
