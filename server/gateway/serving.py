"""Runs the gateway app with uvicorn on a socket bound before start (port 0 picks a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn
from starlette.applications import Starlette


class GatewayServer:
    """`await start()` binds and serves in the background; `await stop()` drains and closes."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on accepted
        # sockets whose proto says TCP. Without it uvicorn's two writes per response (head, then
        # body) meet Nagle and the client's delayed ACK: every keep-alive request took about 44 ms.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        # proxy_headers off: the client address must be the socket peer, which the gateway appends
        # to X-Forwarded-For itself; uvicorn would otherwise take the client's own header as truth.
        # httptools, not h11: the C parser halves the HTTP share of a request's CPU time.
        config = uvicorn.Config(
            app,
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the start-up error
                raise RuntimeError("gateway stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._socket.close()

    async def serve_forever(self) -> None:
        await self.start()
        assert self._task is not None
        await self._task
