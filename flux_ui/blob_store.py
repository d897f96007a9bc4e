"""Where the outputs folder's files live for good: this disk (the default) or an Azure Blob Storage container.

History (and the exports) write every file to the local outputs folder first, whole, and then tell
the store (``saved``), which for Blob Storage uploads it before the image is indexed or shown, so a
listed entry always has its blob. With Blob Storage the local folder is a cache: ``fetch`` puts back a
file another replica made (or a restarted container lost) before it is handed to the page, which still
gets it through flux-ui's own file route, behind its login; never through a link to the storage account.

The Azure SDK is imported only when Blob Storage is configured, so ``python app.py`` pays nothing for it.
A blob's name is the file's path inside the outputs folder (posix), so every replica finds it by the
path its shared index holds. The SDK's own retry policy waits 15 s and more between tries; a save must
fail within seconds instead (the image is then held in memory, :mod:`flux_ui.unsaved`), hence ours.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux_ui import durable, secrets
from flux_ui.settings_shared import SharedSettings, redact

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["BlobStore", "BlobStoreError", "FileStore", "container_client", "files_for", "open_files"]
log = logging.getLogger("flux_ui.blob_store")
#: Seconds to open a connection and to wait for a reply (the SDK waits 20 s and 60 s).
CONNECTION_TIMEOUT_S = 5
READ_TIMEOUT_S = 30
#: Tries after the first, and the wait before each: a failed upload is said within about two seconds.
RETRIES = 2
BACKOFF_S = 0.5
#: Downloads at once when a listing finds several files missing from the cache.
FETCH_WORKERS = 8
#: After a download fails for want of Blob Storage, fetches answer "missing" at once for this long, so a
#: listing of 200 images during an outage takes a moment, not 200 rounds of retries.
OUTAGE_PAUSE_S = 10.0
#: What every blob carries besides its bytes: nothing about the prompt (that is in the image itself).
METADATA = {"written_by": "flux_ui"}

_STORES: dict[str, FileStore] = {}
_STORES_LOCK = threading.Lock()


class BlobStoreError(OSError):
    """Blob Storage did not take or give a file: the message names the container and account, never a key."""


class FileStore:
    """Files on this disk only: the outputs folder is where they live, so every method is a no-op or a stat."""

    remote = False

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def saved(self, path: Path, *, discard_on_failure: bool = True) -> None:
        """``path`` (inside the folder) was just written whole: keep it (here: it is kept already)."""

    def kept(self, paths: Iterable[Path]) -> None:
        """Inside the index's write transaction: make sure each file is still stored (here: on disk, it is)."""

    def fetch(self, path: Path) -> bool:
        """Make sure the local copy of ``path`` exists; whether it does."""
        return Path(path).is_file()

    def fetch_all(self, paths: Iterable[Path]) -> None:
        """:meth:`fetch` each of ``paths`` (a listing's images and inputs), missing ones at once."""

    def removed(self, path: Path) -> None:
        """``path`` was removed from the folder for good: remove it from the store too (missing is fine)."""

    def removed_all(self, paths: Iterable[Path]) -> None:
        """:meth:`removed` each; one that fails is logged and left (a delete has gone too far to stop)."""
        for path in paths:
            try:
                self.removed(path)
            except OSError as err:
                log.warning("%s is left in the store, unused: %s", path.name, err)

    def describe(self) -> str:
        return f"images in the outputs folder {self.folder}"

    def close(self) -> None:
        """Let go of connections (nothing to let go of here)."""


class BlobStore(FileStore):
    """The outputs folder's files in one blob container; the local folder is the cache in front of it."""

    remote = True

    def __init__(self, folder: Path, container: ContainerClient, where: str) -> None:
        """``where`` names the account for messages (through :func:`redact`: never the key)."""
        super().__init__(folder)
        self.container = container
        self.where = f"Blob Storage container {container.container_name!r} at {where}"
        self._root = Path(os.path.abspath(self.folder))
        self._locks = [threading.Lock() for _ in range(64)]  # one download of a file at a time
        self._paused_until = 0.0  # monotonic: fetches wait for nothing until then (an outage was seen)

    def name(self, path: Path) -> str:
        """The blob's name: the path inside the outputs folder, posix (ValueError for a path outside it)."""
        return Path(os.path.abspath(path)).relative_to(self._root).as_posix()

    def ensure_container(self) -> None:
        """Make the container when it is missing (private: nothing in it is public). Asked first, because an
        identity with a role on the container alone may read it but not create containers."""
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

        try:
            try:
                self.container.get_container_properties()
            except ResourceNotFoundError:
                try:
                    self.container.create_container(metadata=METADATA)
                    log.info("created the %s", self.where)
                except ResourceExistsError:
                    pass  # another replica made it meanwhile
        except AzureError as err:
            raise BlobStoreError(
                f"flux-ui cannot use its {self.where}: {_reason(err)}. Check AZURE_STORAGE_CONNECTION_STRING "
                "(or AZURE_STORAGE_ACCOUNT_URL and the identity's Storage Blob Data Contributor role) and "
                "FLUX_UI_BLOB_CONTAINER, and that the account is reachable from here, then start flux-ui again."
            ) from None

    def saved(self, path: Path, *, discard_on_failure: bool = True) -> None:
        """Upload ``path``; BlobStoreError when the container does not take it. The local copy is then
        removed with ``discard_on_failure`` (a new image: left there, it would be listed without its blob
        when the folder next opens, and again when the copy held in memory is saved)."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContentSettings

        path = Path(path)
        name = self.name(path)
        try:
            self.container.upload_blob(name, path.read_bytes(), overwrite=True, metadata=METADATA,
                                       content_settings=ContentSettings(content_type=content_type(path)))
        except AzureError as err:
            if discard_on_failure:
                durable.remove_durably(path)
            raise BlobStoreError(f"the {self.where} did not take it: {_reason(err)}") from None
        self._paused_until = 0.0  # it answers again: so will fetches

    def kept(self, paths: Iterable[Path]) -> None:
        """Put back, from the local copy, any of ``paths`` whose blob another replica removed as unused
        since it was uploaded (History calls this inside the write transaction that links them)."""
        from azure.core.exceptions import AzureError

        for path in paths:
            try:
                if self.container.get_blob_client(self.name(path)).exists():
                    continue
            except AzureError as err:
                raise BlobStoreError(f"the {self.where} could not be asked for {self.name(path)}: "
                                     f"{_reason(err)}") from None
            self.saved(path, discard_on_failure=False)

    def fetch(self, path: Path) -> bool:
        """The local copy, downloaded whole (temporary file, then rename) when missing; False when the blob
        is missing too, or Blob Storage cannot be reached (logged, then not tried for ``OUTAGE_PAUSE_S``:
        the page shows the file as missing, as it does one gone from the disk)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        path = Path(path)
        if path.is_file():
            return True
        try:
            name = self.name(path)
        except ValueError:
            return False
        with self._locks[hash(name) % len(self._locks)]:
            if path.is_file():
                return True  # another thread fetched it meanwhile
            if time.monotonic() < self._paused_until:
                return False
            try:
                data = self.container.download_blob(name).readall()
            except ResourceNotFoundError:
                return False
            except AzureError as err:
                self._paused_until = time.monotonic() + OUTAGE_PAUSE_S
                log.warning("could not fetch %s from the %s (%s); files missing from the cache are shown as "
                            "missing for the next %.0f s", name, self.where, _reason(err), OUTAGE_PAUSE_S)
                return False
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                durable.write_whole(path, data)
            except OSError as err:
                log.warning("could not write %s into the outputs folder's cache: %s", name, err)
                return False
        return True

    def fetch_all(self, paths: Iterable[Path]) -> None:
        missing = [Path(p) for p in dict.fromkeys(paths) if not Path(p).is_file()]
        if len(missing) == 1:
            self.fetch(missing[0])
        elif missing:
            with ThreadPoolExecutor(min(FETCH_WORKERS, len(missing)), thread_name_prefix="blob-fetch") as pool:
                list(pool.map(self.fetch, missing))

    def removed(self, path: Path) -> None:
        """Delete the blob (already gone is fine); BlobStoreError when Blob Storage cannot be reached."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        name = self.name(path)
        try:
            self.container.delete_blob(name)
        except ResourceNotFoundError:
            pass
        except AzureError as err:
            raise BlobStoreError(f"the {self.where} could not delete {name}: {_reason(err)}") from None

    def describe(self) -> str:
        return f"images in the {self.where}, cached in {self.folder}"

    def close(self) -> None:
        self.container.close()


def container_client(shared: SharedSettings) -> ContainerClient:
    """A client for the configured container (no request is made): a connection string's key, or Entra ID
    through DefaultAzureCredential for an account URL. Our retries and timeouts, not the SDK's minutes."""
    from azure.storage.blob import ContainerClient, LinearRetry

    for noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity"):  # every request's headers
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    options: dict[str, Any] = {
        "retry_policy": LinearRetry(backoff=BACKOFF_S, random_jitter_range=BACKOFF_S / 2, retry_total=RETRIES),
        "connection_timeout": CONNECTION_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S}
    if shared.blob_connection_string:
        _remember_key(shared.blob_connection_string)
        return ContainerClient.from_connection_string(shared.blob_connection_string, shared.blob_container,
                                                      **options)
    if not shared.blob_account_url:
        raise ValueError("no Blob Storage is configured (AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL)")
    from azure.identity import DefaultAzureCredential

    return ContainerClient(shared.blob_account_url, shared.blob_container, credential=DefaultAzureCredential(),
                           **options)


def open_files(shared: SharedSettings, folder: Path) -> FileStore:
    """The store for ``folder``: :class:`FileStore` unless Blob Storage is configured, then a
    :class:`BlobStore` whose container exists (made if need be; BlobStoreError if it cannot be reached).
    Registered for :func:`files_for`, so code that knows only the folder (the exports) finds it."""
    if not shared.uses_blob:
        store = FileStore(folder)
    else:
        where = redact(shared.blob_connection_string or shared.blob_account_url or "")
        store = BlobStore(folder, container_client(shared), where)
        store.ensure_container()
        log.info("%s", store.describe())
    with _STORES_LOCK:
        _STORES[os.path.abspath(folder)] = store
    return store


def files_for(folder: Path) -> FileStore:
    """The store :func:`open_files` opened for ``folder``; plain local files if none was."""
    with _STORES_LOCK:
        return _STORES.get(os.path.abspath(folder)) or FileStore(folder)


def content_type(path: Path) -> str:
    """The type a blob is stored with, from the file's suffix (a browser opening it directly would need it)."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _remember_key(connection_string: str) -> None:
    """Make the account key one of the secrets every log record and error text is scrubbed of."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("accountkey", "sharedaccesssignature") and value:
            secrets.remember(value.strip())


def _reason(err: Exception) -> str:
    """The first line of the SDK's error, scrubbed of any secret flux-ui knows, and short; for a connection
    that failed, only its last words ("[Errno 111] Connection refused"), not urllib3's object names."""
    from azure.core.exceptions import ServiceRequestError

    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if isinstance(err, ServiceRequestError):
        text = f"it cannot be reached ({text.rsplit(': ', 1)[-1]})"
    code = getattr(err, "error_code", None)
    reason = f"{code}: {text}" if code and str(code) not in text else text
    return secrets.redact(reason)[:300] or type(err).__name__
