"""GraphQL for live sessions: the sessions open now, events as they are processed (over
subscriptions), and live metrics.

Served over WebSocket at ``/graphql`` (``graphql-transport-ws`` and ``graphql-ws``); the
gateway authenticates the connection (``gateway/websocket.py``), each subscription needs a
read key and sees only its project's streams.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import orjson
import strawberry
from strawberry.scalars import JSON

from resolvers.errors import bad_input
from resolvers.live import (
    EventFilter,
    accept_all,
    follow,
    list_open_sessions,
    live_metrics,
    parse_cursor,
)
from resolvers.schema_common import page_size
from resolvers.window import iso
from storage.live import LiveEvent as StoredLiveEvent
from storage.live import OpenSession as StoredOpenSession
from storage.live import OpenSessionMatch

After = Annotated[str | None, strawberry.argument(description=(
    "The `id` of the last event received: resume right after it without a gap (within "
    "what the stream retains). \"0\": everything retained. Omitted: from now on."))]


@strawberry.type(description="An event as processed (de-duplicated, sessionized, enriched).")
class LiveEvent:
    id: str = strawberry.field(description="Opaque, ordered cursor: pass it as `after` "
                                           "to resume.")
    insert_id: str
    event_name: str
    category: str
    time: str = strawberry.field(description="Event time, ISO-8601 UTC.")
    user_id: str | None = strawberry.field(
        description="The sender's user id (`distinct_user_id`), else its device id.")
    device_id: str | None
    session_id: str
    url: str | None
    properties: JSON
    city: str | None
    country: str | None
    device_type: str | None
    os: str | None

    @classmethod
    def of(cls, e: StoredLiveEvent) -> LiveEvent:
        return cls(id=str(e.id), insert_id=e.insert_id, event_name=e.event_name,
                   category=e.category, time=iso(e.time) or "", user_id=e.user_id or None,
                   device_id=e.device_id, session_id=e.session_id, url=e.url,
                   properties=orjson.loads(e.properties or "{}"), city=e.city or None,
                   country=e.country or None, device_type=e.device_type or None,
                   os=e.os or None)


@strawberry.input(description="Every given field must match: `event` and `category` exactly, "
                              "`city` and `deviceType` case-insensitively.")
class LiveEventFilter:
    event: str | None = None
    category: str | None = None
    city: str | None = None
    device_type: str | None = None


@strawberry.type
class LiveEventCount:
    event: str
    count: int


@strawberry.type(description="Sessions open now, and the events processed during the "
                             "interval just ended.")
class LiveMetrics:
    active_sessions: int = strawberry.field(
        description="Sessions with an event within the session timeout of now.")
    events_per_second: float
    top_events: list[LiveEventCount] = strawberry.field(
        description="The interval's ten most frequent event names, ties by name.")


@strawberry.type(description="A session open now: an event within the session timeout. "
                             "Place and device are those of the first of its events processed.")
class OpenSession:
    session_id: str
    user_id: str | None = strawberry.field(
        description="The sender's user id (`distinct_user_id`), else its device id.")
    device_id: str | None
    started_at: str = strawberry.field(description="First event time, ISO-8601 UTC.")
    last_event_at: str = strawberry.field(description="Last event time, ISO-8601 UTC.")
    events: int = strawberry.field(description="Events processed in it so far.")
    last_event: str = strawberry.field(description="The name of its latest event.")
    city: str | None
    country: str | None
    device_type: str | None

    @classmethod
    def of(cls, s: StoredOpenSession) -> OpenSession:
        return cls(session_id=s.session_id, user_id=s.user_id or None, device_id=s.device_id,
                   started_at=iso(s.started) or "", last_event_at=iso(s.last_event_time) or "",
                   events=s.events, last_event=s.last_event, city=s.city or None,
                   country=s.country or None, device_type=s.device_type or None)


@strawberry.input(description="Every given field must match, case-insensitively.")
class OpenSessionFilter:
    city: str | None = None
    device_type: str | None = None


@strawberry.type
class LiveQueries:
    @strawberry.field(description="Sessions open now, latest activity (last event time) "
                                  "first, ties by session id descending.")
    async def open_sessions(self, info: strawberry.Info, first: int = 50,
                            filter: OpenSessionFilter | None = None) -> list[OpenSession]:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        flt = (OpenSessionMatch() if filter is None
               else OpenSessionMatch(filter.city, filter.device_type))
        sessions = await list_open_sessions(ctx.live, project, ctx.now_ms(), first, flt)
        return [OpenSession.of(s) for s in sessions]


async def _events(ctx: Any, key: tuple[str, str, str], after: int | None,
                  flt: EventFilter | None = None) -> AsyncGenerator[LiveEvent, None]:
    accept = flt.accepts if flt is not None else accept_all
    async with contextlib.aclosing(follow(ctx.live, key, after, accept)) as events:
        async for e in events:
            yield LiveEvent.of(e)


@strawberry.type
class LiveSubscriptions:
    # Plain coroutines returning the stream: a bad key or argument is then an `error`
    # message before anything is streamed, not a failed first result.
    @strawberry.subscription(description="One session's events, in order, as processed.")
    async def live_session(self, info: strawberry.Info, session_id: str,
                           after: After = None
                           ) -> AsyncGenerator[LiveEvent, None]:
        ctx = info.context
        project = ctx.require("read")
        return _events(ctx, (project, "session", session_id), parse_cursor(after))

    @strawberry.subscription(description="One user's events (by `distinct_user_id`, or device "
                                         "id for events without one), in order, as processed.")
    async def user_activity(self, info: strawberry.Info, user_id: str,
                            after: After = None
                            ) -> AsyncGenerator[LiveEvent, None]:
        ctx = info.context
        project = ctx.require("read")
        return _events(ctx, (project, "user", user_id), parse_cursor(after))

    @strawberry.subscription(description="The project's events matching `filter`, in order, "
                                         "as processed.")
    async def live_events(self, info: strawberry.Info, filter: LiveEventFilter | None = None,
                          after: After = None
                          ) -> AsyncGenerator[LiveEvent, None]:
        ctx = info.context
        project = ctx.require("read")
        flt = None if filter is None else EventFilter(filter.event, filter.category,
                                                      filter.city, filter.device_type)
        return _events(ctx, (project, "all", ""), parse_cursor(after), flt)

    @strawberry.subscription(description="Live metrics every `intervalSeconds` (1-3600).")
    async def live_metrics(self, info: strawberry.Info, interval_seconds: int = 5
                           ) -> AsyncGenerator[LiveMetrics, None]:
        ctx = info.context
        project = ctx.require("read")
        if not 1 <= interval_seconds <= 3600:
            raise bad_input("intervalSeconds", "must be between 1 and 3600")
        return _metrics(ctx, project, interval_seconds)


async def _metrics(ctx: Any, project: str, seconds: int) -> AsyncGenerator[LiveMetrics, None]:
    async with contextlib.aclosing(live_metrics(ctx.live, project, seconds, ctx.now_ms)) as ms:
        async for m in ms:
            yield LiveMetrics(
                active_sessions=m.active_sessions,
                events_per_second=round(m.events_per_second, 3),
                top_events=[LiveEventCount(event=n, count=c) for n, c in m.top_events])
