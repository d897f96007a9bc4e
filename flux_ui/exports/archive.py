"""ZIP exports: the original files of a run, named to sort by cell, with a manifest in JSON and CSV.

Originals are copied byte for byte (streamed, ZIP_STORED: JPEG, PNG and WebP are compressed
already); the manifests are deflated. A source that is missing or unreadable is left out and
recorded in the manifest as an error, so the ZIP still holds everything else and says what is
not there. The ZIP is written under a temporary name and renamed into place whole.

No secret can reach a manifest: every cell record is built from the settings the caller passes
(History's settings, made from the client's record of what was sent, which never holds a key),
written as given, beside coordinates, file name and outcome; nothing is read from elsewhere.

Blind mode names no model anywhere: file names and the manifest use the caller's labels, the
settings lose the keys that name a deployment or route (:data:`BLIND_DROPPED`), and each file's
flux-ui label is rewritten with those blinded settings (metadata surgery only: the pixel data
stays as the service sent it). A file that still names its model is withheld, and text that
does (a prompt naming a model, a sheet's label) refuses the whole export.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flux_ui.exports import Axis, names_a_model, refuse_model_names
from flux_ui.images.metadata import embed_metadata

if TYPE_CHECKING:
    from flux_ui.history import Entry

SHEET_NAME = "contact-sheet.png"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
#: Settings keys a blind export leaves out besides the model (which becomes the label): the
#: deployment is usually named after the model, and the route tells FLUX.1 [schnell] apart.
BLIND_DROPPED = ("deployment", "route")
#: The fields of every cell record after its position, in the order manifest.csv has them. ``params``
#: and ``settings`` are JSON in one column each; ``settings`` is exactly what the caller passed.
RECORD_FIELDS = ("outcome", "message", "file", "model", "prompt", "seed", "width", "height", "params", "settings")
_COPY_CHUNK = 1024 * 1024
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")

Outcome = Literal["ok", "na", "error"]


@dataclass(frozen=True)
class ArchiveCell:
    """One cell of a grid (0-based ``x``, ``y``, ``z``) as the ZIP records it.

    ``settings``: the saved image's History settings (for a cell that sent nothing, what would
    have been sent). ``source``: its file, absolute or relative to the outputs folder; copied only
    when ``outcome`` is "ok". ``label``: the blind label ("Model A") that stands in for the model.
    ``width``/``height``: the image's size, when ``settings["size"]`` does not say it.
    """

    settings: Mapping[str, Any]
    source: Path | None = None
    x: int = 0
    y: int = 0
    z: int = 0
    outcome: Outcome = "ok"
    message: str = ""
    label: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class ArchiveReport:
    """What was written: the ZIP, how many images it holds, and one sentence per file left out."""

    path: Path
    files: int
    problems: tuple[str, ...]


@dataclass
class _Item:
    record: dict[str, Any]
    source: Path | None
    where: str  # "cell y1-x2", "image 3": how a problem names it


def grid_archive(cells: Sequence[ArchiveCell], dest: Path, *, outputs_folder: Path, x: Axis | None = None,
                 y: Axis | None = None, z: Axis | None = None, sheet: bytes | None = None,
                 blind: bool = False) -> ArchiveReport:
    """Write a grid's (or a Compare run's, or a run of variations') ZIP to ``dest``.

    Files are named ``z1-y2-x3_FLUX.2-pro_seed42.jpg`` (1-based, zero-padded to sort; only the
    axes given appear; ``y1-x2_Model-A_seed42.jpg`` when blind). ValueError for a cell outside the
    axes, or, when ``blind``, for any text or sheet that names a model (nothing is written then).
    """
    axes = {name: axis for name, axis in (("x", x), ("y", y), ("z", z)) if axis is not None}
    widths = {name: len(str(len(axis.values))) for name, axis in axes.items()}
    taken: set[str] = set()
    items: list[_Item] = []
    for cell in sorted(cells, key=lambda c: (c.z, c.y, c.x)):
        coords = {"x": cell.x, "y": cell.y, "z": cell.z}
        position: dict[str, Any] = {}
        for name in ("x", "y", "z"):
            axis = axes.get(name)
            if (axis is None and coords[name]) or (axis and not 0 <= coords[name] < len(axis.values)):
                raise ValueError(f"cell ({cell.x}, {cell.y}, {cell.z}) lies outside the axes given")
            if axis is not None:
                position |= {name: coords[name] + 1, f"{name}_value": axis.values[coords[name]]}
        stem = "-".join(f"{n}{coords[n] + 1:0{widths[n]}d}" for n in ("z", "y", "x") if n in axes) or "cell"
        settings = _blinded(cell.settings, cell.label) if blind else cell.settings
        model = cell.label if blind else settings.get("model")
        size = settings.get("size") if isinstance(settings.get("size"), list | tuple) else (None, None)
        record = _record(position, cell.outcome, cell.message, model, settings, cell.width or size[0],
                         cell.height or size[1])
        source = Path(cell.source) if cell.source is not None and cell.outcome == "ok" else None
        if source is not None:
            record["file"] = _name(stem, str(model or "model"), settings.get("seed"), source.suffix, taken)
        items.append(_Item(record, source, f"cell {stem}"))
    top: dict[str, Any] = {"generator": "flux-ui", "kind": "grid", "blind": blind,
                           "axes": {n: {"title": a.title, "values": list(a.values)} for n, a in axes.items()}}
    if blind:
        refuse_model_names({"the axes": json.dumps(top, ensure_ascii=False),
                            **{i.where: json.dumps(i.record, ensure_ascii=False, default=str) for i in items},
                            **({"the contact sheet": sheet} if sheet is not None else {})}, "archive")
    return _write(Path(dest), Path(outputs_folder), items, top, sheet, blind)


def history_archive(entries: Iterable[Entry], outputs_folder: Path, dest: Path, *,
                    sheet: bytes | None = None) -> ArchiveReport:
    """Write History's "download all" ZIP of ``entries`` (in the order given) to ``dest``.

    The same shape as a grid's with a flat manifest: each record says its place in the list, the
    entry's ID, when it was made and on which tab. Pass entries listed without ``preview``, or the
    manifest carries the shortened prompts.
    """
    entries = list(entries)
    width, taken = len(str(len(entries))), set[str]()
    items: list[_Item] = []
    for index, entry in enumerate(entries, start=1):
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.created))
        position = {"index": index, "id": entry.id, "created": created, "tab": entry.tab}
        record = _record(position, "ok", "", entry.model, entry.settings, entry.width, entry.height)
        record["seed"] = entry.seed
        record["file"] = _name(f"{index:0{width}d}", entry.model, entry.seed, Path(entry.path).suffix, taken)
        items.append(_Item(record, Path(entry.path), f"image {index}"))
    return _write(Path(dest), Path(outputs_folder), items, {"generator": "flux-ui", "kind": "history"}, sheet,
                  blind=False)


def _blinded(settings: Mapping[str, Any], label: str | None) -> dict[str, Any]:
    if not label:
        raise ValueError("a blind archive needs a label for every cell")
    return {**{k: v for k, v in settings.items() if k not in BLIND_DROPPED}, "model": label}


def _record(position: Mapping[str, Any], outcome: Outcome, message: str, model: Any,
            settings: Mapping[str, Any], width: Any, height: Any) -> dict[str, Any]:
    """One manifest record: the position, then RECORD_FIELDS; ``settings`` as given, nothing added."""
    if outcome not in ("ok", "na", "error"):
        raise ValueError(f"unknown outcome {outcome!r}")
    return {**position, "outcome": outcome, "message": message, "file": "", "model": model,
            "prompt": settings.get("prompt"), "seed": settings.get("seed"), "width": width, "height": height,
            "params": settings.get("params", {}), "settings": dict(settings)}


def _name(stem: str, model: str, seed: Any, suffix: str, taken: set[str]) -> str:
    """``stem_model_seedN.ext``, made safe for any file system, and unique within the ZIP."""
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", model).strip("-.") or "model"
    base = f"{stem}_{slug}" + (f"_seed{seed}" if isinstance(seed, int) else "")
    ext = re.sub(r"[^a-z0-9.]", "", suffix.lower())
    name, n = base + ext, 2
    while name in taken:
        name, n = f"{base}-{n}{ext}", n + 1
    taken.add(name)
    return name


def _write(dest: Path, folder: Path, items: Sequence[_Item], top: dict[str, Any], sheet: bytes | None,
           blind: bool) -> ArchiveReport:
    """The ZIP, under a temporary name and renamed into place once whole."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    problems: list[str] = []
    files, folder = 0, folder.resolve()
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for item in items:
                if item.source is None:
                    continue
                problem = _add_original(zf, folder, item, blind)
                if problem:
                    item.record |= {"outcome": "error", "message": problem, "file": ""}
                    problems.append(f"{item.where}: {problem}; recorded in {MANIFEST_JSON} as an error")
                else:
                    files += 1
            if sheet is not None:
                zf.writestr(_info(SHEET_NAME), sheet, zipfile.ZIP_STORED)
            records = [item.record for item in items]
            manifest = {**top, "sheet": SHEET_NAME if sheet is not None else None, "cells": records}
            zf.writestr(_info(MANIFEST_JSON), json.dumps(manifest, ensure_ascii=False, indent=2, default=str),
                        zipfile.ZIP_DEFLATED)
            zf.writestr(_info(MANIFEST_CSV), _csv(records), zipfile.ZIP_DEFLATED)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ArchiveReport(dest, files, tuple(problems))


def _add_original(zf: zipfile.ZipFile, folder: Path, item: _Item, blind: bool) -> str | None:
    """Copy one original into the ZIP; what went wrong, in words, when it could not be."""
    assert item.source is not None
    path = (item.source if item.source.is_absolute() else folder / item.source).resolve()
    if not path.is_relative_to(folder):
        return f"the file {item.source} is outside the outputs folder, so it is not in the ZIP"
    shown = path.relative_to(folder).as_posix()
    try:
        info = zipfile.ZipInfo.from_file(path, item.record["file"])
        info.compress_type = zipfile.ZIP_STORED
        with open(path, "rb") as src:
            if blind:
                return _add_blinded(zf, info, src.read(), item.record["settings"])
            with zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)
    except FileNotFoundError:
        return f"the file {shown} is missing from the outputs folder, so it is not in the ZIP"
    except OSError as exc:
        return f"the file {shown} cannot be read ({exc.strerror or exc}), so it is not in the ZIP"
    return None


def _add_blinded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data: bytes, settings: Mapping[str, Any]) -> str | None:
    """The original relabelled with the blinded settings, unless it still names its model."""
    try:
        data = embed_metadata(data, settings)
    except ValueError as exc:
        return f"the file cannot be relabelled for a blind export ({exc}), so it is not in the ZIP"
    if names_a_model(data):
        return "the file names its model in metadata flux-ui cannot remove, so a blind export leaves it out"
    zf.writestr(info, data, zipfile.ZIP_STORED)
    return None


def _info(name: str) -> zipfile.ZipInfo:
    return zipfile.ZipInfo(name, time.localtime()[:6])


def _csv(records: Sequence[Mapping[str, Any]]) -> str:
    """The records flattened, one row each: ``params`` and ``settings`` as JSON. UTF-8 with a BOM so
    spreadsheets read non-Latin text, and text starting like a formula prefixed with ``'`` so a
    spreadsheet shows a prompt such as "=1+1" instead of running it."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = list(records[0]) if records else list(RECORD_FIELDS)
    writer.writerow(columns)
    for record in records:
        writer.writerow([_csv_value(record.get(column)) for column in columns])
    return "\ufeff" + out.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple | bool):
        return json.dumps(value, ensure_ascii=False, default=str)
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_CSV_FORMULA) else text
