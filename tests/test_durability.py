"""Durability: SIGKILL in the middle of generations loses no saved image and lists no partial one.

History is killed in a child process at exact points of a save (half-way through the temporary
file; after the rename, before the index) and at random moments of a save loop; then the real
app (``python app.py``) is killed while generations are in flight and restarted on its folder.
After each kill the database must open, list every image whose save returned, and list only
whole files that decode and carry their settings.

Run as a script, this module is the child: ``python tests/test_durability.py FOLDER MODE FIRST_INDEX``.
"""

from __future__ import annotations

import io
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from flux_ui import durable
from flux_ui.client.core import GenerationResult, Timings
from flux_ui.emulator import Fault
from flux_ui.history import STALE_TEMP_S, Entry, History
from flux_ui.history_names import id_of_name
from flux_ui.images import inspect_image, read_metadata
from flux_ui.registry import Route

REPO = Path(__file__).resolve().parents[1]
#: The save the exact-point modes stop in; the ones before it must survive.
STOP_AT = 4
APP_START_S = 120.0  # gradio's import alone takes ~8 s on a busy 2-core machine


# --- the child: saves images and says so, line by line ------------------------------------------

def noise_png(seed: int, side: int = 256) -> bytes:
    """An incompressible PNG, so writing it takes long enough for a kill to land inside a save."""
    pixels = random.Random(seed).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, "PNG", compress_level=0)
    return out.getvalue()


def fake_result(index: int, image: bytes) -> GenerationResult:
    prompt = f"durability drill image {index}"
    info = inspect_image(image)
    return GenerationResult(
        image=image, info=info, model="FLUX.2-pro", deployment="FLUX.2-pro", route=Route.BFL, prompt=prompt,
        seed=index, params={"seed": index, "width": info.width, "height": info.height},
        params_sent={"prompt": prompt, "seed": index, "width": info.width, "height": info.height},
        references=(), adjustments=(), warnings=(), service_cost=None, cost_estimate_usd=None, input_mp=None,
        output_mp=None, revised_prompt=None, attempts=1, timings=Timings())


class _TornFile:
    """A file whose first write stops half-way and then hangs, as a save does when the kill lands."""

    def __init__(self, raw: io.BufferedWriter, path: str) -> None:
        self._raw, self._path = raw, path

    def __enter__(self) -> _TornFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def write(self, data: bytes) -> int:
        self._raw.write(data[: len(data) // 2])
        self._raw.flush()
        print(f"STOPPED {self._path}", flush=True)
        time.sleep(3600)
        return len(data)


def arm(mode: str, saves: list[int]) -> None:
    """Make save number STOP_AT hang at the point ``mode`` names (the parent then kills us)."""
    if mode == "torn":
        def torn_open(path: str, *args: object, **kwargs: object) -> object:
            raw = open(path, *args, **kwargs)  # noqa: SIM115 - handed to the wrapper, closed by it
            return _TornFile(raw, str(path)) if len(saves) == STOP_AT else raw

        durable.open = torn_open  # type: ignore[attr-defined]  # shadows the builtin in durable.py
    elif mode == "unindexed":
        write_whole = durable.write_whole

        def write_then_hang(path: Path, data: bytes) -> None:
            write_whole(path, data)
            if len(saves) == STOP_AT:
                print(f"STOPPED {path}", flush=True)
                time.sleep(3600)

        durable.write_whole = write_then_hang  # type: ignore[assignment]


def hang(what: str) -> None:
    print(f"STOPPED {what}", flush=True)
    time.sleep(3600)


def delete_child(folder: str, point: str) -> None:
    """Save three images (each with a shared and an own input), then delete the second, hanging at ``point``."""
    from flux_ui import history_recovery

    history = History(Path(folder))
    shared = noise_png(100, 32)
    entries = [history.save(fake_result(i, noise_png(i)), "edit", inputs=[shared, noise_png(200 + i, 32)])
               for i in range(3)]
    for entry in entries:
        print(f"SAVED {entry.id}", flush=True)
    remove, unused = durable.remove_durably, history_recovery.history_inputs.remove_unused

    def remove_at(path: Path) -> None:
        if point == "buried":  # the tombstone and the row's removal are committed, the file not yet removed
            hang(str(path))
        remove(path)
        if point == "unlinked":  # the file is gone, its inputs and the tombstone not yet
            hang(str(path))

    def unused_at(*args: object) -> list[str]:
        removed = unused(*args)  # type: ignore[arg-type]
        hang("inputs")  # the unshared input is gone, the transaction that drops the tombstone not committed
        return removed

    durable.remove_durably = remove_at  # type: ignore[assignment]
    if point == "inputs":
        history_recovery.history_inputs.remove_unused = unused_at  # type: ignore[assignment]
    print(f"DELETING {entries[1].id}", flush=True)
    history.delete(entries[1].id)


def child(folder: str, mode: str, first: int) -> None:
    if mode.startswith("delete-"):
        delete_child(folder, mode.removeprefix("delete-"))
        return
    history = History(Path(folder))
    images = [noise_png(seed) for seed in range(3)]
    saves: list[int] = []
    arm(mode, saves)
    for index in range(first, first + 100_000):
        entry = history.save(fake_result(index, images[index % 3]), "text-to-image")
        saves.append(index)
        print(f"SAVED {entry.id}", flush=True)


# --- the parent: runs the child, kills it, reopens the folder ---------------------------------------

class Writer:
    """The child process and the lines it has printed so far."""

    def __init__(self, folder: Path, mode: str, first: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, __file__, str(folder), mode, str(first)], env=env,
                                     stdout=subprocess.PIPE, text=True)
        self.saved: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())

    def wait_for(self, prefix: str, deadline_s: float = 20.0) -> str:
        """The first line starting with ``prefix``; SAVED lines on the way are recorded."""
        end = time.monotonic() + deadline_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the writer did not print {prefix!r} within {deadline_s} s (exit {self.proc.poll()})")
            if line.startswith("SAVED "):
                self.saved.append(line.removeprefix("SAVED "))
            if line.startswith(prefix):
                return line

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # a failed test must not leave the writer filling the disk
            self.kill()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)  # the pipe ends with the child: every line it printed is read
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        while not self._lines.empty():
            line = self._lines.get()
            if line.startswith("SAVED "):
                self.saved.append(line.removeprefix("SAVED "))


def assert_whole(entry: Entry) -> None:
    """The listed file is a final (not temporary) file that decodes and carries its settings."""
    assert not entry.path.name.startswith(".") and not entry.path.name.endswith(".tmp"), entry.path
    data = entry.path.read_bytes()
    inspect_image(data)  # ValueError on a truncated file
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.size == (entry.width, entry.height)
    meta = read_metadata(data)
    assert meta is not None and meta["prompt"] == entry.prompt and meta["seed"] == entry.seed


def reopen(folder: Path, saved: list[str]) -> list[Entry]:
    """Open the folder as a restarted app does and check every listed entry; returns them."""
    history = History(folder)
    try:
        entries = history.list(limit=1_000_000)
    finally:
        history.close()
    listed = [e.id for e in entries]
    assert len(listed) == len(set(listed))
    assert set(saved) <= set(listed), f"saved before the kill but not listed: {set(saved) - set(listed)}"
    for entry in entries:
        assert_whole(entry)
    return entries


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def test_a_kill_half_way_through_the_file_leaves_only_an_unlisted_temporary(tmp_path: Path) -> None:
    with Writer(tmp_path, "torn") as writer:
        torn = Path(writer.wait_for("STOPPED ").removeprefix("STOPPED "))
        writer.kill()
    assert len(writer.saved) == STOP_AT
    assert torn in temp_files(tmp_path) and torn.stat().st_size > 0
    with pytest.raises(ValueError):
        inspect_image(torn.read_bytes())  # the kill did land half-way through the file
    entries = reopen(tmp_path, writer.saved)
    assert [e.id for e in reversed(entries)] == writer.saved  # the torn save is not listed
    assert torn.exists()  # a fresh temporary may be another flux-ui's save in progress: left alone
    os.utime(torn, (time.time() - STALE_TEMP_S - 1,) * 2)  # an old leftover is swept when the folder opens
    reopen(tmp_path, writer.saved)
    assert temp_files(tmp_path) == []


def test_an_image_renamed_into_place_but_not_indexed_is_indexed_on_restart(tmp_path: Path) -> None:
    with Writer(tmp_path, "unindexed") as writer:
        placed = Path(writer.wait_for("STOPPED ").removeprefix("STOPPED "))
        writer.kill()
    assert len(writer.saved) == STOP_AT and placed.exists()
    entries = reopen(tmp_path, writer.saved)
    recovered = {e.path: e for e in entries}.get(placed)
    assert recovered is not None, "the whole image the kill left unindexed is not listed"
    assert recovered.id == id_of_name(placed.name) and recovered.prompt == f"durability drill image {STOP_AT}"
    assert placed.name.startswith(recovered.id[:16] + "flux2-pro-durability-drill-image-4-s4-")
    assert recovered.settings["seed"] == STOP_AT and recovered.settings["tab"] == "text-to-image"
    assert len(entries) == STOP_AT + 1


def test_kills_at_random_moments_of_a_save_loop(tmp_path: Path) -> None:
    rng = random.Random(6)
    saved: list[str] = []
    for round_ in range(3):  # each round continues in the folder the last kill left
        with Writer(tmp_path, "loop", first=round_ * 1000) as writer:
            writer.wait_for("SAVED ")
            time.sleep(rng.uniform(0.0, 0.15))  # not synchronisation: the kill should land at an arbitrary point
            writer.kill()
        saved += writer.saved
        entries = reopen(tmp_path, saved)
        assert len(entries) - len(saved) <= round_ + 1  # at most the save in progress at each kill
    assert len(saved) >= 3


@pytest.mark.parametrize("point", ["buried", "unlinked", "inputs"])
def test_a_delete_killed_at_any_step_never_brings_the_image_back(tmp_path: Path, point: str) -> None:
    with Writer(tmp_path, f"delete-{point}") as writer:
        doomed = writer.wait_for("DELETING ").removeprefix("DELETING ")
        writer.wait_for("STOPPED ")
        writer.kill()
    kept = [i for i in writer.saved if i != doomed]
    assert len(writer.saved) == 3 and doomed in writer.saved
    on_disk = sorted(p.name for p in tmp_path.glob("*/*.png"))
    assert len(on_disk) == (3 if point == "buried" else 2)  # the kill did land before / after the unlink
    for _ in range(2):  # the first start finishes the delete; the next changes nothing
        entries = reopen(tmp_path, kept)
        assert [e.id for e in entries] == list(reversed(kept))  # not resurrected, nothing listed missing
        assert len(list(tmp_path.glob("*/*.png"))) == 2
        stored = sorted(p for p in (tmp_path / "inputs").rglob("*.png"))
        assert len(stored) == 3  # the shared input and the two kept images' own; the deleted one's is gone
        assert {p for e in entries for p in e.inputs} == set(stored)


# --- the real app, killed while generations are in flight ------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Service:
    """An emulator in a process of its own, for the app to use as its Foundry endpoint.

    Not in this process: requests the killed app left waiting in it would otherwise be cut off
    (with tracebacks) when it stops; this one is simply killed too.
    """

    base_url: str
    api_key: str

    def set_faults(self, key: str, faults: list[Fault]) -> None:
        httpx.put(f"{self.base_url}/_emulator/faults/{key}", json=[f.to_json() for f in faults]).raise_for_status()


@pytest.fixture
def service() -> Iterator[Service]:
    proc = subprocess.Popen([sys.executable, "-m", "flux_ui.emulator", "--port", "0", "--no-quotas"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        printed: dict[str, str] = {}
        for line in proc.stdout:  # NAME=value lines, then a comment once it serves
            if line.startswith("#"):
                break
            name, _, value = line.strip().partition("=")
            printed[name] = value
        yield Service(printed["AZURE_ENDPOINT"], printed["AZURE_API_KEY"])
    finally:
        proc.kill()
        proc.wait(timeout=10)


def start_app(tmp_path: Path, outputs: Path, emulator: Service) -> tuple[subprocess.Popen[bytes], str]:
    """``python app.py`` from a scratch folder, pointed at the emulator like at a Foundry resource."""
    port = free_port()
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch),
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
        "FLUX_OUTPUT_DIR": str(outputs), "AZURE_ENDPOINT": emulator.base_url, "AZURE_API_KEY": emulator.api_key,
        "FLUX_DEPLOYMENTS": "FLUX.2-pro:1000/1s,FLUX.2-flex:1000/1s",
    }
    log = open(tmp_path / "app.log", "wb")  # noqa: SIM115 - the child holds it; closed below
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port)], cwd=scratch, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + APP_START_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{(tmp_path / 'app.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/gradio_api/info", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"app.py did not serve within {APP_START_S:g} s")


def test_app_killed_mid_generation_keeps_what_it_saved(tmp_path: Path, service: Service) -> None:
    from gradio_client import Client  # imported here, not at the top: the writer child runs this file

    from app_fixtures import running_app

    outputs = tmp_path / "outputs"
    # FLUX.2-pro answers at once; FLUX.2-flex not before the kill, so those are in flight when it lands.
    service.set_faults("FLUX.2-pro", [Fault("latency", seconds=0.1)])
    service.set_faults("FLUX.2-flex", [Fault("latency", seconds=60)])
    proc, url = start_app(tmp_path, outputs, service)
    client: Client | None = None
    try:
        client = Client(url, verbose=False)
        size = {"width": 256, "height": 256, "randomize_seed": False}
        slow = [client.submit(model="FLUX.2-flex", prompt=f"in flight {i}", seed=i, **size, api_name="/generate")
                for i in range(3)]
        fast = [client.submit(model="FLUX.2-pro", prompt=f"saved {i}", seed=i, **size, api_name="/generate")
                for i in range(4)]
        shown = {f"saved {i}": Path(job.result(timeout=60)[0]).read_bytes() for i, job in enumerate(fast)}
        assert not any(job.done() for job in slow)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if client is not None:
            client.close()

    with running_app(outputs) as app:  # the restart: a fresh app on the same folder
        client = Client(app.url, verbose=False)
        entries, files = client.predict(limit=50, api_name="/history")
        by_prompt = {e["prompt"]: Path(f) for e, f in zip(entries, files, strict=True)}
        assert set(by_prompt) == set(shown)  # every saved image, and nothing from the requests in flight
        for prompt, data in shown.items():
            assert by_prompt[prompt].read_bytes() == data  # the same bytes the person was shown
        for entry in app.runtime.history.list():
            assert_whole(entry)
        path, _, message, _ = client.predict(model="FLUX.2-pro", prompt="after restart", api_name="/generate")
        assert message == "" and Path(path).exists()
        assert len(app.runtime.history.list()) == len(shown) + 1


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
