"""How far the PyFlink job is behind ingest: ``pendingEvents`` of the distributed profile.

Everything the gateway accepted is a Kafka message (events on ``raw.*``, profiles on
``profiles.raw``, dead letters and settlements on ``events.dead``). The job's Kafka source
commits its consumer group's offsets when a checkpoint completes, and a checkpoint
completes only after every operator, the sinks' buffer included, has taken in everything
before the barrier. What the job took in but has not yet flushed to the stores sits in its
sinks' buffers, which announce themselves in Redis (``cep:pipeline:buffered:<subtask>`` =
outputs held, set before a buffer that was empty takes its first output and cleared after
each flush; see ``stream/flink``). So:

    pending = Σ (end offset − committed offset) over the job's topics + Σ buffered

is 0 exactly when every accepted item is visible in the stores. ``processed`` is the
committed offsets' sum over the ``raw.*`` topics (events taken in by the job).

The source commits from its fetch loop, which an idle partition keeps in a 10 s ``poll``;
when the figure has not moved for ``nudge_after_s`` this sends an empty message to every
partition of ``raw._heartbeat`` (at most once per ``nudge_after_s``), which ends those waits
(see :mod:`clients.kafka_topics`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger("cep.lag")

BUFFERED_PATTERN = "cep:pipeline:buffered:*"
RAW_PREFIX = "raw."
Nudge = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Lag:
    pending: int
    processed: int
    healthy: bool
    error: str | None = None
    consumer_lag: dict[str, int] = field(default_factory=dict)  # per topic, without buffers


class PipelineLag:
    """Reads the job's consumer-group lag and its sinks' buffered counts; ``cache_s`` keeps
    one answer for a moment so a dashboard polling many times a second costs one lookup."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str], redis: Any,
                 cache_s: float = 0.05, nudge: Nudge | None = None,
                 nudge_after_s: float = 1.0) -> None:
        self._nudge = nudge
        self._nudge_after_s = nudge_after_s
        self._since: tuple[int, float] = (-1, 0.0)  # (pending, monotonic time it was first seen)
        self._nudged = 0.0
        self._bootstrap = bootstrap
        self._group = group
        self._topics = list(topics)
        self._redis = redis  # redis.asyncio.Redis
        self._cache_s = cache_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._last: tuple[float, Lag] | None = None
        self._generation = 0  # bumped by ``invalidate``: a measurement begun before is stale
        self.known_pending = 0  # the last measured pending count, however old
        self.latest: Lag | None = None  # the last measurement, however old (metrics)
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Records were just appended: forget the cached answer, so the next read measures
        (a cached "nothing pending" from just before must never answer for after)."""
        self._generation += 1
        self._last = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap,
                                          request_timeout_ms=10_000)
        await self._admin.start()
        # No group: this consumer only asks for end offsets, it never reads or commits.
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap,
                                          enable_auto_commit=False, request_timeout_ms=10_000)
        await self._consumer.start()

    async def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                try:
                    await client.stop() if hasattr(client, "stop") else await client.close()
                except (Exception, asyncio.CancelledError) as exc:  # closing: report only
                    # (aiokafka's stop() raises CancelledError when called right after
                    # start(), before its background task first ran)
                    log.warning("closing a Kafka client: %r", exc)

    async def lag(self) -> Lag:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self._cache_s:
                return self._last[1]
            generation = self._generation
            try:
                answer = await asyncio.wait_for(self._measure(), 10)
            except Exception as exc:  # a dependency is down: say so, do not raise
                log.warning("pipeline lag unavailable: %r", exc)
                answer = Lag(-1, -1, False, repr(exc))
            if generation == self._generation:  # nothing appended while measuring
                self._last = (time.monotonic(), answer)
            if answer.pending >= 0:
                self.known_pending = answer.pending
            self.latest = answer
            await self._maybe_nudge(answer.pending)
            return answer

    async def _maybe_nudge(self, pending: int) -> None:
        now = time.monotonic()
        if pending != self._since[0]:
            self._since = (pending, now)
            return
        if (self._nudge is None or pending <= 0 or now - self._since[1] < self._nudge_after_s
                or now - self._nudged < self._nudge_after_s):
            return
        self._nudged = now
        try:
            await self._nudge()
        except Exception as exc:  # a nudge only speeds things up; never fail a read on it
            log.warning("heartbeat to the job failed: %r", exc)

    async def _measure(self) -> Lag:
        from aiokafka.errors import GroupCoordinatorNotAvailableError, GroupIdNotFound
        from aiokafka.structs import TopicPartition

        if self._admin is None or self._consumer is None:
            raise RuntimeError("PipelineLag.start() first")
        partitions = []
        for topic in self._topics:
            ids = self._consumer.partitions_for_topic(topic)
            if ids is None:
                await self._consumer._client.force_metadata_update()
                ids = self._consumer.partitions_for_topic(topic) or set()
            partitions += [TopicPartition(topic, p) for p in sorted(ids)]
        ends = await self._consumer.end_offsets(partitions) if partitions else {}
        try:
            committed = await self._admin.list_consumer_group_offsets(self._group)
        except (GroupCoordinatorNotAvailableError, GroupIdNotFound):
            # No group yet (the job never committed; on a new cluster even the offsets
            # topic is only created by the first group): nothing is processed.
            committed = {}
        pending = processed = 0
        by_topic: dict[str, int] = {}
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            pending += max(0, end - done)
            by_topic[tp.topic] = by_topic.get(tp.topic, 0) + max(0, end - done)
            if tp.topic.startswith(RAW_PREFIX):
                processed += done
        buffered = 0
        async for key in self._redis.scan_iter(match=BUFFERED_PATTERN, count=100):
            value = await self._redis.get(key)
            buffered += int(value or 0)
        return Lag(pending + buffered, processed, True, consumer_lag=by_topic)
