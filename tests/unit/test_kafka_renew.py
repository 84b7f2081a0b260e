"""The Kafka event log replaces a producer whose idempotence state the cluster lost.

Found by the dependency-fault test: after Kafka restarted, every append failed with
``OutOfOrderSequenceNumber`` (fatal to an idempotent producer) and ingest never recovered.
The real broker path is exercised by tests/e2e/test_dependency_faults.py; these tests pin
the renewal logic with a stand-in producer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from clients.kafka import KafkaEventLog, LogUnavailable, Message


class FakeProducer:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.sent: list[bytes] = []
        self.stopped = False

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self.fail_with is not None:
            future.set_exception(self.fail_with)
        else:
            self.sent.append(value)
            future.set_result(f"{topic}@{len(self.sent) - 1}")
        return future

    async def stop(self) -> None:
        self.stopped = True


class Cluster:
    """Hands out producers in order; ``down`` makes starting one fail as Kafka would."""

    def __init__(self, *producers: FakeProducer) -> None:
        self.producers = list(producers)
        self.down = False
        self.started = 0

    async def new_producer(self) -> FakeProducer:
        if self.down:
            raise LogUnavailable("Kafka at test is unavailable")
        self.started += 1
        return self.producers.pop(0)


MESSAGE = [Message("raw.test", b"k", b"v", [], None)]


def log_over(cluster: Cluster) -> KafkaEventLog:
    log = KafkaEventLog()
    log._new_producer = cluster.new_producer  # type: ignore[method-assign]
    return log


async def test_out_of_order_sequence_renews_the_producer() -> None:
    broken, fresh = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer()
    cluster = Cluster(broken, fresh)
    log = log_over(cluster)
    await log.start()
    with pytest.raises(LogUnavailable, match="lost the producer's state"):
        await log.send_all(MESSAGE)  # answered 503: the client retries the same batch
    assert broken.stopped
    assert cluster.started == 2
    log._suspect = False  # the probe would ask the real cluster; this one answers
    assert await log.send_all(MESSAGE) == ["raw.test@0"]
    assert fresh.sent == [b"v"]


async def test_a_renewal_while_kafka_is_down_reconnects_later() -> None:
    broken, fresh = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer()
    cluster = Cluster(broken, fresh)
    log = log_over(cluster)
    await log.start()
    cluster.down = True
    with pytest.raises(LogUnavailable):
        await log.send_all(MESSAGE)
    with pytest.raises(LogUnavailable):  # still down: a fast refusal, no new producer
        await log.send_all(MESSAGE)
    assert cluster.started == 1
    cluster.down = False
    log._reconnected_at = float("-inf")  # past the probe interval
    log._suspect = False
    assert await log.send_all(MESSAGE) == ["raw.test@0"]
    assert cluster.started == 2


async def test_a_transient_error_keeps_the_producer() -> None:
    flaky = FakeProducer(KafkaConnectionError())
    cluster = Cluster(flaky)
    log = log_over(cluster)
    await log.start()
    with pytest.raises(LogUnavailable, match="unavailable"):
        await log.send_all(MESSAGE)
    assert not flaky.stopped
    assert cluster.started == 1
