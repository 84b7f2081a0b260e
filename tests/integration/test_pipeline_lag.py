"""``pendingEvents`` of the distributed profile against real Kafka and Redis: the job's
consumer-group lag over its topics plus what its sinks announce as buffered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from clients.devstack import DevStack, Ports
from clients.kafka_topics import DEAD_TOPIC, PROFILES_TOPIC, ensure_topics
from clients.pipeline_lag import PipelineLag
from tests.integration.services import free_ports, running

TOPICS = ["raw.user_actions", "raw.commerce", PROFILES_TOPIC, DEAD_TOPIC]
GROUP = "cep-flink-lag-test"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    kafka, controller, redis_port = free_ports(3)
    with running(tmp_path_factory.mktemp("lag"), Ports(kafka=kafka, kafka_controller=controller,
                                                        redis=redis_port),
                 ("kafka", "redis")) as dev:
        asyncio.run(ensure_topics(f"127.0.0.1:{kafka}", TOPICS, partitions=2))
        yield dev


async def _produce(bootstrap: str, topic: str, n: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(topic, b"x", key=f"k{i}".encode())
    finally:
        await producer.stop()


async def _consume_and_commit(bootstrap: str, topics: list[str], n: int) -> None:
    """Read ``n`` messages as the job's group would, and commit what was read."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=GROUP,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=n - seen)
            seen += sum(len(v) for v in batch.values())
        await consumer.commit()
    finally:
        await consumer.stop()


def test_pending_is_the_groups_lag_plus_what_sinks_buffer(stack: DevStack) -> None:
    bootstrap = f"127.0.0.1:{stack.ports.kafka}"

    async def scenario() -> list[tuple[int, int, bool]]:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{stack.ports.redis}/0",
                                         decode_responses=True)
        lag = PipelineLag(bootstrap, GROUP, TOPICS, client, cache_s=0)
        await lag.start()
        seen = []
        try:
            first = await lag.lag()  # no group yet, nothing sent
            seen.append((first.pending, first.processed, first.healthy))
            await _produce(bootstrap, "raw.user_actions", 7)
            await _produce(bootstrap, PROFILES_TOPIC, 2)
            await _produce(bootstrap, DEAD_TOPIC, 1)
            before = await lag.lag()  # the group never committed: all 10 pending
            seen.append((before.pending, before.processed, before.healthy))
            await _consume_and_commit(bootstrap, ["raw.user_actions", PROFILES_TOPIC], 9)
            after = await lag.lag()  # the dead letter is left
            seen.append((after.pending, after.processed, after.healthy))
            await client.set("cep:pipeline:buffered:0", 5, px=60_000)
            await client.set("cep:pipeline:buffered:1", 0, px=60_000)
            buffered = await lag.lag()
            seen.append((buffered.pending, buffered.processed, buffered.healthy))
        finally:
            await lag.close()
            await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [(0, 0, True), (10, 0, True), (1, 7, True),
                                       (6, 7, True)]


def test_a_stuck_figure_nudges_the_job_once_per_interval(stack: DevStack) -> None:
    bootstrap = f"127.0.0.1:{stack.ports.kafka}"

    async def scenario() -> tuple[int, int]:
        from clients.kafka import KafkaEventLog, KafkaSettings
        from clients.kafka_topics import (
            HEARTBEAT_PARTITIONS,
            HEARTBEAT_TOPIC,
            ensure_heartbeat_topic,
        )

        await ensure_heartbeat_topic(bootstrap)
        producer = KafkaEventLog(KafkaSettings(bootstrap=bootstrap))
        await producer.start()
        nudges = 0

        async def nudge() -> None:
            nonlocal nudges
            nudges += 1
            await producer.heartbeat()

        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{stack.ports.redis}/0")
        lag = PipelineLag(bootstrap, "cep-flink-nudge-test", ["raw.commerce"], client,
                          cache_s=0, nudge=nudge, nudge_after_s=0.3)
        await lag.start()
        try:
            await _produce(bootstrap, "raw.commerce", 1)  # nobody consumes: stuck at >= 1
            deadline = asyncio.get_running_loop().time() + 1.0
            while asyncio.get_running_loop().time() < deadline:
                await lag.lag()
                await asyncio.sleep(0.05)
            from aiokafka import AIOKafkaConsumer
            from aiokafka.structs import TopicPartition

            probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await probe.start()
            await asyncio.sleep(0.1)  # aiokafka's stop() right after start() raises
            parts = [TopicPartition(HEARTBEAT_TOPIC, p) for p in range(HEARTBEAT_PARTITIONS)]
            ends = await probe.end_offsets(parts)
            await probe.stop()
        finally:
            await lag.close()
            await producer.close()
            await client.aclose()
        assert set(ends) == set(parts)
        return nudges, min(ends.values())

    nudges, per_partition = asyncio.run(scenario())
    assert nudges in (2, 3), "one nudge per 0.3 s once the figure stood still for 0.3 s"
    assert per_partition == nudges, "each nudge reaches every heartbeat partition"


def test_kafka_going_away_is_reported_not_raised(stack: DevStack) -> None:
    """Last in the module: stops Kafka."""
    async def scenario() -> tuple[bool, bool, str | None]:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{stack.ports.redis}/0")
        lag = PipelineLag(f"127.0.0.1:{stack.ports.kafka}", GROUP, TOPICS, client, cache_s=0)
        await lag.start()
        try:
            up = (await lag.lag()).healthy
            await stack.down(("kafka",))
            down = await lag.lag()
        finally:
            await lag.close()
            await client.aclose()
        return up, down.healthy, down.error

    up, healthy, error = asyncio.run(scenario())
    assert up
    assert not healthy
    assert error
