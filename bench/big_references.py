"""Big references: ten 8000×8000 RGBA PNGs in one edit, and a PNG metadata bomb, in bounded memory.

The attack this answers: ten 7999×7999 RGBA PNGs of a few hundred KB each (one colour packs
that small) sent in one ``/edit`` took 2.2 GB at peak and kept ~3 GB afterwards, and a 3 MB
PNG whose flux-ui label was a zlib bomb took 6 GB to read.

Each measure runs in a fresh child process, so nothing else this run did is in its numbers:
the child reads its input, notes its resident memory (the idle level), resets its high-water
mark (``/proc/self/clear_refs``) and then works. Peak is the high-water mark above idle,
"after" the resident memory above idle once the work is done. The edit goes the whole client
way (``client.generate``: validation, preparation, request, answer) against an emulator in a
process of its own, under a ticker that records the longest event-loop stall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from bench.common import Row, emulator_process

NAME = "big references"
MODEL = "FLUX.2-flex"
PEAK_LIMIT_MB = 600
AFTER_LIMIT_MB = 100
BOMB_LIMIT_MB = 50
STALL_LIMIT_S = 0.050
REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024

# Run first in every child: the idle level, then the work, then one JSON line of results.
_PRELUDE = """
import json
def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
def measure(fn):
    idle = _status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")
    result = fn()
    print(json.dumps({"peak": _status("VmHWM") - idle, "after": _status("VmRSS") - idle, **result}))
"""

_EDIT = """
import asyncio, time
from bench.common import EmulatorProcess, LoopStallMeter, client_for
from flux_ui.client.validation import GenerationRequest
paths = {paths!r}
references = tuple(open(p, "rb").read() for p in paths)
async def edit():
    client = client_for(EmulatorProcess({base!r}, {key!r}, 0))
    try:
        start = time.perf_counter()
        async with LoopStallMeter() as meter:
            result = await client.generate(GenerationRequest({model!r}, "a collage of these", references=references,
                                                             params={{"seed": 3}}))
        seconds = time.perf_counter() - start
    finally:
        await client.aclose()
    downscaled = sum("downscaled from" in note for note in result.adjustments)
    return {{"seconds": seconds, "stall": meter.max_stall_s, "downscaled": downscaled}}
measure(lambda: asyncio.run(edit()))
"""

_BOMB = """
from flux_ui.images import read_metadata
data = open({path!r}, "rb").read()
measure(lambda: {{"ignored": read_metadata(data) is None, "bytes": len(data)}})
"""


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk, CRC included (the tests build their bombs with it too)."""
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def deflate_stream(pieces: Iterator[bytes]) -> bytes:
    """Deflate pieces one at a time, so a bomb's gigabytes are never held at once."""
    packer = zlib.compressobj(9)
    out = bytearray()
    for piece in pieces:
        out += packer.compress(piece)
    return bytes(out + packer.flush())


def solid_png(side: int, rgba: tuple[int, int, int, int], text: bytes = b"") -> bytes:
    """A one-colour square RGBA PNG (plus an optional chunk body before IEND), built row by row."""
    row = b"\x00" + bytes(rgba) * side
    ihdr = side.to_bytes(4, "big") * 2 + bytes((8, 6, 0, 0, 0))
    extra = png_chunk(b"iTXt", text) if text else b""
    pixels = deflate_stream(row for _ in range(side))
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    return head + png_chunk(b"IDAT", pixels) + extra + png_chunk(b"IEND", b"")


def metadata_bomb(inflated_mb: int) -> bytes:
    """A small PNG whose compressed flux-ui label (iTXt) unpacks to ``inflated_mb`` MB."""
    payload = deflate_stream(b" " * MB for _ in range(inflated_mb))
    return solid_png(64, (255, 0, 0, 255), b"flux-ui\x00\x01\x00\x00\x00" + payload)


def _child(code: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", _PRELUDE + code], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"the measuring child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(count: int, side: int, bomb_mb: int, folder: Path) -> tuple[dict[str, float], dict[str, float]]:
    paths = []
    for i in range(count):  # a different colour each, half of them translucent (kept as RGBA)
        path = folder / f"ref{i}.png"
        path.write_bytes(solid_png(side, (40 * i % 256, 200, 90, 128 if i % 2 else 255)))
        paths.append(str(path))
    bomb = folder / "bomb.png"
    bomb.write_bytes(metadata_bomb(bomb_mb))
    with emulator_process() as emu:
        edit = _child(_EDIT.format(paths=paths, base=emu.base_url, key=emu.api_key, model=MODEL))
    return edit, _child(_BOMB.format(path=str(bomb)))


def run(quick: bool = False) -> list[Row]:
    count, side, bomb_mb = (2, 4000, 256) if quick else (10, 8000, 2048)
    with tempfile.TemporaryDirectory(prefix="flux-ui-bench-") as folder:
        edit, bomb = _measure(count, side, bomb_mb, Path(folder))
    label = f"{count} × {side}×{side} RGBA PNG, one edit"
    bomb_label = f"metadata bomb ({bomb['bytes'] / MB:.1f} MB PNG, label inflating to {bomb_mb} MB)"
    return [
        Row(NAME, f"{label}: peak memory above idle", edit["peak"], "MB", None, f"≤ {PEAK_LIMIT_MB} MB",
            edit["peak"] <= PEAK_LIMIT_MB, size_dependent=True),
        Row(NAME, f"{label}: memory above idle after", edit["after"], "MB", None, f"≤ {AFTER_LIMIT_MB} MB",
            edit["after"] <= AFTER_LIMIT_MB),
        Row(NAME, f"{label}: references downscaled to the 4 MP input", edit["downscaled"], "count", None,
            f"{count}", edit["downscaled"] == count),
        Row(NAME, f"{label}: whole generate", edit["seconds"], "s"),
        Row(NAME, f"{label}: longest event-loop stall", edit["stall"], "s", None, "≤ 50 ms",
            edit["stall"] <= STALL_LIMIT_S, size_dependent=True),
        Row(NAME, f"{bomb_label}: peak memory above idle reading it", bomb["peak"], "MB", None,
            f"≤ {BOMB_LIMIT_MB} MB", bomb["peak"] <= BOMB_LIMIT_MB and bool(bomb["ignored"])),
    ]
