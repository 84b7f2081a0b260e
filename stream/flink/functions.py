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
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    MapStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)

from stream.contract.event import Event
from stream.flink.keyed import Head, Held, KeySessions
from stream.flink.records import TooLate, WireFormat, event_decoder
from stream.flink.sinks import Sink, SinkFactory
from stream.operators.sessionize import Sessionizer, SessionRules, session_key

log = logging.getLogger("cep.flink")

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


def _ttl(ms: int) -> StateTtlConfig:
    return (StateTtlConfig.new_builder(Time.milliseconds(ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanup_full_snapshot()
            .build())


class ParseEvents(FlatMapFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Kafka value / file line → ``KeyedEvent``. Undecodable input is logged and counted:
    the gateway validated every event, so one here means a producer outside the contract."""

    def __init__(self, fmt: WireFormat) -> None:
        self._fmt = fmt

    def open(self, runtime_context: RuntimeContext) -> None:
        self._decode: Callable[[Any], Event] = event_decoder(self._fmt).decode
        self._bad = runtime_context.get_metrics_group().counter("undecodable_events")

    def flat_map(self, value: bytes | str) -> Iterator[KeyedEvent]:
        try:
            event = self._decode(value)
        except msgspec.DecodeError as exc:
            self._bad.inc()
            log.warning("undecodable event skipped (%s): %.200r", exc, value)
            return
        payload = value if self._fmt == "msgpack" and isinstance(value, bytes) else _encode(event)
        yield (f"{event.project}\x1f{event.insert_id}",
               f"{event.project}\x1f{session_key(event)}", event.time, payload)


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

    Emits :data:`stream.flink.records.Output` values; see :mod:`stream.flink.keyed` for the
    rules, the late-event re-fold and its bound (``allowed_lateness_ms``).
    """

    def __init__(self, rules: Mapping[str, SessionRules], allowed_lateness_ms: int,
                 geo_paths: Sequence[str] = (), enrich: bool = True,
                 cached_keys: int = 10_000) -> None:
        self._rules = dict(rules)
        self._lateness_ms = allowed_lateness_ms
        self._cached_keys = cached_keys
        self._geo_paths = list(geo_paths)
        self._enrich = enrich

    def open(self, runtime_context: RuntimeContext) -> None:
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
        self._per_project: dict[str, KeySessions] = {}

    def _logic(self, project: str) -> KeySessions:
        logic = self._per_project.get(project)
        if logic is None:
            rules = self._rules.get(project) or self._rules.get("*") or SessionRules()
            logic = self._per_project[project] = KeySessions(
                Sessionizer(rules), self._enricher.enrich, self._lateness_ms)
        return logic

    def process_element(self, value: KeyedEvent,
                        ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        raw = value[3]
        event = _event.decode(raw)
        service = ctx.timer_service()
        for out in self._logic(event.project).on_event(
                self._state.bind(value[1]), _Timers(service), session_key(event), event, raw,
                service.current_watermark):
            if isinstance(out, TooLate):
                self._too_late.inc()
            yield out

    def on_timer(self, timestamp: int,
                 ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        key: str = ctx.get_current_key()
        yield from self._logic(key.split("\x1f", 1)[0]).on_timer(
            self._state.bind(key), _Timers(ctx.timer_service()), timestamp)


def _subtask_and_attempt(runtime_context: RuntimeContext) -> tuple[int, int]:
    """PyFlink 2.2's thread-mode context still calls ``getIndexOfThisSubtask`` on the Java
    context, which Flink 2 moved to ``getTaskInfo()``: ask the task info directly."""
    try:
        return (runtime_context.get_index_of_this_subtask(),
                runtime_context.get_attempt_number())
    except AttributeError:
        info = runtime_context._runtime_context.getTaskInfo()
        return info.getIndexOfThisSubtask(), info.getAttemptNumber()


class WriteSinks(FlatMapFunction):  # type: ignore[misc]  # PyFlink is untyped
    """Hands every output to each sink, in order, before taking the next (no buffering:
    PyFlink gives Python functions no checkpoint hook, so a write must be done when
    ``write`` returns for a checkpoint to cover it). Emits nothing."""

    def __init__(self, factories: Sequence[SinkFactory]) -> None:
        self._factories = list(factories)

    def open(self, runtime_context: RuntimeContext) -> None:
        subtask, attempt = _subtask_and_attempt(runtime_context)
        self._sinks: list[Sink] = [factory() for factory in self._factories]
        for sink in self._sinks:
            sink.open(subtask, attempt)

    def flat_map(self, value: Any) -> Iterator[None]:
        batch = (value,)
        for sink in self._sinks:
            sink.write(batch)
        return iter(())

    def close(self) -> None:
        for sink in getattr(self, "_sinks", ()):
            sink.close()
