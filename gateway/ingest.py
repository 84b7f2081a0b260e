"""Ingest: judge records, make the accepted and the rejected durable together, answer.

Shared by the HTTP routes and the GraphQL ``track``/``identify`` mutations so both have the
same capabilities and errors. Nothing is answered before the log has fsynced it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from stream.contract.envelope import EnvelopeParser, Judged
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter, LogRecord, encode_record


class EventLog(Protocol):
    async def append(self, payload: bytes, items: int) -> int: ...


class BodyTooLarge(ValueError):
    """The (uncompressed) body is over the configured limit: 413."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: list[tuple[int, str]]
    letters: list[int] | None = None  # a replay's: the dead letter id of each rejection

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted,
                "rejected": [{"index": i, "reason": r} for i, r in self.rejected]}


def inflate(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing anything that inflates past ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"body: not valid gzip ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"body: uncompressed size is over the {limit}-byte limit")
    return out


def is_gzip(body: bytes) -> bool:
    return body[:2] == b"\x1f\x8b"


class Ingestor:
    """Judge, log, answer. ``max_batch`` bounds records per request. ``observe(kind, source,
    result)`` sees each request's outcome once the log has it (``gateway.metrics``)."""

    def __init__(self, parser: EnvelopeParser, log: EventLog, max_batch: int = 10_000,
                 observe: Callable[[str, str, IngestResult], None] | None = None) -> None:
        self.parser = parser
        self._log = log
        self.max_batch = max_batch
        self._observe = observe

    async def events(self, project: str, records: list[msgspec.Raw],
                     source: str = "api") -> IngestResult:
        self._check_count(records)
        judged = self.parser.events(project, records)
        await self._commit(project, "event", records, judged, source)
        return self._result("event", source, judged)

    async def profiles(self, project: str, records: list[msgspec.Raw],
                       source: str = "api") -> IngestResult:
        self._check_count(records)
        judged = self.parser.profiles(project, records)
        await self._commit(project, "profile", records, judged, source)
        return self._result("profile", source, judged)

    def _result(self, kind: str, source: str, judged: Judged) -> IngestResult:
        result = IngestResult(len(judged.accepted), judged.rejected)
        if self._observe is not None:
            self._observe(kind, source, result)
        return result

    async def replay(self, project: str, letters: list[tuple[int, str, bytes]]) -> IngestResult:
        """Re-judge dead letters ``(id, kind, payload)``; accepted ones are settled."""
        events: list[Event] = []
        profiles: list[Profile] = []
        settled: list[tuple[str, int]] = []
        rejected: list[tuple[int, str]] = []
        still_dead: list[int] = []
        for position, (letter_id, kind, payload) in enumerate(letters):
            raw = [msgspec.Raw(payload)]
            judged = (self.parser.events if kind == "event" else self.parser.profiles)(
                project, raw)
            if judged.accepted:
                (events if kind == "event" else profiles).extend(judged.accepted)
                settled.append((project, letter_id))
            else:  # its position among those replayed, and its id (64-bit in Cassandra)
                rejected.append((position, judged.rejected[0][1]))
                still_dead.append(letter_id)
        if settled:
            record = LogRecord(events=events, profiles=profiles, replayed=settled)
            await self._log.append(encode_record(record), record.items)
        return IngestResult(len(settled), rejected, still_dead)

    def _check_count(self, records: list[msgspec.Raw]) -> None:
        if len(records) > self.max_batch:
            raise BodyTooLarge(f"body: {len(records)} records is over the {self.max_batch}"
                               "-record batch limit")

    async def _commit(self, project: str, kind: str, records: list[msgspec.Raw],
                      judged: Judged, source: str) -> None:
        now = int(time.time() * 1000)
        dead = [DeadLetter(project=project, kind=kind, index=i, reason=reason,
                           payload=bytes(records[i])[:1 << 20], received_at=now, source=source)
                for i, reason in judged.rejected]
        if kind == "event":
            record = LogRecord(events=judged.accepted, dead=dead)
        else:
            record = LogRecord(profiles=judged.accepted, dead=dead)
        if record.items:
            await self._log.append(encode_record(record), record.items)
