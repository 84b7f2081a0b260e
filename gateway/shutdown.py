"""Graceful shutdown on SIGTERM (or Ctrl-C).

In order: stop accepting connections; close every WebSocket (subscriptions) with 1001
"going away" and a reason a client can show; let in-flight requests finish — an ingest
request answers only once its batch is in the event log — for at most
``shutdown_grace_seconds``; then the app's lifespan ends, which drains the pipeline and
flushes the sinks (``Platform.close``: the embedded runner processes everything the log
holds, the stores commit; the distributed profile flushes its Kafka producer).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cep.shutdown")

GOING_AWAY = 1001
SHUTDOWN_REASON = "server shutting down; reconnect to resume"


class OpenSockets:
    """ASGI wrapper around the WebSocket endpoint that knows every open connection, so
    shutdown can close them with a reason (uvicorn alone drops them with 1012 and none)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._open: dict[int, Send] = {}
        self.closing = False

    def __len__(self) -> int:
        return len(self._open)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.closing:
            await receive()  # the websocket.connect message
            await send({"type": "websocket.close", "code": GOING_AWAY,
                        "reason": SHUTDOWN_REASON})
            return
        closed = False

        async def guarded(message: Message) -> None:
            nonlocal closed
            if closed:  # shutdown closed it: dropped until the handler reads the disconnect
                return
            if message["type"] == "websocket.close":
                closed = True
            await send(message)

        key = id(scope)
        self._open[key] = guarded
        try:
            await self.app(scope, receive, guarded)
        finally:
            self._open.pop(key, None)

    async def close_all(self, reason: str = SHUTDOWN_REASON) -> int:
        """Close every open connection with 1001 and ``reason``; returns how many."""
        self.closing = True
        sends = list(self._open.values())
        for send in sends:
            with contextlib.suppress(Exception):  # already closing on its own
                await send({"type": "websocket.close", "code": GOING_AWAY, "reason": reason})
        return len(sends)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, closing the app's subscriptions with a reason before it waits for
    in-flight requests (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, sockets: OpenSockets) -> None:
        super().__init__(config)
        self.open_sockets = sockets

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # refuse new connections first
            server.close()
        in_flight = len(self.server_state.tasks)
        closed = await self.open_sockets.close_all()
        log.info("shutting down: %d subscription connection(s) closed, waiting for %d "
                 "in-flight request(s)", closed, in_flight,
                 extra={"subscriptions_closed": closed, "in_flight": in_flight})
        await super().shutdown(sockets)
        log.info("shut down: the pipeline drained and the stores flushed")


def serve(app: Any, sockets: OpenSockets, **config: Any) -> None:
    """``uvicorn.run`` with :class:`GracefulServer`."""
    server = GracefulServer(uvicorn.Config(app, **config), sockets)
    server.run()
