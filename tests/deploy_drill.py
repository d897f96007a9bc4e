"""The pieces of a real deployment for the replica drill: one emulator with a quota, flux-ui replicas as
separate ``python app.py`` processes sharing Redis, PostgreSQL and Azurite, and nginx in front of them with
the repository's own ``deploy/nginx.conf`` (only its ports and file paths changed).

The benchmark of replicas (``bench/replicas.py``) starts the same pieces.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import Server, need, wait_for_port

REPO = Path(__file__).resolve().parents[1]
NGINX_CONF = REPO / "deploy" / "nginx.conf"
MODEL = "FLUX.2-pro"


class EmulatorProcess(Server):
    """``python -m flux_ui.emulator`` with a quota on one model, as a service of its own."""

    def __init__(self, folder: Path, quota: str, latency_s: float = 0.0) -> None:
        super().__init__(folder)
        self.key = f"drill-{secrets.token_hex(12)}"
        self.quota, self.latency_s = quota, latency_s

    def command(self) -> list[str]:
        return [sys.executable, "-m", "flux_ui.emulator", "--port", str(self.port), "--api-key", self.key,
                "--quota", f"{MODEL}={self.quota}", "--latency", str(self.latency_s)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, object]]:
        """The emulator's request log: every generation it answered, with its status."""
        return list(httpx.get(f"{self.url}/_emulator/requests", timeout=10).json())

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_emulator/requests", timeout=10).raise_for_status()


class Replica(Server):
    """One flux-ui process, ``python app.py --port P``, configured by ``env`` alone."""

    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        super().__init__(folder)
        self.env = {**os.environ, **env, "FLUX_OUTPUT_DIR": str(self.folder / "outputs")}

    def command(self) -> list[str]:
        return [sys.executable, str(REPO / "app.py"), "--port", str(self.port)]

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=self.folder, start_new_session=True)

    def ready(self, timeout_s: float = 120.0) -> None:
        assert self.process is not None
        wait_for_port(self.port, self.process, self.log, timeout_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Nginx(Server):
    """nginx with ``deploy/nginx.conf``, pointed at the replicas' ports and listening on a free one."""

    def __init__(self, folder: Path, upstreams: list[int]) -> None:
        self.binary = need("nginx", "apt-get install nginx")
        super().__init__(folder)
        self.conf = self.folder / "nginx.conf"
        self.access_log = self.folder / "nginx-access.log"  # the shipped /tmp/flux-ui-nginx-access.log, moved here
        self.conf.write_text(render_conf(NGINX_CONF.read_text(), upstreams, self.port, self.folder))

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf), "-g", "daemon off;"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def upstreams_seen(self) -> dict[str, int]:
        """How many API calls each replica answered, from the access log's ``upstream=`` field."""
        counts: dict[str, int] = {}
        for line in self.access_log.read_text().splitlines():
            found = re.search(r'"POST /gradio_api/\S+ [^"]*" \d+ upstream=(\S+)', line)
            if found:
                counts[found[1]] = counts.get(found[1], 0) + 1
        return counts


def render_conf(text: str, upstreams: list[int], port: int, folder: Path) -> str:
    """The repository's config with this run's ports and file paths; everything else as shipped."""
    servers = [m for m in re.finditer(r"^\s*server 127\.0\.0\.1:\d+ .*;$", text, re.M)]
    assert len(servers) >= len(upstreams), "deploy/nginx.conf lists fewer replicas than the drill starts"
    lines = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstreams)
    text = text[:servers[0].start()] + lines + text[servers[-1].end():]
    text = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", text)
    return re.sub(r"/tmp/flux-ui-nginx", str(folder / "nginx"), text)


@dataclass
class Deployment:
    """Everything the drill runs, and the settings every replica gets."""

    emulator: EmulatorProcess
    replicas: list[Replica]
    nginx: Nginx
    env: dict[str, str] = field(default_factory=dict)


def replica_env(emulator: EmulatorProcess, quota: str, redis_url: str, database_url: str,
                blob_connection: str, container: str) -> dict[str, str]:
    """What docs/deploy.md tells each replica: the one Foundry resource (the emulator here) and the services."""
    return {"AZURE_ENDPOINT": emulator.url, "AZURE_API_KEY": emulator.key, "FLUX_DEPLOYMENTS": f"{MODEL}:{quota}",
            "FLUX_UI_REDIS_URL": redis_url, "FLUX_UI_DATABASE_URL": database_url,
            "AZURE_STORAGE_CONNECTION_STRING": blob_connection, "FLUX_UI_BLOB_CONTAINER": container,
            "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}


@contextlib.contextmanager
def deployment(folder: Path, replicas: int, quota: str, services: Mapping[str, str],
               latency_s: float = 0.0) -> Iterator[Deployment]:
    """The emulator, ``replicas`` flux-ui processes started at once, and nginx; all stopped at the end."""
    emulator = EmulatorProcess(folder / "emulator", quota, latency_s)
    emulator.start()
    env = replica_env(emulator, quota, services["redis"], services["database"], services["blob"],
                      services["container"])
    started = [Replica(folder / f"replica-{i + 1}", env) for i in range(replicas)]
    proxy = None
    try:
        for replica in started:
            replica.start()
        for replica in started:
            replica.ready()
        (folder / "nginx" / "nginx").mkdir(parents=True, exist_ok=True)
        proxy = Nginx(folder / "nginx", [r.port for r in started])
        proxy.start()
        yield Deployment(emulator, started, proxy, env)
    finally:
        for server in (proxy, *started, emulator):
            if server is not None:
                with contextlib.suppress(Exception):
                    stop_gently(server)


def stop_gently(server: Server) -> None:
    """SIGTERM, then SIGKILL after a few seconds: a test's end, not a crash."""
    if server.process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    server.process = None


def kill(server: Server) -> None:
    """SIGKILL the whole process group: a crash, with nothing flushed or finished."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    server.process = None


def visitor_cookie() -> dict[str, str]:
    """A browser's nginx routing cookie, as deploy/nginx.conf hands out (random, so visitors spread)."""
    return {"flux_sticky": secrets.token_hex(16)}


def wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
