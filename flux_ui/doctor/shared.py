"""The shared services replicas use (``docs/deploy.md``): whether each configured one answers as flux-ui needs.

Redis must run scripts that read its clock (7.0 or later), PostgreSQL must accept a connection and a
transaction-scoped advisory lock, and the blob container must be readable and writable (or creatable).
Each is named by :func:`flux_ui.settings_shared.redact`, so no password or key reaches the report; a
library's own error text is never shown, only its type, because some quote the address they were given.
Nothing is written but one small probe blob, which is removed again.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from flux_ui.doctor.report import Section
from flux_ui.settings_shared import SharedSettings, redact

#: Pacing's scripts read Redis's clock and write after it, which Redis allows from 7.0.
MIN_REDIS = (7, 0)


async def check_shared(section: Section, shared: SharedSettings, timeout_s: float) -> None:
    """One line per service: off (the embedded default), or reachable and fit, or what is wrong and the fix."""
    if not shared.replicated:
        section.add("info", "none configured: pacing in this process, History in SQLite, images on local disk "
                            "(right for one process; replicas need all three, see docs/deploy.md)")
        return
    checks: list[tuple[str, Callable[[], str]]] = []
    if shared.redis_url:
        checks.append((f"Redis at {redact(shared.redis_url)}", lambda: _redis(shared.redis_url or "", timeout_s)))
    if shared.database_url:
        checks.append((f"PostgreSQL at {redact(shared.database_url)}",
                       lambda: _postgres(shared.database_url or "", timeout_s)))
    if shared.uses_blob:
        checks.append((f"Blob container {shared.blob_container!r}", lambda: _blob(shared)))
    for name, check in checks:
        start = time.monotonic()
        try:
            found = await asyncio.to_thread(check)
        except Exception as err:
            section.add("fail", f"{name}: not usable ({type(err).__name__})",
                        fix="check that it is running and reachable from here, and the credentials in its setting")
            continue
        ms = (time.monotonic() - start) * 1000
        section.add("fail" if found.startswith("too old") else "pass", f"{name}: {found} ({ms:.0f} ms)",
                    fix="upgrade Redis to 7.0 or later" if found.startswith("too old") else "")
    missing = [n for n, on in (("FLUX_UI_REDIS_URL", shared.redis_url), ("FLUX_UI_DATABASE_URL", shared.database_url),
                               ("AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL", shared.uses_blob))
               if not on]
    if missing:
        section.add("info", f"not set: {', '.join(missing)}. Fine for one process; replicas need every one "
                            "(docs/deploy.md)")


def _redis(url: str, timeout_s: float) -> str:
    import redis

    with redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s) as db:
        version = str(db.info("server")["redis_version"])
        if tuple(int(p) for p in version.split(".")[:2]) < MIN_REDIS:
            return f"too old: version {version}, and pacing needs 7.0 or later"
        db.eval("return redis.call('TIME')", 0)
        return f"reachable, version {version}, runs pacing's scripts"


def _postgres(url: str, timeout_s: float) -> str:
    import psycopg

    with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as db:
        version = db.execute("SHOW server_version").fetchone()
        db.execute("SELECT pg_advisory_xact_lock(0)")
        return f"reachable, version {version[0] if version else '?'}, takes advisory locks"


def _blob(shared: SharedSettings) -> str:
    from flux_ui.blob_store import container_client

    container = container_client(shared)
    created = not container.exists()
    if created:
        container.create_container()
    name = f"doctor-probe-{secrets.token_hex(6)}"
    container.upload_blob(name, b"flux-ui doctor", overwrite=True)
    container.delete_blob(name)
    return ("created, and a probe blob written and removed" if created
            else "reachable, a probe blob written and removed")
