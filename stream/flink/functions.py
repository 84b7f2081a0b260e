"""PyFlink functions over the pure operators: parse, de-duplicate, sessionize, write.

Runs only in the Flink virtualenv (``scripts/flink/setup.sh``). Every function is pickled
to the task managers with its constructor arguments only; state descriptors, lookups and
sinks are created in ``open()`` (STYLE: never in ``__init__``).

State and its clean-up, decided once (turning TTL on or off later breaks restore):

- de-duplication: ``ValueState`` per ``(project, insert_id)`` with a processing-time TTL
  (``dedupe_ttl_ms``, written on create, expired values never returned, dropped in full
  snapshots). A duplicate arriving later than the TTL after the first is not recognised.
- the device's last tie to a user: ``ValueState`` with a processing-time TTL (an expired one
  only means the tie is sent again).
- sessions and their events: no TTL; event-time timers drop them (see ``stream.flink.keyed``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from stream.flink.keyed import Held, KeySessions
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

_encode = msgspec.msgpack.Encoder().encode
_event = msgspec.msgpack.Decoder(Event)
_held = msgspec.msgpack.Decoder(Held)
_event_sid = msgspec.msgpack.Decoder(tuple[Event, str])
_tie = msgspec.msgpack.Decoder(tuple[str, int])


def _ttl(ms: int) -> StateTtlConfig:
    return (StateTtlConfig.new_builder(Time.milliseconds(ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanup_full_snapshot()
            .build())


class ParseEvents(FlatMapFunction):
    """Kafka value / file line → ``KeyedEvent``. Undecodable input is logged and counted:
    the gateway validated every event, so one here means a producer outside the contract."""

    def __init__(self, fmt: WireFormat) -> None:
        self._fmt = fmt

    def open(self, runtime_context: RuntimeContext) -> None:
        self._decode = event_decoder(self._fmt).decode
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


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value: KeyedEvent, record_timestamp: int) -> int:
        return value[2]


class Dedupe(KeyedProcessFunction):
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

    def delete(self, timestamp: int) -> None:
        self._service.delete_event_time_timer(timestamp)


class _State:
    """``KeyState`` over Flink keyed state of the current key (values are msgpack)."""

    __slots__ = ("_events", "_last", "_sessions", "_tie")

    def __init__(self, sessions: Any, events: Any, last: Any, tie: Any) -> None:
        self._sessions, self._events, self._last, self._tie = sessions, events, last, tie

    def session(self, session_id: str) -> Held | None:
        raw = self._sessions.get(session_id)
        return None if raw is None else _held.decode(raw)

    def sessions(self) -> Iterable[Held]:
        return [_held.decode(raw) for raw in self._sessions.values()]

    def put_session(self, held: Held) -> None:
        self._sessions.put(held.row.session_id, _encode(held))

    def remove_session(self, session_id: str) -> None:
        self._sessions.remove(session_id)

    def events(self) -> Iterable[tuple[Event, str]]:
        return [_event_sid.decode(raw) for raw in self._events.values()]

    def put_event(self, event: Event, session_id: str) -> None:
        self._events.put(event.insert_id, _encode((event, session_id)))

    def remove_event(self, insert_id: str) -> None:
        self._events.remove(insert_id)

    def last_session_id(self) -> str | None:
        value: str | None = self._last.value()
        return value

    def set_last_session_id(self, session_id: str | None) -> None:
        if session_id is None:
            self._last.clear()
        else:
            self._last.update(session_id)

    def tie(self) -> tuple[str, int] | None:
        raw = self._tie.value()
        return None if raw is None else _tie.decode(raw)

    def set_tie(self, user_id: str, time: int) -> None:
        self._tie.update(_encode((user_id, time)))


class Sessionize(KeyedProcessFunction):
    """Keyed by ``(project, session key)``: sessions with event-time timers, enrichment.

    Emits :data:`stream.flink.records.Output` values; see :mod:`stream.flink.keyed` for the
    rules, the late-event re-fold and its bound (``allowed_lateness_ms``).
    """

    def __init__(self, rules: Mapping[str, SessionRules], allowed_lateness_ms: int,
                 tie_ttl_ms: int, geo_paths: Sequence[str] = (), enrich: bool = True) -> None:
        self._rules = dict(rules)
        self._lateness_ms = allowed_lateness_ms
        self._tie_ttl_ms = tie_ttl_ms
        self._geo_paths = list(geo_paths)
        self._enrich = enrich

    def open(self, runtime_context: RuntimeContext) -> None:
        sessions = MapStateDescriptor("sessions", Types.STRING(), BYTES)
        events = MapStateDescriptor("events", Types.STRING(), BYTES)
        last = ValueStateDescriptor("last_session", Types.STRING())
        tie = ValueStateDescriptor("tie", BYTES)
        tie.enable_time_to_live(_ttl(self._tie_ttl_ms))
        self._state = _State(runtime_context.get_map_state(sessions),
                             runtime_context.get_map_state(events),
                             runtime_context.get_state(last), runtime_context.get_state(tie))
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
        event = _event.decode(value[3])
        service = ctx.timer_service()
        for out in self._logic(event.project).on_event(
                self._state, _Timers(service), session_key(event), event,
                service.current_watermark()):
            if isinstance(out, TooLate):
                self._too_late.inc()
            yield out

    def on_timer(self, timestamp: int,
                 ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        project = ctx.get_current_key().split("\x1f", 1)[0]
        yield from self._logic(project).on_timer(self._state, _Timers(ctx.timer_service()),
                                                 timestamp)


class WriteSinks(FlatMapFunction):
    """Hands every output to each sink, in order, before taking the next (no buffering:
    PyFlink gives Python functions no checkpoint hook, so a write must be done when
    ``write`` returns for a checkpoint to cover it). Emits nothing."""

    def __init__(self, factories: Sequence[SinkFactory]) -> None:
        self._factories = list(factories)

    def open(self, runtime_context: RuntimeContext) -> None:
        subtask = runtime_context.get_index_of_this_subtask()
        attempt = runtime_context.get_attempt_number()
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
