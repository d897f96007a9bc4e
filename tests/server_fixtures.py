"""Fixtures over real servers (:mod:`servers`): each server starts once per run, when a test first asks for
it, and each test gets a clean share of it (an empty Redis, a new PostgreSQL schema, a new blob container)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from servers import Azurite, PostgresServer, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied (and started again if a test left it stopped)."""
    import redis

    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as db:
        db.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A URL to an empty schema of the session's PostgreSQL: as good as a new database, and fast."""
    if postgres_server.process is None or postgres_server.process.poll() is not None:
        postgres_server.start()
    return postgres_server.fresh_schema()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def blob_env(azurite: Azurite) -> dict[str, str]:
    """Settings for a new, empty container in Azurite (flux-ui creates it at start)."""
    return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "FLUX_UI_BLOB_CONTAINER": f"t-{secrets.token_hex(6)}"}
