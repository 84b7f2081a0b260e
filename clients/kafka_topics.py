"""Kafka topic names for the distributed profile, and their idempotent creation.

- ``raw.<category slug>``: accepted events, one topic per catalogue category ("User Actions"
  → ``raw.user_actions``). A category outside the catalogue (a producer may send any) goes
  to ``raw.custom_events``: topic names stay a small, known set that can be created up
  front, instead of one topic per string a client invents.
- ``profiles.raw``: accepted ``identify`` calls. Deliberately *not* under ``raw.``: the
  PyFlink job subscribes to the pattern ``raw\\..*`` and decodes every value there as an
  ``Event``; a profile would be an undecodable record to it.
- ``events.dead``: rejected records with their reason, and settlements of replayed ones.
- ``raw._heartbeat``: empty values only, never an event (no category slug starts with
  ``_``). Flink's Kafka source commits a completed checkpoint's offsets from its fetch loop,
  which blocks up to 10 s in an idle ``poll``; a message on any partition a reader owns
  ends that wait. The gateway sends one to every partition when ``pendingEvents`` stopped
  moving (``clients/pipeline_lag.py``), so an idle pipeline reports "done" within about a
  checkpoint interval instead of ten seconds. Every source of the job reads this topic and
  drops its values; it is left out of every lag figure. Short retention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from stream.contract.registry import load_catalogue

# Record timestamps are the broker's append time, so retention counts from arrival: with
# the producer's (the event's ingest time) a backfill of old events would be deleted by the
# next retention check before the job read it. The job reads event time from the values.
TIMESTAMP_TYPE = "LogAppendTime"
RAW_PREFIX = "raw."
CUSTOM_TOPIC = "raw.custom_events"
PROFILES_TOPIC = "profiles.raw"
DEAD_TOPIC = "events.dead"
HEARTBEAT_TOPIC = "raw._heartbeat"
# More partitions than job parallelism: Kafka's source hands a topic's partitions to its
# readers round-robin, so every reader owns at least one.
HEARTBEAT_PARTITIONS = 16
HEARTBEAT_RETENTION_MS = 3_600_000
DEFAULT_PARTITIONS = 6
# Events and dead letters may be 1 MiB each (the contract's limit) plus their envelope; the
# broker's default of about 1 MiB per record batch would refuse them.
MAX_MESSAGE_BYTES = 4 << 20


def slug(category: str) -> str:
    """``"Delivery and Fulfillment"`` → ``"delivery_and_fulfillment"`` (Kafka-legal)."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def raw_topic(category: str) -> str:
    return RAW_PREFIX + (slug(category) or "custom_events")


@dataclass(frozen=True, slots=True)
class TopicRouter:
    """Which topic an event of a category goes to; ``known`` are the catalogue's."""

    known: frozenset[str]

    @classmethod
    def from_catalogue(cls, extra: Iterable[str] = ()) -> TopicRouter:
        categories = set(load_catalogue().category_descriptions) | set(extra)
        return cls(frozenset(raw_topic(c) for c in categories) | {CUSTOM_TOPIC})

    def for_category(self, category: str) -> str:
        topic = raw_topic(category)
        return topic if topic in self.known else CUSTOM_TOPIC

    def all_topics(self) -> list[str]:
        return sorted(self.known | {PROFILES_TOPIC, DEAD_TOPIC})


async def ensure_topics(bootstrap: str, topics: Iterable[str], *,
                        partitions: int = DEFAULT_PARTITIONS, replication: int = 1,
                        request_timeout_ms: int = 10_000,
                        configs: dict[str, str] | None = None) -> list[str]:
    """Create the ``topics`` that do not exist yet; returns the ones it created.

    Idempotent: existing topics are left as they are (their partition count included), and
    a topic created concurrently by someone else is not an error.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                request_timeout_ms=request_timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=replication,
                      topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES),
                                     "message.timestamp.type": TIMESTAMP_TYPE,
                                     **(configs or {})})
             for t in missing])
    finally:
        await admin.close()
    created = []
    for error in response.topic_errors:
        name, code = error[0], error[1]
        if code == 0:
            created.append(name)
        elif for_code(code) is not TopicAlreadyExistsError:
            raise for_code(code)(f"creating topic {name}: {error[2:]}")
    return sorted(created)


async def ensure_heartbeat_topic(bootstrap: str) -> list[str]:
    return await ensure_topics(bootstrap, [HEARTBEAT_TOPIC], partitions=HEARTBEAT_PARTITIONS,
                               configs={"retention.ms": str(HEARTBEAT_RETENTION_MS)})
