"""Untrusted images in bounded memory: metadata bombs, huge references, decodes at once.

Peaks are measured in a fresh ``python -c`` child, from ``/proc/self/status``: zlib and
Pillow allocate in C, where tracemalloc does not look, and a child's high-water mark is
untouched by whatever else the test run has done. The child resets its high-water mark
(``/proc/self/clear_refs``) once it is ready, so imports and test data do not count.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import ImageFile

from bench.big_references import deflate_stream, png_chunk
from conftest import LoopGaps, solid_image
from flux_ui import images
from flux_ui.errors import ReferenceImageError
from flux_ui.images import memory, prepare_reference, prepare_references, read_metadata
from flux_ui.registry import FOUR_MP

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
BOMB_INFLATED = 2048 * MB  # what the bomb below unpacks to, were nothing to stop it
SIDE = 7999  # the attack's references: 7999 × 7999 RGBA, a few hundred KB each as PNG

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures memory through /proc")

# Run in the child: `measure(fn)` prints fn's peak resident memory above the moment it was
# called, and resident memory after it, both in MB, as one JSON line.
_CHILD_PRELUDE = """
import json, sys
def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
def measure(fn):
    before = _status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # the high-water mark restarts from here
    result = fn()
    print(json.dumps({"peak": _status("VmHWM") - before, "after": _status("VmRSS") - before,
                      "result": result}))
"""


def run_child(code: str) -> dict[str, object]:
    """Run ``code`` (after the prelude) in a fresh interpreter; the JSON line it printed."""
    proc = subprocess.run([sys.executable, "-c", _CHILD_PRELUDE + code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bomb_payload(inflated: int = BOMB_INFLATED) -> bytes:
    """About 2 MB of zlib that inflates to ``inflated`` bytes, built 1 MB at a time."""
    block = b" " * MB
    return deflate_stream(block for _ in range(inflated // MB))


def streamed_png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """A one-colour RGBA PNG, deflated row by row: the full pixels never exist in this process."""
    row = b"\x00" + bytes(rgba) * width  # filter type 0, then the row's pixels
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((8, 6, 0, 0, 0))
    idat = deflate_stream(row for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def with_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    """``png`` with one more chunk just before IEND (IEND is always the last 12 bytes)."""
    return png[:-12] + png_chunk(kind, body) + png[-12:]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bomb_payload()


@pytest.fixture(scope="module")
def small_png() -> bytes:
    return solid_image((255, 0, 0), (64, 64))


# --- decompression -----------------------------------------------------------------------


def test_capped_inflate_refuses_past_the_cap_and_passes_below(bomb: bytes, small_png: bytes) -> None:
    from flux_ui.images import InflateLimitError, inflate_capped

    text = json.dumps({"prompt": "a red fox " * 20_000}).encode()
    assert inflate_capped(zlib.compress(text)) == text
    with pytest.raises(InflateLimitError, match="more than"):
        inflate_capped(bomb)
    with pytest.raises(InflateLimitError):
        inflate_capped(zlib.compress(b"x" * 1001), limit=1000)
    assert inflate_capped(zlib.compress(b"x" * 1000), limit=1000) == b"x" * 1000
    meta = {"generator": "flux-ui", "prompt": "a lighthouse at dusk, " * 500, "seed": 7}
    label = b"flux-ui\x00\x01\x00\x00\x00" + zlib.compress(json.dumps(meta).encode())
    assert read_metadata(with_chunk(small_png, b"iTXt", label)) == meta  # a real compressed label still reads
    with pytest.raises(ValueError):
        inflate_capped(zlib.compress(text)[:-10])  # cut short: refused, as zlib.decompress would


def test_a_real_label_leaves_room_under_the_cap() -> None:
    # The longest prompt validation lets through (FLUX.2's 32,000 tokens at 128 bytes each),
    # JSON-escaped at worst twice over, still fits.
    assert images.MAX_INFLATED_BYTES >= 2 * 32_000 * 128
    assert images.MAX_INFLATED_BYTES <= 16 * MB  # and a bomb stays small next to the 50 MB budget


def test_a_metadata_bomb_is_read_in_bounded_memory(tmp_path: Path, small_png: bytes, bomb: bytes) -> None:
    assert len(bomb) < 3 * MB  # a small upload...
    inflater = zlib.decompressobj()
    assert len(inflater.decompress(bomb, 64 * MB)) == 64 * MB and inflater.unconsumed_tail  # ...that keeps going
    path = tmp_path / "bomb.png"
    # A compressed iTXt under flux-ui's own key: the chunk read_metadata inflates.
    path.write_bytes(with_chunk(small_png, b"iTXt", b"flux-ui\x00\x01\x00\x00\x00" + bomb))
    out = run_child(f"""
from flux_ui.images import read_metadata
data = open({str(path)!r}, "rb").read()
measure(lambda: repr(read_metadata(data)))
""")
    assert out["result"] == "None"  # ignored, as any unreadable label is
    assert out["peak"] <= 50, f"reading the label took {out['peak']:.0f} MB"


def test_a_metadata_bomb_in_a_reference_is_refused_clearly(tmp_path: Path, small_png: bytes, bomb: bytes) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(with_chunk(small_png, b"zTXt", b"Comment\x00\x00" + bomb))
    out = run_child(f"""
from flux_ui.errors import ReferenceImageError
from flux_ui.images import prepare_reference
data = open({str(path)!r}, "rb").read()
def go():
    try:
        prepare_reference(data, index=2, max_pixels=4_000_000)
    except ReferenceImageError as err:
        return err.message
    return "accepted"
measure(go)
""")
    assert out["peak"] <= 50, f"the refusal took {out['peak']:.0f} MB"
    message = str(out["result"])
    assert message.startswith("image 2 ") and "decompression bomb" in message and "without its metadata" in message


def test_pillow_text_limits_are_flux_uis() -> None:
    from PIL import PngImagePlugin

    assert PngImagePlugin.MAX_TEXT_CHUNK <= images.MAX_INFLATED_BYTES
    assert PngImagePlugin.MAX_TEXT_MEMORY <= 2 * images.MAX_INFLATED_BYTES


# --- big references ----------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "fmt"), [(128, "png"), (255, "jpeg")])
def test_a_huge_reference_is_prepared_in_bounded_memory(tmp_path: Path, alpha: int, fmt: str) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(streamed_png(SIDE, SIDE, (200, 30, 60, alpha)))
    out = run_child(f"""
from flux_ui.images import prepare_reference
data = open({str(path)!r}, "rb").read()
def go():
    p = prepare_reference(data, index=1, max_pixels={FOUR_MP})
    return [p.width, p.height, p.format, list(p.adjustments)]
measure(go)
""")
    assert out["result"] == [2048, 2048, fmt, [f"downscaled from {SIDE}×{SIDE} to 2048×2048 (the model reads at most "
                                               "4.2 MP)"]]
    # One decoded copy of the pixels is unavoidable (Pillow cannot decode a PNG at a smaller
    # size): 7999² × 4 bytes = 244 MB. Everything else must be small next to it.
    decoded = SIDE * SIDE * 4 / MB
    assert out["peak"] <= decoded + 100, f"preparing took {out['peak']:.0f} MB (decoded pixels: {decoded:.0f} MB)"
    assert out["after"] <= 50, f"{out['after']:.0f} MB still held after preparing"


def test_huge_references_at_once_stay_within_the_decode_budget(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(streamed_png(SIDE, SIDE, (200, 30, 60, 128)))
    out = run_child(f"""
import asyncio
from flux_ui.images import prepare_references
data = open({str(path)!r}, "rb").read()
async def three_edits():
    batches = [prepare_references([data] * 3, max_pixels={FOUR_MP}) for _ in range(3)]
    return [len(b) for b in await asyncio.gather(*batches)]
measure(lambda: asyncio.run(three_edits()))
""")
    assert out["result"] == [3, 3, 3]
    assert out["peak"] <= images.DECODE_BUDGET_BYTES / MB + 100, f"nine at once took {out['peak']:.0f} MB"
    assert out["after"] <= 100, f"{out['after']:.0f} MB still held after preparing"


# --- decodes at once ---------------------------------------------------------------------


class DecodeProbe:
    """Counts reference decodes (ImageFile.load calls) in progress, and the most at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold_s: float = 0.02) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()
        real = ImageFile.ImageFile.load
        probe = self

        def load(img: ImageFile.ImageFile) -> object:
            with probe._lock:
                probe.now += 1
                probe.most = max(probe.most, probe.now)
            try:
                time.sleep(hold_s)
                return real(img)
            finally:
                with probe._lock:
                    probe.now -= 1

        monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def _pngs(count: int) -> list[bytes]:
    return [solid_image((i, 100, 200), (48 + 16 * i, 48)) for i in range(count)]


async def _three_edits(count: int = 10) -> None:
    data = _pngs(count)
    await asyncio.gather(*(prepare_references(data, max_pixels=FOUR_MP) for _ in range(3)))


async def test_three_ten_reference_edits_decode_at_most_the_cap_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = DecodeProbe(monkeypatch)
    async with LoopGaps() as gaps:  # waiting for a slot happens in worker threads, never on the loop
        await _three_edits()
    assert probe.most == images.DECODE_SLOTS == 2
    assert len(gaps) >= 10 and max(gaps) < 0.2


async def test_the_cap_is_a_module_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "DECODE_SLOTS", 1)
    probe = DecodeProbe(monkeypatch)
    await _three_edits(4)
    assert probe.most == 1


async def test_decodes_over_the_memory_budget_run_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "DECODE_BUDGET_BYTES", 1)  # every decode is "too big" to share
    probe = DecodeProbe(monkeypatch)
    await _three_edits(4)
    assert probe.most == 1


def test_a_failed_decode_gives_its_slot_back() -> None:
    ihdr = (64).to_bytes(4, "big") * 2 + bytes((8, 2, 0, 0, 0))
    damaged = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"not zlib")
               + png_chunk(b"IEND", b""))
    with pytest.raises(ReferenceImageError, match="damaged"):
        prepare_reference(damaged, index=1, max_pixels=FOUR_MP)
    gate = memory.DECODE_GATE
    assert (gate.running, gate.held) == (0, 0)
