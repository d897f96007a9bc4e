"""History tab handlers, no browser: the listing, details, API records, reuse and dropped files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from conftest import FAST, SAMPLES
from flux_ui.emulator import EmulatorConfig
from flux_ui.history import Entry
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import handlers, history_listing, text_to_image
from flux_ui.ui.common import TabContext, TabHandle
from flux_ui.ui.history_listing import EMPTY, api_entries, caption_of, details_of, listing, short_date
from flux_ui.ui.history_reuse import NO_SETTINGS, NOT_AN_IMAGE, reuse_updates, settings_in_file
from flux_ui.ui.text import inert


async def make(rt: Runtime, model: str, prompt: str, seed: int, tab: str = "text-to-image",
               **params: Any) -> Entry:
    generated = await handlers.generate(rt, model, prompt, {"seed": seed, **params}, tab=tab)
    return generated.entry


@pytest.fixture(params=["sqlite", "postgres"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    """The app's runtime on each History backend: SQLite in the outputs folder, and PostgreSQL as replicas
    use it (FLUX_UI_DATABASE_URL, a fresh schema), through the same start_runtime as app.py."""
    env = {"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}
    if request.param == "postgres":
        env["FLUX_UI_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    running = start_runtime(load_settings(env, dotenv_path=None), EmulatorConfig(rng_seed=3), FAST)
    assert (running.database is None) == (request.param == "sqlite")
    yield running
    await running.aclose()


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
    assert found.items[0][1] == f"FLUX1.1 [pro] · {short_date(three[2].created)} · a red kite over hills · seed 33"
    assert "3 images, newest first" in found.message and found.pager == "Page 1 of 1"


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
    assert "1 indexed file(s) on this page are missing" in found.message


async def test_listing_comes_page_by_page(runtime: Runtime, three: list[Entry]) -> None:
    first, second = (listing(runtime.history, None, None, page, page_size=2) for page in (0, 1))
    assert first.ids == [three[2].id, three[1].id] and second.ids == [three[0].id]
    assert (first.pager, second.pager) == ("Page 1 of 2", "Page 2 of 2") and "3 images" in second.message
    past = listing(runtime.history, None, None, 9, page_size=2)  # a page that no longer exists: the last one
    assert past.ids == second.ids and past.page == 1


async def test_listing_filters_to_favourites(runtime: Runtime, three: list[Entry]) -> None:
    none = listing(runtime.history, None, None, favourites=True)
    assert none.ids == [] and "No favourites yet" in none.message
    runtime.history.favourite(three[1].id, True)
    found = listing(runtime.history, None, None, favourites=True)
    assert found.ids == [three[1].id] and "1 favourite image, newest first" in found.message
    assert found.items[0][1].startswith("★ FLUX.2 [flex] · ")
    assert listing(runtime.history, "FLUX.2-pro", None, favourites=True).ids == []


def test_short_dates_name_the_year_only_when_it_is_not_this_one() -> None:
    import time

    created = time.mktime((2026, 12, 1, 15, 25, 0, 0, 0, -1))
    assert short_date(created, now=created) == "1 Dec 15:25"
    assert short_date(created, now=created + 40 * 86_400) == "1 Dec 2026 15:25"


def test_caption_shortens_a_long_prompt() -> None:
    entry = Entry("x", 0.0, "text-to-image", "FLUX.2-pro", "word " * 50, None, 64, 64, "png", Path("x.png"), {})
    caption = caption_of(entry)
    assert caption.startswith(f"FLUX.2 [pro] · {short_date(0.0)} · word word") and "…" in caption
    assert "seed" not in caption and len(caption) < 80


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


async def test_api_entries_filter_refuse_a_limit_out_of_range_and_name_unknown_models(runtime: Runtime,
                                                                                      three: list[Entry]) -> None:
    records, _ = api_entries(runtime.history, "FLUX.2-flex", None, 50)
    assert [r["prompt"] for r in records] == ["a blue heron in fog"]
    records, _ = api_entries(runtime.history, None, "RED", 50)
    assert [r["seed"] for r in records] == [33, 11]
    for wrong in (0, -3, 501, 10**6):  # out of range is refused with the range, not quietly changed
        with pytest.raises(gr.Error, match=r"limit must be a whole number of entries from 1 to 500; got "):
            api_entries(runtime.history, "", "", wrong)
    assert len(api_entries(runtime.history, "", "", 500)[0]) == 3
    assert len(api_entries(runtime.history, "", "", 1)[0]) == 1
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


def capturing_handle(name: str = "edit") -> tuple[TabHandle, list[Mapping[str, Any]]]:
    """A tab that records the settings History hands it."""
    seen: list[Mapping[str, Any]] = []

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        seen.append(settings)
        return [gr.update()]

    return TabHandle(tab_id=name, name=name, outputs=[gr.Textbox(render=False)], apply=apply), seen


async def test_reuse_hands_the_stored_inputs_in_order_and_names_the_missing(runtime: Runtime) -> None:
    refs = [(SAMPLES / n).read_bytes() for n in ("chelsea.png", "coffee.png", "astronaut.png", "chelsea.png")]
    made = await handlers.generate(runtime, "FLUX.2-pro", "the cat and the coffee", {"seed": 5}, references=refs,
                                   tab="edit")
    entry = runtime.history.get(made.entry.id)
    assert entry is not None and len(entry.inputs) == 4
    edit, seen = capturing_handle()
    _, message = reuse_updates(entry.settings, [edit], runtime.models, {"edit": "Edit"}, entry.inputs)
    assert [Path(p).read_bytes() for p in seen[-1]["input_files"]] == refs  # in the order sent, repeats kept
    assert "Its 4 input images came back too, in the order they were sent" in message and "not stored" not in message
    assert "Input images: 4, kept with it" in details_of(entry, "Edit")

    entry.inputs[1].unlink()  # gone from the outputs folder (by hand)
    _, message = reuse_updates(entry.settings, [edit], runtime.models, {"edit": "Edit"}, entry.inputs)
    assert seen[-1]["input_files"] == [str(p) for p in (entry.inputs[0], entry.inputs[2], entry.inputs[3])]
    assert "1 of its 4 input images are missing from the outputs folder: image 2 (" in message
    assert entry.inputs[1].name[:12] in message and "The other 3 came back" in message


async def test_an_image_saved_before_inputs_were_kept_still_asks_for_its_references(runtime: Runtime) -> None:
    settings = {"model": "FLUX.2-pro", "prompt": "x", "seed": 1, "tab": "edit", "references": ["<image 1>"]}
    edit, seen = capturing_handle()
    _, message = reuse_updates(settings, [edit], runtime.models, {"edit": "Edit"})
    assert "input_files" not in seen[-1] and "were not stored" in message and "add them again" in message


async def test_a_dropped_image_finds_its_stored_inputs(runtime: Runtime, tmp_path: Path) -> None:
    from flux_ui import history_inputs

    refs = [(SAMPLES / n).read_bytes() for n in ("coffee.png", "chelsea.png")]
    made = await handlers.generate(runtime, "FLUX.2-pro", "coffee and cat", {"seed": 6}, references=refs, tab="edit")
    dropped = tmp_path / "from-a-colleague.jpg"
    dropped.write_bytes(made.entry.path.read_bytes())
    settings, _ = settings_in_file(dropped)
    assert settings is not None
    found = history_inputs.find(runtime.history.folder, settings["inputs"])
    assert [p.read_bytes() for p in found] == refs
    assert history_inputs.find(runtime.history.folder, ["../../etc/passwd", 3]) == []  # only the store's names


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
