"""Check a request against the registry before anything is sent.

Refuse what the service would refuse, with a message that says how to fix it; adjust what
the service would adjust itself (sizes off the grid) and say so; never refuse what the
service would accept (prompt length is judged by honest bounds, contract §6).
"""

from __future__ import annotations

import math
import random
import re
import reprlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux_ui.client.errors import ValidationError
from flux_ui.registry import (
    MODELS,
    AspectRatioSize,
    ModelSpec,
    Param,
    PixelSize,
    Route,
    aspect_ratio_size,
    parse_aspect_ratio,
)

# Lower bounds on how many bytes (Tekken) or characters (T5) one token can cover, so a
# prompt is refused only when even the most generous tokenization is over the limit.
# SentencePiece caps pieces at 16 characters by default (T5 kept the default); Tekken's
# longest tokens are runs of repeated characters, taken here as at most 128 bytes.
_MAX_BYTES_PER_TEKKEN_TOKEN = 128
_MAX_CHARS_PER_T5_TOKEN = 16
# Characters a prompt is refused for, found by one pattern (prompts can be megabytes long): control
# characters (Unicode category Cc) other than tab, newline and return, and every format character
# (category Cf; the class below is Unicode 15's, checked against unicodedata by the tests). Cf holds the
# bidi marks, embeddings, overrides and isolates (the "Trojan Source" set: what a person reads is not
# what is sent), zero-width spaces and joiners, the soft hyphen and BOM, and the tag block U+E0000–E007F,
# which spells words no one sees ("ASCII smuggling"). None of them shows, and an image model has no use
# for them, so they are refused by name, not removed behind the person's back.
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_FORMAT = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
           "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
           "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
# Except where real text needs them, matched first and skipped: a zero-width joiner between two emoji
# (woman, ZWJ, rocket is one picture, an astronaut: without it, two), a zero-width non-joiner or joiner
# between letters of a script that writes with them (Persian, where ZWNJ separates the parts of a word
# without a space; the conjuncts of Devanagari, Bengali, Malayalam and Sinhala), and the
# three subdivision flags, whose tag characters name England, Scotland and Wales (and nothing else).
_EMOJI = ("\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u27bf\u2934\u2935"
          "\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff")
_JOINING_SCRIPTS = "\u0600-\u06ff\u0700-\u074f\u0750-\u077f\u08a0-\u08ff\u0900-\u0dff\ufb50-\ufdff\ufe70-\ufefc"
_FLAGS = "|".join("".join(chr(0xE0000 + ord(c)) for c in name) for name in ("gbeng", "gbsct", "gbwls"))
_NEEDED = (f"\U0001f3f4(?:{_FLAGS})\U000e007f"
           f"|\u200d(?<=[{_EMOJI}\ufe0f]\u200d)(?=[{_EMOJI}])"
           f"|[\u200c\u200d](?<=[{_JOINING_SCRIPTS}][\u200c\u200d])(?=[{_JOINING_SCRIPTS}])")
_INVISIBLE = re.compile(f"{_NEEDED}|([{_CONTROL}{_FORMAT}])")
#: The bidi marks and controls: their message says what they do to the text.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_PROMPT_EXAMPLE = '"a red fox in an autumn forest, morning light"'
#: The most text flux-ui takes in one free-text field (a prompt, a Kontext instruction, a negative prompt,
#: History's text filter), whatever the model: the largest prompt window in the registry (FLUX.2's 32,000
#: Tekken tokens) at 4 bytes a token, about what ordinary text in any script takes (English runs near 4
#: characters a token, CJK near 1.5 three-byte ones). Only repetition packs more into 32,000 tokens, and
#: FLUX.1 [schnell] truncates rather than refuses, so without this bound a 100 MB prompt would be sent,
#: stored twice and shipped to every History page.
MAX_TEXT_BYTES = 4 * max(m.prompt.max_tokens for m in MODELS.values())
#: A name or a choice (model ID, aspect ratio, output format, route, parameter name): refusals quote it.
MAX_NAME_BYTES = 256
#: The parameters that are free text, by name, with their labels (FLUX.1 [schnell]'s negative prompt).
_FREE_TEXT = {p.name: p.label for m in MODELS.values() for p in m.all_params if p.kind == "text"}
_FORMAT_ALIASES = {"jpg": "jpeg"}
_FAR_TOO_LARGE = 2**31  # pixels on a side


@dataclass(frozen=True)
class GenerationRequest:
    """What a person asked for: a model, a prompt, ordered references, parameters."""

    model: str
    prompt: str
    references: Sequence[bytes] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    route: Route | None = None  # None: the model's native route (Image API edits if only that fits)


@dataclass(frozen=True)
class ValidatedRequest:
    """A request the client can send: every parameter resolved and on the model's grid."""

    model: ModelSpec
    route: Route
    prompt: str
    references: tuple[bytes, ...]
    params: dict[str, Any]  # native names; size as width/height or aspect_ratio; seed chosen
    size: tuple[int, int] | None  # the output size flux-ui expects, when it can know it
    adjustments: tuple[str, ...]
    warnings: tuple[str, ...]


def check_text_size(label: str, text: str, field: str, limit: int = MAX_TEXT_BYTES) -> None:
    """Refuse text over ``limit`` bytes of UTF-8, naming the field, its size and the limit.

    Measured without encoding megabytes: a character takes 1 to 4 bytes, so the length alone
    settles most cases and only text near the limit is encoded.
    """
    if len(text) * 4 <= limit:
        return
    if len(text) > limit:
        size = f"{len(text):,} characters"
    elif (encoded := len(text.encode("utf-8"))) > limit:
        size = f"{encoded:,} bytes"
    else:
        return
    whatever = ", whatever the model" if limit == MAX_TEXT_BYTES else ""
    raise ValidationError(f"{label} is too long: {size}, and flux-ui takes at most {limit:,} bytes of text "
                          f"(UTF-8) there{whatever}. Shorten it.", field=field)


def check_request_text(request: GenerationRequest) -> None:
    """Bound every text a request carries before anything reads it whole: the prompt and free-text
    parameters (the negative prompt) at :data:`MAX_TEXT_BYTES`; the model, parameter names and
    other values at :data:`MAX_NAME_BYTES`, so that no refusal quotes megabytes either."""
    if isinstance(request.model, str):
        check_text_size("The model", request.model, "model", MAX_NAME_BYTES)
    if isinstance(request.prompt, str):
        check_text_size("The prompt", request.prompt, "prompt")
    for name, value in request.params.items():
        if not isinstance(name, str):
            continue
        check_text_size("A parameter name", name, "params", MAX_NAME_BYTES)
        if isinstance(value, str) and name in _FREE_TEXT:
            check_text_size(_FREE_TEXT[name], value, name)
        elif isinstance(value, str):
            check_text_size(f"The value of {name}", value, name, MAX_NAME_BYTES)


def model_id_text(value: object) -> str:
    """The model as text; a list, dict or number is refused before any lookup chokes on it, and so is
    text far longer than any model ID."""
    if isinstance(value, str):
        check_text_size("The model", value, "model", MAX_NAME_BYTES)
        return value
    raise ValidationError(f"The model must be one model ID written as text, such as 'FLUX.2-pro'; got "
                          f"{type(value).__name__} {reprlib.repr(value)}.", field="model")


def finite(number: float) -> bool:
    """Whether a number is finite; an int always is, however large (math.isfinite overflows past 1e308)."""
    return not isinstance(number, float) or math.isfinite(number)


def check_saved_value(spec: ModelSpec, name: str, value: Any) -> None:
    """Refuse (ValidationError, in the words a request would get) a parameter value read from a saved
    image that the model cannot take; a value it does not declare, or None (its default), passes."""
    p = spec.param(name)
    if p is None or value is None:
        return
    if p.kind == "aspect_ratio":
        check_aspect_ratio(spec, value)
    else:
        _coerce(spec, p, value, editing=False)


def prompt_token_bounds(prompt: str, tokenizer: str) -> tuple[int, int]:
    """(lowest, highest) token count the prompt can have, without a tokenizer."""
    if tokenizer == "mistral-tekken":
        size = len(prompt.encode("utf-8"))
        return math.ceil(size / _MAX_BYTES_PER_TEKKEN_TOKEN), size
    chars = len(unicodedata.normalize("NFKC", prompt))
    return math.ceil(chars / _MAX_CHARS_PER_T5_TOKEN), chars + 2


def _check_invisible(label: str, text: str, field: str) -> None:
    """Refuse control characters (bar tab, newline and return) and format characters real text does not need."""
    found = next((m for m in _INVISIBLE.finditer(text) if m.group(1)), None)
    if found is None:
        return
    char, position = found.group(1), found.start() + 1
    if unicodedata.category(char) == "Cc":
        raise ValidationError(
            f"{label} contains an invisible control character (U+{ord(char):04X}) at position "
            f"{position}, often left by a paste; delete it and try again.",
            field=field,
        )
    name = unicodedata.name(char, "unnamed format character")
    if char in _BIDI:
        raise ValidationError(
            f"{label} contains an invisible bidirectional-text control ({name.lower()}, U+{ord(char):04X}) at "
            f"position {position}: it makes the text display in a different order than it is sent. Delete it "
            "(retype that part) and try again.",
            field=field,
        )
    hidden = " Tag characters spell words no one sees." if 0xE0000 <= ord(char) <= 0xE007F else ""
    raise ValidationError(
        f"{label} contains an invisible character, {name} (U+{ord(char):04X}), at position {position}, often "
        f"left by a paste: it does not show, but it would be sent.{hidden} Delete it (retype that part) and try "
        "again.",
        field=field,
    )


def _check_prompt(spec: ModelSpec, prompt: object, warnings: list[str]) -> str:
    if not isinstance(prompt, str):
        raise ValidationError(
            f"The prompt must be text, not {type(prompt).__name__}; send it as a string, for example "
            f"{_PROMPT_EXAMPLE}.",
            field="prompt",
        )
    if not prompt.strip():
        raise ValidationError(
            f"The prompt is empty. Describe the image you want, for example {_PROMPT_EXAMPLE}.",
            field="prompt",
        )
    _check_invisible("The prompt", prompt, "prompt")
    limit = spec.prompt
    low, high = prompt_token_bounds(prompt, limit.tokenizer)
    if high > limit.max_tokens:
        if limit.over_limit == "truncated":
            warnings.append(
                f"{spec.display_name} reads only the first {limit.max_tokens} tokens of a prompt; this one may be "
                "longer, and the rest would be ignored. Put what matters first."
            )
        elif low > limit.max_tokens:
            raise ValidationError(
                f"The prompt is too long for {spec.display_name}: at least {low:,} tokens, and it takes at most "
                f"{limit.max_tokens:,}. Shorten it.",
                field="prompt",
            )
        else:
            warnings.append(
                f"The prompt may be over {spec.display_name}'s limit of {limit.max_tokens:,} tokens; "
                "if the service refuses it, shorten it."
            )
    return prompt


def _check_references(spec: ModelSpec, references: Sequence[bytes], route: Route) -> tuple[bytes, ...]:
    refs = tuple(references)
    for i, ref in enumerate(refs, start=1):
        if not isinstance(ref, bytes | bytearray):
            raise ValidationError(f"Reference image {i} must be image bytes, not {type(ref).__name__}.",
                                  field="references")
    if len(refs) > spec.max_references:
        editors = ", ".join(
            f"{m.display_name} (up to {m.max_references})" for m in MODELS.values() if m.max_references >= len(refs)
        )
        if spec.max_references == 0:
            head = (f"{spec.display_name} generates from text only and takes no reference images; "
                    f"remove the {len(refs)} image{'s' if len(refs) > 1 else ''}")
        else:
            extra = len(refs) - spec.max_references
            head = (f"{spec.display_name} takes at most {spec.max_references} reference "
                    f"image{'s' if spec.max_references > 1 else ''}; you gave {len(refs)}. Remove {extra}")
        tail = f", or choose a model that takes {len(refs)}: {editors}." if editors else "."
        raise ValidationError(head + tail, field="references")
    if route is Route.IMAGES_EDITS and not refs:
        raise ValidationError("An Image API edit needs an input image; add one, or use text to image.",
                              field="references")
    if route is Route.IMAGES_GENERATIONS and refs:
        raise ValidationError("Image API generations take no input image; use the edits route to edit one.",
                              field="route")
    return refs


def _choose_route(spec: ModelSpec, wanted: Route | None) -> Route:
    if wanted is None:
        return spec.routes[0]
    if wanted not in spec.routes:
        offered = ", ".join(r.value for r in spec.routes)
        raise ValidationError(f"{spec.display_name} is not served on the {wanted.value} route; it is on {offered}.",
                              field="route")
    return wanted


def _describe_range(p: Param, maximum: float | None) -> str:
    if p.kind == "int":
        return f"a whole number from {p.minimum:.0f} to {maximum:.0f}"
    return f"a number from {p.minimum:g} to {maximum:g}"


def _coerce(spec: ModelSpec, p: Param, value: Any, editing: bool) -> Any:
    """The value as the wire wants it, or a ValidationError that says what fits."""
    if value is None:
        if p.nullable:
            return None
        raise ValidationError(f"{p.label} needs a value; {spec.display_name} uses {p.default!r} by default.",
                              field=p.name)
    maximum = p.edit_maximum if editing and p.edit_maximum is not None else p.maximum
    if p.kind in ("int", "float"):
        number: float | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int | float):
            number = value
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not finite(number) or (p.kind == "int" and number != int(number)):
            raise ValidationError(f"{p.label} must be {_describe_range(p, maximum)}; got {value!r}.", field=p.name)
        assert p.minimum is not None and maximum is not None
        if not p.minimum <= number <= maximum:
            note = " when editing an image" if maximum != p.maximum else ""
            raise ValidationError(
                f"{p.label} must be {_describe_range(p, maximum)} for {spec.display_name}{note}; got {value!r}.",
                field=p.name,
            )
        return int(number) if p.kind == "int" else float(number)
    if p.kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValidationError(f"{p.label} is on or off (true or false); got {value!r}.", field=p.name)
    if p.kind == "choice":
        text = _FORMAT_ALIASES.get(str(value).strip().lower(), str(value).strip().lower())
        if text not in p.choices:
            raise ValidationError(f"{p.label} must be one of {', '.join(p.choices)}; got {value!r}.", field=p.name)
        return text
    if p.kind == "text":
        if not isinstance(value, str):
            raise ValidationError(f"{p.label} must be text; got {type(value).__name__}: send it as a string, "
                                  "or leave it out.", field=p.name)
        _check_invisible(p.label, value, p.name)
        return value
    raise AssertionError(f"unhandled parameter kind {p.kind}")


def _largest_fitting(rule: PixelSize, width: int, height: int) -> tuple[int, int]:
    """The largest on-grid size with (about) this shape that fits the pixel budget."""
    assert rule.max_pixels is not None
    scale = math.sqrt(rule.max_pixels / (width * height))
    m = rule.multiple
    return max(rule.min_side, int(width * scale) // m * m), max(rule.min_side, int(height * scale) // m * m)


def snap_size(spec: ModelSpec, width: Any, height: Any) -> tuple[tuple[int, int], list[str]]:
    """Put a requested size on the model's grid the way the service would, or refuse it."""
    rule = spec.size
    assert isinstance(rule, PixelSize)
    sides: list[int] = []
    for name, value in (("width", width), ("height", height)):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and finite(value)
        if not ok or value != int(value) or value <= 0:
            raise ValidationError(f"The {name} must be a whole number of pixels, such as {rule.default[0]}; "
                                  f"got {value!r}.", field=name)
        if value > _FAR_TOO_LARGE:  # refused below anyway, where arithmetic on it would overflow a float
            raise ValidationError(f"The {name} {reprlib.repr(value)} is far above {spec.display_name}'s largest "
                                  f"side of {rule.side_limit} px; use {rule.side_limit} or less.", field=name)
        sides.append(int(value))
    w, h = sides
    m = rule.multiple
    if rule.snap == "floor":
        snapped = (w // m * m, h // m * m)
    else:
        snapped = (round(w / m) * m, round(h / m) * m)
    for name, value, on_grid in (("width", w, snapped[0]), ("height", h, snapped[1])):
        if on_grid < rule.min_side:
            raise ValidationError(
                f"The {name} {value} is below {spec.display_name}'s smallest side of {rule.min_side} px; "
                f"use {rule.min_side} or more.",
                field=name,
            )
    if rule.max_side is not None:
        for name, value in zip(("width", "height"), snapped, strict=True):
            if value > rule.max_side:
                raise ValidationError(
                    f"The {name} {value} is above {spec.display_name}'s largest side of {rule.max_side} px; "
                    f"use {rule.max_side} or less.",
                    field=name,
                )
    if rule.max_pixels is not None and snapped[0] * snapped[1] > rule.max_pixels:
        fit = _largest_fitting(rule, w, h)
        raise ValidationError(
            f"{w}×{h} is {w * h / 1_048_576:.1f} MP, and {spec.display_name} makes at most "
            f"{rule.max_pixels / 1_048_576:g} MP. Try {fit[0]}×{fit[1]}, the largest size of that shape.",
            field="width",
        )
    notes = []
    if snapped != (w, h):
        how = "rounded down" if rule.snap == "floor" else "rounded"
        notes.append(
            f"Size {w}×{h} {how} to {snapped[0]}×{snapped[1]}: {spec.display_name} works in multiples of {m} px."
        )
    return snapped, notes


def check_aspect_ratio(spec: ModelSpec, value: Any) -> str | None:
    rule = spec.size
    assert isinstance(rule, AspectRatioSize)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    ratio = parse_aspect_ratio(value) if isinstance(value, str) else None
    lo = f"{rule.tallest[0]}:{rule.tallest[1]}"
    hi = f"{rule.widest[0]}:{rule.widest[1]}"
    if ratio is None:
        raise ValidationError(
            f"The aspect ratio must be written width:height, such as 16:9; got {value!r}.", field="aspect_ratio"
        )
    w, h = ratio
    if not rule.tallest[0] * h <= w * rule.tallest[1] or not w * rule.widest[1] <= rule.widest[0] * h:
        raise ValidationError(
            f"The aspect ratio {w}:{h} is outside {spec.display_name}'s range of {lo} to {hi}; "
            "pick one in between.",
            field="aspect_ratio",
        )
    return f"{w}:{h}"


def validate(request: GenerationRequest, *, rng: random.Random | None = None) -> ValidatedRequest:
    """Check a request and resolve every parameter; raises ValidationError."""
    check_request_text(request)
    spec = MODELS.get(request.model) if isinstance(request.model, str) else None
    if spec is None:
        known = ", ".join(MODELS)
        raise ValidationError(f"Unknown model {request.model!r}; choose one of {known}.", field="model")
    warnings: list[str] = []
    adjustments: list[str] = []
    route = _choose_route(spec, request.route)
    prompt = _check_prompt(spec, request.prompt, warnings)
    refs = _check_references(spec, request.references, route)
    editing = bool(refs)

    given = dict(request.params)
    unknown = [name for name in given if spec.param(name) is None]
    if unknown:
        name = unknown[0]
        takes = ", ".join(p.name for p in spec.all_params)
        others = [m.display_name for m in MODELS.values() if m.param(name) is not None]
        hint = f" {', '.join(others)} {'does' if len(others) == 1 else 'do'}." if others else ""
        raise ValidationError(
            f"{spec.display_name} does not take {name!r}; it takes {takes}.{hint}", field=name
        )

    params: dict[str, Any] = {}
    on_image_api = route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS)
    for p in spec.params:
        if on_image_api and not p.image_api:
            if given.get(p.name) not in (None, p.default):
                raise ValidationError(
                    f"The Image API route does not carry {p.label.lower()}; use the BFL route to set it.",
                    field=p.name,
                )
            continue
        value = _coerce(spec, p, given.get(p.name, p.default), editing)
        if p.name == "seed" and value is None:
            value = (rng or random.SystemRandom()).randint(0, 2**31 - 1)
        params[p.name] = value

    size: tuple[int, int] | None
    if isinstance(spec.size, PixelSize):
        size, notes = snap_size(
            spec, given.get("width", spec.size.default[0]), given.get("height", spec.size.default[1])
        )
        adjustments.extend(notes)
        params["width"], params["height"] = size
    else:
        ratio = check_aspect_ratio(spec, given.get("aspect_ratio", spec.size.default))
        parsed = parse_aspect_ratio(ratio) if ratio else None
        size = aspect_ratio_size(spec.size, parsed) if parsed else (None if editing else
                                                                    aspect_ratio_size(spec.size, (1, 1)))
        if ratio is not None:
            params["aspect_ratio"] = ratio
    return ValidatedRequest(
        model=spec,
        route=route,
        prompt=prompt,
        references=refs,
        params=params,
        size=size,
        adjustments=tuple(adjustments),
        warnings=tuple(warnings),
    )
