"""Sessionization of one key's events against the state Flink keeps for that key.

The rules are :class:`~stream.operators.sessionize.Sessionizer`'s; this module only decides
what a key holds and what it emits, over a small state port (:class:`KeyState`) that the
PyFlink function backs with keyed state and a test can back with dicts. Nothing here
imports PyFlink.

Per key ``(project, session key)`` the state holds every session whose inactivity timeout
plus the allowed lateness has not yet passed the watermark, with its events (msgpack, as
they arrived). The key's latest session lives in one value with an index of the others
(:class:`Head`), so an event in order costs one state read and one write — in PyFlink's
thread mode each state or timer call crosses into the JVM and costs tens of µs.

- An event ordered after the key's last event continues or opens a session
  (``Sessionizer.step``), as the embedded runner does.
- A late event (ordered before the key's last event) re-folds the sessions it can reach —
  ``Sessionizer.affected_range``, the embedded runner's rule with the held state standing in
  for the store (whole sessions are re-folded, and a producer session whatever its gaps):
  sessions that disappear are deleted, events that change session are sent again.
- The **bound**: an event that may belong to a session the store owns is emitted as
  :class:`TooLate` instead of being sessionized — one within ``timeout`` of a session
  dropped from state, or at least ``allowed_lateness`` behind the watermark when its key
  holds nothing (see ``Head.horizon``). The ``stores`` sink places it against the stored
  sessions (``stream.refold``, the embedded runner's re-fold), so it is stored and
  sessionized all the same, from a Cassandra read instead of state. Ownership never
  overlaps: a too-late event moves the key's horizon past its own reach (a *marker* head
  keeps that horizon for a key that holds nothing), and one that could join a held session
  (within ``timeout`` of it, or any event of a producer session) hands the key's held
  sessions to the store with it. A finished producer session leaves a marker for
  ``producer_memory_ms`` (the dedupe TTL), since its next event, however far off, joins it.
  So every event is placed exactly as ``Sessionizer.fold`` over all of the key's events
  would place it. Two cases escape: a producer session quiet for longer than ``timeout +
  allowed_lateness + producer_memory_ms`` starts again from its next event, whose row then
  replaces the stored one under the same id; and right after a restore, before the first
  watermark, a key that held nothing cannot tell an event of a dropped session from a new
  one (watermarks are not checkpointed).

Timers are event time, and few (each call costs): the latest session's timer is set at
``end + timeout`` when it opens and set again when it fires early because the session grew;
a session that is no longer the latest gets one at its ``end + timeout``. When a session's
timer finds it ended, its final row is sent; the latest session then sets one more timer,
at ``end + timeout + lateness``, which drops everything the key holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import msgspec

from stream.contract.event import Event
from stream.flink.records import (
    DeviceTie,
    EnrichedEvent,
    Output,
    SessionDeleted,
    SessionUpsert,
    TooLate,
)
from stream.operators.enrich import Enrichment
from stream.operators.sessionize import Sessionizer, SessionRow, order_of

Enrich = Callable[[str | None, str | None], Enrichment]

_decode_event = msgspec.msgpack.Decoder(Event).decode
_MIN_TIME = -(2**62)  # below any event time: "no watermark yet"
FOREVER = 2**62  # above any event time: a horizon that sends every event to the store


class Held(msgspec.Struct, array_like=True):
    """A session held in state: its row, its events (msgpack ``Event``s), and whether its
    final row was sent."""

    row: SessionRow
    events: list[bytes]
    final: bool = False


class Brief(msgspec.Struct, array_like=True):
    """A held session other than the latest, as the head indexes it."""

    session_id: str
    start: int
    end: int
    final: bool = False


class Head(msgspec.Struct, array_like=True):
    """What a key holds besides its older sessions' bodies.

    ``horizon``: an event at or before it may belong to a session the store owns (dropped
    from state, or placed there as too late) — the latest ``end + timeout`` of those, or,
    for a key that held nothing when its head was made, that moment's watermark minus the
    lateness. Held sessions all start after it.

    ``current`` is None in a *marker*: the key holds no session, but events up to
    ``horizon`` still belong to the store; ``timer`` is when the marker goes.
    """

    current: Held | None
    older: list[Brief] = msgspec.field(default_factory=list)
    horizon: int | None = None
    timer: int | None = None  # the current session's pending timer (set lazily)
    tie: tuple[str, int] | None = None  # (user, time) of the device's latest tie


class KeyState(Protocol):
    """The state of the current key."""

    def head(self) -> Head | None: ...
    def set_head(self, head: Head | None) -> None: ...
    def older(self, session_id: str) -> Held: ...
    def put_older(self, held: Held) -> None: ...
    def remove_older(self, session_id: str) -> None: ...


class Timers(Protocol):
    """Event-time timers of the current key (ms); registering a time twice is one timer."""

    def register(self, timestamp: int) -> None: ...


class KeySessions:
    """Applies one project's rules to the events of its keys; holds no state itself."""

    def __init__(self, sessionizer: Sessionizer, enrich: Enrich,
                 allowed_lateness_ms: int, producer_memory_ms: int = 7 * 86_400_000) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed lateness must be >= 0 ms")
        self._s = sessionizer
        self.rules = sessionizer.rules
        self._enrich = enrich
        self.timeout_ms = sessionizer.rules.timeout_ms
        self.lateness_ms = allowed_lateness_ms
        self.producer_memory_ms = producer_memory_ms

    # -- events --------------------------------------------------------------------------

    def on_event(self, state: KeyState, timers: Timers, key: str, event: Event, raw: bytes,
                 watermark: Callable[[], int]) -> Iterator[Output]:
        """Place ``event`` (already de-duplicated; ``raw`` is its msgpack) and yield what
        changed. ``watermark`` is asked only for a key that holds nothing."""
        head = state.head()
        tie = self._tie(head, event)
        if tie is not None:
            yield tie
        if head is None or head.current is None:
            # Whatever this key held before ended by watermark - lateness - timeout.
            horizon = watermark() - self.lateness_ms
            if head is not None and head.horizon is not None:
                horizon = max(horizon, head.horizon)
            if event.time <= horizon:
                self._mark(state, timers, head, key, event.time + self.timeout_ms,
                           event.time + self.timeout_ms)
                yield TooLate(event, f"at or before {horizon}: the store holds this key's "
                                     "sessions up to there")
                return
            held = Held(self._s.open(key, event), [raw])
            end = held.row.end_time + self.timeout_ms
            timers.register(end)
            state.set_head(Head(held, horizon=horizon if horizon > _MIN_TIME else None,
                                timer=end,
                                tie=head.tie if head is not None else _tie_of(event)))
            yield self._event_out(event, held.row, index=0)
            yield self._session_out(held.row, final=False)
            return
        if head.horizon is not None and event.time <= head.horizon:
            yield from self._too_late(state, timers, key, event, head)
            return
        if order_of(event) > head.current.row.order:
            yield from self._in_order(state, timers, key, event, raw, head)
        else:
            yield from self._late(state, timers, key, event, raw, head)

    def _too_late(self, state: KeyState, timers: Timers, key: str, event: Event,
                  head: Head) -> Iterator[Output]:
        """An event at or before the horizon of a key that holds sessions: the store places
        it. If it could join a held session (within the timeout of the first, or any event
        of a producer session), the store takes the whole key: the held sessions (already
        written) are dropped from state and left to the store's re-fold with the event."""
        assert head.current is not None
        current = head.current.row
        horizon = head.horizon if head.horizon is not None else _MIN_TIME
        first = min([current.start_time, *(b.start for b in head.older)])
        if current.producer or event.time + self.timeout_ms >= first:
            for brief in head.older:
                if not brief.final:  # state's last word on it
                    yield self._session_out(state.older(brief.session_id).row, final=True)
                state.remove_older(brief.session_id)
            if not head.current.final:
                yield self._session_out(current, final=True)
            last = max([current.end_time, *(b.end for b in head.older), event.time])
            self._mark(state, timers, Head(None, horizon=horizon, tie=head.tie), key,
                       last + self.timeout_ms, last + self.timeout_ms)
            yield TooLate(event, f"at or before {horizon} and next to a held session: the "
                                 "store takes over the key's sessions")
            return
        head.horizon = max(horizon, event.time + self.timeout_ms)
        state.set_head(head)
        yield TooLate(event, f"at or before {horizon}: the key's sessions that may hold it "
                             "are the store's", head.horizon)

    def _mark(self, state: KeyState, timers: Timers, head: Head | None, key: str,
              reach: int, end: int) -> None:
        """Leave a marker: events up to ``reach`` (every event, for a producer session) are
        the store's. It goes once the watermark has passed ``end + lateness`` (a producer
        session's: ``producer_memory_ms`` later, since it never ends by a gap)."""
        producer = key.startswith("p:")
        horizon = max(FOREVER if producer else reach,
                      head.horizon if head is not None and head.horizon is not None
                      else _MIN_TIME)
        until = end + self.lateness_ms + (self.producer_memory_ms if producer else 0)
        if head is not None and head.timer is not None:
            until = max(until, head.timer)
        if head is None or head.timer != until:
            timers.register(until)
        state.set_head(Head(None, horizon=horizon, timer=until,
                            tie=head.tie if head is not None else None))

    def _in_order(self, state: KeyState, timers: Timers, key: str, event: Event, raw: bytes,
                  head: Head) -> Iterator[Output]:
        current = head.current
        assert current is not None
        if self._s.continues(current.row, event):
            self._s.step(current.row, key, event)
            current.events.append(raw)
            if current.final:  # grown after its final row (a late event within the bound)
                current.final = False
                head.timer = current.row.end_time + self.timeout_ms
                timers.register(head.timer)
            # else its pending timer fires early and is set again (on_timer): no call per event
        else:
            state.put_older(current)
            row = current.row
            head.older.append(Brief(row.session_id, row.start_time, row.end_time, current.final))
            if not current.final and head.timer != row.end_time + self.timeout_ms:
                timers.register(row.end_time + self.timeout_ms)  # older sessions: exact timers
            current = head.current = Held(self._s.open(key, event), [raw])
            head.timer = current.row.end_time + self.timeout_ms
            timers.register(head.timer)
        state.set_head(head)
        yield self._event_out(event, current.row, index=current.row.events - 1)
        yield self._session_out(current.row, final=False)

    def _late(self, state: KeyState, timers: Timers, key: str, event: Event, raw: bytes,
              head: Head) -> Iterator[Output]:
        assert head.current is not None
        briefs = [*head.older, _brief(head.current)]
        producer = head.current.row.producer
        near = [(b.start, b.end) for b in briefs
                if producer or (b.end >= event.time - self.timeout_ms
                                and b.start <= event.time + self.timeout_ms)]
        lo, hi = self._s.affected_range([event], near)
        reach = {b.session_id for b in briefs if b.end >= lo and b.start <= hi}
        bodies = {sid: (head.current if sid == head.current.row.session_id
                        else state.older(sid)) for sid in reach}
        previous = [(_decode_event(r), r, sid) for sid, h in bodies.items() for r in h.events]
        everything = [e for e, _, _ in previous] + [event]
        rows, assigned = self._s.assign(key, everything)
        by_id = {r.session_id: r for r in rows}
        raws: dict[str, list[bytes]] = {sid: [] for sid in by_id}
        for e, r, _ in previous:
            raws[assigned[e.insert_id]].append(r)
        raws[assigned[event.insert_id]].append(raw)

        starts = {b.session_id: b.start for b in briefs}
        for sid in sorted(reach - by_id.keys()):
            if sid != head.current.row.session_id:
                state.remove_older(sid)
            yield SessionDeleted(event.project, sid, key, starts[sid])
        for e, _, sid in previous:
            if assigned[e.insert_id] != sid:
                yield self._event_out(e, by_id[assigned[e.insert_id]], moved=True)
        yield self._event_out(event, by_id[assigned[event.insert_id]])

        current_id = head.current.row.session_id
        older = {b.session_id: b for b in head.older if b.session_id not in reach}
        after: dict[str, Held] = {}
        for row in rows:
            sid = row.session_id
            before = bodies.get(sid)
            if (before is not None and before.row == row
                    and sorted(before.events) == sorted(raws[sid])):
                after[sid] = before  # re-folded to the same session
                continue
            after[sid] = Held(row, raws[sid])
            timers.register(row.end_time + self.timeout_ms)
            steps = [(e.event_name, e.url)
                     for e in sorted((e for e in everything if assigned[e.insert_id] == sid),
                                     key=order_of)]
            moved_start = (before.row.start_time if before is not None
                           and before.row.start_time != row.start_time else None)
            yield SessionUpsert(row.snapshot(), self._enrich(row.ip, row.user_agent), False,
                                steps, moved_start)
        if current_id in reach:  # else the key's latest session is untouched, and still last
            latest = max(rows, key=lambda r: r.order).session_id
            if after[latest] is not bodies.get(latest) or latest != current_id:
                head.timer = after[latest].row.end_time + self.timeout_ms
                timers.register(head.timer)
            head.current = after.pop(latest)
            if latest != current_id and latest in bodies:
                state.remove_older(latest)
        for sid, body in after.items():
            older[sid] = _brief(body)
            if body is not bodies.get(sid) or sid == current_id:
                state.put_older(body)
        head.older = sorted(older.values(), key=lambda b: (b.start, b.end))
        state.set_head(head)

    @staticmethod
    def _tie(head: Head | None, event: Event) -> DeviceTie | None:
        """The device's tie when it changes user (``identify.ties``: the latest time wins),
        remembered in ``head`` (written with it).

        A tie repeated by every event of a logged-in device is sent once per change of user
        (and again once the key held nothing), so a sink keeping the latest tie by time may
        hold an older time for the same user.
        """
        mine = _tie_of(event)
        if mine is None or event.device_id is None:
            return None
        held = head.tie if head is not None else None
        if held is not None and (mine[1] < held[1] or mine[0] == held[0]):
            if mine[0] == held[0] and mine[1] > held[1] and head is not None:
                head.tie = mine
            return None
        if head is not None:
            head.tie = mine
        return DeviceTie(event.project, event.device_id, mine[0], mine[1])

    # -- timers --------------------------------------------------------------------------

    def on_timer(self, state: KeyState, timers: Timers, timestamp: int) -> Iterator[Output]:
        """The watermark reached ``timestamp``: send final rows, drop what no event can reach,
        and set the current session's timer again if it grew since.

        Older sessions are dropped by whichever timer of the key passes their end + timeout
        + lateness (at the latest the current session's, which ends last): one timer per key
        for clean-up, not one per session.
        """
        head = state.head()
        if head is None:
            return
        if head.current is None:  # a marker: gone when its time has come
            if head.timer is None or head.timer <= timestamp:
                state.set_head(None)
            return
        changed = False
        kept: list[Brief] = []
        for brief in head.older:
            end = brief.end + self.timeout_ms
            if end + self.lateness_ms <= timestamp:
                if not brief.final:
                    yield self._session_out(state.older(brief.session_id).row, final=True)
                state.remove_older(brief.session_id)
                head.horizon = max(head.horizon or end, end)
                changed = True
                continue
            if end <= timestamp and not brief.final:
                body = state.older(brief.session_id)
                body.final = brief.final = True
                state.put_older(body)
                changed = True
                yield self._session_out(body.row, final=True)
            kept.append(brief)
        head.older = kept
        current = head.current
        end = current.row.end_time + self.timeout_ms
        if end + self.lateness_ms <= timestamp:
            if not current.final:
                yield self._session_out(current.row, final=True)
            if current.row.producer:  # its later events, however late, are the store's
                self._mark(state, timers, Head(None, tie=head.tie), current.row.session_key,
                           FOREVER, current.row.end_time + self.timeout_ms)
            else:
                state.set_head(None)  # the latest session ends last: nothing else is held
            return
        if end <= timestamp and not current.final:
            current.final = changed = True
            head.timer = end + self.lateness_ms
            timers.register(head.timer)
            yield self._session_out(current.row, final=True)
        elif end > timestamp and (head.timer is None or head.timer <= timestamp):
            head.timer = end
            timers.register(end)
            changed = True
        if changed:
            state.set_head(head)

    # -- outputs -------------------------------------------------------------------------

    def _event_out(self, event: Event, row: SessionRow, moved: bool = False,
                   index: int = -1) -> EnrichedEvent:
        enrichment = self._enrich(event.ip, event.user_agent)
        if self.rules.drop_ip and event.ip is not None:  # enriched; not stored
            event = msgspec.structs.replace(event, ip=None)
        return EnrichedEvent(event, row.session_id, row.session_key, enrichment, moved, index)

    def _session_out(self, row: SessionRow, final: bool) -> SessionUpsert:
        snapshot = row.snapshot()
        enrichment = self._enrich(row.ip, row.user_agent)
        if self.rules.drop_ip:
            snapshot.ip = None
        return SessionUpsert(snapshot, enrichment, final)


def _tie_of(event: Event) -> tuple[str, int] | None:
    if event.device_id and event.distinct_user_id:
        return (event.distinct_user_id, event.time)
    return None


def _brief(held: Held) -> Brief:
    return Brief(held.row.session_id, held.row.start_time, held.row.end_time, held.final)

