"""Real servers for the suite: PostgreSQL and Redis named by DATABASE_URL / REDIS_URL when set,
else embedded ones started here. Each test session gets its own database and Redis key prefix,
so runs can share servers without touching each other's data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from server.settings import Settings

RUN_ID = uuid.uuid4().hex[:10]


def _admin_conninfo(url: str) -> str:
    # SQLAlchemy URLs name the driver; psycopg wants the plain libpq form.
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(admin database URL, Redis URL) of real servers."""
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from server.embedded import EmbeddedServers

    with EmbeddedServers(tmp_path_factory.mktemp("embedded")) as embedded:
        yield database_url or embedded.database_url, redis_url or embedded.redis_url


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database of this test session, dropped at the end."""
    admin_url = _admin_conninfo(server_urls[0])
    name = f"exodrive_test_{RUN_ID}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    query = ""
    if "?" in admin_url:
        query = "?" + admin_url.split("?", 1)[1]
    yield f"{base}/{name}{query}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[1]


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    """Settings of the test graph: real servers, a private Redis key prefix, a known JWT secret."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"exodrive-test-{RUN_ID}",
        jwt_secret="test-secret-that-is-long-enough-for-hs256",  # noqa: S106
        seed_demo_fleet=False,
    )

