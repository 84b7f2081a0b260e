"""Live subscriptions through the schema, over the in-process live store (no network).

Each subscription yields its project's events in order with their fields, resumes after an
id, filters, refuses a bad key or argument before streaming, turns a dropped subscriber
into an ``UNAVAILABLE`` error, and leaves no subscriber behind when it ends.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from strawberry.types.execution import PreExecutionError

from resolvers.context import Context
from resolvers.live import EventFilter, compute_live_metrics, parse_cursor
from resolvers.schema import schema
from storage.live import InProcessLiveStore, LiveEvent
from storage.ports import Enrichment, StoredEvents
from stream.contract.event import Event

T0 = 1_760_000_000_000
FIELDS = ("id insertId eventName category time userId deviceId sessionId url properties "
          "city country deviceType os")


def batch(rows: list[tuple[str, str, str]], project: str = "p", city: str = "Pune",
          device_type: str = "mobile") -> StoredEvents:
    """``(insert id, event name, session)`` rows of user ``u1`` on device ``d1``."""
    out = StoredEvents()
    for k, (insert_id, name, session) in enumerate(rows):
        out.events.append(Event(project=project, insert_id=insert_id, event_name=name,
                                category="User Actions", time=T0 + k * 1000, ingest_time=0,
                                distinct_user_id="u1", device_id="d1", url="shop.example/x",
                                properties=orjson.dumps({"k": k}).decode()))
        out.session_ids.append(session)
        out.session_keys.append("d:d1")
        out.enrichments.append(Enrichment(city=city, country="IN", device_type=device_type,
                                          os="Android"))
        out.dedupe_keys.append(k)
    return out


def context(live: InProcessLiveStore | None, project: str | None = "p",
            kind: str | None = "read") -> Context:
    async def pipeline() -> tuple[int, int, bool]:
        return (0, 0, True)

    return Context(project=project, key_kind=kind, sessions=None,  # type: ignore[arg-type]
                   dead_letters=None, ingest=None, registry=None,  # type: ignore[arg-type]
                   pipeline=pipeline, now_ms=lambda: T0 + 60_000, live=live)


async def subscribe(ctx: Context, query: str, variables: dict[str, Any] | None = None) -> Any:
    return await schema.subscribe(query, variable_values=variables, context_value=ctx)


async def take(stream: Any, n: int, within: float = 5.0) -> list[dict[str, Any]]:
    """The next ``n`` results' payloads; fails on an error."""
    out: list[dict[str, Any]] = []

    async def run() -> None:
        while len(out) < n:
            result = await stream.__anext__()
            assert not result.errors, result.errors
            out.append(next(iter(result.data.values())))

    await asyncio.wait_for(run(), within)
    return out


async def first_error(stream: Any, within: float = 5.0) -> tuple[Any, dict[str, Any]]:
    result = await asyncio.wait_for(stream.__anext__(), within)
    assert result.errors, result
    return result, result.errors[0].formatted


async def until_subscribed(live: InProcessLiveStore, count: int = 1) -> None:
    for _ in range(500):
        if live.subscriber_count >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{live.subscriber_count} subscribers, expected {count}")


async def test_user_activity_yields_events_in_order_with_their_fields() -> None:
    live = InProcessLiveStore()
    stream = await subscribe(context(live), 'subscription { userActivity(userId: "u1") { '
                             + FIELDS + " } }")
    received = asyncio.ensure_future(take(stream, 3))
    await until_subscribed(live)
    await asyncio.to_thread(live.publish, batch([("a", "App Launch", "s1"),
                                                 ("b", "Search", "s1"), ("c", "Purchase", "s1")]))
    events = await received
    assert [e["insertId"] for e in events] == ["a", "b", "c"]
    assert events[0] == {
        "id": events[0]["id"], "insertId": "a", "eventName": "App Launch",
        "category": "User Actions", "time": "2025-10-09T08:53:20.000Z", "userId": "u1",
        "deviceId": "d1", "sessionId": "s1", "url": "shop.example/x", "properties": {"k": 0},
        "city": "Pune", "country": "IN", "deviceType": "mobile", "os": "Android"}
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    await stream.aclose()
    assert live.subscriber_count == 0, "a finished subscription leaves no subscriber"


async def test_resume_after_an_id_loses_nothing_and_repeats_nothing() -> None:
    live = InProcessLiveStore()
    live.publish(batch([("a", "Search", "s1"), ("b", "Search", "s1"), ("c", "Search", "s1")]))
    first = live.read(("p", "session", "s1"))[0].id
    stream = await subscribe(context(live), "subscription($after: String) { liveSession("
                             'sessionId: "s1", after: $after) { insertId } }',
                             {"after": str(first)})
    received = asyncio.ensure_future(take(stream, 3))
    await until_subscribed(live)
    await asyncio.to_thread(live.publish, batch([("d", "Search", "s1")]))
    assert [e["insertId"] for e in await received] == ["b", "c", "d"]
    await stream.aclose()
    assert live.subscriber_count == 0


async def test_live_events_filter_and_project_isolation() -> None:
    live = InProcessLiveStore()
    mine = await subscribe(context(live), 'subscription { liveEvents(filter: {event: "Search",'
                           ' city: "pune", deviceType: "MOBILE"}) { insertId } }')
    other = await subscribe(context(live, project="q"), "subscription { liveEvents { insertId "
                            "} }")
    got_mine = asyncio.ensure_future(take(mine, 2))
    got_other = asyncio.ensure_future(take(other, 1))
    await until_subscribed(live, 2)
    await asyncio.to_thread(live.publish, batch([("a", "App Launch", "s1"),
                                                 ("b", "Search", "s1")]))
    await asyncio.to_thread(live.publish, batch([("c", "Search", "s2")], device_type="desktop"))
    await asyncio.to_thread(live.publish, batch([("d", "Search", "s3")], city="Delhi"))
    await asyncio.to_thread(live.publish, batch([("e", "Search", "s4")]))
    await asyncio.to_thread(live.publish, batch([("q1", "Search", "s9")], project="q"))
    assert [e["insertId"] for e in await got_mine] == ["b", "e"]
    assert [e["insertId"] for e in await got_other] == ["q1"], "q sees none of p's events"
    await mine.aclose()
    await other.aclose()
    assert live.subscriber_count == 0


@pytest.mark.parametrize(("project", "kind", "code", "message"), [
    (None, None, "UNAUTHENTICATED", "a project key is required"),
    ("p", "write", "FORBIDDEN", "this needs a read key; a write key was given"),
])
async def test_a_subscription_needs_a_read_key(project: str | None, kind: str | None,
                                               code: str, message: str) -> None:
    live = InProcessLiveStore()
    stream = await subscribe(context(live, project, kind),
                             'subscription { userActivity(userId: "u1") { id } }')
    result, error = await first_error(stream)
    assert isinstance(result, PreExecutionError), "refused before anything is streamed"
    assert error["extensions"]["code"] == code
    assert message in error["message"]
    assert live.subscriber_count == 0


@pytest.mark.parametrize(("query", "message"), [
    ('subscription { liveSession(sessionId: "s1", after: "12-3") { id } }',
     "after: not a live event id returned by this API"),
    ("subscription { liveMetrics(intervalSeconds: 0) { activeSessions } }",
     "intervalSeconds: must be between 1 and 3600"),
])
async def test_bad_arguments_are_refused_naming_the_argument(query: str, message: str) -> None:
    stream = await subscribe(context(InProcessLiveStore()), query)
    result, error = await first_error(stream)
    assert isinstance(result, PreExecutionError)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == message


async def test_a_subscriber_that_falls_behind_is_dropped_with_the_reason() -> None:
    live = InProcessLiveStore(queue_bound=3)
    stream = await subscribe(context(live), "subscription { liveEvents { insertId } }")
    pending = asyncio.ensure_future(stream.__anext__())
    await until_subscribed(live)
    # The first step wakes the consumer, which takes it and stops; the next steps pile up
    # past the bound before it runs again.
    for step in range(3):
        await asyncio.to_thread(live.publish, batch([(f"i{step}-{k}", "Search", "s1")
                                                     for k in range(2)]))
    results = [await asyncio.wait_for(pending, 5)]
    while not results[-1].errors:
        results.append(await asyncio.wait_for(stream.__anext__(), 5))
    error = results[-1].errors[0].formatted
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["message"].startswith("subscriber fell more than 3 events behind and was "
                                       "dropped; reconnect with the last id seen")
    assert live.subscriber_count == 0
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_live_metrics_count_the_interval_and_open_sessions() -> None:
    live = InProcessLiveStore()
    stream = await subscribe(context(live), "subscription { liveMetrics(intervalSeconds: 1) { "
                             "activeSessions eventsPerSecond topEvents { event count } } }")
    tick = asyncio.ensure_future(take(stream, 1))
    await until_subscribed(live)
    await asyncio.to_thread(live.publish, batch([("a", "Search", "s1"), ("b", "Search", "s1"),
                                                 ("c", "Purchase", "s2")]))
    (m,) = await tick
    assert m["activeSessions"] == 2
    assert m["topEvents"] == [{"event": "Search", "count": 2}, {"event": "Purchase", "count": 1}]
    assert 2.0 <= m["eventsPerSecond"] <= 3.0, "three events over about one second"
    await stream.aclose()
    assert live.subscriber_count == 0, "the metrics' counter ends with the subscription"


def test_compute_live_metrics_ranks_by_count_then_name() -> None:
    m = compute_live_metrics(Counter({"b": 2, "a": 2, "c": 5, "d": 1}), 2.0, 7, top=3)
    assert m.active_sessions == 7
    assert m.events_per_second == 5.0
    assert m.top_events == [("c", 5), ("a", 2), ("b", 2)]
    assert compute_live_metrics(Counter(), 0.0, 0).events_per_second == 0.0


def test_cursors_are_decimal_ids() -> None:
    assert parse_cursor(None) is None
    assert parse_cursor("0") == 0
    big = (1_760_000_000_000 << 64) | 3  # a Redis stream id as a live id
    assert parse_cursor(str(big)) == big
    for bad in ("", "-1", "1-2", "x", "9" * 41):
        with pytest.raises(Exception, match="not a live event id"):
            parse_cursor(bad)


def test_event_filter_matches_every_given_field() -> None:
    e = LiveEvent(1, "p", "s1", "u1", "d1", "i1", "Search", "User Actions", T0, None, "{}",
                  "Pune", "IN", "mobile", "Android")
    assert EventFilter().accepts(e)
    assert EventFilter(event="Search", category="User Actions", city="PUNE",
                       device_type="Mobile").accepts(e)
    assert not EventFilter(event="search").accepts(e), "event names match exactly"
    assert not EventFilter(city="Delhi").accepts(e)
