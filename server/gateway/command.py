"""`exodrive gateway --upstream HOST:PORT`: the gateway alone, so it scales apart from gRPC."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import uvloop

from server.gateway.app import create_gateway_app
from server.gateway.serving import GatewayServer
from server.settings import Settings

# The gateway started by `serve` reaches gRPC over loopback; the rate limiter must trust it
# to append the real client to X-Forwarded-For.
LOOPBACK_PROXIES = ("127.0.0.1/32", "::1/128")


def trust_own_gateway(settings: Settings) -> Settings:
    """Settings whose trusted proxies include the loopback address of serve's own gateway."""
    missing = [p for p in LOOPBACK_PROXIES if p not in settings.trusted_proxies]
    if not missing:
        return settings
    return settings.model_copy(update={"trusted_proxies": [*settings.trusted_proxies, *missing]})


async def run_gateway(settings: Settings, upstream: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gateway = GatewayServer(
        create_gateway_app(settings, upstream), host=settings.host, port=settings.http_port
    )
    await gateway.start()
    print(f"gateway on {gateway.url} -> gRPC {upstream}", flush=True)
    try:
        await stop.wait()
        await gateway.drain(settings.shutdown_grace_seconds)
    finally:
        await gateway.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def cmd_gateway(args: argparse.Namespace) -> int:
    settings = Settings()
    updates = {"host": args.host, "http_port": args.http_port}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    # uvloop: the gateway alone is all HTTP parsing and gRPC calls, where libuv's loop is cheaper.
    uvloop.run(run_gateway(settings, args.upstream))
    return 0


def add_gateway(commands: Any) -> None:
    gateway = commands.add_parser("gateway", help="serve only the HTTP gateway, forwarding to a gRPC server")
    gateway.add_argument("--upstream", required=True, help="the gRPC server, HOST:PORT")
    gateway.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    gateway.add_argument("--http-port", type=int, help="HTTP port (default 8080; 0 picks a free one)")
    gateway.set_defaults(handler=cmd_gateway)
