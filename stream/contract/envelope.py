"""Parse and validate ingest bodies, one record at a time.

A body is a JSON array or NDJSON (one object per line). Each record is judged alone: a bad
record is rejected with a reason that names the field, and never sinks its batch. The
wire names are the seed's; aliases (``distinct_id``, ``$insert_id``, ``event``,
``properties``, ``URL``) and the seed's ``default_properties`` nesting are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from stream.contract.event import Event, Profile

MAX_EVENT_BYTES = 1 << 20
DAY_MS = 86_400_000
MIN_TIME_MS = 946_684_800_000  # 2000-01-01: anything earlier is a unit mistake, not history


class BodyError(ValueError):
    """The body is not JSON (or NDJSON) at all; the whole request is refused with 400."""


class Rules(Protocol):
    """What the envelope needs of the schema registry."""

    def category(self, project: str, event_name: str) -> str: ...

    def validate(self, project: str, event_name: str, properties: dict[str, Any]) -> list[str]: ...


class _Fields(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Every envelope field with its accepted aliases; ``None`` means absent."""

    event_name: str | None = None
    event: str | None = None
    event_category: str | None = None
    time: int | float | None = None
    distinct_user_id: str | None = None
    distinct_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    insert_id: str | None = None
    dollar_insert_id: str | None = msgspec.field(default=None, name="$insert_id")
    source_id: str | None = None
    url: str | None = None
    URL: str | None = None  # noqa: N815 - the seed's spelling
    ip: str | None = None
    user_agent: str | None = None
    custom_properties: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


class WireEvent(_Fields, forbid_unknown_fields=True, omit_defaults=True):
    default_properties: _Fields | None = None


class WireProfile(msgspec.Struct, forbid_unknown_fields=True):
    traits: dict[str, Any] = {}
    distinct_user_id: str | None = None
    distinct_id: str | None = None
    device_id: str | None = None


@dataclass(slots=True)
class Judged:
    """The outcome of one body: accepted records in order, and per-index reasons."""

    accepted: list[Any] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<f>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<f>[^`]+)`")


def explain(exc: msgspec.ValidationError | msgspec.DecodeError, prefix: str = "") -> str:
    """Turn a msgspec message into ``field: reason`` with a dotted field path."""
    match = _AT.match(str(exc))
    msg, path = (match["msg"], match["path"] or "") if match else (str(exc), "")
    path = path.lstrip(".")
    msg = msg.replace(" | null", "").replace("`int | float`", "a number (unix milliseconds)")
    if m := _MISSING.match(msg):
        return f"{_join(prefix, path, m['f'])}: required field is missing"
    if m := _UNKNOWN.match(msg):
        return f"{_join(prefix, path, m['f'])}: unknown field"
    where = _join(prefix, path, "") or "record"
    return f"{where}: {msg[0].lower()}{msg[1:]}" if msg else f"{where}: invalid"


def _join(prefix: str, path: str, name: str) -> str:
    return ".".join(p for p in (prefix, path, name) if p)


def split_records(body: bytes) -> list[msgspec.Raw]:
    """Split a JSON array or NDJSON body into raw records without judging them."""
    start = body.lstrip()[:1]
    if start == b"[":
        try:
            return msgspec.json.decode(body, type=list[msgspec.Raw])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BodyError(f"body: not a JSON array ({exc})") from None
    if start == b"{":
        records = [msgspec.Raw(line) for line in body.splitlines() if line.strip()]
        if not records:
            raise BodyError("body: empty")
        # A single pretty-printed object spans several lines; accept it as one record.
        if len(records) > 1 and not body.splitlines()[0].rstrip().endswith(b"}"):
            return [msgspec.Raw(body)]
        return records
    if not start:
        raise BodyError("body: empty")
    raise BodyError("body: expected a JSON array or NDJSON objects")


def _decoder(kind: type[Any]) -> Callable[[bytes], Any]:
    return msgspec.json.Decoder(kind).decode


_decode_event = _decoder(WireEvent)
_encode_json = msgspec.json.Encoder().encode
_decode_profile = _decoder(WireProfile)


class EnvelopeParser:
    """Judge ingest records against the envelope and the registry.

    ``now_ms`` is injected so tests control the clock. Times must be within
    ``max_future_ms`` ahead of now and ``max_age_ms`` behind it.
    """

    def __init__(
        self,
        rules: Rules,
        now_ms: Callable[[], int],
        *,
        max_future_ms: int = DAY_MS,
        max_age_ms: int = 3650 * DAY_MS,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self._rules = rules
        self._now = now_ms
        self._max_future = max_future_ms
        self._max_age = max_age_ms
        self._max_bytes = max_event_bytes

    def events(self, project: str, records: list[msgspec.Raw]) -> Judged:
        judged = Judged()
        now = self._now()
        for index, raw in enumerate(records):
            try:
                judged.accepted.append(self._event(project, raw, now))
            except _Reject as exc:
                judged.rejected.append((index, str(exc)))
        return judged

    def profiles(self, project: str, records: list[msgspec.Raw]) -> Judged:
        judged = Judged()
        now = self._now()
        for index, raw in enumerate(records):
            try:
                judged.accepted.append(self._profile(project, raw, now))
            except _Reject as exc:
                judged.rejected.append((index, str(exc)))
        return judged

    def _event(self, project: str, raw: msgspec.Raw, now: int) -> Event:
        if len(raw) > self._max_bytes:
            raise _Reject(f"record: {len(raw)} bytes is over the {self._max_bytes}-byte limit")
        try:
            wire = _decode_event(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _Reject(explain(exc)) from None
        base = wire.default_properties or _EMPTY
        name = _first(wire.event_name, wire.event, base.event_name, base.event)
        if not name:
            raise _Reject("event_name: required field is missing")
        if len(name) > 200:
            raise _Reject("event_name: longer than 200 characters")
        time = _first(wire.time, base.time)
        if time is None:
            raise _Reject("time: required field is missing")
        time = int(time)
        if time < MIN_TIME_MS:
            raise _Reject(f"time: {time} is not unix milliseconds (before 2000-01-01)")
        if time > now + self._max_future:
            raise _Reject(f"time: {time} is further in the future than the allowed clock skew")
        if time < now - self._max_age:
            raise _Reject(f"time: {time} is older than the allowed event age")
        insert_id = _first(wire.insert_id, wire.dollar_insert_id, base.insert_id,
                           base.dollar_insert_id)
        if not insert_id:
            raise _Reject("insert_id: required field is missing")
        if len(insert_id) > 128:
            raise _Reject("insert_id: longer than 128 characters")
        user = _first(wire.distinct_user_id, wire.distinct_id, base.distinct_user_id,
                      base.distinct_id) or None
        device = _first(wire.device_id, base.device_id) or None
        if not user and not device:
            raise _Reject("distinct_user_id: one of distinct_user_id or device_id is required")
        props = _first(wire.custom_properties, wire.properties, base.custom_properties,
                       base.properties) or {}
        errors = self._rules.validate(project, name, props)
        if errors:
            raise _Reject("; ".join(errors))
        category = _first(wire.event_category, base.event_category)
        if not category:
            category = self._rules.category(project, name)
        version = props.get("app_version")
        return Event(
            project=project,
            insert_id=insert_id,
            event_name=name,
            category=category,
            time=time,
            ingest_time=now,
            distinct_user_id=user,
            device_id=device,
            session_id=_first(wire.session_id, base.session_id) or None,
            source_id=_first(wire.source_id, base.source_id),
            url=_first(wire.url, wire.URL, base.url, base.URL) or None,
            ip=_first(wire.ip, base.ip) or None,
            user_agent=_first(wire.user_agent, base.user_agent) or None,
            properties=_encode_json(props).decode() if props else "{}",
            app_version=version if isinstance(version, str) else None,
        )

    def _profile(self, project: str, raw: msgspec.Raw, now: int) -> Profile:
        if len(raw) > self._max_bytes:
            raise _Reject(f"record: {len(raw)} bytes is over the {self._max_bytes}-byte limit")
        try:
            wire = _decode_profile(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _Reject(explain(exc)) from None
        user = wire.distinct_user_id or wire.distinct_id
        if not user:
            raise _Reject("distinct_user_id: required field is missing")
        for key, value in wire.traits.items():
            if isinstance(value, dict | list):
                raise _Reject(f"traits.{key}: nested objects and arrays are not allowed")
        return Profile(project=project, distinct_user_id=user, ingest_time=now,
                       traits=wire.traits, device_id=wire.device_id)


class _Reject(Exception):
    pass


_EMPTY = _Fields()


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None

