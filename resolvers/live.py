"""Live views: which events a live subscription follows, and the live metrics.

The stores (``storage.live.InProcessLiveStore`` embedded, ``storage.redis_live.RedisLiveStore``
distributed) keep one stream per session, per user and per project, each event with an
ordered ``int`` id. The API hands those ids out as opaque ``String`` cursors: a Redis id
(``ms << 64 | seq``) does not fit a GraphQL ``Int``. ``after: "0"`` means "everything the
stream still holds" (at most its MAXLEN); no ``after`` means "from now on".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from resolvers.errors import api_error, bad_input
from storage.live import LiveEvent, OpenSession, OpenSessionMatch, StreamKey, SubscriberDropped

MAX_CURSOR_DIGITS = 40  # a Redis id is below 2**128: 39 digits
TOP_EVENTS = 10


class LivePort(Protocol):
    """What the live resolvers use of a live store (both stores have this shape)."""

    def subscribe(self, key: StreamKey, after: int | None = None,
                  accept: Callable[[LiveEvent], bool] = ...) -> AsyncIterator[LiveEvent]: ...

    def open_sessions(self, project: str, now_ms: int) -> list[OpenSession]: ...

    def recent_open_sessions(self, project: str, now_ms: int, limit: int,
                             city: str | None = None, device_type: str | None = None
                             ) -> list[OpenSession]:
        """At most ``limit`` of the project's sessions open at ``now_ms`` (an event within
        the session timeout), matching ``city`` and ``device_type`` case-insensitively, by
        last event time, latest first, ties by session id, descending."""
        ...


def parse_cursor(after: str | None, field: str = "after") -> int | None:
    """A live cursor (``LiveEvent.id`` as returned) as the store's int id; ``None`` stays
    ``None`` (live from now on)."""
    if after is None:
        return None
    text = after.strip()
    if not text.isdigit() or len(text) > MAX_CURSOR_DIGITS:
        raise bad_input(field, "not a live event id returned by this API")
    return int(text)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every given field must match: ``event`` and ``category`` exactly, ``city`` and
    ``device_type`` case-insensitively (as segment filters compare places and devices)."""

    event: str | None = None
    category: str | None = None
    city: str | None = None
    device_type: str | None = None

    def accepts(self, e: LiveEvent) -> bool:
        return ((self.event is None or e.event_name == self.event)
                and (self.category is None or e.category == self.category)
                and (self.city is None or e.city.casefold() == self.city.casefold())
                and (self.device_type is None
                     or e.device_type.casefold() == self.device_type.casefold()))


def accept_all(_e: LiveEvent) -> bool:
    return True


async def follow(live: LivePort | None, key: StreamKey, after: int | None,
                 accept: Callable[[LiveEvent], bool] = accept_all
                 ) -> AsyncGenerator[LiveEvent, None]:
    """The events of ``key`` in stream order; a subscriber that fell behind ends with an
    ``UNAVAILABLE`` error carrying the store's reason (it resumes with the last id seen)."""
    if live is None:
        raise api_error("UNAVAILABLE", "live views are not available on this gateway")
    events = live.subscribe(key, after, accept)
    try:
        async for e in events:
            yield e
    except SubscriberDropped as exc:
        raise api_error("UNAVAILABLE", str(exc)) from None
    finally:
        closer = getattr(events, "aclose", None)
        if closer is not None:
            await closer()


async def list_open_sessions(live: LivePort | None, project: str, now_ms: int, first: int,
                             flt: OpenSessionMatch) -> list[OpenSession]:
    """The project's open sessions, latest activity first: the store's listing, which
    filters and orders in place (a store holds up to ``max_open_sessions`` per project)."""
    if live is None:
        raise api_error("UNAVAILABLE", "live views are not available on this gateway")
    return await asyncio.to_thread(live.recent_open_sessions, project, now_ms, first,
                                   flt.city, flt.device_type)


@dataclass(frozen=True, slots=True)
class LiveMetrics:
    active_sessions: int
    events_per_second: float
    top_events: list[tuple[str, int]]


def compute_live_metrics(counts: Counter[str], seconds: float, active_sessions: int,
                         top: int = TOP_EVENTS) -> LiveMetrics:
    """Events processed during the last ``seconds`` (their names counted in ``counts``):
    events per second over that span, and the ``top`` names by count, ties by name."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return LiveMetrics(active_sessions, total / seconds if seconds > 0 else 0.0, ranked)


async def count_events(live: LivePort, project: str, tally: Counter[str]) -> None:
    """Count the project's processed events by name into ``tally``, until cancelled. Should
    the counter itself fall behind, it resumes after the last event counted."""
    after: int | None = None
    while True:
        with contextlib.suppress(SubscriberDropped):
            async for e in live.subscribe((project, "all", ""), after):
                tally[e.event_name] += 1
                after = e.id


async def live_metrics(live: LivePort | None, project: str, interval_seconds: int,
                       now_ms: Callable[[], int]) -> AsyncGenerator[LiveMetrics, None]:
    """Every ``interval_seconds``: sessions open now (an event within the session timeout),
    and the events processed during the interval just ended."""
    if live is None:
        raise api_error("UNAVAILABLE", "live views are not available on this gateway")
    tally: Counter[str] = Counter()
    counter = asyncio.create_task(count_events(live, project, tally),
                                  name=f"live-metrics-{project}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while True:
            await asyncio.sleep(max(0.0, started + interval_seconds - loop.time()))
            if counter.done():
                counter.result()  # it only ends by failing: surface why
            ended = loop.time()
            counts = Counter(tally)
            tally.clear()
            sessions = await asyncio.to_thread(live.open_sessions, project, now_ms())
            yield compute_live_metrics(counts, ended - started, len(sessions))
            started = ended
    finally:
        counter.cancel()
        await asyncio.wait({counter})
