"""Every text field is bounded, and History never ships a whole prompt it need not show.

FLUX.1 [schnell] truncates a long prompt rather than refusing it, so without an absolute bound
nothing refused a 100 MB prompt: it was sent, stored twice, and every History listing read it
whole. A 5 MB prompt is enough to cross the bound (128,000 bytes), and is built once, lazily.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app_fixtures import AppUnderTest
from flux_ui.client.validation import MAX_NAME_BYTES, MAX_TEXT_BYTES, GenerationRequest, validate
from flux_ui.errors import ValidationError
from flux_ui.history import Entry, History
from flux_ui.runtime import Runtime
from flux_ui.ui import build_demo, handlers
from flux_ui.ui.history_listing import PREVIEW_CHARS, api_entries, listing
from flux_ui.ui.text import inert

SCHNELL = "FLUX.1-schnell"
PHRASE = "a red fox in an autumn forest, "  # 31 characters
SAID = "The prompt is too long: 5,000,000 characters, and flux-ui takes at most 128,000 bytes"


@pytest.fixture(scope="module")
def huge() -> str:
    """5,000,000 characters of ordinary prompt: far over the bound, whichever model."""
    return (PHRASE * (5_000_000 // len(PHRASE) + 1))[:5_000_000]


@pytest.fixture(scope="module")
def client(app: AppUnderTest) -> Client:
    return Client(app.url, verbose=False, ssl_verify=False)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("photos") / "photo.png"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(path)
    return str(path)


def calls(huge: str, photo: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(endpoint, arguments, what the message must say) for each place a huge text can enter."""
    yield "/generate", {"model": SCHNELL, "prompt": huge}, SAID
    yield "/generate", {"model": "FLUX.2-pro", "prompt": huge}, SAID
    yield "/generate", {"model": SCHNELL, "prompt": "a fox", "negative_prompt": huge}, (
        "Negative prompt is too long: 5,000,000 characters, and flux-ui takes at most 128,000 bytes")
    yield "/generate", {"model": huge, "prompt": "a fox"}, (
        f"The model is too long: 5,000,000 characters, and flux-ui takes at most {MAX_NAME_BYTES} bytes")
    yield "/edit", {"model": "FLUX.2-flex", "prompt": huge, "references": [handle_file(photo)]}, SAID
    yield "/kontext", {"model": "FLUX.1-Kontext-pro", "prompt": huge, "image": handle_file(photo)}, SAID
    yield "/compare", {"prompt": huge, "models": ["FLUX.2-pro", SCHNELL]}, SAID


def test_a_huge_text_is_refused_on_every_endpoint_with_nothing_sent(app: AppUnderTest, client: Client, huge: str,
                                                                    photo: str) -> None:
    for api_name, args, said in calls(huge, photo):
        before = len(app.emulator.requests())
        answer = client.predict(**args, api_name=api_name)
        message = answer[2]
        assert said in message and "Shorten it" in message, (api_name, message[:300])
        assert len(message) < 1_000  # the refusal does not quote what it refuses
        assert len(app.emulator.requests()) == before, f"{api_name} sent a request"
        assert answer[0] in (None, []), api_name
    with pytest.raises(AppError, match="The prompt filter is too long: 5,000,000 characters") as refused:
        client.predict(text=huge, api_name="/history")
    assert len(str(refused.value)) < 1_000
    with pytest.raises(AppError, match="Unknown model") as refused:
        client.predict(model=huge, api_name="/history")
    assert len(str(refused.value)) < 1_000


def test_the_bound_is_bytes_of_utf8_and_what_fits_is_taken() -> None:
    assert MAX_TEXT_BYTES == 4 * 32_000  # FLUX.2's window, the largest, at 4 bytes a token
    fits = validate(GenerationRequest(SCHNELL, "é" * (MAX_TEXT_BYTES // 2)), rng=random.Random(1))
    assert "first 256 tokens" in fits.warnings[0]  # still only truncated, as schnell does
    with pytest.raises(ValidationError, match="128,002 bytes, and flux-ui takes at most 128,000") as over:
        validate(GenerationRequest(SCHNELL, "é" * (MAX_TEXT_BYTES // 2 + 1)))
    assert over.value.field == "prompt"
    with pytest.raises(ValidationError) as named:
        validate(GenerationRequest("FLUX.2-pro", "a fox", params={"output_format": "p" * 5_000}))
    assert named.value.field == "output_format" and "The value of output_format is too long" in str(named.value)


@pytest.fixture
async def long_prompts(runtime: Runtime, huge: str) -> list[Entry]:
    """Two images: one with the longest prompt flux-ui now takes, one with a 5 MB prompt saved before the bound."""
    longest = (PHRASE * (MAX_TEXT_BYTES // len(PHRASE)))[:MAX_TEXT_BYTES]
    first = await handlers.generate(runtime, SCHNELL, longest, {"seed": 1})
    old = dataclasses.replace(first.result, prompt=huge)  # what the unbounded code stored
    return [first.entry, runtime.history.save(old, "text-to-image")]


async def test_history_lists_and_ships_only_previews(runtime: Runtime, long_prompts: list[Entry], huge: str) -> None:
    records, files = api_entries(runtime.history, None, None, 50)
    assert len(records) == 2 and len(files) == 2
    assert len(json.dumps(records, ensure_ascii=False).encode()) < 4_000  # was over 10 MB
    for record in records:
        assert record["prompt"] == (PHRASE * 10)[:PREVIEW_CHARS] + "…"
        assert record["settings"]["prompt"] == record["prompt"] and record["prompt_truncated"] is True
    found = listing(runtime.history)
    assert found.ids == [long_prompts[1].id, long_prompts[0].id]
    assert all(len(caption) < 100 for _, caption in found.items)
    short, _ = api_entries(runtime.history, None, "autumn forest", 50)
    assert len(short) == 2  # the filter still searches whole prompts


async def test_details_and_reuse_still_have_the_whole_prompt(runtime: Runtime, long_prompts: list[Entry],
                                                             huge: str) -> None:
    demo = build_demo(runtime)
    on_select = next(f.fn for f in demo.fns.values() if f.name == "on_select")
    ids = listing(runtime.history).ids
    _, prompt_box, *_ = on_select(ids, gr.SelectData(None, {"index": 0, "value": None, "selected": True}))
    assert prompt_box["value"] == huge
    entry = runtime.history.get(ids[0])
    assert entry is not None and entry.settings["prompt"] == huge and "prompt_truncated" not in entry.settings


def test_the_history_filter_on_the_page_is_bounded(tmp_path: Path) -> None:
    found = listing(History(tmp_path / "outputs"), None, "fox " * 40_000)
    assert found.ids == [] and inert("The prompt filter is too long: 160,000 characters") in found.message
