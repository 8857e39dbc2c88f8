"""Embedded PostgreSQL and Redis: start, use, stop with nothing left; a crash, then a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from server.embedded import EmbeddedServerError, EmbeddedServers

pytestmark = pytest.mark.slow


def processes_on(folder: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if str(folder) in " ".join(process.info["cmdline"] or []):
            found.append(process.info["pid"])
    return found


def sockets_in(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_socket()]


def test_start_use_stop_leaves_nothing(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / "data"
    with EmbeddedServers(data_dir) as embedded:
        with psycopg.connect(embedded.database_url) as connection:
            row = connection.execute("SELECT current_setting('server_version_num')::int").fetchone()
            assert row is not None
            assert row[0] >= 160000
        client = redis.Redis.from_url(embedded.redis_url)
        assert client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        assert len(processes_on(data_dir)) >= 2
        assert (data_dir / "postgres" / "postmaster.pid").exists()
    assert processes_on(data_dir) == []
    assert sockets_in(data_dir) == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "redis" / "redis.pid").exists()


def test_data_survives_a_restart_and_warm_start_is_quick(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / "data"
    with (
        EmbeddedServers(data_dir) as embedded,
        psycopg.connect(embedded.database_url, autocommit=True) as conn,
    ):
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    with EmbeddedServers(data_dir) as embedded, psycopg.connect(embedded.database_url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)


def test_a_second_owner_of_the_folder_is_refused(embedded_tmp_path: Path) -> None:
    with EmbeddedServers(embedded_tmp_path / "data"), pytest.raises(EmbeddedServerError, match="in use"):
        EmbeddedServers(embedded_tmp_path / "data").start()


def test_long_folder_names_use_a_short_socket_folder_that_is_removed(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / ("x" * 90) / "data"
    with EmbeddedServers(data_dir) as embedded:
        assert not embedded.socket_dir.is_relative_to(data_dir)
        assert len(str(embedded.socket_dir / "redis.sock")) < 108
        with psycopg.connect(embedded.database_url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        socket_dir = embedded.socket_dir
    assert not socket_dir.exists()


def test_sigkill_of_the_owner_then_a_restart_cleans_up(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / "data"
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from server.embedded import EmbeddedServers
                EmbeddedServers({str(data_dir)!r}).start()
                print("up", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "up"
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    orphans = processes_on(data_dir)
    assert len(orphans) >= 2  # postmaster and redis-server outlived their owner

    with EmbeddedServers(data_dir) as embedded, psycopg.connect(embedded.database_url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
        assert not any(pid in processes_on(data_dir) for pid in orphans)
    assert processes_on(data_dir) == []
    assert sockets_in(data_dir) == []
