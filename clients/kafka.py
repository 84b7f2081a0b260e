"""The distributed profile's event log: one ``LogRecord`` published to Kafka, answered only
once Kafka acknowledged every message of it.

Messages (topics: :mod:`clients.kafka_topics`):

=================  ========================  ==================  ============================
what               topic                     key                 value (msgspec msgpack)
=================  ========================  ==================  ============================
accepted event     ``raw.<category slug>``   project␟identity    ``Event`` (array_like)
accepted profile   ``profiles.raw``          project␟user id     ``Profile`` (array_like)
rejected record    ``events.dead``           project             ``DeadLetter`` (array_like)
replay settlement  ``events.dead``           project             ``[project, dead-letter id]``
=================  ========================  ==================  ============================

The identity is ``distinct_user_id`` when sent, else ``device_id`` (``Event.identity``), and
the key is hashed by aiokafka's murmur2 partitioner (the Java client's), so one identity's
events land in one partition in the order they were accepted. Values are msgpack, exactly
the local log's encoding of each item, so the PyFlink job decodes ``raw.*`` values with
``msgspec.msgpack.Decoder(Event)`` and nothing else; what a value is travels in headers
(``cep-schema``: event | profile | dead_letter | dead_settled, ``cep-version``: "1",
``cep-project``), never inside it. The record timestamp sent is the gateway's
``ingest_time``; the topics ``ensure_topics`` creates replace it with the broker's append
time (``LogAppendTime``), so retention counts from arrival.

A ``200`` means acknowledged by every in-sync replica (``acks="all"``, idempotent producer:
broker-side retries cannot duplicate or reorder). Every ``append`` is bounded by
``delivery_timeout_s``; past it, or when the cluster cannot be reached, it raises
:class:`LogUnavailable` — an ``OSError``, which the HTTP routes answer with 503 and
``Retry-After``. A timed-out record may still be delivered later, wholly or in part; the
client's retry then sends the same ``insert_id`` again, which the pipeline's dedupe absorbs.
After one failure, appends fail at once (a metadata probe at most every 0.5 s) until Kafka
answers again, so a Kafka outage costs each client one fast 503, not a timeout each.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from clients.kafka_topics import DEAD_TOPIC, HEARTBEAT_TOPIC, PROFILES_TOPIC, TopicRouter
from stream.contract.records import LogRecord, decode_record

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger("cep.kafka")

SCHEMA_VERSION = b"1"
KEY_SEPARATOR = "\x1f"  # the separator the PyFlink job's keys use too
PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 1.0
_encode = msgspec.msgpack.Encoder().encode


class LogUnavailable(OSError):
    """Kafka did not acknowledge in time, or cannot be reached: answer 503, retry later."""


class LogRejected(RuntimeError):
    """Kafka refused the record for a reason a retry will not fix (a message over the
    topic's size limit, authorization): a server-side misconfiguration, answered 500."""


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Producer settings. Times in milliseconds unless the name says seconds.

    ``compression``: ``"auto"`` picks lz4 when aiokafka's codec library (``cramjam``, the
    ``aiokafka[lz4]`` extra) is installed, else none — gzip costs more CPU per event than it
    saves on a loopback or LAN link. ``linger_ms`` is 0: aiokafka keeps one produce request
    in flight per broker and batches whatever queued meanwhile, so load batches itself;
    measured on the dev stack, linger 5 ms bought no throughput (~22k events/s either way
    in 500-event requests) and cost a one-event request 7 ms. ``max_request_bytes`` is the
    largest single message: a 1 MiB event or dead letter plus its envelope must fit (the
    topics are created with a matching ``max.message.bytes``).
    """

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "cep-gateway"
    compression: str | None = "auto"
    linger_ms: int = 0
    max_batch_bytes: int = 256 << 10
    max_request_bytes: int = 4 << 20
    request_timeout_ms: int = 3_000
    delivery_timeout_s: float = 5.0
    retry_backoff_ms: int = 100


def _compression(choice: str | None) -> str | None:
    if choice != "auto":
        return choice
    from aiokafka.codec import has_lz4

    return "lz4" if has_lz4() else None


def _transient(exc: Exception) -> bool:
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        KafkaUnavailableError,
        ProducerClosed,
    )

    transient = (KafkaConnectionError, KafkaTimeoutError, KafkaUnavailableError, ProducerClosed)
    return isinstance(exc, transient) or bool(getattr(exc, "retriable", False))


def _producer_state_lost(exc: Exception) -> bool:
    from aiokafka.errors import (
        InvalidProducerEpoch,
        InvalidProducerIdMapping,
        OutOfOrderSequenceNumber,
        ProducerFenced,
        UnknownProducerId,
    )

    return isinstance(exc, (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch,
                            InvalidProducerIdMapping, ProducerFenced))


def _sender_stopped(producer: AIOKafkaProducer) -> bool:
    """True when the producer's background sender ended (a fatal error stops it, and then
    nothing queued is ever sent)."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    return task is not None and task.done()


def message_key(project: str, identity: str) -> bytes:
    return f"{project}{KEY_SEPARATOR}{identity}".encode()


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None


def _headers(schema: bytes, project: str) -> list[tuple[str, bytes]]:
    return [("cep-schema", schema), ("cep-version", SCHEMA_VERSION),
            ("cep-project", project.encode())]


def messages_of(record: LogRecord, router: TopicRouter) -> list[Message]:
    """Every Kafka message ``record`` becomes, in the record's order."""
    out = [Message(router.for_category(e.category), message_key(e.project, e.identity),
                   _encode(e), _headers(b"event", e.project), e.ingest_time)
           for e in record.events]
    out += [Message(PROFILES_TOPIC, message_key(p.project, p.distinct_user_id), _encode(p),
                    _headers(b"profile", p.project), p.ingest_time)
            for p in record.profiles]
    out += [Message(DEAD_TOPIC, d.project.encode(), _encode(d),
                    _headers(b"dead_letter", d.project), d.received_at)
            for d in record.dead]
    out += [Message(DEAD_TOPIC, project.encode(), _encode([project, letter_id]),
                    _headers(b"dead_settled", project), None)
            for project, letter_id in record.replayed]
    return out


class KafkaEventLog:
    """``EventLog`` over Kafka (see the module docstring for the message layout).

    ``start()`` connects (raises :class:`LogUnavailable` when Kafka cannot be reached);
    ``append``/``publish`` answer once every message is acknowledged; ``close()`` flushes
    what is in flight (bounded by ``delivery_timeout_s``) and disconnects.
    """

    def __init__(self, settings: KafkaSettings | None = None,
                 router: TopicRouter | None = None) -> None:
        self.settings = settings or KafkaSettings()
        self.router = router or TopicRouter.from_catalogue()
        self._producer: AIOKafkaProducer | None = None
        self._sequence = itertools.count()
        self.on_append: Callable[[], None] | None = None  # called after each acknowledged record
        # After a failed append, later ones first check (at most every PROBE_EVERY_S) that
        # the cluster answers, so clients get their 503 at once instead of each waiting out
        # the delivery timeout while Kafka is down.
        self._suspect = False
        self._probe: tuple[float, bool] = (0.0, False)  # (monotonic time, answered)
        self.compression = _compression(self.settings.compression)
        self._renewing = asyncio.Lock()
        self._lost = False  # the producer was dropped by a renewal, not by close()
        self._reconnected_at = float("-inf")

    async def start(self) -> None:
        self._producer = await self._new_producer()

    async def _new_producer(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, client_id=s.client_id, acks="all",
            enable_idempotence=True, compression_type=self.compression,
            linger_ms=s.linger_ms, max_batch_size=s.max_batch_bytes,
            max_request_size=s.max_request_bytes, request_timeout_ms=s.request_timeout_ms,
            retry_backoff_ms=s.retry_backoff_ms)
        try:
            await asyncio.wait_for(producer.start(), s.delivery_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await _stop_quietly(producer, 1.0)
            raise LogUnavailable(f"Kafka at {s.bootstrap} is unavailable: {exc!r}") from exc
        return producer

    async def _renew(self, broken: AIOKafkaProducer, why: str) -> None:
        """Replace a producer whose idempotence state the cluster no longer honours.

        A broker that restarts after an unclean stop can lose the producer-state snapshot
        of the last moments: the next batch then gets ``OutOfOrderSequenceNumber``, which
        the idempotent producer treats as fatal (its sender stops), so every later append
        would fail. A new producer gets a new producer id from the cluster. The record that
        failed is answered 503; its client's retry carries the same ``insert_id``s, which
        the pipeline's de-duplication absorbs."""
        async with self._renewing:
            if self._producer is not broken:  # another append renewed it already
                return
            log.warning("Kafka producer state lost (%s): starting a new producer", why)
            self._producer = None
            self._lost = True
            await _stop_quietly(broken, 1.0)
            await self._reconnect()

    async def _reconnect(self) -> None:
        """Start the producer a renewal could not start (Kafka was unreachable then); at
        most one attempt every ``PROBE_EVERY_S``, so a Kafka outage still costs each client
        one fast 503."""
        if self._producer is not None or not self._lost:
            return
        if time.monotonic() - self._reconnected_at < PROBE_EVERY_S:
            raise LogUnavailable(f"Kafka at {self.settings.bootstrap} does not answer")
        self._reconnected_at = time.monotonic()
        self._producer = await self._new_producer()  # LogUnavailable while Kafka is down
        self._lost = False

    async def append(self, payload: bytes, items: int) -> int:
        """``EventLog.append``: publish the encoded ``LogRecord``; returns this log's
        sequence number of the record (Kafka offsets are per partition, not one number)."""
        return await self.publish(decode_record(payload))

    async def publish(self, record: LogRecord) -> int:
        """Publish ``record`` and wait until Kafka acknowledged all of its messages."""
        await self.send_all(messages_of(record, self.router))
        if self.on_append is not None:  # e.g. the lag monitor forgets its cached "caught up"
            self.on_append()
        return next(self._sequence)

    async def send_all(self, messages: Sequence[Message]) -> list[Any]:
        """Send ``messages`` and wait for every acknowledgement; returns the
        ``RecordMetadata`` of each, in order."""
        from aiokafka.errors import KafkaError

        if self._producer is None and self._lost and not self._renewing.locked():
            async with self._renewing:
                await self._reconnect()
        producer = self._producer
        if producer is None:
            raise LogUnavailable("Kafka event log is not started (or closed, or reconnecting)")
        if _sender_stopped(producer):
            await self._renew(producer, "its sender stopped")
            producer = self._producer
            assert producer is not None

        async def send() -> list[Any]:
            futures = [await producer.send(m.topic, m.value, key=m.key, headers=m.headers,
                                           timestamp_ms=m.timestamp_ms)
                       for m in messages]
            # Every outcome is collected, so no failed future is left unretrieved.
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            return outcomes

        if self._suspect and not await self._answers():
            raise LogUnavailable(f"Kafka at {self.settings.bootstrap} does not answer")
        try:
            acks = await asyncio.wait_for(send(), self.settings.delivery_timeout_s)
        except TimeoutError as exc:
            self._suspect = True
            raise LogUnavailable(
                f"Kafka did not acknowledge {len(messages)} message(s) within "
                f"{self.settings.delivery_timeout_s:g} s") from exc
        except KafkaError as exc:
            if _producer_state_lost(exc):
                self._suspect = True
                await self._renew(producer, repr(exc))
                raise LogUnavailable(f"Kafka lost the producer's state: {exc!r}") from exc
            if _transient(exc):
                self._suspect = True
                raise LogUnavailable(f"Kafka is unavailable: {exc!r}") from exc
            raise LogRejected(f"Kafka refused the record: {exc!r}") from exc
        self._suspect = False
        return acks

    async def _answers(self) -> bool:
        checked_at, answered = self._probe
        now = time.monotonic()
        if now - checked_at >= PROBE_EVERY_S:
            answered = await self.ping(timeout_s=PROBE_TIMEOUT_S)
            self._probe = (time.monotonic(), answered)
        return answered

    async def ping(self, timeout_s: float = 3.0) -> bool:
        """True when the cluster answers a metadata request within ``timeout_s``."""
        from aiokafka.errors import KafkaError

        if self._producer is None:
            return False
        try:
            metadata = await asyncio.wait_for(self._producer.client.fetch_all_metadata(),
                                              timeout_s)
        except (KafkaError, OSError, TimeoutError):
            return False
        return bool(metadata.brokers())

    async def heartbeat(self) -> None:
        """An empty message to every partition of the heartbeat topic (see
        :mod:`clients.kafka_topics`); waits for the acknowledgements."""
        if self._producer is None:
            raise LogUnavailable("the Kafka producer is not started")
        partitions = await self._producer.partitions_for(HEARTBEAT_TOPIC)
        futures = [await self._producer.send(HEARTBEAT_TOPIC, b"", partition=p)
                   for p in sorted(partitions or ())]
        await asyncio.gather(*futures)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        self._lost = False
        if producer is not None:
            await _stop_quietly(producer, self.settings.delivery_timeout_s)


async def _stop_quietly(producer: AIOKafkaProducer, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout_s)
    except (TimeoutError, OSError, RuntimeError) as exc:  # KafkaError is a RuntimeError
        log.warning("Kafka producer did not stop cleanly: %r", exc)
