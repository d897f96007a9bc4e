"""Exports of a run of several results: a contact sheet PNG and a ZIP of the originals with a manifest.

:mod:`~flux_ui.exports.sheet` draws the sheet (``build_sheet``, ``build_sheet_async``) and
:mod:`~flux_ui.exports.archive` writes the ZIP (``grid_archive``, ``history_archive``); import
them from there. This package holds what both share: the :class:`Axis` of a grid, and the
check that keeps a blind comparison blind (:func:`names_a_model`). Nothing here imports the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flux_ui.registry import MODELS


@dataclass(frozen=True)
class Axis:
    """One axis of a grid: its title ("guidance", "model", "seed") and each position's label, in order.

    A Compare run is one X axis of models (or of blind labels), a run of variations one X axis of seeds.
    """

    title: str
    values: tuple[str, ...]


def model_names() -> tuple[str, ...]:
    """Every way the registry names a model (ID, display name, BFL path), longest first; read at each
    call, so a model added to the registry is covered."""
    names = {n for spec in MODELS.values() for n in (spec.id, spec.display_name, spec.bfl_path) if n}
    return tuple(sorted(names, key=len, reverse=True))


def names_a_model(text: str | bytes) -> str | None:
    """The first model name found in ``text`` (any case), or None.

    Bytes (a whole file) are searched as UTF-8 and as UTF-16 in both byte orders, the encodings
    image metadata uses (EXIF writes non-ASCII comments as UTF-16).
    """
    if isinstance(text, str):
        low = text.lower()
        return next((name for name in model_names() if name.lower() in low), None)
    low_bytes = bytes(text).lower()
    for name in model_names():
        if any(name.lower().encode(codec) in low_bytes for codec in ("utf-8", "utf-16-be", "utf-16-le")):
            return name
    return None


def refuse_model_names(texts: Mapping[str, str | bytes], what: str) -> None:
    """ValueError naming the first of ``texts`` (where → text) that names a model: a blind export
    must not give the models away, so it is refused rather than written."""
    for where, text in texts.items():
        found = names_a_model(text)
        if found:
            raise ValueError(f"blind {what} refused: {where} names the model {found!r}; pass blind labels instead")
