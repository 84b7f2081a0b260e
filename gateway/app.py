"""The ASGI app: ingest routes, /graphql (+ GraphiQL), health. Wiring only, no logic."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gateway.auth import Authenticator, credentials
from gateway.graphiql import graphiql_html, graphiql_routes
from gateway.ingest import BodyTooLarge, inflate, is_gzip
from gateway.platform import Platform, now_ms
from resolvers.context import Context
from resolvers.schema import build_schema
from stream.contract.envelope import BodyError, split_records

log = logging.getLogger("cep.gateway")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def _error(status: int, message: str, code: str) -> Response:
    return _json({"error": message, "code": code}, status)


class CEPGraphQL(GraphQL[Context, None]):
    def __init__(self, platform: Platform, auth: Authenticator) -> None:
        s = platform.settings
        super().__init__(build_schema(s.graphql_max_depth, s.graphql_max_tokens,
                                      s.graphql_max_aliases), graphql_ide="graphiql")
        self._platform = platform
        self._auth = auth

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html())

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        key = credentials(request.headers)
        if key is None and isinstance(request, WebSocket):
            key = None  # subscriptions pass it in connection params (live views)
        info = self._auth.check(key) if key else None
        p = self._platform
        return Context(
            project=info.project if info else None,
            key_kind=info.kind if info else None,
            sessions=p.store, dead_letters=p.store, ingest=p.ingestor, registry=p.registry,
            pipeline=lambda: (p.log.pending_items, p.runner.processed_events,
                              p.runner.error is None),
            now_ms=now_ms, page_size_limit=p.settings.page_size_limit,
        )


def create_app(platform: Platform, *, own_platform: bool = False) -> Starlette:
    auth = Authenticator(platform.control)
    settings = platform.settings

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"body: {declared} bytes is over the {limit}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body: over the {limit}-byte limit")
            chunks.append(chunk)
        body = b"".join(chunks)
        if request.headers.get("content-encoding", "").lower() == "gzip" or is_gzip(body):
            body = inflate(body, limit)
        return body

    async def ingest(request: Request, kind: str) -> Response:
        key = credentials(request.headers)
        info = auth.check(key) if key else None
        if info is None:
            return _error(401, "a valid write key is required: Authorization: Bearer <key>",
                          "UNAUTHENTICATED")
        if info.kind not in ("write", "admin"):
            return _error(403, f"a {info.kind} key cannot ingest; use the write key",
                          "FORBIDDEN")
        try:
            body = await read_body(request)
            records = split_records(body)
            handler = platform.ingestor.events if kind == "event" else platform.ingestor.profiles
            result = await handler(info.project, records)
        except BodyTooLarge as exc:
            return _error(413, str(exc), "PAYLOAD_TOO_LARGE")
        except (BodyError, ValueError) as exc:
            return _error(400, str(exc), "BAD_REQUEST")
        return _json(result.as_json())

    async def events(request: Request) -> Response:
        return await ingest(request, "event")

    async def identify(request: Request) -> Response:
        return await ingest(request, "profile")

    async def healthz(_request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        runner_ok = platform.runner.error is None
        body = {"status": "ok" if runner_ok else "degraded",
                "dependencies": {"event_log": "ok", "store": "ok",
                                 "runner": "ok" if runner_ok else str(platform.runner.error)},
                "pending_events": platform.log.pending_items,
                "geo": platform.geo.source}
        return _json(body, 200 if runner_ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own_platform:
                platform.close()

    graphql = CEPGraphQL(platform, auth)
    routes = [
        Route("/v1/events", events, methods=["POST"]),
        Route("/v1/identify", identify, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        *graphiql_routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
