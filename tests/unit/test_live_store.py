"""The in-process live store: streams with ids, resume after an id, slow consumers dropped."""

from __future__ import annotations

import asyncio

import pytest

from storage.live import InProcessLiveStore, SubscriberDropped
from storage.ports import Enrichment, StoredEvents
from stream.contract.event import Event


def batch(n: int, start: int = 0, session: str = "s1", device: str = "d1") -> StoredEvents:
    events = [Event(project="p", insert_id=f"i{start + k}", event_name="Search", category="c",
                    time=1_000 + start + k, ingest_time=0, device_id=device)
              for k in range(n)]
    return StoredEvents(events, [session] * n, [f"d:{device}"] * n,
                        [Enrichment(city="Pune")] * n, list(range(n)))


def test_streams_per_session_user_and_project_with_ids() -> None:
    live = InProcessLiveStore(maxlen=5)
    live.publish(batch(3))
    live.publish(batch(4, start=3, session="s2"))
    assert [e.insert_id for e in live.read(("p", "session", "s1"))] == ["i0", "i1", "i2"]
    user = live.read(("p", "user", "d1"))
    assert [e.insert_id for e in user] == ["i2", "i3", "i4", "i5", "i6"], "MAXLEN keeps the last"
    assert [e.id for e in live.read(("p", "all", ""), after=user[-2].id)] == [user[-1].id]
    assert {s.session_id for s in live.open_sessions("p", now_ms=1_010)} == {"s1", "s2"}
    assert live.open_sessions("q", now_ms=1_010) == []


async def test_subscriber_resumes_after_last_id_without_gaps() -> None:
    live = InProcessLiveStore()
    live.publish(batch(3))
    first = live.read(("p", "session", "s1"))[0].id
    seen: list[str] = []

    async def consume() -> None:
        async for e in live.subscribe(("p", "session", "s1"), after=first):
            seen.append(e.insert_id)
            if len(seen) == 4:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    await asyncio.to_thread(live.publish, batch(2, start=3))
    await asyncio.wait_for(task, 5)
    assert seen == ["i1", "i2", "i3", "i4"]
    assert live.subscriber_count == 0, "subscriptions clean up when they end"


async def test_slow_subscriber_is_dropped_with_a_reason() -> None:
    live = InProcessLiveStore(queue_bound=3)
    gen = live.subscribe(("p", "all", "")).__aiter__()
    first = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0.01)
    await asyncio.to_thread(live.publish, batch(2))
    assert (await first).insert_id == "i0"
    # the consumer stops taking: steps pile up until they pass the bound
    await asyncio.to_thread(live.publish, batch(2, start=2))
    await asyncio.to_thread(live.publish, batch(2, start=4))
    await asyncio.sleep(0.05)
    assert (await gen.__anext__()).insert_id == "i1", "what it had taken is still its own"
    with pytest.raises(SubscriberDropped, match="fell more than 3 events behind"):
        await gen.__anext__()
    assert live.subscriber_count == 0


async def test_a_burst_larger_than_the_bound_reaches_a_subscriber_that_keeps_up() -> None:
    """A bulk import puts thousands of events in one runner step: a subscriber with nothing
    pending gets them all."""
    live = InProcessLiveStore(queue_bound=100)
    ids: list[int] = []

    async def consume() -> None:
        async for e in live.subscribe(("p", "all", "")):
            ids.append(e.id)
            if len(ids) == 5_000:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    await asyncio.to_thread(live.publish, batch(5_000))
    await asyncio.wait_for(task, 10)
    assert ids == sorted(set(ids))


def test_ids_keep_growing_across_a_restart() -> None:
    before = InProcessLiveStore()
    before.publish(batch(1_000))
    last = before.read(("p", "all", ""))[-1].id
    after = InProcessLiveStore()  # a new process: nothing carried over
    after.publish(batch(1))
    assert after.read(("p", "all", ""))[0].id > last


def test_memory_stays_bounded_by_evicting_the_idlest_streams() -> None:
    live = InProcessLiveStore(maxlen=10, max_events=50)
    for d in range(40):
        live.publish(batch(5, start=d * 5, session=f"s{d}", device=f"d{d}"))
    assert live.retained <= 50
    assert live.read(("p", "session", "s0")) == [], "the idlest stream went first"
    assert len(live.read(("p", "session", "s39"))) == 5
