"""A batch of the PyFlink job's outputs as the writes the stores take (pure; no I/O).

The job buffers outputs per bucket and hands each flushed batch, in emission order, to
:func:`translate`, which folds it into what the embedded runner would commit for the same
events: one ``WriteBatch`` (events with their session, moved ones re-written whole; each
session once, as it is last; deleted sessions; ties; traits; dead letters), the events new
to the live views, and the journey graph's changes with explicit positions, so writing the
same batch again (a replay from a checkpoint) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import xxhash

from graph.ports import GraphChanges, SessionRef, Step
from storage.ports import Enrichment, StoredEvents, WriteBatch
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter
from stream.flink.records import (
    DeadSettled,
    DeviceTie,
    EnrichedEvent,
    SessionDeleted,
    SessionUpsert,
    TooLate,
)
from stream.operators.dedupe import dedupe_key
from stream.operators.sessionize import SessionRow

_encode = msgspec.msgpack.Encoder().encode
HASH_BITS = 20


def stream_dead_id(letter: DeadLetter) -> int:
    """A dead letter's id, the same on every replay: ``received_at`` (ms) above 20 bits of
    the xxh3 of its msgpack bytes. Ordered by arrival, like the embedded sequence."""
    return letter.received_at << HASH_BITS | (
        xxhash.xxh3_64_intdigest(_encode(letter)) & ((1 << HASH_BITS) - 1))


@dataclass(slots=True)
class StoreBatch:
    """What one flushed batch writes. ``stale_sessions``: ``(project, session id, session
    key, start)`` rows keyed by a start time the session no longer has (or at all)."""

    batch: WriteBatch = field(default_factory=lambda: WriteBatch(next_offset=-1))
    stale_sessions: list[tuple[str, str, str, int]] = field(default_factory=list)
    dead_ids: list[int] = field(default_factory=list)
    live: StoredEvents = field(default_factory=StoredEvents)
    graph: GraphChanges = field(default_factory=GraphChanges)


@dataclass(slots=True)
class _Placed:
    event: Event
    session_id: str
    session_key: str
    enrichment: Enrichment
    new: bool  # first placed in this batch (published to the live views)


def translate(outputs: Iterable[Any]) -> StoreBatch:
    """Fold ``outputs`` (in emission order) into one :class:`StoreBatch`."""
    fold = _Fold()
    for o in outputs:
        handler = _HANDLERS.get(type(o))
        if handler is None:
            raise TypeError(f"not a job output: {type(o).__name__}")
        handler(fold, o)
    return fold.result()


class _Fold:
    def __init__(self) -> None:
        self.out = StoreBatch()
        self.events: dict[tuple[str, str], _Placed] = {}
        self.sessions: dict[SessionRef, tuple[SessionRow, Enrichment]] = {}
        self.deleted: dict[SessionRef, str] = {}  # session key
        self.stale: dict[SessionRef, set[int]] = {}
        self.keys: dict[SessionRef, str] = {}
        self.graph = _GraphFold()

    def event(self, o: EnrichedEvent) -> None:
        e = o.event
        ref = (e.project, o.session_id)
        known = self.events.get((e.project, e.insert_id))
        self.events[(e.project, e.insert_id)] = _Placed(
            e, o.session_id, o.session_key, o.enrichment,
            (known is not None and known.new) or not o.moved)
        self.keys[ref] = o.session_key
        if o.index >= 0:
            self.graph.place(ref, o.index, (e.event_name, e.url))

    def session(self, o: SessionUpsert) -> None:
        row = o.row
        ref = (row.project, row.session_id)
        self.sessions[ref] = (row, o.enrichment)
        self.deleted.pop(ref, None)
        self.keys[ref] = row.session_key
        if o.replaced_start is not None:
            self.stale.setdefault(ref, set()).add(o.replaced_start)
        if o.steps is not None:
            self.graph.replace(ref, [(n, u) for n, u in o.steps])

    def session_deleted(self, o: SessionDeleted) -> None:
        ref = (o.project, o.session_id)
        self.sessions.pop(ref, None)
        self.deleted[ref] = self.keys[ref] = o.session_key
        if o.start_time is not None:
            self.stale.setdefault(ref, set()).add(o.start_time)
        self.graph.remove(ref)

    def tie(self, o: DeviceTie) -> None:
        self.out.batch.ties.append((o.project, o.device_id, o.user_id, o.time))

    def profile(self, o: Profile) -> None:
        """As the embedded runner: every trait set at ingest time, and a device tie."""
        batch = self.out.batch
        for key, value in o.traits.items():
            batch.traits.append((o.project, o.distinct_user_id, key, value, o.ingest_time))
        if o.device_id:
            batch.ties.append((o.project, o.device_id, o.distinct_user_id, o.ingest_time))

    def dead(self, o: DeadLetter) -> None:
        self.out.batch.dead.append(o)
        self.out.dead_ids.append(stream_dead_id(o))

    def settled(self, o: DeadSettled) -> None:
        self.out.batch.settled_dead.append((o.project, o.letter_id))

    def too_late(self, o: TooLate) -> None:
        """Nothing: the stores sink places too-late events against the stored sessions
        (``stream.flink.store_sink.place_too_late``) and translates what that gives."""

    def result(self) -> StoreBatch:
        out, batch = self.out, self.out.batch
        stored, live = batch.events, out.live
        for placed in self.events.values():
            key = dedupe_key(placed.event.project, placed.event.insert_id)
            for columns in (stored, live) if placed.new else (stored,):
                columns.events.append(placed.event)
                columns.session_ids.append(placed.session_id)
                columns.session_keys.append(placed.session_key)
                columns.enrichments.append(placed.enrichment)
                columns.dedupe_keys.append(key)
        batch.sessions = list(self.sessions.values())
        batch.deleted_sessions = list(self.deleted)
        for ref, starts in self.stale.items():
            now = self.sessions.get(ref)
            skey = now[0].session_key if now is not None else self.keys[ref]
            out.stale_sessions.extend((ref[0], ref[1], skey, start) for start in sorted(starts)
                                      if now is None or now[0].start_time != start)
        out.graph = self.graph.changes(self.keys)
        return out


_HANDLERS: dict[type, Any] = {
    EnrichedEvent: _Fold.event, SessionUpsert: _Fold.session,
    SessionDeleted: _Fold.session_deleted, DeviceTie: _Fold.tie, Profile: _Fold.profile,
    DeadLetter: _Fold.dead, DeadSettled: _Fold.settled, TooLate: _Fold.too_late,
}


class _GraphFold:
    """Per session, the net effect of a batch on its steps: gone, a whole new sequence, or
    ``old[:start] + steps``."""

    def __init__(self) -> None:
        self.removed: dict[SessionRef, None] = {}
        self.replaced: dict[SessionRef, list[Step]] = {}
        self.positioned: dict[SessionRef, tuple[int, list[Step]]] = {}

    def place(self, ref: SessionRef, index: int, step: Step) -> None:
        whole = self.replaced.get(ref)
        if whole is not None:
            self.replaced[ref] = [*whole[:index], step]
            return
        self.removed.pop(ref, None)
        known = self.positioned.get(ref)
        if known is not None and index >= known[0]:
            start, steps = known
            self.positioned[ref] = (start, [*steps[:index - start], step])
        else:
            self.positioned[ref] = (index, [step])

    def replace(self, ref: SessionRef, steps: list[Step]) -> None:
        self.removed.pop(ref, None)
        self.positioned.pop(ref, None)
        self.replaced[ref] = steps

    def remove(self, ref: SessionRef) -> None:
        self.replaced.pop(ref, None)
        self.positioned.pop(ref, None)
        self.removed[ref] = None

    def changes(self, keys: dict[SessionRef, str]) -> GraphChanges:
        touched = [*self.replaced, *self.positioned]
        return GraphChanges(replaced=self.replaced, removed=list(self.removed),
                            keys={ref: keys[ref] for ref in touched},
                            positioned=self.positioned)
