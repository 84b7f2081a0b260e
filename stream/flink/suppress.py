"""Forgotten identities in the PyFlink job: the gateway's list, read from Redis.

The gateway mirrors its list (``storage.suppression``) into hash ``cep:suppressed`` (field:
project id, value: ``Forgotten.to_json``) at start and on every erasure. The job reads it
whole at most every ``refresh_s`` seconds (``RedisHash``: the last list read stays in force
while Redis cannot be reached) and drops what belongs to a forgotten identity at three
places: where raw records enter (``ParseEvents``, ``ParseProfiles``, ``ParseDeadLetters``:
nothing of theirs reaches keyed state again), and where outputs leave (``BufferOutputs``,
``PublishLive``: outputs already on their way when the user was erased — open sessions
closing on a timer, campaign firings — are not written). An erasure waits
``SETTLE_SECONDS`` after publishing before it deletes, so every batch written afterwards
has seen the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream.contract.event import Profile
from stream.contract.records import DeadLetter
from stream.flink.records import (
    CampaignFiring,
    DeviceTie,
    EnrichedEvent,
    SessionUpsert,
    TooLate,
)
from stream.flink.rules import RedisHash
from stream.operators.suppress import Forgotten, Suppressions

SUPPRESSED_KEY = "cep:suppressed"
REFRESH_SECONDS = 2.0
# What an erasure waits between publishing the list and deleting: the job's refresh, and
# a sink write that began just before it (Cassandra and Neo4j batches take up to a second
# or two under load).
SETTLE_SECONDS = REFRESH_SECONDS + 5.0


class JobSuppressions:
    """Picklable: holds its settings only until ``open`` (called on the task manager)."""

    def __init__(self, redis_url: str | None, refresh_s: float = REFRESH_SECONDS) -> None:
        self._hash = RedisHash(redis_url, SUPPRESSED_KEY, Forgotten.from_json, refresh_s)
        self._values: dict[str, Forgotten] | None = None
        self._current = Suppressions()

    def open(self) -> None:
        self._hash.open()

    def close(self) -> None:
        self._hash.close()

    def current(self) -> Suppressions:
        values = self._hash.values()
        if values is not self._values:  # RedisHash replaces its dict on each read
            self._values = values
            self._current = Suppressions(values)
        return self._current


def drops(s: Suppressions, item: Any) -> bool:
    """Whether a job item (an output, a profile, a dead letter) belongs to a forgotten
    identity. Deletions and settlements always pass."""
    kind = type(item)
    if kind is EnrichedEvent or kind is TooLate:
        return s.drops_event(item.event)
    if kind is SessionUpsert:
        row = item.row
        return s.owns(row.project, row.user_id, row.device_id)
    if kind is DeviceTie:
        return s.owns(item.project, item.user_id, item.device_id)
    if kind is CampaignFiring:
        return s.owns(item.project, item.user, None)
    if kind is Profile:
        return s.drops_profile(item)
    if kind is DeadLetter:
        return s.drops_letter(item)
    return False


def without_forgotten(s: Suppressions, items: Sequence[Any]) -> list[Any]:
    """``items`` less those that belong to a forgotten identity (all of them when nothing
    is forgotten)."""
    if not s:
        return list(items)
    return [i for i in items if not drops(s, i)]
