"""Runs the gateway app with uvicorn on a socket bound before start (port 0 picks a free port).

Stopping is ordered by the owner of the process, not by uvicorn: `drain()` stops accepting, answers
every request still arriving on kept-alive connections with `Connection: close` and waits for the
ones in flight; `stop()` then closes what is left and runs the app's shutdown. uvicorn's own signal
handlers are not installed, so a SIGTERM reaches the owner, which drains before anything closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

# While draining, how long a kept-alive connection with nothing in flight is left open for the
# request its client may be sending at that moment (answered with Connection: close).
IDLE_CONNECTION_WINDOW_SECONDS = 0.5


class ConnectionCloser:
    """ASGI wrapper counting the requests in flight; once draining, every response closes its
    connection, so a client learns it must reconnect (elsewhere) instead of finding it cut."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.draining = False
        self.in_flight = 0
        self.last_started = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.draining:
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        self.in_flight += 1
        self.last_started = time.monotonic()
        try:
            await self._app(scope, receive, closing)
        finally:
            self.in_flight -= 1


class _OwnedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGTERM/SIGINT for itself and close kept-alive connections at once,
        # before the process could drain them; the owner of the process handles signals.
        yield


class GatewayServer:
    """`await start()` binds and serves in the background; `await drain()` lets in-flight
    requests finish on a closed listener; `await stop()` closes and runs the app's shutdown."""

    def __init__(
        self, app: Starlette, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on accepted
        # sockets whose proto says TCP. Without it uvicorn's two writes per response (head, then
        # body) meet Nagle and the client's delayed ACK: every keep-alive request took about 44 ms.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            # Workers of `serve --workers N` share the HTTP port; the kernel spreads connections.
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._closer = ConnectionCloser(app)
        # proxy_headers off: the client address must be the socket peer, which the gateway appends
        # to X-Forwarded-For itself; uvicorn would otherwise take the client's own header as truth.
        # httptools, not h11: the C parser halves the HTTP share of a request's CPU time.
        config = uvicorn.Config(
            self._closer,
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
        )
        self._server = _OwnedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._server.server_state.connections)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the start-up error
                raise RuntimeError("gateway stopped during start-up")
            await asyncio.sleep(0.01)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109
        """Stop accepting; answer with `Connection: close` from now on; return once every
        connection has closed, or nothing has been in flight for a short window (idle kept-alive
        connections), or `timeout` has passed."""
        self._closer.draining = True
        for listener in self._server.servers:
            listener.close()  # open connections stay; only the listening socket goes
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            quiet = time.monotonic() - self._closer.last_started
            if self._closer.in_flight == 0 and quiet >= IDLE_CONNECTION_WINDOW_SECONDS:
                break
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._socket.close()
