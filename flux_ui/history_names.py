"""What a saved image's file is called: when, which model, a few words of the prompt, the seed.

The browser downloads a file under its own name, so the name says what the image is:
``20261201-152500-flux2-pro-red-fox-in-snow-s42-ab12cd34.png``. The entry id is the time and the
random tail alone (``20261201-152500-ab12cd34``), short enough for a link; start-up recovery reads
it back from a name of either shape (older folders hold ``20261201-152500-ab12cd34.png``).
"""

from __future__ import annotations

import re
import time
import unicodedata

from flux_ui.registry import MODELS

#: Words of a prompt that say nothing in a file name.
FILLER = frozenset({"a", "an", "the", "of", "with", "and"})
SLUG_WORDS = 5
SLUG_CHARS = 40
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
#: A saved image's name, new shape or old: time, an optional description, the random tail.
SAVED_NAME = re.compile(r"(?P<time>\d{8}-\d{6})-(?:[a-z0-9]+(?:-[a-z0-9]+)*-)?(?P<tail>[0-9a-f]{8})"
                        r"\.(?:jpg|png|webp)")


def slug(text: str, words: int = SLUG_WORDS, chars: int = SLUG_CHARS, skip: frozenset[str] = FILLER) -> str:
    """Lower-case ASCII words joined by "-" ("Ein Fuchs im Schnee, 4K!" → "ein-fuchs-im-schnee-4k"), at
    most ``words`` of them and ``chars`` characters; "" when nothing ASCII is left (a prompt in Japanese)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    kept: list[str] = []
    for word in re.findall(r"[a-z0-9]+", folded):
        if word in skip:
            continue
        if len("-".join([*kept, word])) > chars:
            break
        kept.append(word)
        if len(kept) == words:
            break
    return "-".join(kept)


def model_slug(model: str) -> str:
    """The model as a person names it, without dots: "FLUX.2 [pro]" → "flux2-pro"."""
    spec = MODELS.get(model)
    return slug((spec.display_name if spec else model).replace(".", ""), words=6, skip=frozenset()) or "model"


def entry_id(created: float, tail: str) -> str:
    """The id History lists an image by: its local time to the second and a random tail."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + "-" + tail


def saved_name(created: float, tail: str, model: str, prompt: str, seed: int | None, fmt: str) -> str:
    """The file name of an image saved at ``created``: what a download is called."""
    parts = [time.strftime("%Y%m%d-%H%M%S", time.localtime(created)), model_slug(model), slug(prompt)]
    if seed is not None:
        parts.append(f"s{seed}")
    parts.append(tail)
    return "-".join(p for p in parts if p) + "." + EXTENSIONS.get(fmt, fmt)


def id_of_name(name: str) -> str | None:
    """The entry id a saved image's file name carries, or None when the name is not one History writes."""
    found = SAVED_NAME.fullmatch(name)
    return f"{found['time']}-{found['tail']}" if found else None
