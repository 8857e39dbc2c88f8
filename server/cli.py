"""The `exodrive` command: `serve`, `migrate`, `seed` and `token`.

Settings come from the environment (server/settings.py); flags override a few of them. With no
`DATABASE_URL` / `REDIS_URL`, every command that needs them starts embedded servers under the data
folder for its own lifetime (the zero-config default); `serve` keeps them until it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Protocol

from pydantic import SecretStr

from server.embedded import EmbeddedServers
from server.metrics import Metrics, expose_metrics, worker_metrics
from server.settings import Settings

log = logging.getLogger("exodrive")

JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name
HOLD_EXPIRY_INTERVAL_SECONDS = 30.0


class Subparsers(Protocol):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


# --- environment --------------------------------------------------------------------------------


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    settings = Settings()
    updates: dict[str, object] = {}
    for flag, name in (
        ("data_dir", "data_dir"),
        ("host", "host"),
        ("port", "grpc_port"),
        ("http_port", "http_port"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            updates[name] = value
    return settings.model_copy(update=updates) if updates else settings


def with_jwt_secret(settings: Settings) -> Settings:
    """On the zero-config default without a secret, one generated once into the data folder
    (mode 0600), so that `serve` and `token` agree across runs."""
    if settings.jwt_secret is not None or not settings.zero_config:
        return settings
    path = settings.data_dir / JWT_SECRET_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return settings.model_copy(update={"jwt_secret": SecretStr(path.read_text().strip())})


@contextlib.contextmanager
def running_stores(settings: Settings) -> Iterator[Settings]:
    """Settings that name running PostgreSQL and Redis: embedded ones for missing URLs."""
    if not settings.zero_config:
        yield settings
        return
    with EmbeddedServers(settings.data_dir) as embedded:
        yield settings.model_copy(
            update={
                "database_url": settings.database_url or embedded.database_url,
                "redis_url": settings.redis_url or embedded.redis_url,
            }
        )


def database_url(settings: Settings) -> str:
    assert settings.database_url is not None, "running_stores() sets it"
    return settings.database_url


def migrate_and_seed(settings: Settings) -> None:
    from server import schema

    schema.upgrade(database_url(settings))
    if settings.seed_demo_fleet:
        seed(settings)


def seed(settings: Settings) -> None:
    from services.seed import seed_demo_fleet

    asyncio.run(seed_demo_fleet(database_url(settings)))


class ShutdownRequestedError(Exception):
    """SIGTERM or SIGINT arrived outside the event loop: unwind so embedded servers stop."""


def _raise_shutdown(signum: int, frame: FrameType | None) -> NoReturn:
    raise ShutdownRequestedError(signal.Signals(signum).name)


# --- serve ----------------------------------------------------------------------------------------


async def serve_until_signalled(settings: Settings, *, reuse_port: bool, http: bool) -> None:
    """One server process: gRPC, the gateway calling this process's gRPC server (when enabled),
    and the hold-expiry job. On SIGTERM/SIGINT it stops in the order that cuts nothing in flight:
    health NOT_SERVING, the gateway drains its requests, the gRPC server drains its calls, the
    application closes its pools."""
    from server.bootstrap import build_application
    from server.gateway.command import trust_own_gateway
    from server.grpc_server import GrpcServer
    from server.jobs import hold_expiry_job

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    if http:
        settings = trust_own_gateway(settings)
    app = await build_application(settings)
    server = GrpcServer(
        app,
        host=settings.host,
        port=settings.grpc_port,
        grace_seconds=settings.shutdown_grace_seconds,
        reuse_port=reuse_port,
        loopback_port=http,
    )
    await server.start()
    metrics = await expose_metrics(app.metrics, settings.metrics_port, settings.host)
    gateway = None
    if http:
        assert server.loopback_address is not None
        gateway = await start_gateway(
            settings, server.loopback_address, application_metrics=app.metrics, reuse_port=reuse_port
        )
    job = hold_expiry_job(app.bookings.expire_overdue, HOLD_EXPIRY_INTERVAL_SECONDS)
    job.start()
    log.info(
        "serving",
        extra={
            "grpc_address": server.address,
            "http_url": gateway.url if gateway is not None else None,
            "pid": os.getpid(),
        },
    )
    try:
        await stop.wait()
        log.info("shutting down: draining calls", extra={"grace_seconds": settings.shutdown_grace_seconds})
        await server.announce_shutdown()
        if gateway is not None:
            await gateway.drain(settings.shutdown_grace_seconds)
    finally:
        await job.stop()
        if gateway is not None:
            await gateway.stop()
        await server.stop()
        await metrics.stop()


class Gateway(Protocol):
    @property
    def url(self) -> str: ...
    async def drain(self, timeout: float) -> None: ...  # noqa: ASYNC109
    async def stop(self) -> None: ...


async def start_gateway(
    settings: Settings, grpc_address: str, *, reuse_port: bool, application_metrics: Metrics | None = None
) -> Gateway:
    """The HTTP/JSON gateway beside the gRPC server (server/gateway)."""
    from server.gateway.app import create_gateway_app
    from server.gateway.serving import GatewayServer

    gateway = GatewayServer(
        create_gateway_app(settings, grpc_address, application_metrics=application_metrics),
        host=settings.host,
        port=settings.http_port,
        reuse_port=reuse_port,
    )
    await gateway.start()
    return gateway


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    http = not args.no_http
    if args.child:
        # A worker of `serve --workers N`: the parent prepared everything and passed real URLs.
        asyncio.run(serve_until_signalled(settings, reuse_port=True, http=http))
        return 0
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, _raise_shutdown)
    started = time.monotonic()
    try:
        with running_stores(with_jwt_secret(settings)) as ready:
            migrate_and_seed(ready)
            log.info("database ready", extra={"seconds": round(time.monotonic() - started, 3)})
            if args.workers <= 1:
                asyncio.run(serve_until_signalled(ready, reuse_port=False, http=http))
            else:
                run_workers(ready, args.workers, http=http)
    except ShutdownRequestedError:
        log.info("stopped before serving")
    return 0


def reserve_port(stack: contextlib.ExitStack, host: str, port: int) -> int:
    """`port`, or for 0 a free port held for the workers by a bound, never-listening socket
    (SO_REUSEPORT), which takes no connections."""
    if port != 0:
        return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    reserved: int = holder.getsockname()[1]
    return reserved


def run_workers(settings: Settings, workers: int, *, http: bool) -> None:
    """N child processes, each a whole server (gRPC, and a gateway calling that same process's
    gRPC server), share the gRPC and HTTP ports (SO_REUSEPORT: the kernel spreads connections)
    and one PostgreSQL and Redis. This process only prepared them (embedded servers, migration,
    seed) and supervises: it stops them all on SIGTERM/SIGINT, or when one of them exits."""
    with contextlib.ExitStack() as stack:
        port = reserve_port(stack, settings.host, settings.grpc_port)
        command = [sys.executable, "-m", "server.cli", "serve", "--child", "--port", str(port)]
        if http:
            command += ["--http-port", str(reserve_port(stack, settings.host, settings.http_port))]
        else:
            command.append("--no-http")
        env = {**os.environ, **child_environment(settings), **stack.enter_context(worker_metrics(settings))}
        children = [
            subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
            for _ in range(workers)
        ]
        try:
            asyncio.run(supervise(children))
        finally:
            # A worker may use the grace twice: its gateway drains, then its gRPC server.
            stop_children(children, 2 * settings.shutdown_grace_seconds + 5)


def child_environment(settings: Settings) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url(settings),
        "REDIS_URL": settings.redis_url or "",
        "EXODRIVE_HOST": settings.host,
        "EXODRIVE_SHUTDOWN_GRACE_SECONDS": str(settings.shutdown_grace_seconds),
        "EXODRIVE_TRUSTED_PROXIES": ",".join(settings.trusted_proxies),
    }
    if settings.jwt_secret is not None:
        env["EXODRIVE_JWT_SECRET"] = settings.jwt_secret.get_secret_value()
    return env


async def supervise(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Until SIGTERM/SIGINT, or until a worker exits (then the others are stopped too)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("serving with workers", extra={"workers": [child.pid for child in children]})
    while not stop.is_set():
        if any(child.poll() is not None for child in children):
            log.error("a worker exited; stopping the others")
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def stop_children(children: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- the other commands ------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from server import schema

    with running_stores(settings_from(args)) as ready:
        url = database_url(ready)
        if args.action == "up":
            schema.upgrade(url)
        elif args.action == "down":
            schema.downgrade(url)
        print(schema.current(url) or "base")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    with running_stores(settings_from(args)) as ready:
        from server import schema

        schema.upgrade(database_url(ready))
        seed(ready)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from server.auth import mint_token
    from services.principal import Role

    settings = with_jwt_secret(settings_from(args))
    if settings.jwt_secret is None:
        print("set EXODRIVE_JWT_SECRET to mint tokens", file=sys.stderr)
        return 2
    print(
        mint_token(
            settings.jwt_secret.get_secret_value(),
            role=Role(args.role),
            subject=args.sub,
            ttl_seconds=args.ttl,
        )
    )
    return 0


# --- the parser ----------------------------------------------------------------------------------------


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="folder of the embedded servers (default .exodrive)")


def add_serve(commands: Subparsers) -> None:
    serve = commands.add_parser("serve", help="serve gRPC and the HTTP gateway")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    serve.add_argument("--http-port", type=int, help="HTTP gateway port (default 8080; 0 picks a free one)")
    serve.add_argument("--no-http", action="store_true", help="serve gRPC only")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    serve.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    _data_dir(serve)
    serve.set_defaults(handler=cmd_serve)


def add_migrate(commands: Subparsers) -> None:
    migrate = commands.add_parser("migrate", help="migrate the schema; prints the revision")
    migrate.add_argument("action", choices=["up", "down", "current"], help="down goes to base")
    _data_dir(migrate)
    migrate.set_defaults(handler=cmd_migrate)


def add_seed(commands: Subparsers) -> None:
    seed_parser = commands.add_parser("seed", help="add the demo fleet (idempotent)")
    _data_dir(seed_parser)
    seed_parser.set_defaults(handler=cmd_seed)


def _subject(text: str) -> str:
    """A token's `sub`: the user it speaks for, so never blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the subject must not be empty")
    return text


def _positive_seconds(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1 second, got {seconds}")
    return seconds


def add_token(commands: Subparsers) -> None:
    token = commands.add_parser("token", help="mint a development JWT (HS256)")
    token.add_argument("--role", required=True, choices=["admin", "customer", "service"])
    token.add_argument("--sub", required=True, type=_subject, help="the subject (user id), not empty")
    token.add_argument("--ttl", type=_positive_seconds, default=3600, help="seconds until it expires (> 0)")
    _data_dir(token)
    token.set_defaults(handler=cmd_token)


def add_gateway(commands: Subparsers) -> None:
    from server.gateway.command import add_gateway as add

    add(commands)


# Each adds one subcommand; a new command is one more function here.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_serve,
    add_migrate,
    add_seed,
    add_token,
    add_gateway,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exodrive", description="ExoDrive backend")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from server.logging_setup import configure_logging

    configure_logging(Settings().log_level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
