"""Fixtures for every test: settings without a .env, the example photos, a scripted fake service."""

from __future__ import annotations

import os
import tempfile

# Gradio reads these at import: keep its uploads and cache out of the machine's /tmp/gradio
# and never call home from a test run.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="flux-ui-gradio-"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# gradio_client's huggingface_hub fetches a registry from huggingface.co; CI has no such network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from PIL import Image

from app_fixtures import app, browser, page, runtime  # noqa: F401  (fixtures every test module may use)
from flux_ui.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
#: The example photos the app ships (licences in assets/README.md); tests use them as real photos.
SAMPLES = REPO / "assets" / "examples"
ENDPOINT = "https://unit-test.services.ai.azure.com"
KEY = "unit-test-key-6c1f0e9b"
FAST = ":1000/1s"  # a quota no unit test reaches



def foundry_env(**overrides: str) -> dict[str, str]:
    env = {
        "AZURE_ENDPOINT": ENDPOINT,
        "AZURE_API_KEY": KEY,
        "FLUX_DEPLOYMENTS": ",".join(
            f"{m}{FAST}" for m in ("FLUX.2-pro", "FLUX.2-flex", "FLUX.1-Kontext-pro", "FLUX-1.1-pro")
        ),
        "FLUX_SCHNELL_ENDPOINT": "https://schnell.eastus.inference.ml.azure.com/score",
        "FLUX_SCHNELL_KEY": "schnell-key-9a8b7c6d",
        "FLUX_SCHNELL_RPM": "1000/1s",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


@pytest.fixture
def settings() -> Settings:
    return load_settings(foundry_env(), dotenv_path=None)


def image_bytes(
    fmt: str = "JPEG", size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


@dataclass
class FakeService:
    """A scripted stand-in for the service on httpx.MockTransport: records every request
    and answers each from ``handler`` (or from a queue of canned responses)."""

    handler: Callable[[httpx.Request], httpx.Response] | None = None
    queue: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.queue:
            item = self.queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        assert self.handler is not None, f"unexpected request {request.method} {request.url}"
        return self.handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def bfl_ok(image: bytes | None = None, **meta: Any) -> httpx.Response:
    import base64

    data = base64.b64encode(image or image_bytes()).decode()
    body = {"created": 1, "data": [{"b64_json": data}],
            "request_meta": meta or {"cost": 3, "input_mp": 0.0, "output_mp": 1.05, "total_pixels": 1048576}}
    return httpx.Response(200, json=body)


@pytest.fixture
def fake() -> FakeService:
    return FakeService(handler=lambda request: bfl_ok())


class FakeCredential:
    """Hands out numbered tokens; each fetch blocks its thread like a real sign-in can."""

    def __init__(self, lifetime: float = 3600.0, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls: list[tuple[str, ...]] = []
        self.threads: set[int] = set()

    def get_token(self, *scopes: str, **_: object) -> SimpleNamespace:
        self.calls.append(scopes)
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return SimpleNamespace(token=f"entra-token-{len(self.calls):04d}", expires_on=time.time() + self.lifetime)
