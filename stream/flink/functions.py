"""PyFlink functions over the pure operators: parse, de-duplicate, sessionize, write.

Runs only in the Flink virtualenv (``scripts/flink/setup.sh``). Every function is pickled
to the task managers with its constructor arguments only; state descriptors, lookups and
sinks are created in ``open()`` (STYLE: never in ``__init__``).

State and its clean-up, decided once (turning TTL on or off later breaks restore):

- de-duplication: ``ValueState`` per ``(project, insert_id)`` with a processing-time TTL
  (``dedupe_ttl_ms``, written on create, expired values never returned, dropped in full
  snapshots). A duplicate arriving later than the TTL after the first is not recognised.
- sessions, their events and the device's last tie: no TTL; event-time timers drop them
  (see ``stream.flink.keyed``) — a key whose sessions all ended holds nothing.
- outputs on their way to the sinks: a ``ListState`` per bucket (``BufferOutputs``), emptied
  by every flush; no TTL.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
from pyflink.common import Time
from pyflink.common.typeinfo import Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream.functions import (
    FlatMapFunction,
    KeyedProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from pyflink.datastream.time_domain import TimeDomain

from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter
from stream.flink.buckets import bucket_of
from stream.flink.campaigns import CampaignRules, UserState, UserTriggers
from stream.flink.keyed import Head, Held, KeySessions
from stream.flink.pending import PendingMarker
from stream.flink.records import (
    DeadSettled,
    EnrichedEvent,
    SessionDeleted,
    SessionUpsert,
    TooLate,
    WireFormat,
    event_decoder,
)
from stream.flink.rules import ProjectRules
from stream.flink.sinks import Sink, SinkFactory
from stream.flink.suppress import JobSuppressions, without_forgotten
from stream.flink.write_metrics import FLUSH_TIMEOUT_S, StoreWriteTally
from stream.operators.sessionize import Sessionizer, session_key
from stream.operators.triggers import trigger_event

log = logging.getLogger("cep.flink")


def configure_logging() -> None:
    """The job's own log lines (``cep.*``, at ``$CEP_LOG_LEVEL``, INFO by default) to
    ``cep-python.log`` in Flink's log folder (``$FLINK_LOG_DIR``). Not to stderr: in thread
    mode the functions run inside the JVM, whose stderr PyFlink's launcher pipes and reads
    only if the JVM fails to start — a full pipe would block the job. Libraries' warnings
    go there too. Idempotent (every function's ``open`` calls it)."""
    with _LOGGING:  # the subtasks' ``open`` run on several task threads at once
        _configure_logging()


_LOGGING = threading.Lock()
QUIET_LIBRARIES = ("neo4j", "cassandra", "redis", "aiokafka", "kafka", "urllib3", "asyncio")


def _configure_logging() -> None:
    root = logging.getLogger()
    if any(getattr(h, "cep_job", False) for h in root.handlers):
        return
    folder = Path(os.environ.get("FLINK_LOG_DIR") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "cep-python.log", encoding="utf-8")
    handler.cep_job = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"))
    root.addHandler(handler)  # libraries' warnings too: nothing falls back to stderr
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    # The Python worker may leave the root logger at DEBUG; the store drivers then format a
    # line per Bolt message and Cassandra request (hundreds of MB a day of CI runs).
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    logging.getLogger("cep").setLevel(os.environ.get("CEP_LOG_LEVEL", "INFO").upper())


BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
# What flows from the parser to the sessionizer: (dedupe key, session group key, event
# time ms, msgpack Event). Keys are strings "project\x1f…" — a 64-bit hash would be
# smaller, but de-duplication must be exact.
KEYED_EVENT = Types.TUPLE([Types.STRING(), Types.STRING(), Types.LONG(), BYTES])
KeyedEvent = tuple[str, str, int, bytes]
# State values are msgpack bytes declared as pickled: in thread mode PyFlink 2.2 converts a
# PRIMITIVE_ARRAY(BYTE) state value element by element into a tuple of ints (and fails on an
# empty value); the pickled type hands the bytes through (pickle of bytes is a copy).
STATE_BYTES = Types.PICKLED_BYTE_ARRAY()

_encode = msgspec.msgpack.Encoder().encode
_event = msgspec.msgpack.Decoder(Event)
_head = msgspec.msgpack.Decoder(Head)
_held = msgspec.msgpack.Decoder(Held)
_profile = msgspec.msgpack.Decoder(Profile)
_dead = msgspec.msgpack.Decoder(DeadLetter)
_settled = msgspec.msgpack.Decoder(DeadSettled)
_user_state = msgspec.msgpack.Decoder(UserState).decode
# Flushes also happen when the input ends: an event-time timer this far out fires only on
# the final watermark (processing-time timers do not fire at the end of a bounded input).
END_OF_INPUT = 2**62


def _ttl(ms: int) -> StateTtlConfig:
    return (StateTtlConfig.new_builder(Time.milliseconds(ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanup_full_snapshot()
            .build())


def _open_suppressions(suppressions: JobSuppressions | None) -> JobSuppressions:
    """``suppressions`` opened, or a list that never forgets anyone (no Redis)."""
    found = suppressions or JobSuppressions(None)
    found.open()
    return found


class _Forgetting(FlatMapFunction):  # type: ignore[misc]  # PyFlink is untyped
    """A parser that drops what names a forgotten identity: holds the job's forgotten list
    (``stream.flink.suppress``) from ``open`` to ``close``."""

    def __init__(self, suppressions: JobSuppressions | None) -> None:
        self._suppressions = suppressions

    def open(self, runtime_context: RuntimeContext) -> None:
        self._forgotten = _open_suppressions(self._suppressions)

    def close(self) -> None:
        forgotten = getattr(self, "_forgotten", None)
        if forgotten is not None:
            forgotten.close()


class ParseEvents(_Forgetting):
    """Kafka value / file line → ``KeyedEvent``. Undecodable input is logged and counted:
    the gateway validated every event, so one here means a producer outside the contract.
    Events of forgotten identities (``stream.flink.suppress``) are dropped and counted."""

    def __init__(self, fmt: WireFormat, suppressions: JobSuppressions | None = None) -> None:
        super().__init__(suppressions)
        self._fmt = fmt

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self._decode: Callable[[Any], Event] = event_decoder(self._fmt).decode
        self._bad = runtime_context.get_metrics_group().counter("undecodable_events")
        self._dropped = runtime_context.get_metrics_group().counter("forgotten_events")

    def flat_map(self, value: bytes | str) -> Iterator[KeyedEvent]:
        if not value:  # a heartbeat (clients/kafka_topics.py)
            return
        try:
            event = self._decode(value)
        except msgspec.DecodeError as exc:
            self._bad.inc()
            log.warning("undecodable event skipped (%s): %.200r", exc, value)
            return
        if self._forgotten.current().drops_event(event):
            self._dropped.inc()
            return
        payload = value if self._fmt == "msgpack" and isinstance(value, bytes) else _encode(event)
        yield (f"{event.project}\x1f{event.insert_id}",
               f"{event.project}\x1f{session_key(event)}", event.time, payload)


class ParseProfiles(_Forgetting):
    """``profiles.raw`` value (msgpack ``Profile``) → ``(bucket, Profile)``; a forgotten
    user's are dropped."""

    def __init__(self, buckets: Sequence[int],
                 suppressions: JobSuppressions | None = None) -> None:
        super().__init__(suppressions)
        self._buckets = list(buckets)

    def flat_map(self, value: bytes) -> Iterator[tuple[int, list[Profile]]]:
        if not value:  # a heartbeat
            return
        try:
            profile = _profile.decode(value)
        except msgspec.DecodeError as exc:
            log.warning("undecodable profile skipped (%s): %.200r", exc, value)
            return
        if self._forgotten.current().drops_profile(profile):
            return
        yield (bucket_of(f"{profile.project}\x1f{profile.distinct_user_id}", self._buckets),
               [profile])


class ParseDeadLetters(_Forgetting):
    """``events.dead`` value → ``(bucket, DeadLetter | DeadSettled)``: a settlement is the
    two-element ``[project, id]``, a letter the longer ``DeadLetter`` array. Letters naming
    a forgotten identity are dropped."""

    def __init__(self, buckets: Sequence[int],
                 suppressions: JobSuppressions | None = None) -> None:
        super().__init__(suppressions)
        self._buckets = list(buckets)

    def flat_map(self, value: bytes) -> Iterator[tuple[int, list[DeadLetter | DeadSettled]]]:
        if not value:  # a heartbeat
            return
        try:
            item: DeadLetter | DeadSettled = (
                _settled.decode(value) if len(msgspec.msgpack.decode(value)) == 2
                else _dead.decode(value))
        except (msgspec.DecodeError, TypeError) as exc:
            log.warning("undecodable dead letter skipped (%s): %.200r", exc, value)
            return
        if isinstance(item, DeadLetter) and self._forgotten.current().drops_letter(item):
            return
        yield bucket_of(item.project, self._buckets), [item]


class EventTime(TimestampAssigner):  # type: ignore[misc]  # PyFlink is untyped
    def extract_timestamp(self, value: KeyedEvent, record_timestamp: int) -> int:
        return value[2]


class Dedupe(KeyedProcessFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Keyed by ``(project, insert_id)``: passes the first occurrence, within the TTL.

    Keyed apart from sessions on purpose: a retry that carries another device or session id
    than the original would slip through a de-duplication keyed by session.
    """

    def __init__(self, ttl_ms: int) -> None:
        self._ttl_ms = ttl_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        seen = ValueStateDescriptor("seen", Types.BOOLEAN())
        seen.enable_time_to_live(_ttl(self._ttl_ms))
        self._seen = runtime_context.get_state(seen)
        self._duplicates = runtime_context.get_metrics_group().counter("duplicates")

    def process_element(self, value: KeyedEvent,
                        ctx: KeyedProcessFunction.Context) -> Iterator[KeyedEvent]:
        if self._seen.value() is None:
            self._seen.update(True)
            yield value
        else:
            self._duplicates.inc()


class _Timers:
    __slots__ = ("_service",)

    def __init__(self, service: Any) -> None:
        self._service = service

    def register(self, timestamp: int) -> None:
        self._service.register_event_time_timer(timestamp)


class _State:
    """``KeyState`` over Flink keyed state of the current key (values are msgpack).

    Heads are also kept, as the bytes last written, in a bounded write-through cache per
    subtask: every state call crosses into the JVM (tens of µs in thread mode), and a key's
    head is read for each of its events. Only this function writes the state, and a restore
    builds a new function instance, so the cache never disagrees with the state.
    """

    __slots__ = ("_cache", "_capacity", "_head", "_key", "_older")

    def __init__(self, head: Any, older: Any, capacity: int) -> None:
        self._head, self._older = head, older
        self._cache: OrderedDict[str, bytes | None] = OrderedDict()
        self._capacity = capacity
        self._key = ""

    def bind(self, key: str) -> _State:
        """Make ``key`` (Flink's current key) the one the cache answers for."""
        self._key = key
        return self

    def head(self) -> Head | None:
        try:
            raw = self._cache[self._key]
        except KeyError:
            raw = self._remember(self._head.value())
        return None if raw is None else _head.decode(raw)

    def set_head(self, head: Head | None) -> None:
        if head is None:
            self._head.clear()
            self._remember(None)
        else:
            self._head.update(self._remember(_encode(head)))

    def _remember(self, raw: bytes | None) -> bytes | None:
        self._cache[self._key] = raw
        self._cache.move_to_end(self._key)
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return raw

    def older(self, session_id: str) -> Held:
        return _held.decode(self._older.get(session_id))

    def put_older(self, held: Held) -> None:
        self._older.put(held.row.session_id, _encode(held))

    def remove_older(self, session_id: str) -> None:
        self._older.remove(session_id)



class Sessionize(KeyedProcessFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Keyed by ``(project, session key)``: sessions with event-time timers, enrichment.

    Emits ``(bucket, outputs)``: the :data:`stream.flink.records.Output` values of one event
    or timer (one element, not one per output: each element crossing to the sink buffers
    costs a pickle and a Python call or two) with the sink bucket of their key; see
    :mod:`stream.flink.keyed` for the rules, the late-event re-fold and its bound
    (``allowed_lateness_ms``). A project's rules are looked up per event
    (``ProjectRules``: cached, re-read every few seconds); when they change, its keys use
    the new ones from their next event on (held sessions keep their rows).
    """

    def __init__(self, rules: ProjectRules, allowed_lateness_ms: int,
                 geo_paths: Sequence[str] = (), enrich: bool = True,
                 cached_keys: int = 10_000, buckets: Sequence[int] = (0,),
                 producer_memory_ms: int = 7 * 86_400_000) -> None:
        self._rules = rules
        self._producer_memory_ms = producer_memory_ms
        self._buckets = list(buckets)
        self._lateness_ms = allowed_lateness_ms
        self._cached_keys = cached_keys
        self._geo_paths = list(geo_paths)
        self._enrich = enrich

    def open(self, runtime_context: RuntimeContext) -> None:
        configure_logging()
        head = ValueStateDescriptor("head", STATE_BYTES)
        older = MapStateDescriptor("older_sessions", Types.STRING(), STATE_BYTES)
        self._state = _State(runtime_context.get_state(head),
                             runtime_context.get_map_state(older), self._cached_keys)
        self._too_late = runtime_context.get_metrics_group().counter("too_late_events")
        from stream.operators.enrich import Enricher  # imports storage.ports → pyarrow

        if self._enrich:
            from stream.enrich import DeviceParser, GeoLocator

            enricher = Enricher(GeoLocator(self._geo_paths), DeviceParser())
        else:
            enricher = Enricher(None, None)
        self._enricher = enricher
        self._rules.open()
        self._per_project: dict[str, KeySessions] = {}

    def close(self) -> None:
        self._rules.close()

    def _logic(self, project: str) -> KeySessions:
        rules = self._rules.rules(project)
        logic = self._per_project.get(project)
        if logic is None or logic.rules != rules:
            logic = self._per_project[project] = KeySessions(
                Sessionizer(rules), self._enricher.enrich, self._lateness_ms,
                self._producer_memory_ms)
        return logic

    def process_element(self, value: KeyedEvent,
                        ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        raw = value[3]
        event = _event.decode(raw)
        service = ctx.timer_service()
        outs = list(self._logic(event.project).on_event(
            self._state.bind(value[1]), _Timers(service), session_key(event), event, raw,
            service.current_watermark))
        if outs:
            if isinstance(outs[-1], TooLate):
                self._too_late.inc()
            yield bucket_of(value[1], self._buckets), outs

    def on_timer(self, timestamp: int,
                 ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        key: str = ctx.get_current_key()
        outs = list(self._logic(key.split("\x1f", 1)[0]).on_timer(
            self._state.bind(key), _Timers(ctx.timer_service()), timestamp))
        if outs:
            yield bucket_of(key, self._buckets), outs


class CampaignEvents(FlatMapFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Sessionize's ``(bucket, outputs)`` → ``(project\x1fuser, TriggerEvent)`` for every
    event placed in order (a re-sent ``moved`` event was seen already) of a project with an
    active campaign. The user is the event's user id, else its device id."""

    def __init__(self, campaigns: CampaignRules) -> None:
        self._campaigns = campaigns

    def open(self, runtime_context: RuntimeContext) -> None:
        self._campaigns.open()

    def close(self) -> None:
        self._campaigns.close()

    def flat_map(self, value: tuple[int, list[Any]]) -> Iterator[tuple[str, Any]]:
        for o in value[1]:
            if type(o) is not EnrichedEvent or o.moved:
                continue
            e = o.event
            if not self._campaigns.triggers(e.project):
                continue
            user = e.distinct_user_id or e.device_id or ""
            yield f"{e.project}\x1f{user}", trigger_event(e, o.enrichment, user)


class _CampaignState:
    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def get(self) -> UserState | None:
        raw = self._value.value()
        return None if raw is None else _user_state(raw)

    def set(self, state: UserState | None) -> None:
        if state is None:
            self._value.clear()
        else:
            self._value.update(_encode(state))


class _CampaignTimers:
    __slots__ = ("_service",)

    def __init__(self, service: Any) -> None:
        self._service = service

    def event_time(self, timestamp: int) -> None:
        self._service.register_event_time_timer(timestamp)

    def processing_time(self, timestamp: int) -> None:
        self._service.register_processing_time_timer(timestamp)


class CampaignTriggers(KeyedProcessFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Keyed by ``(project, user)``: campaign triggers with Flink timers
    (``stream.flink.campaigns``). Emits ``(bucket, [CampaignFiring, ...])`` for the sinks.
    State: one ``ValueState`` per key (timers and waiting events), no TTL — it is cleared when
    the key holds neither."""

    def __init__(self, campaigns: CampaignRules, margin_ms: int,
                 buckets: Sequence[int] = (0,)) -> None:
        self._campaigns = campaigns
        self._margin_ms = margin_ms
        self._buckets = list(buckets)

    def open(self, runtime_context: RuntimeContext) -> None:
        configure_logging()
        self._value = runtime_context.get_state(
            ValueStateDescriptor("campaign_user", STATE_BYTES))
        self._state = _CampaignState(self._value)
        self._fired = runtime_context.get_metrics_group().counter("campaign_firings")
        self._campaigns.open()
        self._logic = UserTriggers(self._campaigns.triggers, self._margin_ms)

    def close(self) -> None:
        self._campaigns.close()

    def process_element(self, value: tuple[str, Any],
                        ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        self._logic.on_event(self._state, _CampaignTimers(ctx.timer_service()), value[1])
        return iter(())

    def on_timer(self, timestamp: int,
                 ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        key: str = ctx.get_current_key()
        project, _, user = key.partition("\x1f")
        fired = self._logic.on_timer(self._state, _CampaignTimers(ctx.timer_service()),
                                     project, user, timestamp,
                                     ctx.time_domain() == TimeDomain.EVENT_TIME)
        if fired:
            self._fired.inc(len(fired))
            yield bucket_of(key, self._buckets), fired


_LIVE_OUTPUTS = (EnrichedEvent, SessionUpsert, SessionDeleted)


class PublishLive(KeyedProcessFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Keyed by sink bucket: Sessionize's newly placed events to the Redis live views
    (``storage.redis_live``) within ``flush_ms``, on their own branch — not behind the
    ``stores`` sink's Cassandra and Neo4j writes, which take hundreds of milliseconds a
    batch. Live views are at least once (a replay from a checkpoint publishes again; the
    gateway's subscribers see entries by id), so the buffer is plain memory. Emits nothing.
    Each flush is timed as one ``redis`` store write for ``GET /metrics``
    (``stream.flink.write_metrics``).
    """

    def __init__(self, redis_url: str, flush_ms: int = 10, max_items: int = 1000,
                 ttl_ms: int = 2 * 60 * 60 * 1000,
                 suppressions: JobSuppressions | None = None) -> None:
        self._url = redis_url
        self._flush_ms = flush_ms
        self._max_items = max_items
        self._ttl_ms = ttl_ms
        self._suppressions = suppressions

    def open(self, runtime_context: RuntimeContext) -> None:
        configure_logging()
        import redis

        from storage.redis_live import RedisLiveStore

        self._live = RedisLiveStore(self._url, ttl_ms=self._ttl_ms)
        self._metrics_redis = redis.Redis.from_url(
            self._url, socket_timeout=FLUSH_TIMEOUT_S, socket_connect_timeout=FLUSH_TIMEOUT_S)
        self._writes = StoreWriteTally()
        self._forgotten = _open_suppressions(self._suppressions)
        self._buffer: dict[int, list[Any]] = {}
        self._published = runtime_context.get_metrics_group().counter("live_events")

    def process_element(self, value: tuple[int, list[Any]],
                        ctx: KeyedProcessFunction.Context) -> Iterator[None]:
        bucket, items = value
        # new events, and what the sessionizer says of their sessions (an event moved to
        # another session is not published again, but its first session is deleted and its
        # new one upserted: the live store's open sessions follow)
        new = [o for o in items if type(o) in _LIVE_OUTPUTS]
        if new:
            held = self._buffer.setdefault(bucket, [])
            if not held:
                service = ctx.timer_service()
                service.register_processing_time_timer(int(time.time() * 1000)
                                                       + self._flush_ms)
                service.register_event_time_timer(END_OF_INPUT)
            held.extend(new)
            if len(held) >= self._max_items:
                self._flush(bucket)
        return iter(())

    def on_timer(self, timestamp: int,
                 ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[None]:
        self._flush(ctx.get_current_key())
        return iter(())

    def _flush(self, bucket: int) -> None:
        held = self._buffer.pop(bucket, None)
        held = held and without_forgotten(self._forgotten.current(), held)
        if not held:
            return
        from stream.flink.translate import translate

        out = translate(held)
        try:
            with self._writes.timing("redis"):
                self._live.publish(out.live, out.batch.sessions, out.batch.deleted_sessions)
        except Exception as exc:  # noqa: BLE001 - live views are best effort; stores are not
            log.warning("cannot publish %d live events to Redis: %r", len(out.live), exc)
            return
        finally:
            self._writes.flush(self._metrics_redis)
        self._published.inc(len(out.live))

    def close(self) -> None:
        for name in ("_live", "_metrics_redis"):
            client = getattr(self, name, None)
            if client is not None:
                client.close()
        forgotten = getattr(self, "_forgotten", None)
        if forgotten is not None:
            forgotten.close()


def campaign_key(value: tuple[str, Any]) -> str:
    return value[0]


def _subtask_and_attempt(runtime_context: RuntimeContext) -> tuple[int, int]:
    """PyFlink 2.2's thread-mode context still calls ``getIndexOfThisSubtask`` on the Java
    context, which Flink 2 moved to ``getTaskInfo()``: ask the task info directly."""
    try:
        return (runtime_context.get_index_of_this_subtask(),
                runtime_context.get_attempt_number())
    except AttributeError:
        info = runtime_context._runtime_context.getTaskInfo()
        return info.getIndexOfThisSubtask(), info.getAttemptNumber()


class BufferOutputs(KeyedProcessFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Keyed by sink bucket: buffers ``(bucket, items)`` values in ``ListState`` and writes
    each bucket's items to every sink, in order, as one batch — ``flush_ms`` after the
    bucket became non-empty (a processing-time timer), as soon as it holds ``max_items``,
    and at the end of a bounded input. Emits nothing.

    PyFlink gives Python functions no checkpoint hook; keyed state is the hook: what a
    checkpoint finds buffered is restored and flushed after a failure (nothing lost), and a
    batch written before the failure but after the checkpoint is written again from the
    replayed input (the sinks write upserts: nothing duplicated). A flush writes, then
    clears the state, within one element or timer call, so no checkpoint falls between.
    All of one key's items share a bucket, so a sink sees them in emission order.

    ``pending`` (optional) tells Redis how much this subtask holds (``stream.flink.pending``).
    ``suppressions`` (optional): items of forgotten identities are not written.
    """

    def __init__(self, factories: Sequence[SinkFactory], flush_ms: int = 100,
                 max_items: int = 1000, pending: PendingMarker | None = None,
                 suppressions: JobSuppressions | None = None) -> None:
        self._factories = list(factories)
        self._flush_ms = flush_ms
        self._max_items = max_items
        self._pending = pending
        self._suppressions = suppressions

    def open(self, runtime_context: RuntimeContext) -> None:
        configure_logging()
        subtask, attempt = _subtask_and_attempt(runtime_context)
        self._buffer = runtime_context.get_list_state(
            ListStateDescriptor("buffered_outputs", Types.PICKLED_BYTE_ARRAY()))
        # Items buffered per bucket since this instance started (a restored bucket counts
        # from 0 here: its restored timers flush it anyway).
        self._counts: dict[int, int] = {}
        self._total = 0
        self._subtask = subtask
        self._seen: set[int] = set()
        metrics = runtime_context.get_metrics_group()
        self._flushes = metrics.counter("sink_flushes")
        self._written = metrics.counter("sink_items")
        self._sinks: list[Sink] = [factory() for factory in self._factories]
        for sink in self._sinks:
            sink.open(subtask, attempt)
        if self._pending is not None:
            self._pending.open(subtask)
        self._forgotten = _open_suppressions(self._suppressions)

    def process_element(self, value: tuple[int, list[Any]],
                        ctx: KeyedProcessFunction.Context) -> Iterator[None]:
        bucket, items = value
        self._buffer.add(items)
        if bucket not in self._seen:
            self._seen.add(bucket)
            log.info("sink subtask %d holds bucket %d", self._subtask, bucket)
        before = self._counts.get(bucket, 0)
        held = self._counts[bucket] = before + len(items)
        self._total += len(items)
        if before == 0:
            service = ctx.timer_service()
            service.register_processing_time_timer(int(time.time() * 1000) + self._flush_ms)
            service.register_event_time_timer(END_OF_INPUT)
            if self._pending is not None and self._total == len(items):
                self._pending.update(self._total)
        if held >= self._max_items:
            self._flush(bucket)
        return iter(())

    def on_timer(self, timestamp: int,
                 ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[None]:
        self._flush(ctx.get_current_key())
        return iter(())

    def _flush(self, bucket: int) -> None:
        items = [item for chunk in self._buffer.get() or () for item in chunk]
        if items:
            kept = without_forgotten(self._forgotten.current(), items)
            for sink in self._sinks if kept else ():
                sink.write(kept)
            self._buffer.clear()
            self._flushes.inc()
            self._written.inc(len(items))
        self._total = max(self._total - self._counts.pop(bucket, 0), 0)
        if self._pending is not None:
            self._pending.update(self._total)

    def close(self) -> None:
        for sink in getattr(self, "_sinks", ()):
            sink.close()
        if self._pending is not None:
            self._pending.close()
        forgotten = getattr(self, "_forgotten", None)
        if forgotten is not None:
            forgotten.close()
