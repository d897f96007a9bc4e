"""Where blocked results go: ``<outputs>/quarantine/``, for the owner, never for the page.

A result Content Safety blocked (or could not check, failing closed) was made and billed, so it is
kept rather than dropped, but nobody may see it through flux-ui: the web edge serves from the
outputs folder only the files History indexed (:mod:`flux_ui.ui.edge.files`), History indexes
none of these (its recovery adopts images from its day folders only), and files and folder are
the owner's alone (0600 and 0700). Each image is written whole (a temporary file, synced, then
renamed into place) with its record beside it: ``<name>.<ext>`` and ``<name>.json``, holding the
verdict, why it was kept and what it was made from.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ui.durable import write_whole
from flux_ui.images.formats import container_kind

FOLDER_NAME = "quarantine"
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


@dataclass(frozen=True)
class Kept:
    """One quarantined image and its record."""

    image: Path
    record: Path

    def read_record(self) -> dict[str, Any]:
        return json.loads(self.record.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


class Quarantine:
    """The quarantine folder of one outputs folder."""

    def __init__(self, outputs: Path) -> None:
        self.folder = Path(outputs) / FOLDER_NAME

    def keep(self, image: bytes, record: Mapping[str, Any]) -> Kept:
        """Write ``image`` whole and its ``record`` (JSON) beside it; OSError if the disk refuses."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        kind = container_kind(image)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = f"{stamp}-{secrets.token_hex(4)}"
        path = self.folder / f"{name}.{_EXTENSIONS.get(kind or '', 'bin')}"
        about = {"kept_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "image": path.name,
                 "format": kind, "bytes": len(image), "sha256": hashlib.sha256(image).hexdigest(), **record}
        write_whole(path, image, 0o600)
        record_path = path.with_suffix(".json")
        verdict = json.dumps(about, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        write_whole(record_path, verdict, 0o600)
        return Kept(path, record_path)

    def kept(self) -> list[Kept]:
        """Every quarantined image, oldest first (an image whose record a crash cut off is listed too)."""
        try:
            names = sorted(p for p in self.folder.iterdir() if _is_image(p))
        except FileNotFoundError:
            return []
        return [Kept(p, p.with_suffix(".json")) for p in names]

    def count(self) -> int:
        """How many results are in quarantine."""
        return len(self.kept())


def _is_image(path: Path) -> bool:
    return path.suffix != ".json" and not path.name.startswith(".") and path.is_file()
