"""History's store, no browser: input images kept once by content and in order, favourites, paging,
deletes that remove what they should (and only that), recovery that never brings a deleted image
back (whatever step a crash stopped at), and file names that say what the image is.

Each test that opens History runs on both backends (``history_db``: SQLite in the folder, PostgreSQL),
and the replica tests put two History objects with folders of their own on one PostgreSQL schema."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from conftest import SAMPLES
from flux_ui import durable, history_recovery
from flux_ui.client.core import GenerationResult, Timings
from flux_ui.database import Database
from flux_ui.history import History, knows_file
from flux_ui.history_names import id_of_name, model_slug, saved_name, slug
from flux_ui.images import inspect_image, read_metadata
from flux_ui.registry import Route
from flux_ui.runtime import Runtime
from flux_ui.ui import handlers


def png(seed: int, side: int = 32) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def result(seed: int, prompt: str = "a red fox in the snow", model: str = "FLUX.2-pro") -> GenerationResult:
    image = png(1000 + seed, 48)
    info = inspect_image(image)
    return GenerationResult(
        image=image, info=info, model=model, deployment=model, route=Route.BFL, prompt=prompt, seed=seed,
        params={"seed": seed}, params_sent={}, references=(), adjustments=(), warnings=(), service_cost=None,
        cost_estimate_usd=None, input_mp=None, output_mp=None, revised_prompt=None, attempts=1, timings=Timings())


def stored(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "inputs").rglob("*") if p.is_file())


@pytest.fixture
def history(tmp_path: Path, history_db: Database | None) -> Iterator[History]:
    opened = History(tmp_path / "outputs", history_db)
    yield opened
    opened.close()


# --- inputs ----------------------------------------------------------------------------------------

def test_a_reference_used_fifty_times_is_stored_once(history: History) -> None:
    fox, cat = png(1), (SAMPLES / "chelsea.png").read_bytes()
    entries = [history.save(result(i), "edit", inputs=[fox, cat] if i % 2 else [cat, fox]) for i in range(50)]
    assert len(stored(history.folder)) == 2  # two distinct images, whatever the uses
    for i, entry in enumerate(entries):
        again = history.get(entry.id)
        assert again is not None and again.inputs == entry.inputs and len(entry.inputs) == 2
        assert [p.read_bytes() for p in again.inputs] == ([fox, cat] if i % 2 else [cat, fox])  # order kept
    assert entries[1].inputs[1].suffix == ".png" and entries[1].inputs[1].parent.parent.name == "inputs"


def test_ten_references_keep_their_order_even_when_repeated(history: History) -> None:
    refs = [png(i) for i in (5, 6, 5, 7, 8, 9, 10, 11, 6, 12)]
    entry = history.save(result(1), "edit", inputs=refs)
    listed = history.list()[0]
    assert [p.read_bytes() for p in listed.inputs] == refs
    assert len(stored(history.folder)) == 8
    assert read_metadata(entry.path.read_bytes())["inputs"] == [p.name for p in entry.inputs]  # the file names them


def test_an_entry_without_inputs_has_none(history: History) -> None:
    entry = history.save(result(1), "text-to-image")
    assert entry.inputs == () and history.get(entry.id).inputs == () and "inputs" not in entry.settings


def test_the_file_gate_knows_stored_inputs_and_nothing_else(history: History) -> None:
    entry = history.save(result(1), "edit", inputs=[png(1)])
    relative = entry.inputs[0].relative_to(history.folder).as_posix()
    db = history.database
    assert knows_file(history.folder, relative, db) and knows_file(history.folder, entry.path.relative_to(
        history.folder).as_posix(), db)
    stray = history.folder / "inputs" / "ab" / ("ab" * 32 + ".png")
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(png(2))
    assert not knows_file(history.folder, stray.relative_to(history.folder).as_posix(), db)


async def test_the_edit_handler_stores_the_references_it_sent(runtime: Runtime) -> None:
    refs = [(SAMPLES / name).read_bytes() for name in ("chelsea.png", "coffee.png", "chelsea.png")]
    generated = await handlers.generate(runtime, "FLUX.2-pro", "the cat beside the coffee", {"seed": 3},
                                        references=refs, tab="edit")
    entry = runtime.history.get(generated.entry.id)
    assert entry is not None and [p.read_bytes() for p in entry.inputs] == refs
    assert len(stored(runtime.history.folder)) == 2


def test_an_image_held_in_memory_keeps_its_inputs_for_the_late_save(history: History) -> None:
    from flux_ui.unsaved import UnsavedImages

    held = UnsavedImages()
    held.keep(result(4), "edit", "the disk was full", {"group": {"kind": "grid", "id": "g1"}}, [png(1), png(2)])
    assert held.flush(history) == 1
    entry = history.list()[0]
    assert [p.read_bytes() for p in entry.inputs] == [png(1), png(2)] and entry.settings["group"]["id"] == "g1"


# --- favourites and paging -------------------------------------------------------------------------

def test_favourites_are_starred_unstarred_and_filtered(history: History) -> None:
    entries = [history.save(result(i), "text-to-image") for i in range(4)]
    assert history.favourite(entries[1].id, True).favourite
    history.favourite(entries[3].id, True)
    assert [e.id for e in history.list(favourites=True)] == [entries[3].id, entries[1].id]
    assert history.count(favourites=True) == 2
    assert not history.favourite(entries[3].id, False).favourite
    assert [e.id for e in history.list(favourites=True)] == [entries[1].id]
    assert history.favourite("no-such-entry", True) is None


def test_pages_cover_every_entry_once_newest_first(history: History) -> None:
    entries = [history.save(result(i), "text-to-image") for i in range(7)]
    pages = [history.list(limit=3, offset=start) for start in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e.id for page in pages for e in page] == [e.id for e in reversed(entries)]
    assert history.count() == 7 and history.position(entries[0].id) == 6 and history.position(entries[6].id) == 0
    assert history.position("no-such-entry") is None


# --- delete ----------------------------------------------------------------------------------------

def test_delete_removes_the_file_its_unshared_inputs_and_the_row(history: History) -> None:
    shared, own = png(1), png(2)
    kept = history.save(result(1), "edit", inputs=[shared])
    gone = history.save(result(2), "edit", inputs=[own, shared])
    history.favourite(gone.id, True)
    assert history.delete(gone.id).id == gone.id
    assert history.get(gone.id) is None and not gone.path.exists() and not gone.inputs[0].exists()
    assert gone.inputs[1].exists() and history.get(kept.id).inputs == kept.inputs  # still used by the other
    assert history.count() == 1 and history.count(favourites=True) == 0
    assert not knows_file(history.folder, gone.path.relative_to(history.folder).as_posix(), history.database)
    assert history._read("SELECT COUNT(*) FROM deleted")[0][0] == 0  # finished: no tombstone left
    assert history.delete(gone.id) is None


class Crash(BaseException):
    """What a kill at this point would leave: nothing after it runs (BaseException: nothing catches it)."""


@pytest.mark.parametrize("step", ["file", "inputs", "after"])
def test_a_delete_stopped_at_any_step_is_finished_on_restart(tmp_path: Path, step: str, history_db: Database | None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "outputs"
    history = History(folder, history_db)
    shared, own = png(1), png(2)
    kept = history.save(result(1), "edit", inputs=[shared])
    gone = history.save(result(2), "edit", inputs=[own, shared])
    real_remove, real_unused = durable.remove_durably, history_recovery.history_inputs.remove_unused

    def crash(*args: object) -> None:
        raise Crash

    if step == "file":  # the tombstone and the row's removal committed, the file still there
        monkeypatch.setattr(durable, "remove_durably", crash)
    elif step == "inputs":  # the file gone, the unshared input and the tombstone still there
        monkeypatch.setattr(history_recovery.history_inputs, "remove_unused", crash)
    else:  # everything removed but the transaction that drops the tombstone never committed
        def unused_then_crash(*args: object) -> None:
            real_unused(*args)
            raise Crash

        monkeypatch.setattr(history_recovery.history_inputs, "remove_unused", unused_then_crash)
    with pytest.raises(Crash):
        history.delete(gone.id)
    history.close()  # the process dies here (closing its own index is all a clean stop adds)
    monkeypatch.setattr(durable, "remove_durably", real_remove)
    monkeypatch.setattr(history_recovery.history_inputs, "remove_unused", real_unused)
    assert gone.path.exists() == (step == "file")

    reopened = History(folder, history_db)
    try:
        assert [e.id for e in reopened.list()] == [kept.id]  # not resurrected, nothing listed without its file
        assert not gone.path.exists() and not gone.inputs[0].exists() and gone.inputs[1].exists()
        assert reopened._read("SELECT COUNT(*) FROM deleted")[0][0] == 0
        assert reopened.get(kept.id).inputs == kept.inputs
    finally:
        reopened.close()
    again = History(folder, history_db)  # and a second start changes nothing
    try:
        assert [e.id for e in again.list()] == [kept.id]
    finally:
        again.close()


def test_a_tombstoned_file_is_never_indexed_again(tmp_path: Path, history_db: Database | None) -> None:
    """A crash between the tombstone and the unlink leaves a whole, labelled image on disk: exactly
    what recovery adopts for a save cut short. The tombstone must win."""
    folder = tmp_path / "outputs"
    history = History(folder, history_db)
    entry = history.save(result(1), "text-to-image")
    relative = entry.path.relative_to(folder).as_posix()
    with history._transaction() as db:
        history_recovery.bury(db, entry.id, relative, history.database.shared)
    with history._transaction() as db:
        assert not history._index(db, entry, replace=False)  # adoption is refused while the tombstone stands
    history.close()
    reopened = History(folder, history_db)
    assert reopened.list() == [] and not entry.path.exists()
    reopened.close()


def test_recovery_removes_inputs_no_entry_uses(tmp_path: Path, history_db: Database | None) -> None:
    folder = tmp_path / "outputs"
    history = History(folder, history_db)
    entry = history.save(result(1), "edit", inputs=[png(1)])
    with history._transaction() as db:  # a delete that committed its rows and stopped before anything else
        history_recovery.bury(db, entry.id, entry.path.relative_to(folder).as_posix())
        db.execute("DELETE FROM deleted")  # even without its tombstone, the unused input goes
    history.close()
    entry.path.unlink()
    History(folder, history_db).close()
    assert stored(folder) == []


def test_an_image_recovered_from_its_file_finds_its_inputs(tmp_path: Path, history_db: Database | None) -> None:
    folder = tmp_path / "outputs"
    history = History(folder, history_db)
    entry = history.save(result(1), "edit", inputs=[png(1), png(2)])
    with history._transaction() as db:  # as if the kill landed between the rename and the index
        db.execute("DELETE FROM images")
        db.execute("DELETE FROM inputs")
    history.close()
    reopened = History(folder, history_db)
    try:
        recovered = reopened.get(entry.id)
        assert recovered is not None and recovered.inputs == entry.inputs
    finally:
        reopened.close()


# --- names -----------------------------------------------------------------------------------------

def test_file_names_say_what_the_image_is() -> None:
    created = time.mktime((2026, 12, 1, 15, 25, 0, 0, 0, -1))
    name = saved_name(created, "ab12cd34", "FLUX.2-pro", "A red fox in the snow, 4K!", 42, "png")
    assert name == "20261201-152500-flux2-pro-red-fox-in-snow-4k-s42-ab12cd34.png"
    assert saved_name(created, "ab12cd34", "FLUX-1.1-pro", "日本の庭", None, "jpeg") == \
        "20261201-152500-flux11-pro-ab12cd34.jpg"
    assert model_slug("FLUX.1-Kontext-pro") == "flux1-kontext-pro" and model_slug("FLUX.1-schnell") == "flux1-schnell"
    assert slug("Crème brûlée on a plate") == "creme-brulee-on-plate"
    assert len(slug("word " * 100)) <= 40
    assert id_of_name(name) == "20261201-152500-ab12cd34"
    assert id_of_name("20261201-152500-ab12cd34.webp") == "20261201-152500-ab12cd34"  # the old shape still reads
    assert id_of_name("20261201-152500-ab12cd34.png.tmp") is None and id_of_name("photo.png") is None


def test_a_saved_file_is_named_by_its_model_prompt_and_seed(history: History) -> None:
    entry = history.save(result(42, "A red fox in the snow"), "text-to-image")
    assert entry.path.name.endswith(f"-flux2-pro-red-fox-in-snow-s42-{entry.id[-8:]}.png")
    assert entry.path.name.startswith(entry.id[:15]) and id_of_name(entry.path.name) == entry.id
