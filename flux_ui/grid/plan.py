"""Plan an X/Y/Z grid, or a run of variations, as cells the client can send, before anything is sent.

Every cell goes through :func:`flux_ui.client.validate`, so the registry's checks apply exactly as on
the other tabs and each sent cell knows its output size (for the cost). A cell whose model does not take
an axis's parameter, or that the client refuses, is "n/a" with the reason and sends nothing; the grid as
a whole is refused only for what no cell could fix (too many cells, a value no model takes).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flux_ui.client import GenerationRequest, ValidatedRequest, validate
from flux_ui.errors import ValidationError
from flux_ui.grid.axes import (
    MODEL,
    PROMPT,
    SEED,
    SIZE,
    STYLE,
    AxisValue,
    axis_label,
    check_search_replace,
    check_values,
    format_value,
    parse_values,
)
from flux_ui.registry import MODELS, SEED_MAX, AspectRatioSize, ModelSpec
from flux_ui.styles import Style

#: At most this many cells in one grid: each sent cell is a billed image.
MAX_CELLS = 100
MAX_AXES = 3
MAX_VARIATIONS = 8
#: A seed flux-ui picks lies in 0..2**31-1, as the client's own picks do (safe for every generator).
RANDOM_SEED_MAX = 2**31 - 1
_AXIS_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class GridAxis:
    """One axis: its kind (``model``, ``seed``, ``prompt``, ``size`` or a parameter name) and its values."""

    kind: str
    values: tuple[AxisValue, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))

    @classmethod
    def parse(cls, kind: str, text: str, models: Sequence[str]) -> GridAxis:
        """An axis from typed text (see :func:`flux_ui.grid.axes.parse_values`)."""
        return cls(kind, tuple(parse_values(kind, text, models)))

    @property
    def label(self) -> str:
        return axis_label(self.kind)

    @property
    def shown(self) -> tuple[str, ...]:
        return tuple(format_value(self.kind, v) for v in self.values)


@dataclass(frozen=True)
class GridBase:
    """The settings every cell starts from; ``model`` is used when no axis is ``model``.

    ``params`` are those of the base model; a cell drops any its own model does not take.
    """

    prompt: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    styles: Mapping[str, Style] = field(default_factory=dict)  # the saved styles a style axis may name


@dataclass(frozen=True)
class Cell:
    """One image of a grid: where it sits, what it shows, and either a request to send or why it has none."""

    x: int
    y: int
    z: int
    shown: tuple[str, ...]  # each axis's value, as its header shows it
    model: str
    prompt: str
    params: Mapping[str, Any]  # as sent (resolved by the client), or as asked for an n/a cell
    request: ValidatedRequest | None = None
    na: str | None = None  # why nothing is sent for this cell

    @property
    def sent(self) -> bool:
        return self.request is not None

    @property
    def coords(self) -> tuple[int, int, int]:
        return self.x, self.y, self.z

    @property
    def size(self) -> tuple[int, int] | None:
        return self.request.size if self.request is not None else None

    def to_json(self) -> dict[str, Any]:
        """The cell for a manifest: no reference bytes, no deployment, no key."""
        request = self.request
        return {
            "x": self.x, "y": self.y, "z": self.z, "shown": list(self.shown), "model": self.model,
            "prompt": self.prompt, "params": _jsonable(dict(self.params)),
            "size": list(request.size) if request is not None and request.size else None,
            "route": request.route.value if request is not None else None,
            "adjustments": list(request.adjustments) if request is not None else [],
            "warnings": list(request.warnings) if request is not None else [],
            "na": self.na,
        }


@dataclass(frozen=True)
class GridPlan:
    """A planned grid: its axes, its base, and its cells in z, then y, then x order."""

    axes: tuple[GridAxis, ...]
    base: GridBase
    cells: tuple[Cell, ...]
    seed: int | None  # the seed every cell shares; None when a seed axis varies it

    @property
    def shape(self) -> tuple[int, int, int]:
        """How many values on x, y and z (1 for an axis the grid does not have)."""
        counts = [len(axis.values) for axis in self.axes] + [1, 1]
        return counts[0], counts[1], counts[2]

    @property
    def sent(self) -> tuple[Cell, ...]:
        return tuple(cell for cell in self.cells if cell.sent)

    def cell(self, x: int, y: int = 0, z: int = 0) -> Cell:
        nx, ny, nz = self.shape
        if not (0 <= x < nx and 0 <= y < ny and 0 <= z < nz):
            raise IndexError(f"no cell at ({x}, {y}, {z}) in a {nx}×{ny}×{nz} grid")
        return self.cells[(z * ny + y) * nx + x]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description of the axes and cells (``json.dumps`` it as it is), for a manifest."""
        return {
            "axes": [{"axis": name, "kind": axis.kind, "label": axis.label, "values": _jsonable(list(axis.values)),
                      "shown": list(axis.shown)} for name, axis in zip(_AXIS_NAMES, self.axes, strict=False)],
            "base": {"prompt": self.base.prompt, "model": self.base.model,
                     "params": _jsonable(dict(self.base.params))},
            "seed": self.seed,
            "cells": [cell.to_json() for cell in self.cells],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def plan_grid(base: GridBase, axes: Sequence[GridAxis], deployed: Sequence[str], rng: random.Random) -> GridPlan:
    """The cells of an X/Y/Z grid over ``deployed`` models; raises ValidationError for the grid as a whole.

    Without a seed in ``base.params`` and without a seed axis, every cell gets the same seed, picked once
    from ``rng``, so the cells differ only by their axes.
    """
    axes = tuple(axes)
    _check_shape(axes)
    in_play = _models_in_play(base, axes, deployed)
    for axis in sorted(axes, key=lambda a: a.kind != MODEL):  # the models first: the others are checked on them
        check_values(axis.kind, axis.values, deployed if axis.kind == MODEL else in_play)
        if axis.kind == PROMPT:
            check_search_replace(base.prompt, axis.values)
        if axis.kind == STYLE:
            _check_styles(base, axis.values)
    seed = _shared_seed(base, axes, rng)
    ranges = [range(len(axis.values)) for axis in axes]
    cells = tuple(_plan_cell(base, axes, tuple(reversed(zyx)), seed, rng)
                  for zyx in itertools.product(*reversed(ranges)))
    if not any(cell.sent for cell in cells):
        raise ValidationError(f"Nothing in this grid can be sent: every cell is n/a. The first: {cells[0].na}",
                              field="axis")
    return GridPlan(axes, base, cells, seed)


def _check_styles(base: GridBase, names: Sequence[Any]) -> None:
    known = {name.lower(): name for name in base.styles}
    missing = [str(n) for n in names if str(n).lower() not in known]
    if missing:
        saved = ", ".join(base.styles) or "none yet (make one in History, under Styles)"
        raise ValidationError(f"No saved style is called {', '.join(missing)}; saved styles: {saved}.", field="style")


def _style(base: GridBase, name: Any) -> Style:
    return next(s for key, s in base.styles.items() if key.lower() == str(name).lower())


def _check_shape(axes: Sequence[GridAxis]) -> None:
    if not 1 <= len(axes) <= MAX_AXES:
        raise ValidationError(f"A grid takes one to {MAX_AXES} axes (X, then Y and Z); this one has {len(axes)}.",
                              field="axis")
    kinds = [axis.kind for axis in axes]
    twice = next((k for i, k in enumerate(kinds) if k in kinds[:i]), None)
    if twice is not None:
        raise ValidationError(f"{axis_label(twice)} is on two axes; give each axis a different kind and put "
                              "all its values on one.", field="axis")
    counts = [len(axis.values) for axis in axes]
    if math.prod(counts) > MAX_CELLS:
        product = " × ".join(str(n) for n in counts)
        raise ValidationError(f"This grid has {product} = {math.prod(counts)} cells; a grid makes at most "
                              f"{MAX_CELLS} images. Remove values from an axis.", field="axis")


def _models_in_play(base: GridBase, axes: Sequence[GridAxis], deployed: Sequence[str]) -> tuple[str, ...]:
    """The models on the model axis, or the base model (which must then be deployed)."""
    model_axis = next((axis for axis in axes if axis.kind == MODEL), None)
    if model_axis is not None:
        return tuple(str(v) for v in model_axis.values)
    check_values(MODEL, (base.model,), deployed)
    return (base.model,)


def _shared_seed(base: GridBase, axes: Sequence[GridAxis], rng: random.Random) -> int | None:
    if any(axis.kind == SEED for axis in axes):
        return None
    given = base.params.get("seed")
    if given is not None:
        return given  # the client checks it in every cell (a bad one makes every cell n/a)
    return rng.randint(0, RANDOM_SEED_MAX)


def _not_taken(spec: ModelSpec, kind: str) -> str | None:
    """Why a cell's model cannot take an axis (None when it can)."""
    if kind in (MODEL, PROMPT, STYLE):
        return None
    if kind == SIZE:
        if isinstance(spec.size, AspectRatioSize):
            return f"{spec.display_name} takes an aspect ratio, not a width and height"
        return None
    if spec.param(kind) is None:
        if kind == "aspect_ratio":
            return f"{spec.display_name} takes a width and height, not an aspect ratio"
        return f"{spec.display_name} takes no {kind}"
    return None


def _plan_cell(base: GridBase, axes: Sequence[GridAxis], xyz: tuple[int, ...], seed: int | None,
               rng: random.Random) -> Cell:
    chosen = {axis.kind: axis.values[i] for axis, i in zip(axes, xyz, strict=True)}
    model = str(chosen.get(MODEL, base.model))
    spec = MODELS[model]
    prompt = base.prompt
    if PROMPT in chosen:
        search = str(next(axis for axis in axes if axis.kind == PROMPT).values[0])
        prompt = prompt.replace(search, str(chosen[PROMPT]))
    params: dict[str, Any] = {k: v for k, v in base.params.items() if spec.param(k) is not None}
    if STYLE in chosen:  # the style wraps the prompt and sets what it sets; the other axes still win
        prompt, styled, _ = _style(base, chosen[STYLE]).apply(prompt, model)
        params.update(styled)
    if seed is not None and spec.param("seed") is not None:
        params["seed"] = seed
    na = next((why for kind in chosen if (why := _not_taken(spec, kind))), None)
    for kind, value in chosen.items():
        if kind == SIZE and isinstance(value, tuple):
            params["width"], params["height"] = value
        elif kind not in (MODEL, PROMPT, STYLE) and spec.param(kind) is not None:
            params[kind] = value
    x, y, z = (*xyz, 0, 0)[:3]
    shown = tuple(format_value(axis.kind, axis.values[i]) for axis, i in zip(axes, xyz, strict=True))
    cell = Cell(x, y, z, shown, model, prompt, params)
    if na is not None:
        return replace(cell, na=na)
    try:
        request = validate(GenerationRequest(model, prompt, params=params), rng=rng)
    except ValidationError as err:
        return replace(cell, na=err.message)
    return replace(cell, params=dict(request.params), request=request)


def plan_variations(base: GridBase, count: int, seed: int | None, consecutive: bool,
                    rng: random.Random) -> list[Cell]:
    """``count`` images of the base settings, each its own seed; raises ValidationError.

    Seeds run on from ``seed`` when ``consecutive`` (from a random start without one); otherwise the first
    image takes ``seed`` (when given) and the rest random, distinct seeds. ``seed`` wins over ``base.params``.
    """
    if not 1 <= count <= MAX_VARIATIONS:
        raise ValidationError(f"Variations make 1 to {MAX_VARIATIONS} images per run; asked for {count}.",
                              field="count")
    seeds = _variation_seeds(count, seed, consecutive, rng)
    cells = []
    for i, each in enumerate(seeds):
        params = {**base.params, "seed": each}
        request = validate(GenerationRequest(base.model, base.prompt, params=params), rng=rng)
        cells.append(Cell(i, 0, 0, (str(each),), base.model, base.prompt, dict(request.params), request))
    return cells


def _variation_seeds(count: int, seed: int | None, consecutive: bool, rng: random.Random) -> list[int]:
    if consecutive:
        start = rng.randint(0, RANDOM_SEED_MAX - count + 1) if seed is None else seed
        if start + count - 1 > SEED_MAX:
            raise ValidationError(f"Seeds {start} to {start + count - 1} pass the largest seed, {SEED_MAX}; start "
                                  f"at {SEED_MAX - count + 1} or below.", field="seed")
        return list(range(start, start + count))
    seeds = [] if seed is None else [seed]
    while len(seeds) < count:
        pick = rng.randint(0, RANDOM_SEED_MAX)
        if pick not in seeds:
            seeds.append(pick)
    return seeds
