"""History's files in Azure Blob Storage, against Azurite (the real emulator, no mocks of the SDK): stored
before ``save`` returns, fetched by a replica that lists them, references stored once by content, deletes
that remove the blob, an outage that fails the save as a full disk does (the key never said), the
container made at start, Entra ID for an account URL, and nothing of Azure loaded without Blob settings."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import ContainerClient
from test_history_store import png, result

from conftest import REPO, foundry_env
from flux_ui import durable
from flux_ui.blob_store import BlobStore, BlobStoreError, FileStore, container_client, files_for, open_files
from flux_ui.client import FoundryClient
from flux_ui.database import open_database
from flux_ui.errors import NotSavedError
from flux_ui.history import History, knows_file
from flux_ui.runtime import Runtime
from flux_ui.settings import load_settings
from flux_ui.settings_shared import SharedSettings, load_shared, redact
from flux_ui.ui import handlers
from flux_ui.ui.downloads import save_sheet_and_archive
from flux_ui.ui.edge.files import FileGate


def shared_of(env: dict[str, str]) -> SharedSettings:
    problems: list[str] = []
    shared = load_shared(env, problems)
    assert problems == [] and shared.uses_blob
    return shared


def blob_bytes(container: ContainerClient, name: str) -> bytes:
    return container.download_blob(name).readall()


def names_in(container: ContainerClient) -> set[str]:
    return set(container.list_blob_names())


def account_key(env: dict[str, str]) -> str:
    return dict(p.split("=", 1) for p in env["AZURE_STORAGE_CONNECTION_STRING"].split(";") if "=" in p)["AccountKey"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with ends: nothing listens there


@pytest.fixture
def replica(tmp_path: Path, blob_env: dict[str, str]) -> Iterator[History]:
    """One replica: its own outputs folder, the test's container."""
    store = open_files(shared_of(blob_env), tmp_path / "a")
    history = History(tmp_path / "a", files=store)
    yield history
    history.close()
    store.close()


def test_a_saved_image_is_in_blob_storage_before_save_returns(replica: History) -> None:
    assert isinstance(replica.files, BlobStore)
    entry = replica.save(result(1), "text-to-image")
    name = entry.path.relative_to(replica.folder).as_posix()
    assert name.startswith(time.strftime("%Y-%m-%d")) and "/" in name  # its path in the outputs folder, posix
    container = replica.files.container
    assert blob_bytes(container, name) == entry.path.read_bytes()
    props = container.get_blob_client(name).get_blob_properties()
    assert props.content_settings.content_type == "image/png"
    assert dict(props.metadata) == {"written_by": "flux_ui"}  # no prompt in the blob's metadata
    assert not container.get_container_properties().public_access  # never a public container


def test_another_replica_lists_and_opens_an_image_made_on_the_first(tmp_path: Path, blob_env: dict[str, str],
                                                                     postgres_url: str) -> None:
    """Two replicas, each with its own outputs folder, sharing the index (PostgreSQL) and the container."""
    shared = shared_of(blob_env)
    database = open_database(postgres_url, tmp_path)
    stores = [open_files(shared, tmp_path / name) for name in ("a", "b")]
    first, other = (History(tmp_path / name, database, files=store) for name, store in zip("ab", stores, strict=True))
    try:
        made = first.save(result(2), "edit", inputs=[png(7)])
        relative = made.path.relative_to(first.folder)
        assert not (other.folder / relative).exists()
        [listed] = other.list()
        assert listed.path == other.folder / relative and listed.path.read_bytes() == made.path.read_bytes()
        assert [p.read_bytes() for p in listed.inputs] == [png(7)]  # its stored reference came along
        assert knows_file(other.folder, relative.as_posix(), database)  # what the file gate asks
        (other.folder / relative).unlink()  # a restarted container lost its cache: a link to it still opens
        opened = other.get(made.id)
        assert opened is not None and opened.path.read_bytes() == made.path.read_bytes()
        assert list(other.folder.rglob("*.tmp")) == []  # downloads land whole
        assert other.delete(made.id) is not None and first.list() == []
        assert names_in(stores[0].container) == set()  # deleted on one replica: gone for all
    finally:
        for history in (first, other):
            history.close()
        for store in stores:
            store.close()
        database.close()


def test_the_file_gate_serves_a_file_fetched_back_into_the_cache(replica: History) -> None:
    made = replica.save(result(21), "text-to-image")
    made.path.unlink()  # the cache lost it (a new container on the same index)
    gate = FileGate(replica.folder)
    assert gate.refuses(str(made.path))  # not there: nothing to serve
    [listed] = replica.list()
    assert listed.path == made.path and made.path.is_file()
    assert not gate.refuses(str(made.path))  # fetched back, whole: served
    assert gate.refuses(str(replica.folder / "2020-01-01" / "not-ours.png"))


def test_a_reference_is_stored_once_by_content_and_a_delete_removes_the_blobs(replica: History) -> None:
    fox, cat = png(11), png(12)
    first = replica.save(result(3), "edit", inputs=[fox, cat])
    second = replica.save(result(4), "edit", inputs=[cat])
    container = replica.files.container
    inputs = {n for n in names_in(container) if n.startswith("inputs/")}
    assert len(inputs) == 2 and {p.relative_to(replica.folder).as_posix() for p in first.inputs} == inputs
    assert replica.delete(first.id) is not None
    left = names_in(container)
    assert first.path.relative_to(replica.folder).as_posix() not in left
    assert {n for n in left if n.startswith("inputs/")} == {second.inputs[0].relative_to(replica.folder).as_posix()}
    replica.delete(second.id)
    assert names_in(container) == set()


def test_an_input_another_replica_removed_meanwhile_is_put_back_when_linked(replica: History) -> None:
    cat = png(13)
    first = replica.save(result(5), "edit", inputs=[cat])
    name = first.inputs[0].relative_to(replica.folder).as_posix()
    replica.files.container.delete_blob(name)  # as another replica's delete of its last user would
    second = replica.save(result(6), "edit", inputs=[cat])
    assert blob_bytes(replica.files.container, name) == cat and second.inputs == first.inputs


def unreachable(blob_env: dict[str, str]) -> dict[str, str]:
    """The same settings with the account on a port nothing listens on: Blob Storage gone away."""
    connection = blob_env["AZURE_STORAGE_CONNECTION_STRING"]
    port = connection.split("BlobEndpoint=http://127.0.0.1:")[1].split("/")[0]
    return {**blob_env, "AZURE_STORAGE_CONNECTION_STRING": connection.replace(f"127.0.0.1:{port}",
                                                                              f"127.0.0.1:{closed_port()}")}


def broken_client(blob_env: dict[str, str]) -> ContainerClient:
    return container_client(shared_of(unreachable(blob_env)))


def test_a_delete_during_an_outage_is_finished_at_the_next_start(replica: History, blob_env: dict[str, str]) -> None:
    assert isinstance(replica.files, BlobStore)
    good = replica.files.container
    made = replica.save(result(22), "text-to-image")
    name = made.path.relative_to(replica.folder).as_posix()
    replica.files.container = broken_client(blob_env)
    assert replica.delete(made.id) is not None and replica.list() == []  # gone from History at once
    assert name in names_in(good)  # its blob is left, with its tombstone
    replica.files.container = good
    History(replica.folder, files=replica.files).close()  # the next start finishes the delete
    assert name not in names_in(good) and replica.list() == []


def test_an_image_a_crash_left_unindexed_is_stored_before_it_is_listed(replica: History) -> None:
    assert isinstance(replica.files, BlobStore)
    made = replica.save(result(23), "text-to-image")
    data, name = made.path.read_bytes(), made.path.relative_to(replica.folder).as_posix()
    replica.delete(made.id)  # a file on disk that neither the index nor the container holds …
    durable.write_whole(made.path, data)  # … as a kill between the rename and the upload leaves it
    reopened = History(replica.folder, files=replica.files)
    try:
        assert [e.path for e in reopened.list()] == [made.path]
        assert blob_bytes(replica.files.container, name) == data
    finally:
        reopened.close()


def test_a_listing_during_an_outage_shows_missing_files_at_once(replica: History, blob_env: dict[str, str]) -> None:
    assert isinstance(replica.files, BlobStore)
    good = replica.files.container
    made = [replica.save(result(30 + i), "text-to-image") for i in range(12)]
    for entry in made:
        entry.path.unlink()  # a new container on the same index: an empty cache
    replica.files.container = broken_client(blob_env)
    started = time.monotonic()
    listed = replica.list()
    assert time.monotonic() - started < 8  # one round of retries, not twelve
    assert len(listed) == 12 and not any(e.path.is_file() for e in listed)  # listed, shown as missing
    replica.files.container = good
    replica.save(result(50), "text-to-image")  # it answers again, and so fetches go on at once
    assert all(e.path.is_file() for e in replica.list())


def test_a_blob_outage_fails_the_save_naming_the_container_never_the_key(
        tmp_path: Path, blob_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    key = account_key(blob_env)
    down = unreachable(blob_env)
    store = BlobStore(tmp_path / "out", broken_client(blob_env), redact(down["AZURE_STORAGE_CONNECTION_STRING"]))
    history = History(tmp_path / "out", files=store)
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    try:
        with pytest.raises(NotSavedError) as caught:
            history.save(result(7), "text-to-image", inputs=[png(8)])
        assert time.monotonic() - started < 10  # said within seconds, not the SDK's minutes of retries
        message = str(caught.value)
        assert caught.value.placed is None and "so it is not in History" in message
        assert repr(blob_env["FLUX_UI_BLOB_CONTAINER"]) in message and "devstoreaccount1" in message
        assert key not in message and key not in caplog.text
        assert history.list() == [] and list((tmp_path / "out").glob("20*/*")) == []  # nothing left to adopt
    finally:
        history.close()
        store.close()


async def test_an_image_blob_storage_refuses_stays_in_memory_as_on_a_full_disk(
        tmp_path: Path, blob_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    key = account_key(blob_env)
    caplog.set_level(logging.DEBUG)
    settings = load_settings(foundry_env(), dotenv_path=None)
    client = FoundryClient(settings, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    shared = shared_of(blob_env)
    store = open_files(shared, tmp_path / "outputs")
    runtime = Runtime(settings, client, History(tmp_path / "outputs", files=store))
    good = store.container
    assert isinstance(store, BlobStore)
    try:
        store.container = broken_client(blob_env)  # Blob Storage goes away
        shown = await handlers._keep(runtime, result(9), "text-to-image")
        assert not shown.saved and len(runtime.unsaved) == 1
        caption = handlers.caption(shown.result)
        assert "so it is not in History" in caption and "Download it now" in caption
        assert repr(blob_env["FLUX_UI_BLOB_CONTAINER"]) in caption and key not in caption and key not in caplog.text
        assert runtime.history.list() == []
        store.container = good  # it is back: the next save takes the held one along
        after = await handlers._keep(runtime, result(10), "text-to-image")
        assert after.saved and len(runtime.unsaved) == 0
        listed = runtime.history.list()
        assert sorted(e.seed for e in listed) == [9, 10]
        assert all(blob_bytes(good, e.path.relative_to(runtime.history.folder).as_posix()) == e.path.read_bytes()
                   for e in listed)
    finally:
        await runtime.aclose()
        store.close()


def test_the_container_is_made_at_start_when_missing(tmp_path: Path, blob_env: dict[str, str]) -> None:
    shared = shared_of(blob_env)
    probe = container_client(shared)
    assert not probe.exists()
    store = open_files(shared, tmp_path)
    assert probe.exists() and files_for(tmp_path) is store
    open_files(shared, tmp_path).close()  # a second replica starting finds it there
    probe.close()
    store.close()


def test_an_unreachable_account_at_start_says_what_to_check(tmp_path: Path, blob_env: dict[str, str]) -> None:
    with pytest.raises(BlobStoreError) as caught:
        open_files(shared_of(unreachable(blob_env)), tmp_path)
    assert "AZURE_STORAGE_CONNECTION_STRING" in str(caught.value) and account_key(blob_env) not in str(caught.value)


def test_a_contact_sheet_and_its_zip_are_stored_before_they_are_offered(replica: History) -> None:
    def archive(dest: Path) -> object:
        dest.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
        return type("Report", (), {"path": dest})()

    sheet, report = save_sheet_and_archive(replica.folder, "grid", "0123456789abcdef", png(20), archive)  # type: ignore[arg-type]
    container = replica.files.container
    assert blob_bytes(container, sheet.relative_to(replica.folder).as_posix()) == png(20)
    assert container.get_blob_client(report.path.relative_to(replica.folder).as_posix()).exists()


def test_an_account_url_signs_in_with_entra_id() -> None:
    from azure.identity import DefaultAzureCredential

    shared = shared_of({"AZURE_STORAGE_ACCOUNT_URL": "https://myaccount.blob.core.windows.net",
                        "FLUX_UI_BLOB_CONTAINER": "images"})
    client = container_client(shared)  # no request is made
    assert isinstance(client.credential, DefaultAzureCredential)
    assert client.url == "https://myaccount.blob.core.windows.net/images" and client.container_name == "images"


def test_without_blob_settings_the_files_stay_local_and_azure_is_never_loaded(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from flux_ui.blob_store import open_files, FileStore; "
            "from flux_ui.history import History; from flux_ui.settings_shared import SharedSettings; "
            f"folder = Path({str(tmp_path)!r}); s = open_files(SharedSettings(), folder); "
            "h = History(folder, files=s); "
            "print(type(s).__name__, type(h.files).__name__, any(m.startswith('azure') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["FileStore", "FileStore", "False"]
    assert type(open_files(SharedSettings(), tmp_path)) is FileStore


def test_an_outputs_folder_made_by_one_process_moves_to_the_shared_stores_at_first_start(
        tmp_path: Path, blob_env: dict[str, str], postgres_url: str) -> None:
    # Made as python app.py makes it: SQLite and local files, one image with a stored reference.
    alone = History(tmp_path / "a")
    saved = [alone.save(result(i), "edit", inputs=[png(50)] if i == 0 else ()) for i in range(3)]
    alone.close()
    database = open_database(postgres_url, tmp_path / "a")
    store = open_files(shared_of(blob_env), tmp_path / "a")
    try:
        moved = History(tmp_path / "a", database, store)  # the first start with the shared settings
        assert {e.id for e in moved.list()} == {e.id for e in saved}
        blobs = names_in(store.container)
        assert {e.path.relative_to(moved.folder).as_posix() for e in saved} <= blobs
        assert saved[0].inputs and saved[0].inputs[0].relative_to(moved.folder).as_posix() in blobs
        # Another replica, with an empty folder, opens them with their reference.
        other_store = open_files(shared_of(blob_env), tmp_path / "b")
        other = History(tmp_path / "b", database, other_store)
        [first] = [e for e in other.list() if e.id == saved[0].id]
        assert first.path.read_bytes() == saved[0].path.read_bytes()
        assert [p.read_bytes() for p in first.inputs] == [png(50)]
        other.close()
        moved.close()
    finally:
        database.close()
        store.close()
