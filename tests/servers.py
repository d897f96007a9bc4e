"""Real servers for the tests and benchmarks: Redis, PostgreSQL and Azurite, each on a free loopback port.

``.ci/run`` installs them (Debian's ``redis-server`` and ``postgresql``, npm's ``azurite``); the tests start
and stop them, because the drill restarts Redis and kills replicas mid-burst, which a server started once
outside the tests could not go through. Without the program installed a test that needs it is skipped
with how to install it, except in CI (``CI`` set), where it fails: CI always has them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

#: Azurite's fixed development account: public, documented by Microsoft, and only ever on loopback here.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(program: str, install: str) -> str:
    """The path of ``program``; skipped (failed in CI) when it is not installed."""
    found = shutil.which(program) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))), None)
    if found:
        return found
    message = f"{program} is not installed ({install}; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30.0) -> None:
    """Until something accepts on ``port``; the server's log in the failure when it dies or never listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.closing(socket.socket()) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"server did not listen on {port} within {timeout_s:g} s:\n{tail}")


class Server:
    """One server process, restartable on the same port and data folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_for_port(self.port, self.process, self.log)

    def stop(self, hard: bool = True) -> None:
        """SIGKILL by default: a crash, with nothing flushed."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.kill() if hard else self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None

    def restart(self, hard: bool = True) -> None:
        self.stop(hard)
        self.start()


class RedisServer(Server):
    """redis-server with no persistence: a restart loses everything, the worst case for pacing."""

    def __init__(self, folder: Path) -> None:
        self.binary = need("redis-server", "apt-get install redis-server")
        super().__init__(folder)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.folder), "--protected-mode", "no"]


class PostgresServer(Server):
    """A throwaway PostgreSQL cluster (trust on loopback), run as the postgres user when we are root."""

    def __init__(self, folder: Path | None = None) -> None:
        self.initdb = need("initdb", "apt-get install postgresql")
        self.postgres = need("postgres", "apt-get install postgresql")
        # Its own folder outside pytest's (which only root may enter), so the postgres user can reach it.
        super().__init__(Path(tempfile.mkdtemp(prefix="flux-ui-pg-")) if folder is None else folder)
        self.data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres")
        subprocess.run([*self._as_owner(), self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True)

    @staticmethod
    def _as_owner() -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def command(self) -> list[str]:
        return [*self._as_owner(), self.postgres, "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"]

    def start(self) -> None:
        """Started, and taking connections (its port opens while it still says "starting up")."""
        import psycopg

        super().start()
        deadline = time.monotonic() + 30.0
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process is None or self.process.poll() is not None:
                    raise
                time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def fresh_schema(self) -> str:
        """A URL whose connections see only a new, empty schema: a database of its own, made in milliseconds."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}?options=-csearch_path%3D{name}"

    def stop(self, hard: bool = False) -> None:
        """SIGTERM (a fast shutdown) unless ``hard``; runuser passes it on."""
        super().stop(hard)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Azurite(Server):
    """Azurite's Blob service (Microsoft's Azure Storage emulator), its data in the folder."""

    def __init__(self, folder: Path) -> None:
        self.binary = need("azurite-blob", "npm install -g azurite")
        super().__init__(folder)

    def command(self) -> list[str]:
        return [self.binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location",
                str(self.folder), "--silent", "--skipApiVersionCheck", "--loose"]

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};")
