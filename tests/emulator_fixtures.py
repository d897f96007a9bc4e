"""The emulator fixture family: an emulator over loopback HTTP, as the app meets it, and helpers.

Test modules take the fixtures with ``from emulator_fixtures import *`` (``__all__`` lists
only fixtures) and import helpers by name; shared helpers (images, clocks, quotas) are in conftest.

One emulator per module keeps the suite quick: ``module_emulator`` starts it with the test key and
quotas off; a module that needs other start-up settings defines its own ``module_emulator`` (with
:func:`start_emulator`) and keeps ``emu``. ``emu`` hands a test that emulator cleared, and puts its
switches and key back after the test. A test that needs an emulator of its own uses :func:`own_emulator`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from PIL import Image

from conftest import SAMPLES, FakeClock
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.emulator.quotas import QuotaBook

__all__ = ["emu", "http", "module_emulator"]

KEY = "emulator-test-key-5d41402abc4b2a76"
PREVIEW = "preview"


def bfl_url(base: str, path: str, api_version: str | None = PREVIEW) -> str:
    query = f"?api-version={api_version}" if api_version else ""
    return f"{base}/providers/blackforestlabs/v1/{path}{query}"


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


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
    """A started emulator with the test key and quotas off unless the test says otherwise."""
    settings: dict[str, object] = {"api_key": KEY, "enforce_quotas": False, "rng_seed": 7}
    settings.update(overrides)
    emulator = Emulator(EmulatorConfig(**settings))  # type: ignore[arg-type]
    emulator.start()
    return emulator


@contextmanager
def own_emulator(**overrides: object) -> Iterator[Emulator]:
    """An emulator of the test's own (as :func:`start_emulator`), stopped when the block ends."""
    emulator = start_emulator(**overrides)
    try:
        yield emulator
    finally:
        emulator.stop()


def fake_quota_clock(emulator: Emulator) -> FakeClock:
    """Put the emulator's quota windows on a :class:`FakeClock` (returned), so a test moves time on
    instead of sleeping through a window; the windows start empty.

    EmulatorConfig takes no clock, so this replaces the emulator's QuotaBook with one on the fake clock.
    """
    clock = FakeClock()
    state = emulator.state
    state.quotas = QuotaBook(state.config.quotas, enforce=state.config.enforce_quotas, clock=clock)
    return clock


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with own_emulator() as emulator:
        yield emulator


@pytest.fixture
def emu(module_emulator: Emulator) -> Iterator[Emulator]:
    """The module's emulator, cleared before the test; its switches and key put back after it."""
    module_emulator.clear()
    switches = module_emulator.state.switches()
    key = module_emulator.api_key
    yield module_emulator
    module_emulator.configure(**switches)
    if module_emulator.api_key != key:
        module_emulator.rotate_key(key)
    module_emulator.clear()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client
