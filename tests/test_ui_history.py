"""History tab handlers, no browser: the listing, details, API records, reuse and dropped files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from conftest import SAMPLES
from flux_ui.history import Entry
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers, history_listing, text_to_image
from flux_ui.ui.common import TabContext, TabHandle
from flux_ui.ui.history_listing import EMPTY, api_entries, caption_of, details_of, listing
from flux_ui.ui.history_reuse import NO_SETTINGS, NOT_AN_IMAGE, reuse_updates, settings_in_file
from flux_ui.ui.text import inert


async def make(rt: Runtime, model: str, prompt: str, seed: int, tab: str = "text-to-image",
               **params: Any) -> Entry:
    generated = await handlers.generate(rt, model, prompt, {"seed": seed, **params}, tab=tab)
    return generated.entry


@pytest.fixture
async def three(runtime: Runtime) -> list[Entry]:
    return [await make(runtime, "FLUX.2-pro", "a red fox in the snow", 11),
            await make(runtime, "FLUX.2-flex", "a blue heron in fog", 22, guidance=3.5, output_format="png"),
            await make(runtime, "FLUX-1.1-pro", "a red kite over hills", 33, output_format="jpeg")]


def t2i_handle(rt: Runtime) -> TabHandle:
    with gr.Blocks() as demo:
        return text_to_image.build(TabContext(rt, demo))


def fake_handle(name: str = "edit", tab_id: str = "edit", n: int = 2) -> TabHandle:
    outputs = [gr.Textbox(render=False) for _ in range(n)]

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        return [gr.update(value=settings["prompt"]), gr.update(value=settings["seed"])][:n]

    return TabHandle(tab_id=tab_id, name=name, outputs=outputs, apply=apply)


def value_of(update: Any) -> Any:
    return update.get("value") if isinstance(update, dict) else getattr(update, "value", None)


async def test_empty_history_says_how_to_fill_it(runtime: Runtime) -> None:
    found = listing(runtime.history, None, None)
    assert found.items == [] and found.ids == [] and found.message == EMPTY


async def test_listing_is_newest_first_with_short_captions(runtime: Runtime, three: list[Entry]) -> None:
    found = listing(runtime.history, "all", "")
    assert found.ids == [e.id for e in reversed(three)]
    assert [path for path, _ in found.items] == [str(e.path) for e in reversed(three)]
    assert found.items[0][1] == "FLUX1.1 [pro] · a red kite over hills · seed 33"
    assert "3 images, newest first" in found.message


async def test_listing_filters_by_model_and_text(runtime: Runtime, three: list[Entry]) -> None:
    assert listing(runtime.history, "FLUX.2-flex", None).ids == [three[1].id]
    assert listing(runtime.history, None, "red").ids == [three[2].id, three[0].id]
    assert listing(runtime.history, "FLUX.2-pro", "red").ids == [three[0].id]
    none = listing(runtime.history, "FLUX.2-flex", "red")
    assert none.ids == [] and "No saved image matches" in none.message and none.message != EMPTY


async def test_listing_leaves_out_files_gone_from_disk(runtime: Runtime, three: list[Entry]) -> None:
    three[0].path.unlink()
    found = listing(runtime.history, None, None)
    assert three[0].id not in found.ids and len(found.ids) == 2
    assert "1 indexed file(s) are missing" in found.message


async def test_listing_says_when_the_limit_cuts_it(runtime: Runtime, three: list[Entry]) -> None:
    found = listing(runtime.history, None, None, limit=2)
    assert len(found.ids) == 2 and "The newest 2 images" in found.message


def test_caption_shortens_a_long_prompt() -> None:
    entry = Entry("x", 0.0, "text-to-image", "FLUX.2-pro", "word " * 50, None, 64, 64, "png", Path("x.png"), {})
    caption = caption_of(entry)
    assert caption.startswith("FLUX.2 [pro] · word word") and "…" in caption and "seed" not in caption
    assert len(caption) < 70


async def test_details_are_readable(runtime: Runtime, three: list[Entry]) -> None:
    text = details_of(three[1], "Text to image")
    assert inert("FLUX.2 [flex]") in text and "1024×1024" in text and "PNG" in text and "seed **22**" in text
    assert "Made in **Text to image**" in text
    assert "Guidance **3.5**" in text and "Steps **50**" in text and "Prompt upsampling **on**" in text
    assert "Width" not in text  # the size is in the first line; repeated only when it came out different
    assert str(three[1].path) in text
    assert "a blue heron" not in text  # the prompt has its own box


async def test_api_entries_are_json_with_files_inside_the_outputs(runtime: Runtime, three: list[Entry]) -> None:
    records, files = api_entries(runtime.history, None, None, 50)
    assert [r["id"] for r in records] == [e.id for e in reversed(three)]
    dumped = json.dumps(records)
    assert str(runtime.history.folder) not in dumped and "/tmp" not in dumped
    first = records[0]
    assert set(first) == {"id", "created", "tab", "model", "prompt", "prompt_truncated", "seed", "width", "height",
                          "format", "file", "settings"}
    assert first["prompt_truncated"] is False and "prompt_truncated" not in first["settings"]
    assert first["created"][4] == "-" and "T" in first["created"]
    assert (runtime.history.folder / first["file"]) == three[2].path
    assert [Path(f.path) for f in files] == [e.path for e in reversed(three)]
    assert first["settings"]["params"]["seed"] == 33
    assert not any("key" in k.lower() for k in first["settings"])


async def test_api_entries_filter_clamp_and_name_unknown_models(runtime: Runtime, three: list[Entry]) -> None:
    records, _ = api_entries(runtime.history, "FLUX.2-flex", None, 50)
    assert [r["prompt"] for r in records] == ["a blue heron in fog"]
    records, _ = api_entries(runtime.history, None, "RED", 50)
    assert [r["seed"] for r in records] == [33, 11]
    assert len(api_entries(runtime.history, "", "", 0)[0]) == 1  # a limit below 1 still lists one
    with pytest.raises(gr.Error, match=r"Unknown model 'FLUX\.3'.*FLUX\.2-pro"):
        api_entries(runtime.history, "FLUX.3", None, 50)


async def test_reuse_loads_into_text_to_image_and_leaves_others(runtime: Runtime, three: list[Entry]) -> None:
    t2i, other = t2i_handle(runtime), fake_handle()
    updates, message = reuse_updates(three[1].settings, [t2i, other], runtime.models, {"t2i": "Text to image"})
    assert len(updates) == 1 + len(t2i.outputs) + len(other.outputs)
    assert isinstance(updates[0], gr.Tabs) and updates[0].selected == "t2i"
    loaded = dict(zip((c.elem_id for c in t2i.outputs), updates[1:1 + len(t2i.outputs)], strict=True))
    assert value_of(loaded["t2i-model"]) == "FLUX.2-flex" and value_of(loaded["t2i-prompt"]) == "a blue heron in fog"
    assert value_of(loaded["t2i-randomize"]) is False  # randomize off: the seed is the entry's
    assert value_of(loaded["param-seed"]) == 22 and value_of(loaded["param-guidance"]) == 3.5
    assert updates[-2:] == [gr.update(), gr.update()]
    assert message == "Loaded FLUX.2 [flex], the prompt and seed 22 into **Text to image**."


async def test_reuse_goes_to_the_tab_that_made_it(runtime: Runtime) -> None:
    entry = await make(runtime, "FLUX.2-pro", "two cats", 5, tab="edit")
    t2i, edit = t2i_handle(runtime), fake_handle()
    updates, _ = reuse_updates(entry.settings, [t2i, edit], runtime.models)
    assert updates[0].selected == "edit"
    assert all(u == gr.update() for u in updates[1:1 + len(t2i.outputs)])
    assert [value_of(u) for u in updates[-2:]] == ["two cats", 5]


async def test_reuse_falls_back_to_text_to_image_for_a_tab_not_ready(runtime: Runtime) -> None:
    entry = await make(runtime, "FLUX.2-pro", "two cats", 5, tab="kontext")
    t2i = t2i_handle(runtime)
    empty = TabHandle(tab_id="kontext", name="kontext")
    updates, message = reuse_updates(entry.settings, [t2i, empty], runtime.models)
    assert updates[0].selected == "t2i" and len(updates) == 1 + len(t2i.outputs)
    assert "into **text-to-image**" in message


async def test_reuse_refuses_a_model_not_deployed(runtime: Runtime, three: list[Entry]) -> None:
    t2i = t2i_handle(runtime)
    updates, message = reuse_updates(three[1].settings, [t2i], ("FLUX.2-pro",))
    assert all(u == gr.update() for u in updates) and len(updates) == 1 + len(t2i.outputs)
    assert "FLUX.2 [flex] is not deployed" in message and "FLUX_DEPLOYMENTS" in message


def test_reuse_with_no_tab_ready_says_so() -> None:
    settings = {"model": "FLUX.2-pro", "prompt": "x", "seed": 1, "tab": "edit"}
    updates, message = reuse_updates(settings, [TabHandle("edit", "edit")], ("FLUX.2-pro",))
    assert updates == [gr.update()] and "No tab" in message


def test_reuse_survives_a_tab_that_answers_the_wrong_number_of_updates() -> None:
    broken = fake_handle(n=2)
    broken.apply = lambda settings: [gr.update()]
    settings = {"model": "FLUX.2-pro", "prompt": "x", "seed": 1, "tab": "edit"}
    updates, message = reuse_updates(settings, [broken], ("FLUX.2-pro",))
    assert updates == [gr.update()] * 3 and "could not take" in message


async def test_a_saved_file_carries_its_settings(runtime: Runtime, three: list[Entry]) -> None:
    for entry in three:  # PNG and JPEG both
        settings, problem = settings_in_file(entry.path)
        assert problem == "" and settings is not None
        assert (settings["model"], settings["prompt"], settings["seed"]) == (entry.model, entry.prompt, entry.seed)


def test_a_plain_photo_or_a_non_image_is_named(tmp_path: Path) -> None:
    photo = SAMPLES / "astronaut.png"
    settings, problem = settings_in_file(photo)
    assert settings is None and NO_SETTINGS in problem
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    settings, problem = settings_in_file(text)
    assert settings is None and NOT_AN_IMAGE in problem
    assert "Could not read" in settings_in_file(tmp_path / "gone.png")[1]


def test_a_snapped_size_shows_what_was_asked() -> None:
    text = history_listing.readable_params("FLUX-1.1-pro", {"width": 1000, "height": 770, "seed": 3}, (992, 768))
    assert text == "Width **1000** · Height **770**"
    assert history_listing.readable_params("FLUX-1.1-pro", {}, None) == "the model's defaults"


def test_tab_labels_come_from_the_tabs() -> None:
    handles = [TabHandle("t2i", "text-to-image")]
    assert history_listing.tab_label("text-to-image", handles, {"t2i": "Text to image"}) == "Text to image"
    assert history_listing.tab_label("compare", handles, {}) == "Compare"


async def test_download_all_zips_what_the_filters_show(runtime: Runtime, three: list[Entry]) -> None:
    import zipfile

    from flux_ui.ui.edge.files import written_files
    from flux_ui.ui.history_tab import _archive_of_filter

    update, said = _archive_of_filter(runtime.history, "FLUX.2-pro", None)
    shown = listing(runtime.history, "FLUX.2-pro").ids
    path = Path(update["value"])
    assert update["visible"] and f"{len(shown)} image(s)" in said and written_files(runtime.history.folder).knows(path)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        records = manifest["cells"] if "cells" in manifest else manifest["images"]
        assert [r["id"] for r in records] == shown and "manifest.csv" in zf.namelist()
        for record, entry_id in zip(records, shown, strict=True):
            entry = runtime.history.get(entry_id)
            assert entry is not None and zf.read(record["file"]) == entry.path.read_bytes()  # the originals
    nothing, message = _archive_of_filter(runtime.history, None, "no prompt has these words")
    assert nothing["visible"] is False and "Nothing to put in a ZIP" in message


async def test_a_runs_images_are_shown_as_one_group(runtime: Runtime, three: list[Entry]) -> None:
    from flux_ui.ui.history_listing import group_listing, group_of

    extra = {"group": {"kind": "variations", "id": "f00dfeed" * 4, "index": 0}}
    grouped = [(await handlers.generate(runtime, "FLUX.2-pro", "a moth at a lamp", {"seed": s}, extra=extra)).entry
               for s in (1, 2)]
    assert group_of(grouped[0]) == "f00dfeed" * 4 and group_of(three[0]) is None
    found = group_listing(runtime.history, "f00dfeed" * 4)
    assert found.ids == [grouped[1].id, grouped[0].id] and "The 2 image(s) of that run" in found.message
    assert "Part of a run of variations" in details_of(grouped[0], "Text to image")
    assert "Part of a" not in details_of(three[0], "Text to image")
    assert runtime.history.list(group="no-such-run") == []


async def test_a_comparison_is_one_group_too(runtime: Runtime) -> None:
    from flux_ui.ui import compare_run
    from flux_ui.ui.history_listing import group_listing, group_of

    comp = await compare_run.compare(runtime, "two owls", ["FLUX.2-pro", "FLUX-1.1-pro"], "1:1", 5)
    entries = [s.generated.entry for s in comp.slots if s.generated]
    assert len(entries) == 2 and {group_of(e) for e in entries} == {comp.id}
    assert sorted(group_listing(runtime.history, comp.id).ids) == sorted(e.id for e in entries)
    assert "Part of a comparison" in details_of(entries[0], "Compare")
