"""Storage ports: what runners write and what query runners read.

Every method takes the project first: tenant scoping is part of the port, never an
afterthought of an adapter. Reads hand back Arrow tables of the columns asked for; query
runners compute on them (numpy/Arrow) so every backend gives the same answer.
Times are int milliseconds, UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from stream.contract.event import Event
from stream.contract.records import DeadLetter
from stream.operators.enrich import Enrichment as Enrichment  # re-exported for adapters
from stream.operators.sessionize import SessionRow

KeyRange = tuple[str, str, int, int]  # (project, session key, lo, hi) — times in ms


@dataclass(slots=True)
class StoredEvents:
    """New events of one step, column-wise: ``events[i]`` belongs to ``session_ids[i]``…"""

    events: list[Event] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    session_keys: list[str] = field(default_factory=list)
    enrichments: list[Enrichment] = field(default_factory=list)
    dedupe_keys: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events)


@dataclass(slots=True)
class WriteBatch:
    """Everything one processing step writes, committed atomically with ``next_offset``."""

    next_offset: int
    events: StoredEvents = field(default_factory=StoredEvents)
    first_offset: int = -1  # the step's first log record (-1: not from a log)
    sessions: list[tuple[SessionRow, Enrichment]] = field(default_factory=list)
    deleted_sessions: list[tuple[str, str]] = field(default_factory=list)  # (project, id)
    moved_events: list[tuple[str, str, str]] = field(default_factory=list)  # project, iid, sid
    ties: list[tuple[str, str, str, int]] = field(default_factory=list)  # project, device, user, t
    traits: list[tuple[str, str, str, Any, int]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    settled_dead: list[tuple[str, int]] = field(default_factory=list)  # (project, id)


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Which sessions to hand back: those starting in ``[start, end)`` matching filters,
    ordered by ``(start_time, session_id)`` when ``ordered``. ``columns`` names the columns
    the caller reads (``None``: all); a store may hand back more, never fewer."""

    start: int
    end: int
    city: str | None = None
    state: str | None = None
    country: str | None = None
    device_type: str | None = None
    os: str | None = None
    app_version: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    converted: bool | None = None
    columns: tuple[str, ...] | None = None
    ordered: bool = True


# The columns ``EventStore.scan_events`` can hand back (see resolvers/frames.py for each).
EVENT_SCAN_COLUMNS = (
    "insert_id", "event_name", "category", "time", "session_id", "user_id", "device_id",
    "url", "properties", "city", "state", "country", "device_type", "os", "app_version",
    "dedupe_key", "user_key", "ingest_time", "source_id", "browser",
)
# The columns of ``ProfileStore.scan_profiles``: a user's profile as identify set it.
PROFILE_COLUMNS = (
    "user_id", "city", "state", "country", "postal_code", "lat", "long", "device_type",
    "os", "app_version", "age", "gender", "email", "phone", "traits",
)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to hand back: those with ``start <= time < end``, of the event names in
    ``names`` (every name when ``None``), with ``columns`` (a subset of EVENT_SCAN_COLUMNS),
    ordered by ``(time, insert_id)`` when ``ordered`` (sorting a million rows by a string
    tie-breaker costs more than most runners' whole computation, so runners that only
    count ask for none). ``user_id``: only the events whose resolved user (own user, else
    the device's tie, else the device) is this one — one person's page."""

    start: int
    end: int
    names: tuple[str, ...] | None = None
    columns: tuple[str, ...] = EVENT_SCAN_COLUMNS
    ordered: bool = True
    user_id: str | None = None


class ProcessingStore(Protocol):
    """What a stream runner needs: its checkpoint, state reloads, and atomic commits."""

    def checkpoint(self) -> int: ...

    def dedupe_keys(self) -> Any: ...

    def existing_insert_ids(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]: ...

    def last_sessions(self, keys: list[tuple[str, str]]) -> list[SessionRow]: ...

    def sessions_overlapping(self, ranges: list[KeyRange]) -> list[SessionRow]: ...

    def events_in_ranges(self, ranges: list[KeyRange]) -> list[tuple[Event, str]]: ...

    def commit(self, batch: WriteBatch) -> None: ...


class SessionStore(Protocol):
    def scan_sessions(self, project: str, query: SessionQuery) -> pa.Table:
        """Sessions with resolved ``user_id`` and profile-first location/device columns."""
        ...

    def session_events(self, project: str, session_id: str) -> pa.Table: ...


class EventStore(Protocol):
    def scan_events(self, project: str, query: EventQuery) -> pa.Table:
        """Stored events with the resolved ``user_id`` (own user, else the device's tie,
        else the device), ordered by ``(time, insert_id)``."""
        ...


class ProfileStore(Protocol):
    def scan_profiles(self, project: str, users: list[str]) -> pa.Table:
        """The profiles (PROFILE_COLUMNS) of those of ``users`` with any trait."""
        ...


class DeadLetterStore(Protocol):
    def dead_letters(self, project: str, status: str | None, limit: int,
                     after_id: int) -> pa.Table: ...


def merge_batches(batches: Sequence[WriteBatch]) -> WriteBatch:
    """One batch that a store commits to the same rows as committing ``batches`` one after
    another (each store commits a batch as: insert events, move events, delete sessions,
    upsert sessions, upsert ties where not older, replace traits, add and settle dead
    letters, then the offset). Later steps win where they overlap; a session a step deletes
    leaves the upserts of earlier steps."""
    if len(batches) == 1:
        return batches[0]
    out = WriteBatch(next_offset=batches[-1].next_offset)
    ev = out.events
    sessions: dict[tuple[str, str], tuple[SessionRow, Enrichment]] = {}
    deleted: dict[tuple[str, str], None] = {}
    moves: dict[tuple[str, str], str] = {}
    ties: dict[tuple[str, str], tuple[str, int]] = {}
    traits: dict[tuple[str, str, str], tuple[Any, int]] = {}
    settled: dict[tuple[str, int], None] = {}
    for b in batches:
        e = b.events
        ev.events.extend(e.events)
        ev.session_ids.extend(e.session_ids)
        ev.session_keys.extend(e.session_keys)
        ev.enrichments.extend(e.enrichments)
        ev.dedupe_keys.extend(e.dedupe_keys)
        for project, insert_id, sid in b.moved_events:
            moves.pop((project, insert_id), None)  # keep the last move, in its order
            moves[(project, insert_id)] = sid
        for ref in b.deleted_sessions:
            sessions.pop(ref, None)
            deleted[ref] = None
        for row, x in b.sessions:
            sessions[(row.project, row.session_id)] = (row, x)
        for project, device, user, t in b.ties:
            held = ties.get((project, device))
            if held is None or t >= held[1]:
                ties[(project, device)] = (user, t)
        for project, user, key, value, at in b.traits:
            traits.pop((project, user, key), None)
            traits[(project, user, key)] = (value, at)
        out.dead.extend(b.dead)
        for ref2 in b.settled_dead:
            settled[ref2] = None
    out.sessions = list(sessions.values())
    out.deleted_sessions = list(deleted)
    out.moved_events = [(p, i, sid) for (p, i), sid in moves.items()]
    out.ties = [(p, d, u, t) for (p, d), (u, t) in ties.items()]
    out.traits = [(p, u, k, v, at) for (p, u, k), (v, at) in traits.items()]
    out.settled_dead = list(settled)
    return out
