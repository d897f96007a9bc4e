"""The web edge (flux_ui/ui/edge.py) against a launched app: from the outputs folder only files
flux-ui wrote are served, the outputs folder is never a system folder or the app's own, and uploads
and long-lived connections are bounded per address and in total, so one caller cannot fill the disk
or hold every file descriptor. Every client here is on loopback: 127.0.0.1, .2, .3, ... (Linux
routes all of 127/8 to the loopback interface, so each is a distinct address to the server).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gradio.utils import get_upload_folder
from PIL import Image

from app_fixtures import AppUnderTest, raw_get, running_app
from conftest import REPO, solid_image
from flux_ui.settings import SettingsError, load_settings
from flux_ui.ui import edge
from flux_ui.ui.edge import MB, StreamLimits, UploadLimits, stream_budget, written_files

PASSWORD = f"edge-{secrets.token_hex(8)}"
USERS = {"FLUX_UI_USERS": f"alice:{PASSWORD},bob:{PASSWORD}-b"}
SECRET = f"planted-{secrets.token_hex(6)}"  # in every planted file: it must never come back


@contextlib.contextmanager
def launched(outputs: Path, uploads: UploadLimits | None = None, streams: StreamLimits | None = None,
             login: bool = True, **edge_settings: float) -> Iterator[AppUnderTest]:
    """flux-ui launched with the edge's limits shrunk for one test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(edge, "UPLOAD_LIMITS", uploads or edge.UPLOAD_LIMITS)
        patch.setattr(edge, "STREAM_LIMITS", streams or edge.STREAM_LIMITS)
        for name, value in edge_settings.items():
            patch.setattr(edge, name, value)
        with running_app(outputs, env=USERS if login else {}) as app:
            yield app


@contextlib.contextmanager
def client(app: AppUnderTest, address: str = "127.0.0.1", user: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client whose connections leave from ``address``, signed in as ``user`` if given."""
    with httpx.Client(base_url=app.url, timeout=10, limits=httpx.Limits(max_connections=64),
                      transport=httpx.HTTPTransport(local_address=address)) as session:
        if user is not None:
            password = PASSWORD if user == "alice" else f"{PASSWORD}-b"
            assert session.post("/login", data={"username": user, "password": password}).status_code == 200
        yield session


def generate(session: httpx.Client, prompt: str) -> str:
    """The two-step call API: the SSE answer of /generate, every other input at its default."""
    parameters = session.get("/gradio_api/info").json()["named_endpoints"]["/generate"]["parameters"]
    values = {"prompt": prompt, "width": 256, "height": 256}
    posted = session.post("/gradio_api/call/generate", json={"data": [
        values.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]})
    assert posted.status_code == 200, posted.text
    return session.get(f"/gradio_api/call/generate/{posted.json()['event_id']}").text


# --- files: only what flux-ui wrote ----------------------------------------------------------------


@dataclass
class Gated:
    app: AppUnderTest
    session: httpx.Client  # alice, signed in
    saved: Path  # an image History saved
    alias: Path  # a symlink to the outputs folder, from beside it


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated]:
    root = tmp_path_factory.mktemp("edge-files")
    outputs = root / "outputs"
    with launched(outputs) as app, client(app, user="alice") as session:
        assert "event: complete" in generate(session, "a heron the edge serves")
        saved = app.runtime.history.list()[0].path
        plant(outputs, root, saved.parent.name)
        (root / "alias").symlink_to(outputs)
        yield Gated(app, session, saved, root / "alias")


def plant(outputs: Path, root: Path, day: str) -> None:
    """What an attacker, a careless copy or another program leaves in the outputs folder."""
    (outputs / "tally.sqlite3").write_bytes(b"SQLite format 3\0" + SECRET.encode())
    (outputs / ".env.bak").write_text(f"AZURE_API_KEY={SECRET}\n")
    (outputs / ".env.production").write_text(f"AZURE_API_KEY={SECRET}\n")
    (outputs / ".git").mkdir()
    (outputs / ".git" / "config").write_text(f"[remote]\n\turl = https://x:{SECRET}@github.com/x/y\n")
    Image.new("RGB", (8, 8)).save(outputs / "x.png", pnginfo=_text_chunk(SECRET))
    Image.new("RGB", (8, 8)).save(outputs / day / "20260101-000000-deadbeef.png", pnginfo=_text_chunk(SECRET))
    (root / "secret.env").write_text(f"AZURE_API_KEY={SECRET}\n")
    (outputs / "link.png").symlink_to(outputs / "tally.sqlite3")
    (outputs / "outside.png").symlink_to(root / "secret.env")
    (outputs / "passwd.png").symlink_to("/etc/passwd")


def _text_chunk(text: str) -> object:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("planted", text)
    return info


PLANTED = [
    "/gradio_api/file={outputs}/tally.sqlite3",
    "/gradio_api/file={outputs}/.env.bak",
    "/gradio_api/file={outputs}/.env.production",
    "/gradio_api/file={outputs}/.git/config",
    "/gradio_api/file={outputs}/x.png",  # an image, but not one History saved
    "/gradio_api/file={outputs}/{day}/20260101-000000-deadbeef.png",  # named like one, not in the index
    "/gradio_api/file={outputs}/link.png",  # symlinks: to a planted file, out of the folder, to /etc
    "/gradio_api/file={outputs}/outside.png",
    "/gradio_api/file={outputs}/passwd.png",
    "/gradio_api/file={outputs}/history.sqlite3",
    "/gradio_api/file={outputs}//tally.sqlite3",  # spellings: double slashes, '.', '..', escapes
    "/gradio_api/file={outputs}/./.git/config",
    "/gradio_api/file={outputs}/{day}/../.env.bak",
    "/gradio_api/file={outputs}/{day}/%2e%2e/.env.bak",
    "/gradio_api/file={outputs}/tally%2Esqlite3",
    "/gradio_api/file={outputs}%2F.git%2Fconfig",
    "/gradio_api/file={relative}/.env.bak",  # relative to the working directory
    "/gradio_api/file={alias}/.env.bak",  # the folder reached through a symlink beside it
    "/gradio_api/file={alias}/x.png",
    "/gradio_api/file/{outputs}/.env.bak",  # the deprecated spelling
    "/gradio_api/file/{outputs}/tally.sqlite3",
]


@pytest.mark.parametrize("target", PLANTED)
def test_files_flux_ui_did_not_write_are_not_served_from_the_outputs_folder(gated: Gated, target: str) -> None:
    outputs = gated.app.outputs
    target = target.format(outputs=outputs, alias=gated.alias, day=gated.saved.parent.name,
                           relative=os.path.relpath(outputs, Path.cwd()))
    status, body = raw_get(gated.app, target, gated.session.cookies)
    assert status == 404, (status, body[:200])
    assert SECRET.encode() not in body and b"SQLite format" not in body and b"root:" not in body


def test_only_the_images_history_saved_and_the_files_flux_ui_registers_are_served(gated: Gated) -> None:
    """History's images, however spelled; and what else flux-ui writes, through the registry the
    images share (contact sheets, exports): unknown until registered."""
    saved, day = gated.saved, gated.saved.parent.name
    for spelling in (f"{saved}", f"{gated.alias}/{day}/{saved.name}", f"{gated.app.outputs}//{day}/./{saved.name}"):
        status, body = raw_get(gated.app, f"/gradio_api/file={spelling}", gated.session.cookies)
        assert status == 200 and body == saved.read_bytes(), spelling
    assert raw_get(gated.app, f"/gradio_api/file={saved}")[0] == 401  # and still only with a session
    sheet = gated.app.outputs / "exports" / f"sheet-{secrets.token_hex(4)}.png"
    sheet.parent.mkdir(exist_ok=True)
    sheet.write_bytes(solid_image(size=(64, 48)))
    assert raw_get(gated.app, f"/gradio_api/file={sheet}", gated.session.cookies)[0] == 404
    written_files(gated.app.outputs).add(sheet)
    assert raw_get(gated.app, f"/gradio_api/file={sheet}", gated.session.cookies) == (200, sheet.read_bytes())


# --- the outputs folder itself ---------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["/tmp", "/tmp/", "/etc", "/var", "/usr", "/bin", "/sbin", "/lib", "/lib64",
                                    "/opt", "/proc", "/proc/self", "/sys", "/dev", "/dev/shm", "/boot", "/srv",
                                    str(REPO), str(REPO / "."), str(REPO.parent), "/private/tmp"])
def test_a_system_folder_or_the_apps_own_is_refused_as_the_outputs_folder(folder: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"FLUX_OUTPUT_DIR": folder}, dotenv_path=None)
    message = str(refused.value)
    assert "FLUX_OUTPUT_DIR=" in message and "folder of its own" in message and "for example" in message
    for own in ("/tmp/flux-outputs", "/srv/flux", "/var/lib/flux-ui", str(REPO / "outputs"), "outputs"):
        assert load_settings({"FLUX_OUTPUT_DIR": own}, dotenv_path=None).output_dir == Path(own)


# --- uploads ---------------------------------------------------------------------------------------


def upload(session: httpx.Client, content: bytes, name: str = "ref.png") -> httpx.Response:
    return session.post("/gradio_api/upload", files={"files": (name, content)})


def in_upload_folder(content: bytes) -> list[Path]:
    return [p for p in Path(get_upload_folder()).rglob("*")
            if p.is_file() and p.stat().st_size == len(content) and p.read_bytes() == content]


def unique(size: int) -> bytes:
    return secrets.token_bytes(32) + b"\0" * (size - 32)


def test_a_burst_of_uploads_from_one_client_is_refused_while_another_still_uploads(tmp_path: Path,
                                                                                  caplog: pytest.LogCaptureFixture
                                                                                  ) -> None:
    caplog.set_level(logging.WARNING, logger="flux_ui.edge")
    limits = UploadLimits(per_client_bytes=3 * MB + MB // 2, per_client_files=20, total_bytes=64 * MB)
    with launched(tmp_path / "outputs", uploads=limits) as app, client(app, user="alice") as alice, \
            client(app, "127.0.0.2", user="bob") as bob:
        burst = [unique(MB) for _ in range(6)]
        answers = [upload(alice, content) for content in burst]
        assert [a.status_code for a in answers] == [200] * 3 + [429] * 3
        refused = answers[3]
        assert "Too many uploads from this address" in refused.json()["detail"] and "3 MB" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert all(in_upload_folder(c) == [] for c in burst[3:])  # nothing refused reached the disk
        assert upload(bob, unique(MB)).status_code == 200  # another address still uploads
        with client(app, "127.0.0.3", user="bob") as third:
            one_too_big = upload(third, unique(4 * MB))
        assert one_too_big.status_code == 413 and "at most 3 MB" in one_too_big.json()["detail"]
    flood = [r for r in caplog.records if "refused uploads from 127.0.0.1" in r.getMessage()]
    assert len(flood) == 1


def multipart(boundary: str, files: list[bytes]) -> Iterator[bytes]:
    """A multipart body in 64 KiB chunks and without a length: httpx sends it chunked."""
    for i, content in enumerate(files):
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="f{i}.png"\r\n'
               "Content-Type: image/png\r\n\r\n").encode()
        for start in range(0, len(content), 64 * 1024):
            yield content[start:start + 64 * 1024]
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def test_uploads_are_counted_as_they_stream(tmp_path: Path) -> None:
    limits = UploadLimits(per_client_bytes=2 * MB, per_client_files=5, total_bytes=64 * MB)
    boundary = secrets.token_hex(8)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with launched(tmp_path / "outputs", uploads=limits) as app, client(app, user="alice") as alice, \
            client(app, "127.0.0.2", user="alice") as again:
        # The upload folder is the whole test run's: only what these uploads leave behind counts.
        earlier = set(Path(get_upload_folder()).glob("tmp*"))
        big = unique(5 * MB)  # no Content-Length: only counting the bytes as they arrive can stop it
        chunked = alice.post("/gradio_api/upload", content=multipart(boundary, [big]), headers=headers)
        assert chunked.status_code == 429 and "at most 2 MB" in chunked.json()["detail"]
        tiny = [unique(64) for _ in range(12)]  # many files in one request: counted one by one
        many = again.post("/gradio_api/upload", content=multipart(boundary, tiny), headers=headers)
        assert many.status_code == 429 and "5 files" in many.json()["detail"]
        assert in_upload_folder(big) == [] and all(in_upload_folder(c) == [] for c in tiny)
        assert set(Path(get_upload_folder()).glob("tmp*")) <= earlier  # no partial file left behind


def test_the_upload_space_has_a_total_cap(tmp_path: Path) -> None:
    limits = UploadLimits(per_client_bytes=4 * MB, per_client_files=20, total_bytes=5 * MB + MB // 2)
    with launched(tmp_path / "outputs", uploads=limits) as app, contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(client(app, f"127.0.0.{n}", user="alice")) for n in (2, 3, 4)]
        assert [upload(sessions[0], unique(MB)).status_code for _ in range(2)] == [200, 200]
        assert [upload(sessions[1], unique(MB)).status_code for _ in range(3)] == [200, 200, 200]
        full = upload(sessions[2], unique(MB))  # a fresh address, within its own bound, but the space is full
        assert full.status_code == 429 and "upload space is full" in full.json()["detail"]


def test_uploads_are_deleted_soon_after_they_arrive(tmp_path: Path) -> None:
    with launched(tmp_path / "outputs", UPLOAD_TTL_S=1.0, SWEEP_EVERY_S=0.3) as app, client(app, user="alice") as alice:
        answer = upload(alice, unique(1000))
        path = Path(answer.json()[0])
        assert answer.status_code == 200 and path.is_file()
        deadline = time.monotonic() + 8
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not path.exists()


# --- long-lived connections ------------------------------------------------------------------------


def hold_heartbeats(stack: contextlib.ExitStack, session: httpx.Client, count: int) -> list[int]:
    """Open ``count`` heartbeat streams and keep the accepted ones open; their statuses."""
    statuses = []
    for _ in range(count):
        response = stack.enter_context(session.stream("GET", f"/gradio_api/heartbeat/{secrets.token_hex(8)}"))
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert response.headers.get("connection") == "close"  # its descriptor is freed at once
            response.read()
            response.close()
    return statuses


def test_a_stranger_holding_heartbeats_cannot_lock_out_the_others(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flux_ui.edge")
    streams = StreamLimits(per_address=8, total=40)
    with launched(tmp_path / "outputs", streams=streams) as app, contextlib.ExitStack() as stack:
        stranger = stack.enter_context(client(app))
        started = time.monotonic()
        statuses = hold_heartbeats(stack, stranger, 30)
        assert statuses == [200] * 8 + [429] * 22 and time.monotonic() - started < 10
        other = stack.enter_context(client(app, "127.0.0.2"))
        assert hold_heartbeats(stack, other, 1) == [200]  # a second address still connects
        bob = stack.enter_context(client(app, "127.0.0.3", user="bob"))
        assert "event: complete" in generate(bob, "a kite while a stranger floods")  # and generates
        alice = stack.enter_context(client(app, user="alice"))  # the flood's own address, signed in
        assert hold_heartbeats(stack, alice, 10) == [200] * 10
        assert "event: complete" in generate(alice, "a heron while a stranger floods")
    flood = [r for r in caplog.records if "refused long-lived connections from 127.0.0.1" in r.getMessage()]
    assert len(flood) == 1, [r.getMessage() for r in flood]


def test_the_total_of_strangers_connections_is_capped(tmp_path: Path) -> None:
    with launched(tmp_path / "outputs", streams=StreamLimits(per_address=4, total=10)) as app, \
            contextlib.ExitStack() as stack:
        held = [hold_heartbeats(stack, stack.enter_context(client(app, f"127.0.0.{n}")), 4) for n in (2, 3)]
        assert held == [[200] * 4, [200] * 4]
        third = stack.enter_context(client(app, "127.0.0.4"))
        assert hold_heartbeats(stack, third, 3) == [200, 200, 429]  # its own bound not reached: the total is
        refused = third.get(f"/gradio_api/heartbeat/{secrets.token_hex(8)}")
        assert "the most flux-ui keeps for them" in refused.json()["detail"]
        alice = stack.enter_context(client(app, "127.0.0.4", user="alice"))
        assert hold_heartbeats(stack, alice, 2) == [200, 200]  # signed-in people are not counted


def test_without_a_login_this_machines_own_callers_share_only_the_total(tmp_path: Path) -> None:
    """Loopback only, no login: every caller is the owner's (tabs, scripts, load tests)."""
    with launched(tmp_path / "outputs", streams=StreamLimits(per_address=4, total=12), login=False) as app, \
            contextlib.ExitStack() as stack:
        assert hold_heartbeats(stack, stack.enter_context(client(app)), 14) == [200] * 12 + [429] * 2


def test_the_total_is_a_quarter_of_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    for soft, expected in ((1024, 256), (256, 64), (40, 16), (1 << 20, 1024), (resource.RLIM_INFINITY, 1024)):
        monkeypatch.setattr(resource, "getrlimit", lambda _, soft=soft: (soft, resource.RLIM_INFINITY))
        assert stream_budget() == expected
