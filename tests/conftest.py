"""Real servers for the suite: PostgreSQL and Redis named by DATABASE_URL / REDIS_URL when set,
else embedded ones started here. Each test session gets its own database and Redis key prefix,
so runs can share servers without touching each other's data."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest
from database_urls import admin_conninfo
from private_dirs import private_dir
from psycopg import sql

from server.settings import Settings
from services.storage.engine import with_database

if TYPE_CHECKING:
    from server.bootstrap import Application
    from server.grpc_server import GrpcServer

RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(admin database URL, Redis URL) of real servers."""
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from server.embedded import EmbeddedServers

    with private_dir() as folder, EmbeddedServers(folder / "embedded") as embedded:
        yield database_url or embedded.database_url, redis_url or embedded.redis_url


@pytest.fixture
def embedded_tmp_path() -> Iterator[Path]:
    """A fresh folder for embedded servers, outside pytest's root (see tests/private_dirs.py)."""
    with private_dir() as folder:
        yield folder


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database of this test session, dropped at the end."""
    admin_url = admin_conninfo(server_urls[0])
    name = f"exodrive_test_{RUN_ID}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[1]


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Iterator[Settings]:
    """Settings of the test graph: real servers, a private Redis key prefix, a known JWT secret.
    At the end of the session every key under the prefix is deleted (tests derive their own
    prefixes from it, and cache keys start with `{prefix`)."""
    prefix = f"exodrive-test-{RUN_ID}"
    yield Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=prefix,
        jwt_secret="test-secret-that-is-long-enough-for-hs256",
        seed_demo_fleet=False,
    )
    delete_keys(redis_url, prefix)


def delete_keys(redis_url: str, prefix: str) -> int:
    """SCAN MATCH + UNLINK of the keys of one prefix (never FLUSHDB: others share the server)."""
    import redis

    deleted = 0
    with redis.Redis.from_url(redis_url) as client:
        for pattern in (f"{prefix}*", f"{{{prefix}*"):
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 500:
                    deleted += client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += client.unlink(*batch)
    return deleted


@pytest.fixture(scope="session")
def migrated_settings(settings: Settings) -> Settings:
    """`settings` whose session database has the whole schema (migrated once per session)."""
    from server import schema

    assert settings.database_url is not None
    schema.upgrade(settings.database_url)
    return settings


@dataclass
class RunningServer:
    """A full application served over gRPC on 127.0.0.1 in the test's event loop."""

    address: str
    channel: grpc.aio.Channel
    app: Application
    server: GrpcServer


@pytest.fixture
async def running_server(migrated_settings: Settings) -> AsyncIterator[RunningServer]:
    from server.bootstrap import build_application
    from server.grpc_server import GrpcServer

    app = await build_application(migrated_settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=migrated_settings.shutdown_grace_seconds)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield RunningServer(server.address, channel, app, server)
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)
