"""Fixtures and helpers for the emulator's tests.

Test modules take the fixtures with ``from emulator_fixtures import *`` (``__all__`` lists
only fixtures) and import helpers by name; tests/conftest.py is not involved.

Every test talks to a real emulator over loopback HTTP, as the app does. One emulator per
module keeps the suite quick; ``emu`` hands a test that emulator with its log, faults and
quota windows cleared, and tests that need other settings start their own.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from flux_ui.emulator import Emulator, EmulatorConfig

__all__ = ["emu", "http", "module_emulator"]

KEY = "emulator-test-key-5d41402abc4b2a76"
#: The example photos the app ships, as in conftest (imported from there would load every fixture).
SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
PREVIEW = "preview"


def bfl_url(base: str, path: str, api_version: str | None = PREVIEW) -> str:
    query = f"?api-version={api_version}" if api_version else ""
    return f"{base}/providers/blackforestlabs/v1/{path}{query}"


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def solid_png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def decode_image(data: str | bytes) -> Image.Image:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    img = Image.open(io.BytesIO(raw))
    img.load()
    return img


def start_emulator(**overrides: object) -> Emulator:
    """An emulator with the test key and quotas off unless the test says otherwise."""
    settings: dict[str, object] = {"api_key": KEY, "enforce_quotas": False, "rng_seed": 7}
    settings.update(overrides)
    emulator = Emulator(EmulatorConfig(**settings))  # type: ignore[arg-type]
    emulator.start()
    return emulator


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    emulator = start_emulator()
    yield emulator
    emulator.stop()


@pytest.fixture
def emu(module_emulator: Emulator) -> Iterator[Emulator]:
    """The module's emulator, cleared before the test and its switches restored after."""
    module_emulator.clear()
    switches = module_emulator.state.switches()
    yield module_emulator
    module_emulator.configure(**switches)
    module_emulator.clear()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client
