"""Settings for replicas: the shared services that let several flux-ui processes act as one.

All are off by default, and then flux-ui keeps everything in its own process and outputs folder
(in-process pacing, SQLite, local files), which is what one process on one machine needs. A team running
two or more replicas behind a load balancer sets all three (``docs/deploy.md``): Redis for the quota's
pacing and fair share, PostgreSQL for History and the spend ledger, Blob Storage for the images.

Each value may hold a secret (a password in a URL, an account key in a connection string), so the
settings keep them out of ``repr`` and :func:`redact` is how anything names them on a page or in a log.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flux_ui.secrets import remember

DEFAULT_CONTAINER = "flux-ui"
#: Blob container names: 3–63 lower-case letters, digits and single hyphens, starting with a letter or digit.
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")

VARIABLES: tuple[tuple[str, str, str, str], ...] = (
    ("FLUX_UI_REDIS_URL", "(none: pacing in this process)", "redis://:password@redis.internal:6379/0",
     "Redis shared by every replica: each deployment's quota window, 429 hold-backs and the fair-share queue, "
     "so replicas together never pass a quota. While it is unreachable requests wait (never sent unpaced)."),
    ("FLUX_UI_DATABASE_URL", "(none: SQLite in the outputs folder)", "postgresql://flux:password@db.internal/flux",
     "PostgreSQL for History's index, styles, the blind-vote tally, the spend ledger and the audit trail, "
     "shared by every replica; the schema is created and migrated at start."),
    ("AZURE_STORAGE_CONNECTION_STRING", "(none: images on local disk)",
     "DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=core.windows.net",
     "Azure Blob Storage for the images, stored references and contact sheets, written before an image is "
     "shown; the page still gets them through flux-ui, never by a link to the storage account."),
    ("AZURE_STORAGE_ACCOUNT_URL", "(none)", "https://myaccount.blob.core.windows.net",
     "The same storage reached with Entra ID (DefaultAzureCredential) instead of a connection string; the "
     "identity needs the Storage Blob Data Contributor role on the container."),
    ("FLUX_UI_BLOB_CONTAINER", DEFAULT_CONTAINER, "flux-ui-images",
     "The blob container for the images (created at start when missing)."),
)


@dataclass(frozen=True)
class SharedSettings:
    """Where the shared services are (None: the embedded default). Secrets stay out of ``repr``."""

    redis_url: str | None = field(default=None, repr=False)
    database_url: str | None = field(default=None, repr=False)
    blob_connection_string: str | None = field(default=None, repr=False)
    blob_account_url: str | None = None
    blob_container: str = DEFAULT_CONTAINER

    @property
    def uses_blob(self) -> bool:
        return bool(self.blob_connection_string or self.blob_account_url)

    @property
    def replicated(self) -> bool:
        """Anything is shared with other processes."""
        return bool(self.redis_url or self.database_url or self.uses_blob)

    def describe(self) -> list[str]:
        """One line per shared service, with no secret in it (for the start-up log and the doctor)."""
        lines = []
        if self.redis_url:
            lines.append(f"pacing and fair share in Redis at {redact(self.redis_url)}")
        if self.database_url:
            lines.append(f"History and the spend ledger in PostgreSQL at {redact(self.database_url)}")
        if self.uses_blob:
            where = self.blob_account_url or redact(self.blob_connection_string or "")
            lines.append(f"images in Blob Storage container {self.blob_container!r} at {where}")
        return lines


def redact(value: str) -> str:
    """A URL or connection string with its secret parts replaced: safe for a log line or a page."""
    if ("=" in value and ";" in value) or value.startswith(("DefaultEndpointsProtocol", "BlobEndpoint", "AccountName")):
        parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
        name = parts.get("AccountName") or urlsplit(parts.get("BlobEndpoint", "")).hostname or "an account"
        return f"storage account {name} (connection string)"
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable address)"
    path = parts.path if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{host}{port}{path}" if parts.scheme else "(an unreadable address)"


def secret_parts(value: str) -> list[str]:
    """The parts of a URL or connection string that are secret: the whole value, its password, its key."""
    parts = [value]
    if ";" in value:
        fields = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
        parts += [fields[k] for k in ("AccountKey", "SharedAccessSignature") if fields.get(k)]
    else:
        with contextlib.suppress(ValueError):
            if password := urlsplit(value).password:
                parts.append(password)
    return parts


def load_shared(env: Mapping[str, str], problems: list[str]) -> SharedSettings:
    """The shared services from ``env``; what is wrong with them goes into ``problems``, secrets never.
    Every secret part is remembered (:func:`flux_ui.secrets.remember`), so no log line or error shows it."""
    for name in ("FLUX_UI_REDIS_URL", "FLUX_UI_DATABASE_URL", "AZURE_STORAGE_CONNECTION_STRING"):
        for part in secret_parts(env.get(name, "").strip()) if env.get(name, "").strip() else ():
            remember(part)
    redis_url = env.get("FLUX_UI_REDIS_URL", "").strip() or None
    if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        problems.append(f"FLUX_UI_REDIS_URL ({redact(redis_url)}) is not a redis:// or rediss:// URL; for example "
                        "FLUX_UI_REDIS_URL=redis://redis.internal:6379/0")
        redis_url = None
    database_url = env.get("FLUX_UI_DATABASE_URL", "").strip() or None
    if database_url and urlsplit(database_url).scheme not in ("postgresql", "postgres"):
        problems.append(f"FLUX_UI_DATABASE_URL ({redact(database_url)}) is not a postgresql:// URL; for example "
                        "FLUX_UI_DATABASE_URL=postgresql://flux:password@db.internal/flux (leave it out for SQLite)")
        database_url = None
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING", "").strip() or None
    account_url = env.get("AZURE_STORAGE_ACCOUNT_URL", "").strip() or None
    if connection and account_url:
        problems.append("AZURE_STORAGE_CONNECTION_STRING and AZURE_STORAGE_ACCOUNT_URL are both set: keep one "
                        "(the connection string carries a key; the account URL signs in with Entra ID)")
        account_url = None
    if account_url and urlsplit(account_url).scheme != "https":
        problems.append(f"AZURE_STORAGE_ACCOUNT_URL ({redact(account_url)}) must be an https:// URL, for example "
                        "https://myaccount.blob.core.windows.net")
        account_url = None
    container = env.get("FLUX_UI_BLOB_CONTAINER", "").strip() or DEFAULT_CONTAINER
    if not _CONTAINER.match(container):
        problems.append(f"FLUX_UI_BLOB_CONTAINER={container!r} is not a container name: 3 to 63 lower-case letters, "
                        f"digits and single hyphens; for example FLUX_UI_BLOB_CONTAINER={DEFAULT_CONTAINER}")
        container = DEFAULT_CONTAINER
    return SharedSettings(redis_url, database_url, connection, account_url, container)
