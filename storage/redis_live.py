"""The live store on Redis: what ``InProcessLiveStore`` keeps in memory, shared by processes.

Key layout (``{project}`` is literal braces: a Redis Cluster hash tag, so one project's keys
share a slot and the publish script may touch them all atomically):

- ``cep:{p}:session:{sid}`` hash per open session: ``head`` (JSON: user, device, city,
  country, device type of its first event), ``started`` (min event time), ``last_event_time``
  and ``last_event`` (latest by event time), ``events`` (count), ``last_seen`` (stream id of
  its last published event). PEXPIREd ``ttl_ms`` after its last write.
- ``cep:{p}:active`` sorted set: session id scored by last event time (inactivity timers,
  ``open_sessions``, ``recent_open_sessions``), trimmed to the ``max_open_sessions`` most recent.
- Streams ``cep:{p}:s:{sid}``, ``cep:{p}:u:{user}`` (PEXPIREd like the hash) and
  ``cep:{p}:all``, each ``XADD MAXLEN ~ maxlen`` (approximate trimming: a stream may hold up
  to one radix-tree node, ``stream-node-max-entries``, more than ``maxlen``). Entries have
  one field ``e``: the event as a JSON array.

Publishing runs one Lua script per project and chunk (keys declared, values as arguments):
an event gets its id from ``XADD *`` on the project's ``all`` stream and is added under the
same id to its session and user streams, so an id seen on any stream of a project is a valid
resume point on every other; the hash's min/max updates are read-modify-write and would race
in a plain pipeline.

Ids: a stream id ``"ms-seq"`` is exposed as the int ``ms << 64 | seq`` (``live_id``), which
keeps ``LiveEvent.id`` an ``int``, ordered like the stream, with 0 meaning "from the start",
exactly as the in-process store. It does not fit a GraphQL ``Int``: the API must expose
live ids as opaque ``String`` cursors (``str(id)``), for both stores. ``stream_id`` maps back.

Subscriptions: one reader task per event loop (per process, in practice) runs a single
``XREAD BLOCK`` over every stream its local subscribers follow and fans entries out to their
bounded queues; a subscriber that falls ``queue_bound`` events behind is dropped with
``SubscriberDropped``. A new stream joins the reader by interrupting its blocking read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from storage.live import (
    LiveEvent,
    OpenSession,
    OpenSessionMatch,
    SessionRows,
    StreamKey,
    SubscriberDropped,
)
from storage.ports import StoredEvents

log = logging.getLogger(__name__)

_SEQ_BITS = 64
_CHUNK = 500  # events per script call: keeps each atomic step short for other clients
_OPEN_PAGE = 200  # session hashes read per round trip when listing open sessions

# KEYS: active, all, then (session hash, session stream, user stream) per event.
# ARGV: maxlen, ttl_ms, max_open, then (sid, time, event name, head, payload) per event.
_PUBLISH = """
local maxlen, ttl, max_open = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
for i = 0, (#KEYS - 2) / 3 - 1 do
  local h, s, u = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local a = 4 + 5 * i
  local sid, t, name, head, payload = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'e', payload)
  for _, k in ipairs({s, u}) do
    -- the all stream recreated after a flush may hand out ids below a surviving stream's
    if not pcall(redis.call, 'XADD', k, 'MAXLEN', '~', maxlen, id, 'e', payload) then
      redis.call('XADD', k, 'MAXLEN', '~', maxlen, '*', 'e', payload)
    end
    redis.call('PEXPIRE', k, ttl)
  end
  if redis.call('HSETNX', h, 'head', head) == 1 then
    redis.call('HSET', h, 'started', t, 'last_event_time', t, 'last_event', name)
  else
    if tonumber(t) < tonumber(redis.call('HGET', h, 'started')) then
      redis.call('HSET', h, 'started', t)
    end
    if tonumber(t) >= tonumber(redis.call('HGET', h, 'last_event_time')) then
      redis.call('HSET', h, 'last_event_time', t, 'last_event', name)
    end
  end
  redis.call('HINCRBY', h, 'events', 1)
  redis.call('HSET', h, 'last_seen', id)
  redis.call('PEXPIRE', h, ttl)
  redis.call('ZADD', KEYS[1], 'GT', t, sid)
  ids[#ids + 1] = id
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(max_open + 1))
return ids
"""


# KEYS: active, then a session hash per session. ARGV: ttl_ms, cutoff (ms), max_open, then
# (op, sid, started, last event time, last event, events, head) per session; op "d" deletes.
_SETTLE = """
local ttl, cutoff, max_open = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, #KEYS - 2 do
  local h, a = KEYS[2 + i], 4 + 7 * i
  local op, sid = ARGV[a], ARGV[a + 1]
  if op == 'd' then
    redis.call('DEL', h)
    redis.call('ZREM', KEYS[1], sid)
  else
    local last = ARGV[a + 3]
    local listed = redis.call('EXISTS', h) == 1
    if listed or tonumber(last) >= cutoff then
      if not listed then
        redis.call('HSET', h, 'head', ARGV[a + 6], 'last_seen', '0-0')
      end
      redis.call('HSET', h, 'started', ARGV[a + 2], 'last_event_time', last,
                 'last_event', ARGV[a + 4], 'events', ARGV[a + 5])
      redis.call('PEXPIRE', h, ttl)
      redis.call('ZADD', KEYS[1], last, sid)
    end
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(max_open + 1))
return 0
"""


def live_id(stream_id: str | bytes) -> int:
    """``"ms-seq"`` as one ordered int (``ms << 64 | seq``)."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms) << _SEQ_BITS | int(seq or 0)


def stream_id(event_id: int) -> str:
    """The Redis stream id of a ``live_id``."""
    return f"{event_id >> _SEQ_BITS}-{event_id & ((1 << _SEQ_BITS) - 1)}"


def redis_key(key: StreamKey) -> str:
    project, kind, ident = key
    if kind == "session":
        return f"cep:{{{project}}}:s:{ident}"
    if kind == "user":
        return f"cep:{{{project}}}:u:{ident}"
    if kind == "all":
        return f"cep:{{{project}}}:all"
    raise ValueError(f"unknown stream kind {kind!r}")


def _session_key(project: str, session_id: str) -> str:
    return f"cep:{{{project}}}:session:{session_id}"


def _active_key(project: str) -> str:
    return f"cep:{{{project}}}:active"


def _open_session(sid: str, h: dict[str, str]) -> OpenSession | None:
    """A session hash as an ``OpenSession``; ``None`` if it expired since the active set
    listed it (the set is trimmed lazily)."""
    if not h:
        return None
    user, device, city, country, device_type = json.loads(h["head"])
    return OpenSession(sid, user, device, int(h["started"]), int(h["last_event_time"]),
                       live_id(h["last_seen"]), int(h["events"]), h["last_event"], city,
                       country, device_type)


def _events(project: str, entries: Any) -> list[LiveEvent]:
    """XRANGE/XREAD entries, ``[(id, {"e": payload})]``, as events (redis-py types its
    replies loosely, hence ``Any``)."""
    return [_decode(project, str(i), str(f["e"])) for i, f in entries or ()]


def _decode(project: str, entry_id: str, payload: str) -> LiveEvent:
    (sid, user, device, insert_id, name, category, time, url, properties, city, country,
     device_type, os_name) = json.loads(payload)
    return LiveEvent(live_id(entry_id), project, sid, user, device, insert_id, name, category,
                     time, url, properties, city, country, device_type, os_name)


class RedisLiveStore:
    """Same behaviour as ``InProcessLiveStore`` over a Redis server at ``url``.

    ``publish``, ``open_sessions`` and ``read`` are blocking (the runner's commit thread
    and thread-pool readers call them); ``subscribe`` is an async iterator. ``ttl_ms`` is
    wall-clock retention of a session's and user's keys after their last event.
    """

    def __init__(self, url: str, maxlen: int = 200, max_open_sessions: int = 20_000,
                 session_timeout_ms: int = 30 * 60 * 1000, queue_bound: int = 1000,
                 ttl_ms: int = 2 * 60 * 60 * 1000, block_ms: int = 5000,
                 read_count: int = 500) -> None:
        self._url = url
        self._maxlen = maxlen
        self._max_open = max_open_sessions
        self._timeout = session_timeout_ms
        self._queue_bound = queue_bound
        self._ttl = ttl_ms
        self._block_ms = block_ms
        self._read_count = read_count
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._publish = self._client.register_script(_PUBLISH)
        self._settle = self._client.register_script(_SETTLE)
        self._lock = threading.Lock()
        self._readers: dict[asyncio.AbstractEventLoop, _Reader] = {}

    def close(self) -> None:
        self._client.close()

    # -- writing (runner thread) -----------------------------------------------------------

    def publish(self, batch: StoredEvents, sessions: SessionRows = (),
                deleted: Sequence[tuple[str, str]] = ()) -> None:
        """As ``InProcessLiveStore.publish``."""
        self._publish_events(batch)
        if sessions or deleted:
            self.settle(sessions, deleted)

    def settle(self, sessions: SessionRows, deleted: Sequence[tuple[str, str]]) -> None:
        """As ``InProcessLiveStore.settle``: one script call per project and chunk."""
        by_project: dict[str, list[tuple[str, list[Any]]]] = defaultdict(list)
        for project, sid in deleted:
            by_project[project].append((_session_key(project, sid),
                                        ["d", sid, 0, 0, "", 0, ""]))
        for row, x in sessions:
            head = json.dumps([row.user_id or row.device_id or "", row.device_id, x.city,
                               x.country, x.device_type])
            by_project[row.project].append((_session_key(row.project, row.session_id), [
                "u", row.session_id, row.start_time, row.end_time, row.last_event,
                row.events, head]))
        cutoff = int(time.time() * 1000) - self._timeout
        pipe = self._client.pipeline(transaction=False)
        for project, rows in by_project.items():
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                keys = [_active_key(project)]
                args: list[Any] = [self._ttl, cutoff, self._max_open]
                for k, a in chunk:
                    keys.append(k)
                    args.extend(a)
                self._settle(keys=keys, args=args, client=pipe)
        pipe.execute()

    def _publish_events(self, batch: StoredEvents) -> None:
        by_project: dict[str, list[tuple[list[str], list[Any]]]] = defaultdict(list)
        for e, sid, x in zip(batch.events, batch.session_ids, batch.enrichments, strict=True):
            user = e.distinct_user_id or e.device_id or ""
            p = e.project
            keys = [_session_key(p, sid), redis_key((p, "session", sid)),
                    redis_key((p, "user", user))]
            head = json.dumps([user, e.device_id, x.city, x.country, x.device_type])
            payload = json.dumps([sid, user, e.device_id, e.insert_id, e.event_name,
                                  e.category, e.time, e.url, e.properties, x.city, x.country,
                                  x.device_type, x.os])
            by_project[p].append((keys, [sid, e.time, e.event_name, head, payload]))
        if not by_project:
            return
        pipe = self._client.pipeline(transaction=False)
        for project, rows in by_project.items():
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                keys = [_active_key(project), redis_key((project, "all", ""))]
                args: list[Any] = [self._maxlen, self._ttl, self._max_open]
                for k, a in chunk:
                    keys.extend(k)
                    args.extend(a)
                self._publish(keys=keys, args=args, client=pipe)
        pipe.execute()

    def forget(self, project: str, identities: Iterable[str], session_ids: Iterable[str]
               ) -> int:
        """Erase what Redis retains of these identities (user or device ids, as events name
        them) and sessions: their hashes and streams, their place in the active set, and
        their entries in the project's stream. Returns how many entries were theirs."""
        ids, sids = set(identities), set(session_ids)
        active = _active_key(project)
        # open sessions of theirs the store has not seen yet: found by their heads
        listed: list[str] = self._client.zrange(active, 0, -1)  # type: ignore[assignment]
        pipe = self._client.pipeline(transaction=False)
        for sid in listed:
            pipe.hget(_session_key(project, sid), "head")
        for sid, head in zip(listed, pipe.execute(), strict=True):
            if head and json.loads(head)[0] in ids:
                sids.add(sid)
        everything = redis_key((project, "all", ""))
        entries: Any = self._client.xrange(everything)
        theirs = [i for i, f in entries or ()
                  if (row := json.loads(f["e"]))[1] in ids or row[0] in sids]
        gone = set(theirs)
        for key in [redis_key((project, "user", i)) for i in ids] + [
                redis_key((project, "session", s)) for s in sids]:
            retained: Any = self._client.xrange(key)
            gone.update(i for i, _f in retained or ())
        pipe = self._client.pipeline(transaction=False)
        for sid in sids:
            pipe.delete(_session_key(project, sid), redis_key((project, "session", sid)))
        for ident in ids:
            pipe.delete(redis_key((project, "user", ident)))
        if sids:
            pipe.zrem(active, *sids)
        if theirs:
            pipe.xdel(everything, *theirs)
        pipe.execute()
        return len(gone)

    # -- reading ---------------------------------------------------------------------------

    def open_sessions(self, project: str, now_ms: int) -> list[OpenSession]:
        """Sessions with an event within the timeout of ``now_ms``, most recently
        published first."""
        sids: list[str] = self._client.zrange(  # type: ignore[assignment]
            _active_key(project), now_ms - self._timeout, "+inf", byscore=True)
        if not sids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(_session_key(project, sid))
        out = [s for sid, h in zip(sids, pipe.execute(), strict=True)
               if (s := _open_session(sid, h)) is not None]
        return sorted(out, key=lambda s: -s.last_seen)

    def recent_open_sessions(self, project: str, now_ms: int, limit: int,
                             city: str | None = None, device_type: str | None = None
                             ) -> list[OpenSession]:
        """As ``InProcessLiveStore.recent_open_sessions``: walks the project's active set
        from the latest last-event time down (its ties in descending session id, as Redis
        orders equal scores in ``REV``), a page of hashes at a time, until ``limit`` match;
        never more than the set holds (``max_open_sessions``)."""
        if limit <= 0:
            return []
        match = OpenSessionMatch(city, device_type)
        active = _active_key(project)
        page = max(limit, _OPEN_PAGE)
        out: list[OpenSession] = []
        for offset in range(0, self._max_open, page):
            sids: list[str] = self._client.zrange(  # type: ignore[assignment]
                active, "+inf", now_ms - self._timeout, desc=True, byscore=True,
                offset=offset, num=page)
            pipe = self._client.pipeline(transaction=False)
            for sid in sids:
                pipe.hgetall(_session_key(project, sid))
            for sid, h in zip(sids, pipe.execute() if sids else [], strict=True):
                s = _open_session(sid, h)
                if s is not None and match.accepts(s):
                    out.append(s)
            if len(out) >= limit or len(sids) < page:
                break
        out.sort(key=lambda s: (s.last_event_time, s.session_id), reverse=True)
        return out[:limit]

    def read(self, key: StreamKey, after: int = 0, limit: int = 1000) -> list[LiveEvent]:
        """Up to ``limit`` retained events of ``key`` with an id above ``after``."""
        return _events(key[0], self._client.xrange(redis_key(key), f"({stream_id(after)}", "+",
                                                   count=limit))

    async def subscribe(self, key: StreamKey, after: int | None = None,
                        accept: Callable[[LiveEvent], bool] = lambda _e: True
                        ) -> AsyncGenerator[LiveEvent, None]:
        """Events of ``key`` as they are published; with ``after``, first the retained ones
        after that id. Raises ``SubscriberDropped`` if the consumer falls behind."""
        reader = self._reader()
        sub = _Subscriber(key, asyncio.Queue(self._queue_bound), accept)
        try:
            await reader.add(sub)
            last = after or 0
            if after is not None:  # the backlog, read after registering: no gap
                while page := await reader.backlog(key, last, self._read_count):
                    for e in page:
                        last = e.id
                        if accept(e):
                            yield e
            while True:
                item = await sub.queue.get()
                if item is None:
                    raise SubscriberDropped(sub.dropped or "dropped")
                if item.id > last:
                    last = item.id
                    yield item
        finally:
            await reader.remove(sub)

    def _reader(self) -> _Reader:
        loop = asyncio.get_running_loop()
        with self._lock:
            reader = self._readers.get(loop)
            if reader is None:
                reader = self._readers[loop] = _Reader(self, loop)
            return reader

    def _forget(self, reader: _Reader) -> None:
        with self._lock:
            if self._readers.get(reader.loop) is reader:
                del self._readers[reader.loop]

    @property
    def reader_count(self) -> int:
        """Running ``XREAD`` loops: one per event loop with subscribers."""
        with self._lock:
            return len(self._readers)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            readers = list(self._readers.values())
        return sum(len(s) for r in readers for s in r.subscribers.values())


@dataclass(eq=False)
class _Subscriber:
    key: StreamKey
    queue: asyncio.Queue[LiveEvent | None]
    accept: Callable[[LiveEvent], bool]
    dropped: str | None = None


@dataclass(eq=False)
class _Reader:
    """The one ``XREAD BLOCK`` loop of an event loop, fanning out to its subscribers."""

    store: RedisLiveStore
    loop: asyncio.AbstractEventLoop
    subscribers: dict[str, set[_Subscriber]] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    client: aioredis.Redis = field(init=False)

    def __post_init__(self) -> None:
        # No socket timeout: XREAD BLOCK holds the connection for block_ms on purpose.
        self.client = aioredis.Redis.from_url(self.store._url, decode_responses=True,
                                              socket_timeout=None)

    async def add(self, sub: _Subscriber) -> None:
        name = redis_key(sub.key)
        # Registered before the first await, so a concurrent last ``remove`` cannot close
        # this reader under us.
        self.subscribers.setdefault(name, set()).add(sub)
        if self.task is None:
            self.task = self.loop.create_task(self._run(), name="redis-live-reader")
        if name not in self.cursors:
            # Start after the newest entry now: later ones reach the subscriber live, older
            # ones only through its backlog (so a long backlog cannot overflow its queue).
            newest = await self.client.xrevrange(name, "+", "-", count=1)
            self.cursors.setdefault(name, str(newest[0][0]) if newest else "0-0")
        self.changed.set()

    async def remove(self, sub: _Subscriber) -> None:
        name = redis_key(sub.key)
        subs = self.subscribers.get(name)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[name]
                self.cursors.pop(name, None)
                self.changed.set()
        if self.subscribers:
            return
        self.store._forget(self)
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        await self.client.aclose()

    async def backlog(self, key: StreamKey, after: int, count: int) -> list[LiveEvent]:
        return _events(key[0], await self.client.xrange(
            redis_key(key), f"({stream_id(after)}", "+", count=count))

    async def _run(self) -> None:
        while self.subscribers:
            self.changed.clear()
            if not self.cursors:
                await self.changed.wait()
                continue
            streams: dict[Any, Any] = dict(self.cursors)
            read = asyncio.ensure_future(self.client.xread(
                streams, count=self.store._read_count, block=self.store._block_ms))
            wake = asyncio.ensure_future(self.changed.wait())
            try:
                await asyncio.wait({read, wake}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                if not read.done():
                    # Cancelling drops that connection (redis-py cannot resume a half-read
                    # reply); the next XREAD opens a fresh one.
                    read.cancel()
                await asyncio.wait({read})
            if read.cancelled():
                continue
            if (exc := read.exception()) is not None:
                log.warning("live stream read failed, retrying: %s", exc)
                await asyncio.sleep(0.5)  # resumes from the cursors: nothing is lost
                continue
            self._fan_out(read.result())

    def _fan_out(self, result: Any) -> None:
        # RESP2 replies [[key, entries]], RESP3 {key: [entries]}
        items: Iterable[tuple[str, list[tuple[str, dict[str, str]]]]] = (
            ((k, v[0]) for k, v in result.items()) if isinstance(result, dict)
            else ((k, v) for k, v in result or ()))
        for name, entries in items:
            if name not in self.cursors or not entries:
                continue
            self.cursors[name] = entries[-1][0]
            project = name.split("{", 1)[1].rsplit("}", 1)[0]
            events = _events(project, entries)
            for sub in list(self.subscribers.get(name, ())):
                for e in events:
                    if sub.dropped is not None:
                        break
                    if sub.accept(e):
                        self._put(sub, e)

    def _put(self, sub: _Subscriber, event: LiveEvent) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            sub.dropped = (f"subscriber fell more than {self.store._queue_bound} events "
                           "behind and was dropped; reconnect with the last id seen")
            while not sub.queue.empty():  # make room for the end marker
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)
            subs = self.subscribers.get(redis_key(sub.key))
            if subs is not None:
                subs.discard(sub)

