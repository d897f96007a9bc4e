"""Files flux-ui writes for a person to take away (contact sheets, ZIPs, style exports): where they go
and how the page may serve them.

They live under the outputs folder's ``exports/``, one folder per run, and join the file gate's
registry of files flux-ui wrote (``ui/edge/files.py``), the only ones it serves from that folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flux_ui.exports.archive import ArchiveReport
from flux_ui.ui.edge.files import written_files

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
    offer(outputs, sheet_path, report.path)
    return sheet_path, report
