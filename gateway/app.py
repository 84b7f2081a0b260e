"""The ASGI app: ingest routes, /graphql (+ GraphiQL), the dashboard, health. Wiring only."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from gateway.auth import Authenticator, KeyAdmin, credentials
from gateway.dashboard import dashboard_routes
from gateway.graphiql import graphiql_html, graphiql_routes
from gateway.http_ingest import IngestEndpoints, json_response
from gateway.limits import GraphQLRateLimit, RateLimiter
from gateway.logs import RequestId
from gateway.metrics import IngestRequestCounter, metrics_endpoint
from gateway.metrics_graphql import operation_metrics
from gateway.platform import Platform, now_ms
from gateway.sdk_compat import SDKEndpoints
from gateway.shutdown import OpenSockets
from gateway.websocket import LegacyWSHandler, TextWebSocketAdapter, TransportWSHandler

if TYPE_CHECKING:
    from gateway.distributed import DistributedPlatform
from resolvers.context import Context
from resolvers.schema import build_schema

log = logging.getLogger("cep.gateway")


class CEPGraphQL(GraphQL[Context, None]):
    """Queries and mutations over HTTP; subscriptions (and the rest) over WebSocket with the
    ``graphql-transport-ws`` and ``graphql-ws`` sub-protocols, keyed as ``gateway.websocket``
    describes."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = TextWebSocketAdapter

    def __init__(self, platform: Platform | DistributedPlatform, auth: Authenticator) -> None:
        s = platform.settings
        super().__init__(build_schema(s.graphql_max_depth, s.graphql_max_tokens,
                                      s.graphql_max_aliases, s.graphql_max_cost,
                                      s.page_size_limit,
                                      [operation_metrics(platform.metrics)]),
                         graphql_ide="graphiql",
                         subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,
                                                 GRAPHQL_WS_PROTOCOL),
                         keep_alive=True, keep_alive_interval=15)
        self._platform = platform
        self.auth = auth
        self.keys = KeyAdmin(platform.control, auth)

    def decode_json(self, data: str | bytes) -> object:
        """orjson: any body that is not JSON in UTF-8 raises a ``JSONDecodeError``, which
        strawberry answers 400 (the standard library guesses UTF-16/32 from NUL bytes and
        raises ``UnicodeDecodeError``, a 500). Anything but an object is refused the same way
        (strawberry would call ``.get`` on it)."""
        value = orjson.loads(data)
        if not isinstance(value, dict):
            raise json.JSONDecodeError("a GraphQL request is a JSON object", "", 0)
        return value

    def encode_json(self, data: object) -> bytes:
        """orjson: a 10,000-row page renders in a fifth of the standard library's time."""
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html())

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        key = credentials(request.headers)
        info = self.auth.check(key) if key else None
        p = self._platform
        return Context(
            project=info.project if info else None,
            key_kind=info.kind if info else None,
            sessions=p.store, dead_letters=p.store, ingest=p.ingestor, registry=p.registry,
            pipeline=p.pipeline,
            now_ms=now_ms, page_size_limit=p.settings.page_size_limit,
            about=p.about,
            session_settings=p.runner_rules,
            update_session_settings=p.update_session_settings,
            events=p.store, profiles=p.store,
            project_settings=p.control.settings,
            update_project_settings=p.control.update_settings,
            graph=p.graph,
            live=p.live,
            campaigns=getattr(p, "campaigns", None),
            keys=self.keys,
            extras={"user_data": getattr(p, "user_data", None)},  # export and erasure
        )


def create_app(platform: Platform | DistributedPlatform, *, own_platform: bool = False
               ) -> Starlette:
    auth = Authenticator(platform.control)
    s = platform.settings
    # one admission (keys, backlog bound, rate budget per key) for every ingest route
    ingest = IngestEndpoints(platform.ingestor, auth, s.max_body_bytes,
                             RateLimiter(s.rate_ingest_records), platform.backlog,
                             s.max_backlog)
    sdk = SDKEndpoints(ingest, platform.ingestor)

    async def healthz(_request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        ok, dependencies, extra = await platform.readiness()
        body = {"status": "ok" if ok else "degraded", "dependencies": dependencies, **extra}
        return json_response(body, 200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()
            if own_platform:
                platform.close()

    graphql = CEPGraphQL(platform, auth)
    sockets = OpenSockets(graphql)  # closed with a reason on shutdown (gateway.shutdown)
    sdk_routes = sdk.routes()
    # answers counted by route (PostHog's feature-flag lookups are not ingest)
    ingest_paths = ["/v1/events", "/v1/identify", *(
        r.path for r in sdk_routes if r.path.rstrip("/") not in ("/decide", "/flags"))]
    routes = [
        Route("/v1/events", ingest.events, methods=["POST"]),
        # CEP's own profiles, or Segment's identify (told apart by the body).
        Route("/v1/identify", sdk.identify, methods=["POST"]),
        *sdk_routes,  # Segment / RudderStack, PostHog and Mixpanel ingestion (issue 8)
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint(platform.metrics)),  # no key: see gateway.metrics
        Route("/readyz", readyz),
        Route("/graphql", GraphQLRateLimit(graphql, RateLimiter(s.rate_queries)),
              methods=["GET", "POST"]),
        WebSocketRoute("/graphql", sockets),
        *graphiql_routes(),
        *dashboard_routes(),  # / and /dashboard/… (issue 9)
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[
        Middleware(RequestId),
        Middleware(IngestRequestCounter, metrics=platform.metrics, paths=ingest_paths)])
    app.state.sockets = sockets
    return app
