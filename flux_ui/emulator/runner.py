"""Run an emulator inside the current process, on a loopback port of its own.

Tests, benchmarks and the app's emulator mode all need a real HTTP peer that starts in a
blink and goes away cleanly, many per process. :class:`Emulator` binds a socket itself
(port 0: the OS picks a free port, so parallel emulators never collide), hands it to
uvicorn running on its own event loop in a daemon thread, and returns once it serves.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import uvicorn

from flux_ui.emulator.app import create_app
from flux_ui.emulator.config import EmulatorConfig, Fault
from flux_ui.emulator.control import CONTROL_TOKEN_HEADER
from flux_ui.emulator.state import EmulatorState

START_TIMEOUT_S = 5.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; listening before uvicorn starts means early connections queue."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
        log_config=None,  # leave the host process's logging configuration alone
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )


class Emulator:
    """A running emulator: ``with Emulator(config) as emu: httpx.post(emu.base_url + ...)``."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.app = create_app(self.config)
        self.state: EmulatorState = self.app.state.emulator
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.base_url = ""

    @property
    def api_key(self) -> str:
        """The key the Foundry routes take right now (it changes when rotated)."""
        return self.state.api_key

    @property
    def schnell_key(self) -> str:
        return self.state.schnell_key

    def start(self) -> str:
        """Serve on ``config.host``:``config.port`` (port 0: a free one); returns the base URL."""
        if self._thread is not None:
            return self.base_url
        sock = bind_socket(self.config.host, self.config.port)
        host, port = sock.getsockname()[:2]
        server = uvicorn.Server(uvicorn_config(self.app))
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start() if it happens before serving
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"flux-ui-emulator:{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the emulator did not start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start within {START_TIMEOUT_S:g} s")
            time.sleep(0.002)
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{port}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most a couple of seconds)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._server = None
        self._thread = None

    # --- inspection and control, read directly (no HTTP) -----------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """The request log, oldest first."""
        return self.state.log.entries()

    def set_faults(self, key: str, faults: Sequence[Fault]) -> None:
        """Arm faults for a deployment name, model ID or ``"*"`` (replacing that key's list)."""
        self.state.set_faults(key, faults)

    def faults(self) -> dict[str, list[dict[str, Any]]]:
        """Armed faults by key, with the counts left (as ``GET /_emulator/faults`` answers)."""
        return self.state.faults.snapshot()

    def quota_status(self) -> dict[str, Any]:
        """Each deployment's quota and what it would take now (as ``GET /_emulator/quotas``)."""
        return self.state.quotas.status(self.state.all_deployments())

    def rotate_key(self, new_key: str | None = None, target: str = "foundry") -> str:
        return self.state.rotate_key(new_key, target)

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Change run-time switches, e.g. ``emu.configure(bfl_style="polling")``."""
        return self.state.configure(switches)

    def clear(self) -> None:
        """Clear faults, the log, quota windows and pending results."""
        self.state.reset()

    def control_headers(self) -> dict[str, str]:
        """The header that opens ``/_emulator/`` to HTTP, for code in this process that tests those
        routes; everything else should use the methods above, which need no token."""
        return {CONTROL_TOKEN_HEADER: self.config.control_token}

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Emulator({self.base_url or 'not started'})"
