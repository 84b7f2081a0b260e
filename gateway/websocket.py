"""``/graphql`` over WebSocket: authentication on both sub-protocols, and text frames.

A connection carries its project key in the handshake's ``Authorization`` header (as HTTP
requests do) or in the ``connection_init`` payload, which browsers must use since they
cannot set handshake headers. The payload may hold ``{"Authorization": "Bearer <key>"}``
(the field name in any case; ``Basic`` as over HTTP too) or ``{"key": "<key>"}``; a key in
the payload wins over the header.

Without a valid key the connection is refused at ``connection_init``: closed with 4401 and
a reason saying what is missing (``graphql-ws`` first gets a ``connection_error`` with the
same message). A valid key of the wrong kind connects, and each operation it may not run
fails with ``FORBIDDEN`` naming the key it needs, as over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)

from gateway.auth import Authenticator, credentials
from resolvers.context import Context

UNAUTHORIZED = 4401
_NO_KEY = ('no valid project key: send connection params {"Authorization": "Bearer <read key>"} '
           "or an Authorization header")
_BAD_KEY = "unknown or revoked project key in the connection params"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: int
    reason: str  # a close reason: at most 123 bytes


def connection_key(params: Mapping[str, Any] | None) -> str | None:
    """The key in a ``connection_init`` payload, or None."""
    if not params:
        return None
    for name, value in params.items():
        if isinstance(name, str) and name.lower() == "authorization" and isinstance(value, str):
            return credentials({"authorization": value})
    key = params.get("key")
    if isinstance(key, str) and key.strip():
        return key.strip()
    return None


def admit(auth: Authenticator, context: Context, payload: object) -> Refusal | None:
    """Set the connection's project and key kind from the key in ``payload``, else keep
    what the handshake header gave (``get_context``); a refusal when neither is valid."""
    key = connection_key(payload if isinstance(payload, dict) else None)
    if key is not None:
        info = auth.check(key)
        if info is None:
            return Refusal(UNAUTHORIZED, _BAD_KEY)
        context.project, context.key_kind = info.project, info.kind
    if context.project is None:
        return Refusal(UNAUTHORIZED, _NO_KEY)
    return None


def _refuse(handler: Any, payload: object) -> Refusal | None:
    auth: Authenticator = handler.view.auth
    return admit(auth, handler.context, payload)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """``graphql-transport-ws`` that checks the project key at ``connection_init``."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if not self.connection_init_received and not self.connection_timed_out:
            refusal = _refuse(self, message.get("payload"))
            if refusal is not None:
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                self.connection_init_received = True
                await self.websocket.close(code=refusal.code, reason=refusal.reason)
                return
        await super().handle_connection_init(message)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """``graphql-ws`` (subscriptions-transport-ws) that checks the key at ``connection_init``."""

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        refusal = _refuse(self, message.get("payload"))
        if refusal is not None:
            await self.send_message({"type": "connection_error", "payload": {
                "message": refusal.reason, "extensions": {"code": "UNAUTHENTICATED"}}})
            await self.websocket.close(code=refusal.code, reason=refusal.reason)
            return
        await super().handle_connection_init(message)


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Messages as text frames: both protocols are JSON text, and the view's ``encode_json``
    (orjson) returns bytes, which would otherwise go out as binary frames."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        data = self.view.encode_json(message)
        try:
            await self.ws.send_text(data.decode() if isinstance(data, bytes) else data)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
