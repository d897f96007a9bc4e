"""Text checks on a request: byte bounds on every text field, invisible characters, and honest prompt-length bounds.

Every free-text field takes at most :data:`MAX_TEXT_BYTES` (128,000 bytes of UTF-8), every name or
choice at most :data:`MAX_NAME_BYTES`; control and format characters no one sees are refused by
name and position; a prompt is refused for length only when even the most generous tokenization
is over the model's limit (contract §6).
"""

from __future__ import annotations

import math
import re
import reprlib
import unicodedata
from typing import TYPE_CHECKING

from flux_ui.errors import ValidationError
from flux_ui.registry import MODELS, ModelSpec

if TYPE_CHECKING:
    from flux_ui.client.validation import GenerationRequest

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


def _free_text() -> dict[str, str]:
    """The parameters that are free text, by name, with their labels (FLUX.1 [schnell]'s negative prompt)."""
    return {p.name: p.label for m in MODELS.values() for p in m.all_params if p.kind == "text"}


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
    free_text = _free_text()
    for name, value in request.params.items():
        if not isinstance(name, str):
            continue
        check_text_size("A parameter name", name, "params", MAX_NAME_BYTES)
        if isinstance(value, str) and name in free_text:
            check_text_size(free_text[name], value, name)
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


def prompt_token_bounds(prompt: str, tokenizer: str) -> tuple[int, int]:
    """(lowest, highest) token count the prompt can have, without a tokenizer."""
    if tokenizer == "mistral-tekken":
        size = len(prompt.encode("utf-8"))
        return math.ceil(size / _MAX_BYTES_PER_TEKKEN_TOKEN), size
    chars = len(unicodedata.normalize("NFKC", prompt))
    return math.ceil(chars / _MAX_CHARS_PER_T5_TOKEN), chars + 2


def check_invisible(label: str, text: str, field: str) -> None:
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


def check_prompt(spec: ModelSpec, prompt: object, warnings: list[str]) -> str:
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
    check_invisible("The prompt", prompt, "prompt")
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
