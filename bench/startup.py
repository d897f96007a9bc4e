"""Start-up and memory: ``python app.py`` as a person runs it, in a process of its own.

Start-up is the time from spawning ``python app.py`` to its page answering 200, against a
bare ``gr.Blocks`` app spawned and polled the same way in the same run: importing Gradio
dominates both, so the ratio shows what flux-ui's own start (emulator, client, UI) adds.

Memory is the app process's resident set after 10 generations and after 300, driven through
``gradio_client``. FLUX.1-schnell is used because its emulated endpoint has no quota, so 300
requests need no pacing (app.py cannot be given a shorter quota from outside). Growth beyond
a few MB would mean images are kept after they are saved.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import Row, median, ratio_row

NAME = "start-up and memory"
REPO = Path(__file__).resolve().parents[1]
BARE_APP = """\
import sys
import gradio as gr

with gr.Blocks() as demo:
    gr.Markdown("bare")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""
START_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def spawned(argv: list[str], port: int, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Spawn a web app and wait for its page; yields (process, seconds until it answered 200)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "FLUX_OUTPUT_DIR": str(workdir / "outputs"),
           "GRADIO_TEMP_DIR": str(workdir / "gradio")}
    start = time.perf_counter()
    # cwd is the scratch folder: no .env from the checkout, nothing written into it.
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited with {proc.returncode} before serving")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - start > START_TIMEOUT_S:
                raise RuntimeError(f"{argv} did not serve within {START_TIMEOUT_S:g} s")
            time.sleep(0.02)
        yield proc, time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float:
    """Resident set size from /proc (Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def _app_argv(port: int) -> list[str]:
    return [sys.executable, str(REPO / "app.py"), "--port", str(port)]


def startup_times(reps: int) -> tuple[list[float], list[float]]:
    """(flux-ui, bare Blocks) start-up times, alternating."""
    app_times: list[float] = []
    bare_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="flux-bench-") as folder:
        work = Path(folder)
        (work / "bare_app.py").write_text(BARE_APP)
        for _ in range(reps):
            port = _free_port()
            with spawned([sys.executable, str(work / "bare_app.py"), str(port)], port, work) as (_, seconds):
                bare_times.append(seconds)
            port = _free_port()
            with spawned(_app_argv(port), port, work) as (_, seconds):
                app_times.append(seconds)
    return app_times, bare_times


def memory_growth(first: int, total: int) -> tuple[float, float, int]:
    """(RSS after ``first`` generations, RSS after ``total``, failures)."""
    from gradio_client import Client

    failures = 0
    with tempfile.TemporaryDirectory(prefix="flux-bench-") as folder:
        port = _free_port()
        with spawned(_app_argv(port), port, Path(folder)) as (proc, _):
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            after_first = 0.0
            for i in range(total):
                _, _, status, _ = client.predict(model="FLUX.1-schnell", prompt=f"a tin robot, take {i}",
                                                 api_name="/generate")
                failures += bool(status)
                if i + 1 == first:
                    after_first = rss_mb(proc.pid)
            return after_first, rss_mb(proc.pid), failures


def run(quick: bool = False) -> list[Row]:
    app_times, bare_times = startup_times(reps=1 if quick else 3)
    first, total = (3, 10) if quick else (10, 300)
    before, after, failures = memory_growth(first, total)
    growth = after - before
    return [
        ratio_row(NAME, "python app.py to serving vs a bare gr.Blocks app", median(app_times), median(bare_times), 1.3),
        Row(NAME, f"RSS growth from {first} to {total} generations ({before:.0f} → {after:.0f} MB)", growth, "MB",
            None, "≤ 30 MB", growth <= 30, size_dependent=True),
        Row(NAME, f"failed generations of {total}", failures, "count", None, "0", failures == 0),
    ]
