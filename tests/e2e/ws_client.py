"""A GraphQL-over-WebSocket client speaking ``graphql-transport-ws`` and ``graphql-ws`` by
hand (the messages are what the tests check), for the e2e and conformance live tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import Gateway

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]


class Subscriber:
    """One WebSocket connection speaking ``protocol`` by hand: the messages are the test."""

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """``connection_init``; the server's answer (ack, or error for graphql-ws)."""
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def receive(self, within: float = 30.0) -> dict[str, Any]:
        """The next message other than keep-alives (``ka``, ``ping``: answered)."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), within)
            assert isinstance(raw, str), "messages are text frames"
            message: dict[str, Any] = orjson.loads(raw)
            if message["type"] == "ka":
                continue
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, op: str, query: str, variables: dict[str, Any] | None = None
                        ) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send({"id": op, "type": kind,
                         "payload": {"query": query, "variables": variables or {}}})

    async def results(self, op: str, n: int, within: float = 30.0) -> list[dict[str, Any]]:
        """The next ``n`` results of ``op`` (their single field's value)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while len(out) < n:
            message = await self.receive(max(0.1, deadline - time.monotonic()))
            assert message.get("id") == op, message
            assert message["type"] in ("next", "data"), message
            assert "errors" not in message["payload"], message
            out.append(next(iter(message["payload"]["data"].values())))
        return out

    async def collect(self, wanted: dict[str, int], within: float = 30.0
                      ) -> dict[str, list[dict[str, Any]]]:
        """Results of several operations, interleaved: ``wanted[op]`` of each."""
        got: dict[str, list[dict[str, Any]]] = {op: [] for op in wanted}
        deadline = time.monotonic() + within
        while any(len(got[op]) < n for op, n in wanted.items()):
            message = await self.receive(max(0.1, deadline - time.monotonic()))
            assert message["type"] in ("next", "data"), message
            assert "errors" not in message["payload"], message
            got[message["id"]].append(next(iter(message["payload"]["data"].values())))
        return got

    async def error(self, op: str, within: float = 30.0) -> dict[str, Any]:
        """The first error of ``op``, skipping results: as an ``error`` message or as a
        result carrying errors."""
        while True:
            message = await self.receive(within)
            if message["type"] == "error":
                payload = message["payload"]
                return dict(payload[0] if isinstance(payload, list) else payload)
            if message["type"] in ("next", "data") and message["payload"].get("errors"):
                return dict(message["payload"]["errors"][0])


def ws_url(gateway: Gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def opened(gateway: Gateway, protocol: str, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> AsyncIterator[Subscriber]:
    async with connect(ws_url(gateway), subprotocols=[protocol],  # type: ignore[list-item]
                       additional_headers=headers, **kwargs) as ws:
        assert ws.subprotocol == protocol
        yield Subscriber(ws, protocol)


@asynccontextmanager
async def connected(gateway: Gateway, protocol: str, key: str,
                    **kwargs: Any) -> AsyncIterator[Subscriber]:
    async with opened(gateway, protocol, **kwargs) as sub:
        ack = await sub.init({"Authorization": f"Bearer {key}"})
        assert ack["type"] == "connection_ack", ack
        yield sub
