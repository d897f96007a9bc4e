"""Prompt length in tokens, as well as an emulator without tokenizers can count it.

The service counts Mistral Tekken tokens (FLUX.2) and T5-XXL tokens (Kontext, 1.1-pro,
schnell); contract §6 gives only upper bounds without a tokenizer (tekken ≤ UTF-8 bytes,
T5 ≤ NFKC characters + 2). The emulator's approximation sits well below those bounds, at
a typical English ratio of about four bytes or characters per token:

- Tekken: ceil(UTF-8 bytes / 4)
- T5: ceil(NFKC characters / 4) + 2 (the +2 stands for the end-of-sequence and padding tokens)

So the emulator refuses a prompt only when the real service would almost surely refuse it
too, and a client that warns by the contract's upper bounds never meets a refusal it did
not warn about.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Literal

Tokenizer = Literal["mistral-tekken", "t5-xxl"]
CHARS_PER_TOKEN = 4
T5_SPECIAL_TOKENS = 2


def count_tokens(prompt: str, tokenizer: Tokenizer) -> int:
    if tokenizer == "mistral-tekken":
        return math.ceil(len(prompt.encode("utf-8")) / CHARS_PER_TOKEN)
    return math.ceil(len(unicodedata.normalize("NFKC", prompt)) / CHARS_PER_TOKEN) + T5_SPECIAL_TOKENS


def truncate_to_tokens(prompt: str, max_tokens: int, tokenizer: Tokenizer) -> str:
    """The prompt cut to what fits in ``max_tokens`` by the same approximation (schnell's T5 cut)."""
    if count_tokens(prompt, tokenizer) <= max_tokens:
        return prompt
    if tokenizer == "mistral-tekken":
        raw = prompt.encode("utf-8")[: max_tokens * CHARS_PER_TOKEN]
        return raw.decode("utf-8", errors="ignore")
    text = unicodedata.normalize("NFKC", prompt)
    return text[: (max_tokens - T5_SPECIAL_TOKENS) * CHARS_PER_TOKEN]
