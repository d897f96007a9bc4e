"""Grid axes: what an X/Y/Z plot can vary, and the values a person types for one.

The kinds come from the registry (every parameter some model takes) plus four pseudo-axes:
``model``, ``seed``, ``prompt`` (search/replace) and ``size`` (width×height pairs). Values are typed
A1111-style, as a comma-separated list or as ranges, and checked against the widest bounds of the models
in play, so a value no model takes is refused before a single cell is planned (and nothing is billed).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence

from flux_ui.client import snap_size
from flux_ui.errors import ValidationError
from flux_ui.registry import MODELS, AspectRatioSize, Mode, ModelSpec, Param, PixelSize, parse_aspect_ratio

MODEL, SEED, PROMPT, SIZE, STYLE = "model", "seed", "prompt", "size", "style"
PSEUDO_AXES = (MODEL, SEED, PROMPT, STYLE, SIZE)
#: At most this many values on one axis (the whole grid is bounded in flux_ui.grid.plan).
MAX_VALUES = 16
#: Parameters no axis names on its own: the seed and size pseudo-axes stand for them.
_COVERED = frozenset({"seed", "width", "height"})
_LABELS = {MODEL: "Model", SEED: "Seed", PROMPT: "Prompt S/R", STYLE: "Style", SIZE: "Size"}
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_RANGE = re.compile(
    rf"^(?P<a>{_NUMBER})\s*-\s*(?P<b>{_NUMBER})\s*"
    rf"(?:[(\[]\s*(?:(?P<count>\d+)\s*(?:values?)?|\+\s*(?P<step>{_NUMBER}))\s*[)\]])?$",
    re.IGNORECASE,
)
_SIZE = re.compile(r"^(\d+)\s*[x×*]\s*(\d+)$", re.IGNORECASE)
_EXAMPLES = "such as 1.5, 3, 4.5, or a range such as 1.5-10 (4 values) or 20-50 (+10)"

#: One value on an axis: a model ID, a seed or parameter value, a replacement text, or a (width, height).
AxisValue = int | float | bool | str | tuple[int, int]


def _generators() -> tuple[ModelSpec, ...]:
    return tuple(spec for spec in MODELS.values() if spec.does(Mode.GENERATE))


def axis_kinds(models: Sequence[str] | None = None) -> tuple[str, ...]:
    """The axes a grid over ``models`` (every model that generates, by default) can have, pseudo-axes first."""
    specs = tuple(spec for spec in _generators() if models is None or spec.id in models)
    names = [p.name for spec in specs for p in spec.all_params if p.name not in _COVERED]
    return PSEUDO_AXES + tuple(dict.fromkeys(names))


def _first_param(kind: str) -> Param | None:
    return next((p for spec in MODELS.values() if (p := spec.param(kind)) is not None), None)


def _check_kind(kind: str) -> Param | None:
    """The registry's declaration of a parameter axis (None for a pseudo-axis), or a refusal."""
    if kind in PSEUDO_AXES:
        return _first_param(kind) if kind == SEED else None
    param = _first_param(kind) if kind not in _COVERED else None
    if param is None:
        raise ValidationError(f"Unknown axis {kind!r}; choose one of {', '.join(axis_kinds())}.", field="axis")
    return param


def axis_label(kind: str) -> str:
    """A heading for an axis: the registry's label, with the name when two parameters share a label."""
    param = _check_kind(kind)
    if kind in _LABELS or param is None:
        return _LABELS[kind]
    twins = {p.name for spec in MODELS.values() for p in spec.all_params if p.label == param.label}
    return param.label if len(twins) == 1 else f"{param.label} ({kind})"


def format_value(kind: str, value: AxisValue) -> str:
    """How a value is shown on a grid's header and in a cell's caption."""
    if kind == MODEL and isinstance(value, str) and value in MODELS:
        return MODELS[value].display_name
    if isinstance(value, tuple):
        return f"{value[0]}×{value[1]}"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def split_values(text: str) -> list[str]:
    """Comma-separated items, stripped, blanks dropped; quote a value that has a comma in it ("a, b")."""
    try:
        rows = list(csv.reader(io.StringIO(text.strip()), skipinitialspace=True))
    except csv.Error as err:  # a NUL character, for one
        raise ValidationError(f"The values cannot be read as a comma-separated list ({err}); retype them.",
                              field="axis") from None
    return [item.strip() for row in rows for item in row if item.strip()]


def parse_values(kind: str, text: str, models: Sequence[str]) -> list[AxisValue]:
    """The values typed for an axis, typed and checked against ``models``; raises ValidationError.

    ``models`` are the models the grid may use: for a ``model`` axis the deployed ones (each value must be
    one of them), for any other the ones in play, whose widest bounds a value must fall within.
    """
    param = _check_kind(kind)
    items = split_values(text)
    if not items:
        raise ValidationError(f"Enter at least one {kind} value, separated by commas.", field=kind)
    values: list[AxisValue]
    if kind == MODEL:
        values = [_model_id(item) for item in items]
    elif kind == SIZE:
        values = [_size(item) for item in items]
    elif kind in (PROMPT, STYLE) or (param is not None and param.kind == "text"):
        values = list(items)
    else:
        assert param is not None
        values = [v for item in items for v in _typed(param, item)]
    check_values(kind, values, models)
    return values


def check_values(kind: str, values: Sequence[AxisValue], models: Sequence[str]) -> None:
    """Refuse an empty or oversized axis, a repeated value, or a value no model in ``models`` takes."""
    _check_kind(kind)
    if not values:
        raise ValidationError(f"The {kind} axis needs at least one value.", field=kind)
    if len(values) > MAX_VALUES:
        raise ValidationError(f"The {kind} axis has {len(values)} values; an axis takes at most {MAX_VALUES}. "
                              "Remove some, or use a range with fewer values.", field=kind)
    shown = [format_value(kind, v) for v in values]
    twice = next((s for i, s in enumerate(shown) if s in shown[:i]), None)
    if twice is not None:
        raise ValidationError(f"The {kind} axis lists {twice} twice; each value makes its own row or column, "
                              "so list it once.", field=kind)
    if kind == MODEL:
        for value in values:
            _check_model(str(value), models)
    elif kind == SIZE:
        _check_sizes(values, _specs(models))
    elif kind not in (PROMPT, STYLE):  # style names are the plan's to check, against the saved styles
        takers = _takers(kind, _specs(models))
        for value in values:
            _check_param_value(kind, value, takers)


def check_search_replace(prompt: str, values: Sequence[AxisValue]) -> None:
    """Prompt S/R searches the prompt for its first value: refuse a first value the prompt does not contain."""
    if not values or not str(values[0]):
        raise ValidationError("Prompt S/R needs a first value to search the prompt for.", field=PROMPT)
    first = str(values[0])
    if first in prompt:
        return
    at = prompt.lower().find(first.lower())
    hint = f" (the search is case-sensitive: the prompt has {prompt[at:at + len(first)]!r})" if at >= 0 else ""
    raise ValidationError(
        f"Prompt S/R looks for its first value, {first!r}, in the prompt, and the prompt does not contain it"
        f"{hint}. Make the first value a word or phrase from the prompt; each value, the first included, "
        "then replaces it in turn.",
        field=PROMPT,
    )


# --- typing what was typed ------------------------------------------------------------------------------

def _model_id(item: str) -> str:
    """A model ID or display name, in any case, as the model ID (an unknown name is kept for the check)."""
    wanted = item.casefold()
    return next((spec.id for spec in MODELS.values() if wanted in (spec.id.casefold(),
                                                                   spec.display_name.casefold())), item)


def _size(item: str) -> tuple[int, int]:
    match = _SIZE.match(item)
    if match is None:
        raise ValidationError(f"Size {item!r} is not width×height; write sizes such as 1024x768, 768x1024.",
                              field=SIZE)
    return int(match[1]), int(match[2])


def _typed(param: Param, item: str) -> list[AxisValue]:
    """One item as the parameter's kind: a number or a range of them, a switch, a choice, an aspect ratio."""
    if param.kind in ("int", "float"):
        numbers = _numbers(param.name, item, integral=param.kind == "int")
        return [int(n) if param.kind == "int" else float(n) for n in numbers]
    if param.kind == "bool":
        if item.lower() not in _BOOLS:
            raise ValidationError(f"{param.name} is on or off; {item!r} is neither. Use true/false, yes/no "
                                  "or on/off.", field=param.name)
        return [_BOOLS[item.lower()]]
    if param.kind == "aspect_ratio":
        ratio = parse_aspect_ratio(item)
        if ratio is None:
            raise ValidationError(f"{param.name} {item!r} is not width:height; write ratios such as 16:9, 1:1.",
                                  field=param.name)
        return [f"{ratio[0]}:{ratio[1]}"]
    return [item.lower()]  # a choice: checked against the models' lists later


def _numbers(name: str, item: str, integral: bool) -> list[float]:
    """A number, or the numbers of a range: ``a-b (n values)`` evenly spaced, ``a-b (+s)`` by a step."""
    try:
        number = float(item)
    except ValueError:
        number = None
    if number is not None:
        _check_finite(name, item, number)
        _check_whole(name, item, integral, number)
        return [number]
    match = _RANGE.match(item)
    if match is None:
        if item.lstrip().startswith("-") or re.search(r"-\s*-", item):
            raise ValidationError(f"{name} range {item!r} starts or ends at a negative number, which ranges do "
                                  "not support; list the values instead, separated by commas.", field=name)
        raise ValidationError(f"{name} value {item!r} is not a number or a range; write numbers {_EXAMPLES}.",
                              field=name)
    return _expand(name, item, match, integral)


def _expand(name: str, item: str, match: re.Match[str], integral: bool) -> list[float]:
    a, b = float(match["a"]), float(match["b"])
    for end in (a, b):
        _check_finite(name, item, end)
        _check_whole(name, item, integral, end)
    if match["count"] is not None:
        count = int(match["count"])
        if count < 2:
            raise ValidationError(f"{name} range {item!r} needs at least 2 values; for one, write the number alone.",
                                  field=name)
        _check_count(name, item, count)
        if integral and count > abs(b - a) + 1:
            raise ValidationError(f"{name} range {item!r} asks for {count} whole numbers, and there are only "
                                  f"{abs(b - a) + 1:.0f} from {a:.0f} to {b:.0f}; ask for fewer.", field=name)
        spaced = [a + (b - a) * i / (count - 1) for i in range(count)]
        return [math.floor(x + 0.5) if integral else round(x, 10) for x in spaced]
    step = float(match["step"]) if match["step"] is not None else 1.0
    if step <= 0:
        raise ValidationError(f"{name} range {item!r} needs a step above 0, such as (+1).", field=name)
    _check_whole(name, item, integral, step)
    count = math.floor(abs(b - a) / step + 1e-9) + 1
    _check_count(name, item, count)
    sign = 1 if b >= a else -1
    return [round(a + sign * i * step, 10) for i in range(count)]


def _check_finite(name: str, item: str, number: float) -> None:
    if not math.isfinite(number):
        raise ValidationError(f"{name} value {item!r} is not a finite number; write numbers {_EXAMPLES}.",
                              field=name)


def _check_whole(name: str, item: str, integral: bool, number: float) -> None:
    if integral and number != int(number):
        raise ValidationError(f"{name} takes whole numbers; {item!r} is not one (write such as 1, 2, 3 or "
                              "20-50 (+10)).", field=name)


def _check_count(name: str, item: str, count: int) -> None:
    if count > MAX_VALUES:
        raise ValidationError(f"{name} range {item!r} makes {count} values; an axis takes at most {MAX_VALUES}. "
                              "Use a larger step, or a count such as (4 values).", field=name)


# --- checking against the models in play ----------------------------------------------------------------

def _specs(models: Sequence[str]) -> tuple[ModelSpec, ...]:
    return tuple(MODELS[m] for m in models if m in MODELS)


def _names(specs: Sequence[ModelSpec]) -> str:
    return ", ".join(spec.display_name for spec in specs) or "none"


def _check_model(model: str, models: Sequence[str]) -> None:
    offered = _names([spec for spec in _specs(models) if spec.does(Mode.GENERATE)])
    spec = MODELS.get(model)
    if spec is None:
        raise ValidationError(f"Unknown model {model!r}; choose from {offered}.", field=MODEL)
    if not spec.does(Mode.GENERATE):
        raise ValidationError(f"{spec.display_name} does not make an image from a prompt alone, so a grid cannot "
                              f"use it; choose from {offered}.", field=MODEL)
    if model not in models:
        raise ValidationError(f"{spec.display_name} is not deployed here; choose from {offered}.", field=MODEL)


def _takers(kind: str, specs: Sequence[ModelSpec]) -> list[tuple[ModelSpec, Param]]:
    """The models in play that take a parameter, or a refusal that says which models would."""
    takers = [(spec, p) for spec in specs if (p := spec.param(kind)) is not None]
    if not takers:
        others = [spec for spec in _generators() if spec.param(kind) is not None]
        hint = f" {_names(others)} {'does' if len(others) == 1 else 'do'}: choose one." if others else ""
        raise ValidationError(f"No chosen model takes {kind} ({_names(specs)}).{hint}", field=kind)
    return takers


def _check_param_value(kind: str, value: AxisValue, takers: Sequence[tuple[ModelSpec, Param]]) -> None:
    param = takers[0][1]
    if param.kind in ("int", "float"):
        assert isinstance(value, int | float)
        _check_number(kind, value, takers)
    elif param.kind == "choice":
        choices = list(dict.fromkeys(c for _, p in takers for c in p.choices))
        if value not in choices:
            raise ValidationError(f"{kind} {value!r} is not one any chosen model takes; use one of "
                                  f"{', '.join(choices)}.", field=kind)
    elif param.kind == "aspect_ratio":
        _check_ratio(kind, str(value), [spec for spec, _ in takers])


def _check_number(kind: str, value: float, takers: Sequence[tuple[ModelSpec, Param]]) -> None:
    """A number within some chosen model's range, or a refusal naming the widest range and each model's."""
    ranges = [(spec, p.minimum, p.maximum_for(False)) for spec, p in takers]
    if any((lo is None or lo <= value) and (hi is None or value <= hi) for _, lo, hi in ranges):
        return
    lows = [lo for _, lo, _ in ranges if lo is not None]
    highs = [hi for _, _, hi in ranges if hi is not None]
    lo, hi = (min(lows) if lows else None), (max(highs) if highs else None)
    groups: dict[tuple[float | None, float | None], list[ModelSpec]] = {}
    for spec, a, b in ranges:
        groups.setdefault((a, b), []).append(spec)
    each = "; ".join(f"{_names(specs)}: {_num(a)} to {_num(b)}" for (a, b), specs in groups.items())
    fix = f"use a value from {_num(lo)} to {_num(hi)}."
    if hi is not None and value > hi:
        why = f"is above {_num(hi)}, the largest any chosen model takes"
    elif lo is not None and value < lo:
        why = f"is below {_num(lo)}, the smallest any chosen model takes"
    else:
        why, fix = "is outside every chosen model's range", "use a value inside one of them."
    raise ValidationError(f"{kind} {_num(value)} {why} ({each}); {fix}", field=kind)


def _num(number: float | None) -> str:
    """A bound or value as typed: whole numbers in full (seeds), others without float noise."""
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else f"{number:.12g}"


def _check_ratio(kind: str, ratio: str, specs: Sequence[ModelSpec]) -> None:
    parsed = parse_aspect_ratio(ratio)
    assert parsed is not None
    rules = [(spec, spec.size) for spec in specs if isinstance(spec.size, AspectRatioSize)]
    if any(rule.admits(*parsed) for _, rule in rules):
        return
    each = ", ".join(f"{spec.display_name}: {' to '.join(rule.bounds_text)}" for spec, rule in rules)
    raise ValidationError(f"{kind} {ratio} is outside every chosen model's range ({each}); pick one in between.",
                          field=kind)


def _check_sizes(values: Sequence[AxisValue], specs: Sequence[ModelSpec]) -> None:
    """Each size fits at least one chosen model with a pixel size (as the client would snap it)."""
    pixel = [spec for spec in specs if isinstance(spec.size, PixelSize)]
    if not pixel:
        raise ValidationError(f"No chosen model takes a width and height ({_names(specs)} take an aspect "
                              "ratio); use an aspect_ratio axis instead.", field=SIZE)
    for value in values:
        assert isinstance(value, tuple)
        problems: list[str] = []
        for spec in pixel:
            try:
                snap_size(spec, *value)
            except ValidationError as err:
                problems.append(err.message)
            else:
                break
        else:
            others = len(problems) - 1
            also = f" ({others} other chosen model{'s' if others > 1 else ''} refuse it too)" if others else ""
            raise ValidationError(f"Size {value[0]}×{value[1]} suits no chosen model{also}: {problems[0]}",
                                  field=SIZE)
