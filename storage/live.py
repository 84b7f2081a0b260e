"""The embedded live store: open sessions, recent events per session and per user, and
subscriptions — what Redis holds in the distributed profile (a hash per open session,
Streams per session and per user with MAXLEN, a sorted set of last activity).

Every event gets a monotonically increasing id, like a Stream entry id (microseconds since
the epoch, so they keep growing across restarts), so a subscriber that reconnects with the
last id it saw resumes without a gap (within MAXLEN). Publishing happens on the runner's
thread and never blocks: each subscriber gets each step's events as one item and is dropped,
with a reason, when what it has not taken yet passes its bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from storage.ports import Enrichment, StoredEvents
from stream.operators.sessionize import SessionRow

# The sessions a step touched, as they now are (see ``InProcessLiveStore.settle``).
SessionRows = Sequence[tuple[SessionRow, Enrichment]]

StreamKey = tuple[str, str, str]  # (project, "session" | "user" | "all", id)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    id: int
    project: str
    session_id: str
    user_id: str
    device_id: str | None
    insert_id: str
    event_name: str
    category: str
    time: int
    url: str | None
    properties: str
    city: str
    country: str
    device_type: str
    os: str


@dataclass(slots=True)
class OpenSession:
    session_id: str
    user_id: str
    device_id: str | None
    started: int
    last_event_time: int
    last_seen: int  # last id published for it: orders sessions by activity
    events: int
    last_event: str
    city: str
    country: str
    device_type: str


@dataclass(frozen=True, slots=True)
class OpenSessionMatch:
    """Which open sessions a listing keeps: every given field equal, case-insensitively, to
    the session's (its first event's) place and device, as segment filters compare them."""

    city: str | None = None
    device_type: str | None = None

    def accepts(self, s: OpenSession) -> bool:
        return ((self.city is None or s.city.casefold() == self.city.casefold())
                and (self.device_type is None
                     or s.device_type.casefold() == self.device_type.casefold()))


class SubscriberDropped(Exception):
    """Raised in a subscriber that fell more than its queue bound behind."""


@dataclass(eq=False)
class _Subscriber:
    key: StreamKey
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[list[LiveEvent] | None]  # one runner step's events per item
    accept: Callable[[LiveEvent], bool]
    dropped: str | None = None
    pending: int = 0  # events queued, not yet taken


@dataclass(slots=True)
class _Project:
    sessions: OrderedDict[str, OpenSession] = field(default_factory=OrderedDict)


class InProcessLiveStore:
    """``maxlen`` events per stream; at most ``max_events`` retained in all, the streams
    idle longest evicted first (like Redis keys expiring), so memory stays bounded however
    much history flows through."""

    def __init__(self, maxlen: int = 200, max_open_sessions: int = 20_000,
                 session_timeout_ms: int = 30 * 60 * 1000, queue_bound: int = 1000,
                 max_events: int = 100_000) -> None:
        self._maxlen = maxlen
        self._max_open = max_open_sessions
        self._timeout = session_timeout_ms
        self._queue_bound = queue_bound
        self._max_events = max_events
        self._last_id = 0
        self._lock = threading.Lock()
        self._projects: dict[str, _Project] = {}
        self._streams: OrderedDict[StreamKey, deque[LiveEvent]] = OrderedDict()
        self._retained = 0
        self._subscribers: dict[StreamKey, set[_Subscriber]] = {}

    # -- writing (runner thread) -----------------------------------------------------------

    def publish(self, batch: StoredEvents, sessions: SessionRows = (),
                deleted: Sequence[tuple[str, str]] = ()) -> None:
        """A step's new events, to their streams and subscribers, then ``settle``."""
        self._publish_events(batch)
        if sessions or deleted:
            self.settle(sessions, deleted)

    def settle(self, sessions: SessionRows, deleted: Sequence[tuple[str, str]]) -> None:
        """The pipeline's word on the sessions of a step, after its events were published.
        An event is published once, under the session it was first placed in; when a
        later-arriving earlier event re-homes it (an ``App Launch`` processed after what
        followed it), that first session is ``deleted`` and no longer open, and the session
        it moved to takes its start, last event and count from its row. A row of a session
        not listed yet is listed if it is open (its last event within the timeout)."""
        cutoff = int(time.time() * 1000) - self._timeout
        with self._lock:
            for project, sid in deleted:
                p = self._projects.get(project)
                if p is not None:
                    p.sessions.pop(sid, None)
            for row, x in sessions:
                p = self._projects.setdefault(row.project, _Project())
                s = p.sessions.get(row.session_id)
                if s is None:
                    if row.end_time < cutoff:
                        continue
                    s = p.sessions[row.session_id] = OpenSession(
                        row.session_id, row.user_id or row.device_id or "", row.device_id,
                        row.start_time, row.end_time, 0, 0, row.last_event, x.city,
                        x.country, x.device_type)
                    while len(p.sessions) > self._max_open:
                        p.sessions.popitem(last=False)
                s.started, s.last_event_time = row.start_time, row.end_time
                s.last_event, s.events = row.last_event, row.events

    def _publish_events(self, batch: StoredEvents) -> None:
        out: list[LiveEvent] = []
        with self._lock:
            for e, sid, x in zip(batch.events, batch.session_ids, batch.enrichments,
                                 strict=True):
                live = LiveEvent(self._next_id(), e.project, sid,
                                 e.distinct_user_id or e.device_id or "", e.device_id,
                                 e.insert_id, e.event_name, e.category, e.time, e.url,
                                 e.properties, x.city, x.country, x.device_type, x.os)
                p = self._projects.setdefault(e.project, _Project())
                self._track(p, live)
                for key in ((e.project, "session", sid), (e.project, "user", live.user_id),
                            (e.project, "all", "")):
                    self._append(key, live)
                out.append(live)
            self._evict()
            targets = {k: set(v) for k, v in self._subscribers.items() if v}
        if targets:
            self._fan_out(out, targets)

    def _next_id(self) -> int:
        """Microseconds since the epoch, at least one more than the last: ids keep growing
        across restarts (a cursor from before one never skips what comes after), unless
        more than a million events a second ran the ids ahead of the clock."""
        self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
        return self._last_id

    def _append(self, key: StreamKey, event: LiveEvent) -> None:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = deque(maxlen=self._maxlen)
        else:
            self._streams.move_to_end(key)
        if len(stream) == self._maxlen:
            self._retained -= 1
        stream.append(event)
        self._retained += 1

    def _evict(self) -> None:
        while self._retained > self._max_events and self._streams:
            _key, stream = self._streams.popitem(last=False)
            self._retained -= len(stream)

    def _track(self, p: _Project, e: LiveEvent) -> None:
        s = p.sessions.get(e.session_id)
        if s is None:
            s = p.sessions[e.session_id] = OpenSession(
                e.session_id, e.user_id, e.device_id, e.time, e.time, e.id, 0, e.event_name,
                e.city, e.country, e.device_type)
        s.events += 1
        s.last_seen = e.id
        if e.time >= s.last_event_time:
            s.last_event_time, s.last_event = e.time, e.event_name
        s.started = min(s.started, e.time)
        p.sessions.move_to_end(e.session_id)
        while len(p.sessions) > self._max_open:
            p.sessions.popitem(last=False)

    def _fan_out(self, events: list[LiveEvent],
                 targets: dict[StreamKey, set[_Subscriber]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Subscriber, LiveEvent]]] = {}
        for e in events:
            for key in ((e.project, "session", e.session_id), (e.project, "user", e.user_id),
                        (e.project, "all", "")):
                for sub in targets.get(key, ()):
                    if sub.accept(e):
                        by_loop.setdefault(sub.loop, []).append((sub, e))
        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(self._deliver, items)

    def _deliver(self, items: list[tuple[_Subscriber, LiveEvent]]) -> None:
        """One step's events, one queue item per subscriber. A subscriber that has taken
        everything so far gets any burst; one still holding events is dropped once they would
        pass ``queue_bound`` — it is slow, and ingest never waits for it."""
        batches: dict[_Subscriber, list[LiveEvent]] = {}
        for sub, e in items:
            batches.setdefault(sub, []).append(e)
        for sub, batch in batches.items():
            if sub.dropped:
                continue
            if sub.pending and sub.pending + len(batch) > self._queue_bound:
                sub.dropped = (f"subscriber fell more than {self._queue_bound} events behind "
                               "and was dropped; reconnect with the last id seen")
                self._remove(sub)
                sub.queue._queue.clear()  # type: ignore[attr-defined]  # free what it held
                sub.pending = 0
                sub.queue.put_nowait(None)
                continue
            sub.pending += len(batch)
            sub.queue.put_nowait(batch)

    def forget(self, project: str, identities: Iterable[str], session_ids: Iterable[str]
               ) -> int:
        """Erase what is retained of these identities (user or device ids, as events name
        them) and sessions: their streams, their open sessions, their events in the
        project's stream. Returns how many retained events were theirs."""
        ids, sids = set(identities), set(session_ids)
        gone: set[int] = set()
        with self._lock:
            for key in [(project, "user", i) for i in ids] + [
                    (project, "session", s) for s in sids]:
                stream = self._streams.pop(key, None)
                if stream is not None:
                    self._retained -= len(stream)
                    gone.update(e.id for e in stream)
            everything = self._streams.get((project, "all", ""))
            if everything is not None:
                kept = [e for e in everything if e.user_id not in ids and e.session_id not in sids]
                gone.update(e.id for e in everything if e.user_id in ids or e.session_id in sids)
                self._retained -= len(everything) - len(kept)
                everything.clear()
                everything.extend(kept)
            p = self._projects.get(project)
            if p is not None:
                for sid in [s.session_id for s in p.sessions.values()
                            if s.session_id in sids or s.user_id in ids]:
                    del p.sessions[sid]
        return len(gone)

    # -- reading ---------------------------------------------------------------------------

    def open_sessions(self, project: str, now_ms: int) -> list[OpenSession]:
        """Sessions with an event within the timeout of ``now_ms``, most recent first."""
        with self._lock:
            p = self._projects.get(project)
            sessions = list(p.sessions.values()) if p else []
        live = [s for s in sessions if now_ms - s.last_event_time <= self._timeout]
        return sorted(live, key=lambda s: -s.last_seen)

    def recent_open_sessions(self, project: str, now_ms: int, limit: int,
                             city: str | None = None, device_type: str | None = None
                             ) -> list[OpenSession]:
        """At most ``limit`` sessions open at ``now_ms`` (an event within the timeout) whose
        first event's city and device type match the given ones (case-insensitively), by
        last event time, latest first, ties by session id, descending."""
        with self._lock:
            p = self._projects.get(project)
            sessions = list(p.sessions.values()) if p else []
        match = OpenSessionMatch(city, device_type)
        live = [s for s in sessions
                if now_ms - s.last_event_time <= self._timeout and match.accepts(s)]
        live.sort(key=lambda s: (s.last_event_time, s.session_id), reverse=True)
        return live[:max(limit, 0)]

    def read(self, key: StreamKey, after: int = 0, limit: int = 1000) -> list[LiveEvent]:
        with self._lock:
            stream = list(self._streams.get(key, ()))
        return [e for e in stream if e.id > after][:limit]

    async def subscribe(self, key: StreamKey, after: int | None = None,
                        accept: Callable[[LiveEvent], bool] = lambda _e: True
                        ) -> AsyncIterator[LiveEvent]:
        """Events of ``key`` as they are processed; with ``after``, first the buffered ones
        after that id. Raises ``SubscriberDropped`` if the consumer falls behind."""
        sub = _Subscriber(key, asyncio.get_running_loop(), asyncio.Queue(), accept)
        with self._lock:
            self._subscribers.setdefault(key, set()).add(sub)
        # Read the backlog after registering: an event published in between shows up in
        # both, and the id check below yields it once.
        backlog = [] if after is None else [e for e in self.read(key, after) if accept(e)]
        try:
            last = after or 0
            for e in backlog:
                last = e.id
                yield e
            while True:
                batch = await sub.queue.get()
                if batch is None:
                    raise SubscriberDropped(sub.dropped or "dropped")
                sub.pending -= len(batch)
                for item in batch:
                    if item.id > last:
                        last = item.id
                        yield item
        finally:
            self._remove(sub)

    def _remove(self, sub: _Subscriber) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[sub.key]

    @property
    def retained(self) -> int:
        with self._lock:
            return self._retained

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._subscribers.values())
