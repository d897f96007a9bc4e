"""The ordered list of reference images in the edit tab, as pure functions of plain values.

A reference list is a list of file paths (files Gradio has already accepted into its cache, or
ones History kept in the outputs folder).
Position ``i`` is "image i+1", the name prompts use ("the cat from image 2"), and the order
is the order the client sends them in. Every operation returns a new list and a note for the
person; nothing here ever drops an image the person did not remove.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flux_ui.registry import MODELS
from flux_ui.ui.text import inert

_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def limit_of(model: str) -> int:
    spec = MODELS.get(model)
    return spec.max_references if spec else 0


def display_name(model: str) -> str:
    spec = MODELS.get(model)
    return spec.display_name if spec else model


def count_word(n: int) -> str:
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)


def image_numbers(numbers: Sequence[int]) -> str:
    """[9] → "image 9"; [9, 10] → "images 9 and 10"; [9, 10, 11] → "images 9, 10 and 11"."""
    if len(numbers) == 1:
        return f"image {numbers[0]}"
    head = ", ".join(str(n) for n in numbers[:-1])
    return f"images {head} and {numbers[-1]}"


def add(refs: Sequence[str], new: Sequence[str], model: str) -> tuple[list[str], str]:
    """Append ``new`` up to the model's limit; the rest are refused by number, the list kept."""
    limit = limit_of(model)
    room = max(0, limit - len(refs))
    kept, refused = list(new[:room]), list(new[room:])
    if not refused:
        return [*refs, *kept], ""
    first = len(refs) + len(kept) + 1
    numbers = list(range(first, first + len(refused)))
    verb = "was" if len(numbers) == 1 else "were"
    note = (f"{display_name(model)} takes at most {limit} reference images; "
            f"{image_numbers(numbers)} {verb} not added.")
    return [*refs, *kept], note


def move(refs: Sequence[str], index: int, offset: int) -> list[str]:
    """Move the image at ``index`` by ``offset`` places (clamped to the ends)."""
    out = list(refs)
    if not 0 <= index < len(out):
        return out
    target = min(max(index + offset, 0), len(out) - 1)
    out.insert(target, out.pop(index))
    return out


def move_to(refs: Sequence[str], index: int, target: int) -> list[str]:
    """Put the image at ``index`` at position ``target`` (a card dropped on another takes its place)."""
    if not 0 <= index < len(refs):
        return list(refs)
    return move(refs, index, target - index)


def remove(refs: Sequence[str], index: int) -> list[str]:
    return [p for i, p in enumerate(refs) if i != index]


def replace(refs: Sequence[str], index: int, path: str | None) -> list[str]:
    """Put a new file into one slot; the others are untouched."""
    out = list(refs)
    if path and 0 <= index < len(out):
        out[index] = path
    return out


def summary(refs: Sequence[str], model: str, models: Sequence[str] = ()) -> str:
    """The line above the cards: how many there are, what the model takes, and any over its limit."""
    if not refs:
        return ("**No reference images yet.** Add several at once, or paste or drop one, above; prompts name "
                "them by their slot: *put the cat from image 2 on the sofa in image 1*.")
    count = f"**{len(refs)} reference image{'s' if len(refs) > 1 else ''}**"
    shown = str if model in MODELS else inert  # a name from the registry, or whatever the page sent
    line = f"{count} · {shown(display_name(model))} takes up to {limit_of(model)}"
    warning = over_limit(refs, model, models)
    return f"{line}\n\n⚠️ {shown(warning)}" if warning else line


def models_taking(count: int, models: Sequence[str]) -> list[str]:
    return [m for m in models if limit_of(m) >= count]


#: What a card past the model's limit says; :func:`over_limit` names the same cards with the same words.
OVER = "over the limit"


def over_limit(refs: Sequence[str], model: str, models: Sequence[str] = ()) -> str:
    """Why nothing would be sent to this model, or "" when every reference would be.

    Switching to a model with a lower limit keeps every image; Generate then sends nothing (never
    the first few), and refuses with these same words: how many, which cards are over, the fix.
    """
    limit = limit_of(model)
    extra = len(refs) - limit
    if extra <= 0:
        return ""
    numbers = list(range(limit + 1, len(refs) + 1))
    verb = "is" if extra == 1 else "are"
    fix = f"remove {count_word(extra)}"
    others = [display_name(m) for m in models_taking(len(refs), models) if m != model]
    if others:
        fix += f" or switch back to {' or '.join(others)}"
    return (f"{display_name(model)} takes at most {limit} reference images and there are {len(refs)} "
            f"({image_numbers(numbers)} {verb} {OVER}): nothing will be sent until you {fix}.")


def file_paths(value: Any) -> list[str]:
    """Gradio hands a multi-file input over as paths (or None when empty)."""
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [str(getattr(v, "path", v)) for v in items]


def stored_inputs(settings: Mapping[str, Any]) -> list[str]:
    """The reference files History kept for an image (``input_files``, in the order sent) still on disk."""
    files = settings.get("input_files")
    if not isinstance(files, list | tuple):
        return []
    return [str(f) for f in files if isinstance(f, str | Path) and Path(f).is_file()]
