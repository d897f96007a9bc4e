"""Two replicas on one PostgreSQL schema, each with an outputs folder of its own (the cache of files that
live in Blob Storage): what one saves the other lists, counts, finds, stars and deletes; starting one
never drops the other's rows because its own folder lacks their files; a delete done on one is never
undone by the other's cached copy (:mod:`flux_ui.history_recovery`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_history_store import png, result

from flux_ui.database import Database, open_database
from flux_ui.history import History, knows_file


@pytest.fixture
def shared(postgres_url: str, tmp_path: Path) -> Iterator[Database]:
    database = open_database(postgres_url, tmp_path)
    yield database
    database.close()


def test_an_image_saved_on_one_replica_is_everyones(shared: Database, tmp_path: Path) -> None:
    one = History(tmp_path / "one", shared)
    saved = one.save(result(1, "A Red Fox at dawn"), "edit", extra={"group": {"kind": "grid", "id": "g7"}},
                     inputs=[png(3)])
    other = History(tmp_path / "two", shared)  # starts after: its empty folder drops nothing
    assert [e.id for e in one.list()] == [e.id for e in other.list()] == [saved.id]
    assert other.count() == 1 and other.count(text="red FOX") == 1 and other.count(text="wolf") == 0
    assert [e.id for e in other.list(group="g7")] == [saved.id] and other.count(model="FLUX.2-pro") == 1
    listed = other.get(saved.id)
    assert listed is not None and listed.path == tmp_path / "two" / saved.path.relative_to(tmp_path / "one")
    assert listed.inputs[0].name == saved.inputs[0].name and listed.settings["group"]["id"] == "g7"
    (short,) = other.list(preview=5)  # cut by the database, in the entry and in its settings
    assert short.prompt == "A Red…" and short.settings["prompt"] == "A Red…" and short.settings["prompt_truncated"]
    assert other.list(preview=50)[0].settings["prompt"] == "A Red Fox at dawn"
    relative = saved.path.relative_to(tmp_path / "one").as_posix()
    assert knows_file(other.folder, relative, shared)  # the file gate asks the shared database
    assert not knows_file(other.folder, relative)  # (the folder's own SQLite file knows nothing of it)

    assert other.favourite(saved.id, True).favourite and one.count(favourites=True) == 1
    assert other.delete(saved.id).id == saved.id
    assert one.list() == [] and one.count() == 0 and not knows_file(one.folder, relative, shared)
    assert saved.path.exists()  # replica one's cached copy stays while it runs (nothing lists or serves it)
    one.close()
    History(tmp_path / "one", shared).close()  # its next start removes the copy, and does not index it again
    assert not saved.path.exists() and other.list() == []


def test_a_start_keeps_what_other_folders_hold_and_adopts_only_its_own(shared: Database, tmp_path: Path) -> None:
    one = History(tmp_path / "one", shared)
    kept = [one.save(result(i), "text-to-image") for i in range(3)]
    crashed = one.save(result(9), "text-to-image")
    with one._transaction() as db:  # as if one was killed between the rename and the index
        db.execute("DELETE FROM images WHERE id = ?", (crashed.id,))
    for _ in range(2):  # the other replica starting, and starting again
        History(tmp_path / "two", shared).close()
    assert sorted(e.id for e in one.list()) == sorted(e.id for e in kept)  # nothing dropped, nothing adopted
    again = History(tmp_path / "one", shared)  # the folder that holds the file adopts it
    assert again.get(crashed.id) is not None and again.count() == 4


def test_a_cached_copy_of_a_deleted_image_never_comes_back(shared: Database, tmp_path: Path) -> None:
    one = History(tmp_path / "one", shared)
    saved = one.save(result(1), "text-to-image")
    cached = tmp_path / "two" / saved.path.relative_to(tmp_path / "one")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(saved.path.read_bytes())  # replica two fetched it to show it
    one.delete(saved.id)  # finished: no tombstone pending
    assert one._read("SELECT COUNT(*) FROM deleted")[0][0] == 0
    two = History(tmp_path / "two", shared)  # its cache holds a whole, labelled, unindexed image
    assert two.list() == [] and not cached.exists()
