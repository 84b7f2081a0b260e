"""KafkaEventLog against a real single-node Kafka from the dev stack (only Kafka is started,
on free ports, with a temporary data dir and the shared Maven cache).

Each test uses its own project id: the topics are shared by the module, the messages are
told apart by project. The last test stops Kafka and starts it again. Missing
prerequisites (JDK, Maven) skip the Kafka tests on a developer's machine, fail them under CI.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from clients.devstack import DevStack, Ports
from clients.kafka import KafkaEventLog, KafkaSettings, LogUnavailable, messages_of
from clients.kafka_topics import (
    CUSTOM_TOPIC,
    DEAD_TOPIC,
    PROFILES_TOPIC,
    TopicRouter,
    ensure_topics,
    slug,
)
from gateway.ingest import Ingestor
from stream.contract.envelope import EnvelopeParser
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter, LogRecord
from stream.contract.registry import SchemaRegistry
from tests.integration.services import free_ports, running

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 3
LOG_APPEND_TIME = 1  # ConsumerRecord.timestamp_type (0: CreateTime)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    port, controller = free_ports(2)
    with running(tmp_path_factory.mktemp("kafka"), Ports(kafka=port, kafka_controller=controller),
                 ("kafka",)) as dev:
        router = TopicRouter.from_catalogue()
        asyncio.run(ensure_topics(_bootstrap(dev), router.all_topics(), partitions=PARTITIONS))
        yield dev


def _bootstrap(stack: DevStack) -> str:
    return f"127.0.0.1:{stack.ports.kafka}"


def _now() -> int:
    return int(time.time() * 1000)


def _raws(records: list[dict[str, Any]]) -> list[msgspec.Raw]:
    return [msgspec.Raw(msgspec.json.encode(r)) for r in records]


def _event(name: str, n: int, **identity: str) -> dict[str, Any]:
    return {"event_name": name, "time": _now() - 60_000 + n, "insert_id": uuid.uuid4().hex,
            **identity}


async def _consume(stack: DevStack, topics: list[str], project: str, expected: int,
                   timeout_s: float = 60.0) -> list[Any]:
    """Every message of ``project`` on ``topics``, reading until ``expected`` arrived and
    then until one more poll brings nothing (so extra duplicates would be seen)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=_bootstrap(stack),
                                group_id=f"test-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            polled = [m for msgs in batches.values() for m in msgs
                      if dict(m.headers).get("cep-project") == project.encode()]
            found += polled
            if len(found) >= expected and not batches:
                break
    finally:
        await consumer.stop()
    return found


# -- pure: routing and message layout ---------------------------------------------------------


def test_categories_map_to_known_raw_topics() -> None:
    router = TopicRouter.from_catalogue()
    assert slug("Delivery and Fulfillment") == "delivery_and_fulfillment"
    assert router.for_category("User Actions") == "raw.user_actions"
    assert router.for_category("Custom Events") == CUSTOM_TOPIC == "raw.custom_events"
    assert router.for_category("Whatever A Client Sent!") == CUSTOM_TOPIC
    assert router.all_topics() == [
        "events.dead", "profiles.raw", "raw.analytics_and_monitoring", "raw.custom_events",
        "raw.delivery_and_fulfillment", "raw.system_events", "raw.user_actions",
        "raw.user_engagement"]


def test_messages_are_keyed_by_identity_with_a_schema_header() -> None:
    event = Event(project="p", insert_id="i", event_name="Login", category="User Actions",
                  time=1, ingest_time=2, device_id="d1")
    profile = Profile(project="p", distinct_user_id="u1", ingest_time=3)
    dead = DeadLetter(project="p", kind="event", index=4, reason="time: missing",
                      payload=b"{}", received_at=5)
    record = LogRecord(events=[event], profiles=[profile], dead=[dead], replayed=[("p", 9)])
    got = [(m.topic, m.key, dict(m.headers)["cep-schema"], m.timestamp_ms)
           for m in messages_of(record, TopicRouter.from_catalogue())]
    assert got == [("raw.user_actions", b"p\x1fd1", b"event", 2),
                   (PROFILES_TOPIC, b"p\x1fu1", b"profile", 3),
                   (DEAD_TOPIC, b"p", b"dead_letter", 5),
                   (DEAD_TOPIC, b"p", b"dead_settled", None)]
    assert msgspec.msgpack.decode(messages_of(record, TopicRouter.from_catalogue())[0].value,
                                  type=Event) == event


# -- against Kafka -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_topics_are_created_once(kafka: DevStack) -> None:
    router = TopicRouter.from_catalogue()
    assert await ensure_topics(_bootstrap(kafka), router.all_topics()) == []
    fresh = f"test.{uuid.uuid4().hex[:8]}"
    assert await ensure_topics(_bootstrap(kafka), [fresh], partitions=2) == [fresh]
    assert await ensure_topics(_bootstrap(kafka), [fresh, DEAD_TOPIC]) == []


@pytest.mark.slow
async def test_old_events_are_stamped_with_their_arrival(kafka: DevStack) -> None:
    """A backfill's record carries the broker's append time, not its year-old ingest time:
    with the latter, the broker's next retention check (7 days) would delete it before the
    job read it — what made a CI run lose every event of a test with fixed 2026-01 dates."""
    project = f"p{uuid.uuid4().hex[:10]}"
    year_ago = _now() - 365 * 86_400_000
    event = Event(project=project, insert_id="old-1", event_name="View", category="Other",
                  time=year_ago, ingest_time=year_ago, device_id="dev1")
    log = KafkaEventLog(KafkaSettings(bootstrap=_bootstrap(kafka)))
    await log.start()
    try:
        before = _now()
        await log.publish(LogRecord(events=[event]))
    finally:
        await log.close()
    topic = TopicRouter.from_catalogue().for_category("Other")
    found = await _consume(kafka, [topic], project, 1)
    assert len(found) == 1
    assert found[0].timestamp_type == LOG_APPEND_TIME
    assert found[0].timestamp >= before - 1000


@pytest.mark.slow
async def test_ingest_publishes_accepted_events_dead_letters_and_profiles(
        kafka: DevStack) -> None:
    project = f"p{uuid.uuid4().hex[:10]}"
    log = KafkaEventLog(KafkaSettings(bootstrap=_bootstrap(kafka)))
    await log.start()
    ingestor = Ingestor(EnvelopeParser(SchemaRegistry(), _now), log)
    names = ["App Launch", "Order Confirmed", "App Crash", "Page View", "API Error",
             "Spin the Wheel"]  # the last is unregistered: a custom event
    identities = [{"distinct_user_id": "u1"}, {"distinct_user_id": "u2", "device_id": "d2"},
                  {"device_id": "d3"}, {"distinct_user_id": "u4"}]
    try:
        accepted: list[str] = []
        dead_reasons: list[str] = []
        for request in range(4):  # several requests: order must hold across appends
            records = [_event(names[(request + n) % len(names)], request * 100 + n,
                              **identities[n % len(identities)]) for n in range(12)]
            records.insert(5, {"event_name": "Login", "time": _now(), "device_id": "dx"})
            records.append({**_event("Login", 0, device_id="d9"), "colour": "red"})
            result = await ingestor.events(project, _raws(records))
            assert result.accepted == 12
            accepted += [r["insert_id"] for r in records if "colour" not in r
                         and "insert_id" in r]
            dead_reasons += [reason for _, reason in result.rejected]
        profile = await ingestor.profiles(project, _raws([
            {"distinct_user_id": "u1", "traits": {"city": "Pune"}},
            {"traits": {"city": "Nowhere"}}]))
        assert profile.accepted == 1
        dead_reasons += [reason for _, reason in profile.rejected]
    finally:
        await log.close()

    router = log.router
    expected = len(accepted) + len(dead_reasons) + 1
    messages = await _consume(kafka, router.all_topics(), project, expected)
    by_schema: dict[bytes, list[Any]] = defaultdict(list)
    for m in messages:
        headers = dict(m.headers)
        assert headers["cep-version"] == b"1"
        by_schema[headers["cep-schema"]].append(m)

    events = [(m, msgspec.msgpack.decode(m.value, type=Event)) for m in by_schema[b"event"]]
    assert sorted(e.insert_id for _, e in events) == sorted(accepted)  # each exactly once
    for m, e in events:
        assert m.topic == router.for_category(e.category)
        assert m.key == f"{project}\x1f{e.identity}".encode()
    assert {m.topic for m, _ in events} == {
        "raw.user_actions", "raw.delivery_and_fulfillment", "raw.system_events",
        "raw.user_engagement", "raw.analytics_and_monitoring", "raw.custom_events"}
    # Per identity, the events come back in the order they were accepted (one partition
    # per key, offsets in append order) — compared within each topic, as Kafka orders them.
    rank = {insert_id: i for i, insert_id in enumerate(accepted)}
    per_key: dict[tuple[str, bytes], list[tuple[int, int]]] = defaultdict(list)
    for m, e in events:
        per_key[(m.topic, m.key)].append((m.offset, rank[e.insert_id]))
    for key, seen in per_key.items():
        assert len({m.partition for m, _ in events if (m.topic, m.key) == key}) == 1
        assert [r for _, r in sorted(seen)] == sorted(r for _, r in seen), key

    dead = [msgspec.msgpack.decode(m.value, type=DeadLetter) for m in by_schema[b"dead_letter"]]
    assert all(m.topic == DEAD_TOPIC for m in by_schema[b"dead_letter"])
    assert sorted(d.reason for d in dead) == sorted(dead_reasons)
    assert len(dead) == 4 * 2 + 1
    assert any(d.kind == "profile" for d in dead)
    assert any("insert_id" in d.reason for d in dead)
    assert any("colour" in d.reason for d in dead)

    (profile_message,) = by_schema[b"profile"]
    assert profile_message.topic == PROFILES_TOPIC
    stored = msgspec.msgpack.decode(profile_message.value, type=Profile)
    assert (stored.distinct_user_id, stored.traits) == ("u1", {"city": "Pune"})


@pytest.mark.slow
async def test_a_1_mib_event_and_an_oversize_dead_letter_are_published(kafka: DevStack) -> None:
    project = f"p{uuid.uuid4().hex[:10]}"
    log = KafkaEventLog(KafkaSettings(bootstrap=_bootstrap(kafka)))
    await log.start()
    ingestor = Ingestor(EnvelopeParser(SchemaRegistry(), _now), log)
    fits = _event("Page View", 0, device_id="d1")
    fits["custom_properties"] = {"blob": "x" * ((1 << 20) - 1000)}
    too_big = _event("Page View", 1, device_id="d1")
    too_big["custom_properties"] = {"blob": "y" * (1 << 20)}
    try:
        result = await ingestor.events(project, _raws([fits, too_big]))
    finally:
        await log.close()
    assert result.accepted == 1
    assert [i for i, _ in result.rejected] == [1]
    messages = await _consume(kafka, log.router.all_topics(), project, 2)
    assert sorted((m.topic, len(m.value) > 1_000_000) for m in messages) == [
        (DEAD_TOPIC, True), ("raw.user_engagement", True)]


@pytest.mark.slow
async def test_throughput_of_500_event_batches(kafka: DevStack) -> None:
    project = f"p{uuid.uuid4().hex[:10]}"
    log = KafkaEventLog(KafkaSettings(bootstrap=_bootstrap(kafka)))
    await log.start()
    ingestor = Ingestor(EnvelopeParser(SchemaRegistry(), _now), log)
    batches = 40
    bodies = [_raws([_event(("Add to Cart", "Page View", "App Launch")[n % 3], n,
                            distinct_user_id=f"u{n % 50}", device_id=f"d{n % 70}",
                            url="moreretail.com/cart", custom_properties={"item": "Coffee"})
                     for n in range(500)]) for _ in range(batches)]
    latencies: list[float] = []

    async def one(body: list[msgspec.Raw]) -> None:
        began = time.perf_counter()
        assert (await ingestor.events(project, body)).accepted == 500
        latencies.append(time.perf_counter() - began)

    try:
        await one(bodies[0])  # warm-up: metadata of every topic
        began = time.perf_counter()
        for body in bodies[1:batches // 2]:
            await one(body)
        serial_s = time.perf_counter() - began
        began = time.perf_counter()
        concurrent = bodies[batches // 2:]
        for i in range(0, len(concurrent), 4):
            await asyncio.gather(*(one(b) for b in concurrent[i:i + 4]))
        concurrent_s = time.perf_counter() - began
        single = []
        for n in range(50):
            began = time.perf_counter()
            await ingestor.events(project, _raws([_event("Login", n, device_id="d1")]))
            single.append(time.perf_counter() - began)
    finally:
        await log.close()
    serial_rate = (batches // 2 - 1) * 500 / serial_s
    concurrent_rate = len(concurrent) * 500 / concurrent_s
    serial_ms = sorted(s * 1000 for s in latencies[1:batches // 2])
    single_ms = sorted(s * 1000 for s in single)
    print(f"\nKafka ingest ({log.compression or 'no'} compression, linger "
          f"{log.settings.linger_ms} ms): {serial_rate:,.0f} events/s one request at a time "
          f"(500-event append acked in p50 {statistics.median(serial_ms):.0f} ms, "
          f"max {serial_ms[-1]:.0f} ms); {concurrent_rate:,.0f} events/s with 4 requests in "
          f"flight; 1-event append acked in p50 {statistics.median(single_ms):.1f} ms, "
          f"max {single_ms[-1]:.1f} ms")
    assert serial_rate > 500
    assert concurrent_rate > 500
    received = await _consume(kafka, log.router.all_topics(), project, batches * 500 + 50)
    assert len(received) == batches * 500 + 50


@pytest.mark.slow
async def test_kafka_down_answers_unavailable_within_the_bound_then_recovers(
        kafka: DevStack) -> None:
    """Runs last in the module: it stops Kafka and starts it again."""
    settings = KafkaSettings(bootstrap=_bootstrap(kafka), request_timeout_ms=2_000,
                             delivery_timeout_s=4.0)
    log = KafkaEventLog(settings)
    await log.start()
    ingestor = Ingestor(EnvelopeParser(SchemaRegistry(), _now), log)
    project = f"p{uuid.uuid4().hex[:10]}"
    sent = [_event("Login", n, device_id="d1") for n in range(4)]
    try:
        assert await log.ping()
        assert (await ingestor.events(project, _raws(sent[:1]))).accepted == 1
        await kafka.down(only=["kafka"])
        began = time.monotonic()
        with pytest.raises(LogUnavailable):
            await ingestor.events(project, _raws(sent[1:2]))
        first_s = time.monotonic() - began
        began = time.monotonic()
        with pytest.raises(LogUnavailable):
            await ingestor.events(project, _raws(sent[2:3]))
        next_s = time.monotonic() - began
        assert not await log.ping(timeout_s=2.0)

        fresh = KafkaEventLog(settings)
        began = time.monotonic()
        with pytest.raises(LogUnavailable):
            await fresh.start()
        start_s = time.monotonic() - began

        await kafka.up(only=["kafka"])
        began = time.monotonic()
        while True:  # what a client retrying on 503 does
            try:
                await ingestor.events(project, _raws(sent[3:]))
                break
            except LogUnavailable:
                assert time.monotonic() - began < 60, "no recovery within 60 s of Kafka up"
                await asyncio.sleep(0.2)
        recovered_s = time.monotonic() - began
    finally:
        await log.close()
    print(f"\nKafka stopped: first append raised LogUnavailable after {first_s:.2f} s "
          f"(bound {settings.delivery_timeout_s:g} s), the next after {next_s:.2f} s, "
          f"start() after {start_s:.2f} s; appends succeeded again {recovered_s:.2f} s "
          "after Kafka answered")
    assert isinstance(LogUnavailable("x"), OSError)  # what http_ingest maps to 503
    assert first_s <= settings.delivery_timeout_s + 1.0
    assert next_s <= 1.5
    assert start_s <= settings.delivery_timeout_s + 2.0

    messages = await _consume(kafka, log.router.all_topics(), project, 2)
    arrived = [msgspec.msgpack.decode(m.value, type=Event).insert_id for m in messages]
    # The two answered 503 may still arrive (their client would retry them anyway; dedupe
    # by insert_id absorbs that); the acknowledged ones must, each once, in order.
    acknowledged = [sent[0]["insert_id"], sent[3]["insert_id"]]
    assert [i for i in arrived if i in acknowledged] == acknowledged
    assert len(arrived) == len(set(arrived))
    print(f"of the 2 records answered 503, {len(arrived) - 2} reached Kafka later")
