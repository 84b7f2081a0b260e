"""RedisLiveStore against a real Redis: the behaviour of InProcessLiveStore, shared.

Batches are published and read back with their ids; a reader resumes after any id without
a gap; a subscriber sees events published from another thread within a second; a slow one
is dropped with the reason; projects never see each other; streams stay near MAXLEN.
Redis comes from the dev stack on a free port with a temporary data dir; a missing
``redis-server`` skips here and fails under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from clients.devstack import Ports
from storage.live import InProcessLiveStore, LiveEvent, SubscriberDropped
from storage.ports import Enrichment, StoredEvents
from storage.redis_live import RedisLiveStore, live_id, redis_key, stream_id
from stream.contract.event import Event
from stream.operators.sessionize import SessionRow
from tests.integration.services import free_ports, running

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
T0 = 1_760_000_000_000
MIN = 60_000


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    (port,) = free_ports(1)
    with running(tmp_path_factory.mktemp("redis"), Ports(redis=port), ("redis",)):
        yield f"redis://127.0.0.1:{port}"


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisLiveStore]:
    s = RedisLiveStore(redis_url, maxlen=200, queue_bound=50, block_ms=2000)
    yield s
    s.close()


@pytest.fixture
def project() -> str:
    """A random project per test instead of flushing the database."""
    return f"p{uuid.uuid4().hex[:10]}"


def batch(project: str, rows: list[tuple[str, str, str, int]], first: int = 0) -> StoredEvents:
    """``(session, user, event name, minute)`` rows as one step of the runner."""
    out = StoredEvents()
    for i, (sid, user, name, minute) in enumerate(rows, start=first):
        out.events.append(Event(project, f"e{i}", name, "c", T0 + minute * MIN, T0,
                                distinct_user_id=user, device_id=f"d-{user}",
                                url=f"/{name.lower()}" if i % 2 else None))
        out.session_ids.append(sid)
        out.session_keys.append(user)
        out.enrichments.append(Enrichment(city="Oslo", country="NO", device_type="mobile",
                                          os="iOS"))
    return out


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll with a timeout (the store offers no event to wait on for registrations)."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def shape(events: list[LiveEvent]) -> list[tuple[str, str, str, int, str | None]]:
    return [(e.session_id, e.user_id, e.insert_id, e.time, e.url) for e in events]


def test_publish_and_read_like_the_in_process_store(store: RedisLiveStore,
                                                    project: str) -> None:
    memory = InProcessLiveStore(maxlen=200)
    steps = [batch(project, [("s1", "u1", "Search", 0), ("s2", "u2", "App Launch", 1),
                             ("s1", "u1", "Add to Cart", 2)]),
             batch(project, [("s1", "u1", "Purchase", 4), ("s2", "u2", "Search", 3),
                             ("s1", "u1", "Late", 1)], first=3)]
    for step in steps:
        store.publish(step)
        memory.publish(step)
    for key in ((project, "session", "s1"), (project, "user", "u2"), (project, "all", "")):
        assert shape(store.read(key)) == shape(memory.read(key))
    ids = [e.id for e in store.read((project, "all", ""))]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    # one id per event on every stream it is in
    assert {e.id for e in store.read((project, "session", "s1"))} <= set(ids)
    assert store.read((project, "all", ""))[0] == LiveEvent(
        ids[0], project, "s1", "u1", "d-u1", "e0", "Search", "c", T0, None, "{}", "Oslo",
        "NO", "mobile", "iOS")
    now = T0 + 10 * MIN

    def sessions(s: RedisLiveStore | InProcessLiveStore) -> list[tuple[object, ...]]:
        return [(o.session_id, o.user_id, o.device_id, o.started, o.last_event_time, o.events,
                 o.last_event, o.city) for o in s.open_sessions(project, now)]

    assert sessions(store) == sessions(memory)
    assert sessions(store)[0][:7] == ("s1", "u1", "d-u1", T0, T0 + 4 * MIN, 4, "Purchase")
    assert store.open_sessions(project, T0 + 40 * MIN) == []  # past the 30 min timeout
    assert stream_id(live_id("1760000000000-7")) == "1760000000000-7"


def test_resume_after_any_id_without_gaps(store: RedisLiveStore, project: str) -> None:
    for b in range(5):
        store.publish(batch(project, [("s1", "u1", "View", b * 10 + i) for i in range(10)],
                            first=b * 10))
    everything = store.read((project, "all", ""))
    assert len(everything) == 50
    for cut in (0, 1, 17, 49):
        after = everything[cut].id
        resumed: list[LiveEvent] = []
        while page := store.read((project, "all", ""), after=after, limit=7):
            resumed += page
            after = page[-1].id
        assert resumed == everything[cut + 1:]
    # an id seen on the project stream is a resume point on the session stream too
    assert store.read((project, "session", "s1"), after=everything[9].id) == everything[10:]


async def test_subscriber_sees_events_from_another_thread_within_a_second(
        store: RedisLiveStore, project: str) -> None:
    store.publish(batch(project, [("s1", "u1", "Old", 0)]))
    seen = store.read((project, "session", "s1"))[-1].id
    got: list[tuple[LiveEvent, float]] = []
    published = 0.0

    async def follow() -> None:
        async with contextlib.aclosing(store.subscribe((project, "session", "s1"),
                                                       after=seen)) as events:
            async for e in events:
                got.append((e, time.monotonic()))
                if len(got) == 3:
                    return

    task = asyncio.create_task(follow())
    other = asyncio.create_task(_follow_all(store, project))  # a second stream, same reader
    await until(lambda: store.subscriber_count == 2)
    assert store.reader_count == 1  # one XREAD loop serves both streams

    def publish() -> None:
        nonlocal published
        published = time.monotonic()
        store.publish(batch(project, [("s1", "u1", "New", i + 1) for i in range(3)], first=1))

    thread = threading.Thread(target=publish)
    thread.start()
    await asyncio.wait_for(task, 5)
    thread.join()
    assert [e.insert_id for e, _ in got] == ["e1", "e2", "e3"]
    assert max(at for _, at in got) - published < 1.0
    assert [e.insert_id for e in await asyncio.wait_for(other, 5)] == ["e1", "e2", "e3"]
    assert store.subscriber_count == 0
    assert store.reader_count == 0


async def _follow_all(store: RedisLiveStore, project: str) -> list[LiveEvent]:
    out = []
    async with contextlib.aclosing(store.subscribe((project, "all", ""))) as events:
        async for e in events:
            out.append(e)
            if len(out) == 3:
                return out
    return out


async def test_resume_in_subscribe_has_no_gap_or_duplicate(store: RedisLiveStore,
                                                           project: str) -> None:
    store.publish(batch(project, [("s1", "u1", "View", i) for i in range(30)]))
    first = store.read((project, "all", ""))
    got: list[str] = []

    async def follow() -> None:
        async with contextlib.aclosing(store.subscribe((project, "all", ""),
                                                       after=first[11].id)) as events:
            async for e in events:
                got.append(e.insert_id)
                if len(got) == 28:
                    return

    task = asyncio.create_task(follow())
    await asyncio.to_thread(store.publish,
                            batch(project, [("s1", "u1", "View", i) for i in range(10)], 30))
    await asyncio.wait_for(task, 5)
    assert got == [f"e{i}" for i in range(12, 40)]


async def test_slow_subscriber_is_dropped_with_the_reason(store: RedisLiveStore,
                                                          project: str) -> None:
    events = store.subscribe((project, "all", ""))
    first = asyncio.ensure_future(events.__anext__())
    await until(lambda: store.subscriber_count == 1)
    await asyncio.to_thread(store.publish,
                            batch(project, [("s1", "u1", "View", i) for i in range(120)]))
    received: list[LiveEvent] = []

    async def drain() -> None:
        received.append(await first)  # nobody read while 120 arrived: dropped at once
        while True:
            received.append(await events.__anext__())

    with pytest.raises(SubscriberDropped, match="fell more than 50 events behind"):
        await asyncio.wait_for(drain(), 5)
    assert len(received) <= 50
    await events.aclose()
    assert store.subscriber_count == 0


def test_projects_are_isolated(store: RedisLiveStore) -> None:
    a, b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    store.publish(batch(a, [("s1", "u1", "Search", 0)]))
    store.publish(batch(b, [("s1", "u1", "Purchase", 0), ("s2", "u1", "Search", 1)]))
    assert [e.event_name for e in store.read((a, "session", "s1"))] == ["Search"]
    assert [e.project for e in store.read((b, "user", "u1"))] == [b, b]
    assert [s.session_id for s in store.open_sessions(a, T0)] == ["s1"]
    assert {s.session_id for s in store.open_sessions(b, T0 + MIN)} == {"s1", "s2"}
    assert redis_key((a, "all", "")) == f"cep:{{{a}}}:all"


def test_streams_stay_near_maxlen_and_keys_expire(store: RedisLiveStore, redis_url: str,
                                                  project: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    node = int(str(client.config_get("stream-node-max-entries")["stream-node-max-entries"]))
    started = time.monotonic()
    for b in range(20):
        store.publish(batch(project, [("s1", f"u{i % 3}", "View", i) for i in range(500)],
                            first=b * 500))
    rate = 10_000 / (time.monotonic() - started)
    print(f"redis: {rate:.0f} events/s published in batches of 500")  # noqa: T201
    for key in ((project, "session", "s1"), (project, "all", "")):
        assert 200 <= client.xlen(redis_key(key)) <= 200 + node
    assert len(store.read((project, "all", ""), limit=10_000)) <= 200 + node
    assert 0 < client.pttl(f"cep:{{{project}}}:session:s1") <= 2 * 60 * 60 * 1000
    assert client.pttl(redis_key((project, "session", "s1"))) > 0
    assert client.pttl(redis_key((project, "all", ""))) == -1  # bounded by MAXLEN only
    client.close()


def test_open_sessions_are_bounded(redis_url: str, project: str) -> None:
    store = RedisLiveStore(redis_url, max_open_sessions=5)
    store.publish(batch(project, [(f"s{i}", "u1", "View", i) for i in range(12)]))
    assert [s.session_id for s in store.open_sessions(project, T0 + 12 * MIN)] == [
        "s11", "s10", "s9", "s8", "s7"]
    store.close()


def test_recent_open_sessions_page_filter_and_order_like_the_in_process_store(
        redis_url: str, project: str) -> None:
    """Latest last event first, ties by session id descending; a filter that needs more than
    one page of hashes; sessions past the timeout left out."""
    timeout = 300 * MIN
    stores = (RedisLiveStore(redis_url, session_timeout_ms=timeout),
              InProcessLiveStore(session_timeout_ms=timeout))
    step = batch(project, [(f"s{i:03}", f"u{i}", "View", i // 2) for i in range(450)])
    step.enrichments = [Enrichment(city="Pune" if i % 3 == 0 else "Oslo",
                                   device_type="mobile") for i in range(450)]
    for s in stores:
        s.publish(step)

    def listed(s: RedisLiveStore | InProcessLiveStore, now: int, limit: int,
               city: str | None = None) -> list[tuple[str, int, str]]:
        return [(o.session_id, o.last_event_time, o.city)
                for o in s.recent_open_sessions(project, now, limit, city=city)]

    now = T0 + 224 * MIN
    for s in stores:
        assert listed(s, now, 3) == [("s449", now, "Oslo"), ("s448", now, "Oslo"),
                                     ("s447", now - MIN, "Pune")]
        pune = listed(s, now, 120, city="PUNE")
        assert [sid for sid, _t, _c in pune] == [f"s{i:03}" for i in range(447, 87, -3)]
        assert len(listed(s, now + 290 * MIN, 500)) == 22, "minutes 214-224: within the timeout"
        assert s.recent_open_sessions(project, now, 0) == []
    assert listed(stores[0], now, 500) == listed(stores[1], now, 500)
    stores[0].close()


def test_settle_follows_the_pipeline_when_events_change_session(redis_url: str,
                                                                project: str) -> None:
    """The PyFlink job may process a device's "Add to Cart" before the earlier "App Launch"
    that starts its session: the first is published under a session of its own, which the
    sessionizer then deletes, moving the event to the launch's session. Both stores list one
    open session with the pipeline's start, last event and count; a settled row of a session
    not listed yet is listed when it is open, and not when it is past the timeout."""
    now = int(time.time() * 1000)
    stores = (RedisLiveStore(redis_url), InProcessLiveStore())

    def event(iid: str, name: str, t: int) -> Event:
        return Event(project, iid, name, "c", t, t, distinct_user_id="ann", device_id="phone")

    def row(sid: str, start: int, end: int, events: int, last: str) -> SessionRow:
        return SessionRow(sid, project, "d:phone", False, start, end, "x", events=events,
                          device_id="phone", user_id="ann", last_event=last)

    oslo = Enrichment(city="Oslo", country="NO", device_type="mobile")
    cart = StoredEvents([event("a2", "Add to Cart", now - MIN)], ["s-cart"], ["d:phone"],
                        [oslo], [2])
    launch = StoredEvents([event("a1", "App Launch", now - 5 * MIN)], ["s-launch"],
                          ["d:phone"], [oslo], [1])
    for s in stores:
        s.publish(cart, [(row("s-cart", now - MIN, now - MIN, 1, "Add to Cart"), oslo)])
        s.publish(launch, [(row("s-launch", now - 5 * MIN, now - MIN, 2, "Add to Cart"), oslo)],
                  [(project, "s-cart")])
        s.settle([(row("s-new", now - 2 * MIN, now - 2 * MIN, 1, "Search"), oslo),
                  (row("s-old", now - 90 * MIN, now - 80 * MIN, 3, "Search"), oslo)], [])

    def listed(s: RedisLiveStore | InProcessLiveStore) -> list[tuple[Any, ...]]:
        return [(o.session_id, o.user_id, o.device_id, o.started, o.last_event_time, o.events,
                 o.last_event, o.city) for o in s.recent_open_sessions(project, now, 10)]

    expected = [("s-launch", "ann", "phone", now - 5 * MIN, now - MIN, 2, "Add to Cart", "Oslo"),
                ("s-new", "ann", "phone", now - 2 * MIN, now - 2 * MIN, 1, "Search", "Oslo")]
    for s in stores:
        assert listed(s) == expected
        assert {o.session_id for o in s.open_sessions(project, now)} == {"s-launch", "s-new"}
    # the deleted session's stream stays readable (a subscriber to it saw the event)
    assert [e.insert_id for e in stores[0].read((project, "session", "s-cart"))] == ["a2"]
    stores[0].close()
