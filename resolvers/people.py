"""People and the event catalogue: one user's page (``user``) and what events a project
sends, with the properties they carry (``eventDefinitions``).

Stores filter and hand back columns (``scan_events`` narrowed to one resolved user,
``scan_sessions``, ``scan_profiles``); the functions here compute the answers, so every
backend gives the same ones.

A person is the resolved identity of DESIGN.md "Identity": a device's events — before and
after its tie — count for the user it is tied to, and the device is one of theirs.
Place, device and contact fields follow the ``segment`` node rules (``user_attributes``):
the profile's traits where identify set them, else the user's latest event that has one.

The catalogue's cost: its first pass reads four lean columns of the window's events (no
properties) for counts, users, last seen and category. Properties are JSON strings, so
discovery reads and parses those of at most PROPERTY_SAMPLE of each listed name's most
recent events: the first pass finds the time of each busy name's PROPERTY_SAMPLE-th latest
event, and the property scans start there (``sample_starts``, ``sample_scans``) — a
10M-event project parses at most ``first`` × PROPERTY_SAMPLE objects, and a property's
``count`` is over that sample (``sampled`` says how many).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from resolvers.frames import codes, distinct, encode
from resolvers.segments import NODE_COLUMNS, user_attributes

DEFAULT_WINDOW = "30d"  # both queries, when no window is given
MAX_USER_ID = 1024  # characters; longer is no id CEP could have stored
# Property discovery reads the properties of at most this many of each name's most recent
# events in the window: a 10M-event project parses at most PROPERTY_SAMPLE JSON objects
# per listed name, not 10M.
PROPERTY_SAMPLE = 500
MAX_SAMPLE_SCANS = 16  # property scans of busy names (run at once), at most
EXAMPLES = 3  # distinct example values per property
EXAMPLE_CHARS = 100  # an example longer than this is cut
# Columns of a person's events: what the Event type shows, and what user_attributes reads.
PERSON_EVENT_COLUMNS = ("insert_id", "event_name", "category", "time", "ingest_time",
                        "user_id", "device_id", "session_id", "source_id", "url",
                        "properties", "city", "state", "country", "device_type", "os",
                        "app_version", "browser")
# Columns of the catalogue's first pass (counts, users, last seen, category) and of its
# property samples.
CATALOGUE_COLUMNS = ("event_name", "category", "time", "user_key")
SAMPLE_COLUMNS = ("event_name", "time", "insert_id", "properties")


def validate_user_id(user_id: str) -> str:
    if not user_id.strip():
        raise bad_input("userId", "must not be empty")
    if len(user_id) > MAX_USER_ID:
        raise bad_input("userId", f"at most {MAX_USER_ID} characters")
    return user_id


def validate_first(first: int, field: str) -> int:
    if first < 0:
        raise bad_input(field, "must not be negative")
    return first


@dataclass(frozen=True, slots=True)
class EventCount:
    event: str
    count: int


@dataclass(frozen=True, slots=True)
class Person:
    """One user over a window. ``attributes``: NODE_COLUMNS (profile first, else latest
    event); ``first_seen`` / ``last_seen``: unix ms of their first and last event in the
    window (``None`` without events); ``top_events``: every name they did, most first."""

    user_id: str
    attributes: dict[str, Any]
    traits: dict[str, Any]
    device_ids: list[str]
    first_seen: int | None
    last_seen: int | None
    event_count: int
    session_count: int
    top_events: list[EventCount]


def only_user(table: pa.Table, user_id: str, column: str = "user_id") -> pa.Table:
    """Rows of ``table`` resolved to ``user_id`` (stores hand back only those; a runner
    that gets more still answers for this user alone)."""
    return table.filter(pc.fill_null(pc.equal(table.column(column), user_id), False))


def compute_person(user_id: str, events: pa.Table, profiles: pa.Table,
                   sessions: pa.Table) -> Person | None:
    """``user_id``'s page over a window, or ``None`` when they have neither a profile nor
    an event in it.

    ``events``: the window's events (PERSON_EVENT_COLUMNS; ``user_id`` resolved, any row
    order); ``profiles``: scan_profiles' rows (PROFILE_COLUMNS); ``sessions``: the sessions
    starting in the window (``resolved_user``). Rows of other users are ignored.
    """
    events = only_user(events, user_id)
    profiles = only_user(profiles, user_id)
    sessions = only_user(sessions, user_id, "resolved_user")
    if events.num_rows == 0 and profiles.num_rows == 0:
        return None
    if events.num_rows:
        row = user_attributes(events, profiles).to_pylist()[0]
    else:
        row = profiles.to_pylist()[0]
    attributes = {c: row.get(c) for c in NODE_COLUMNS}
    traits = orjson.loads(row["traits"]) if row.get("traits") else {}
    devices = pc.unique(events.column("device_id").drop_null()).to_pylist()
    times = events.column("time")
    names = pc.value_counts(events.column("event_name")).to_pylist()
    ranked = sorted(names, key=lambda d: (-d["counts"], d["values"]))
    return Person(
        user_id=user_id, attributes=attributes, traits=traits, device_ids=sorted(devices),
        first_seen=pc.min(times).as_py(), last_seen=pc.max(times).as_py(),
        event_count=events.num_rows, session_count=sessions.num_rows,
        top_events=[EventCount(d["values"], int(d["counts"])) for d in ranked])


def encode_event_cursor(time_ms: int, insert_id: str) -> str:
    return base64.urlsafe_b64encode(f"e:{time_ms}:{insert_id}".encode()).decode()


def decode_event_cursor(cursor: str, field: str = "after") -> tuple[int, str]:
    try:
        kind, time_ms, insert_id = base64.urlsafe_b64decode(
            cursor.encode()).decode().split(":", 2)
        if kind != "e":
            raise ValueError(kind)
        return int(time_ms), insert_id
    except (ValueError, UnicodeDecodeError):
        raise bad_input(field, "not a cursor returned by this API") from None


@dataclass(frozen=True, slots=True)
class EventPage:
    total: int  # events matching (every page)
    rows: pa.Table  # this page, newest first
    has_next: bool


def page_events(events: pa.Table, first: int, after: str | None = None,
                event_name: str | None = None, field: str = "after") -> EventPage:
    """Events newest first — by ``(time, insert_id)`` descending — of ``event_name`` when
    given: ``first`` of them after the cursor (which names the last row of the previous
    page), and whether more follow."""
    if event_name is not None:
        events = events.filter(pc.fill_null(pc.equal(events.column("event_name"),
                                                     event_name), False))
    total = events.num_rows
    if after:
        t, insert_id = decode_event_cursor(after, field)
        times, ids = events.column("time"), events.column("insert_id")
        events = events.filter(pc.or_(pc.less(times, t), pc.and_(
            pc.equal(times, t), pc.less(ids, insert_id))))
    order = pc.sort_indices(events, [("time", "descending"), ("insert_id", "descending")])
    rest = events.take(order)
    return EventPage(total, rest.slice(0, first), rest.num_rows > first)


def newest_sessions(sessions: pa.Table, first: int) -> pa.Table:
    """``first`` sessions, latest start first (then session id, descending)."""
    order = pc.sort_indices(sessions, [("start_time", "descending"),
                                       ("session_id", "descending")])
    return sessions.take(order).slice(0, first)


# -- the event catalogue ------------------------------------------------------------------

PROPERTY_TYPES = ("STRING", "NUMBER", "BOOLEAN", "OBJECT", "LIST", "MIXED")


@dataclass(frozen=True, slots=True)
class PropertyDefinition:
    key: str
    type: str  # one of PROPERTY_TYPES
    count: int  # sampled events carrying it (a non-null value)
    examples: list[str]


@dataclass(frozen=True, slots=True)
class EventDefinition:
    name: str
    category: str | None
    count: int
    users: int
    last_seen: int
    sampled: int  # events whose properties were read: min(count, PROPERTY_SAMPLE)
    properties: list[PropertyDefinition]


@dataclass(frozen=True, slots=True)
class NameStats:
    name: str
    category: str | None
    count: int
    users: int
    last_seen: int


def name_stats(events: pa.Table, first: int | None = None) -> list[NameStats]:
    """Per event name of ``events`` (CATALOGUE_COLUMNS, any row order): events, distinct
    users (by ``user_key``), latest time, and the category of its latest event (the
    greatest, among events at that millisecond). Ranked by events desc, then name;
    ``first`` of them (all when ``None``)."""
    if events.num_rows == 0:
        return []
    name, names = codes(events.column("event_name"))
    user, users = codes(events.column("user_key"))
    times = np.asarray(events.column("time").to_numpy(), dtype=np.int64)
    counts = np.bincount(name, minlength=len(names))
    latest = np.full(len(names), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, name, times)
    pairs = distinct(name * len(users) + user)  # one per (name, user)
    per_name = np.bincount(pairs // len(users), minlength=len(names))
    last = np.flatnonzero(times == latest[name])  # few rows: each name's latest events
    categories: dict[int, str] = {}
    for k, category in zip(name[last].tolist(), events.column("category").take(
            pa.array(last, pa.int64())).to_pylist(), strict=True):
        if category is not None and (k not in categories or category > categories[k]):
            categories[k] = category
    rows = [NameStats(label, categories.get(k), int(counts[k]), int(per_name[k]),
                      int(latest[k]))
            for k, label in enumerate(names.to_pylist())]
    rows.sort(key=lambda s: (-s.count, s.name))
    return rows if first is None else rows[:first]


def sample_starts(events: pa.Table, stats: list[NameStats], window_start: int,
                  sample: int = PROPERTY_SAMPLE) -> dict[str, int]:
    """For each name of ``stats``: the time from which its ``sample`` most recent events
    in ``events`` (CATALOGUE_COLUMNS) lie — ``window_start`` for names with no more than
    ``sample`` events — so the property scan reads no further back than it must."""
    starts = {s.name: window_start for s in stats}
    heavy = [s.name for s in stats if s.count > sample]
    if not heavy or sample <= 0:
        return starts
    rows = events.filter(pc.is_in(events.column("event_name"), value_set=pa.array(heavy)))
    code, labels = encode(rows.column("event_name"))
    times = np.asarray(rows.column("time").to_numpy(), dtype=np.int64)
    newest = int(times.max())
    span = newest - int(times.min()) + 1
    # one int64 sort groups rows by name and orders each name's newest first
    keys = np.sort(code * span + (newest - times))
    counts = np.bincount(code, minlength=len(labels))
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    for k, name in enumerate(labels.to_pylist()):
        nth = int(keys[offsets[k] + sample - 1]) - k * span
        starts[name] = newest - nth
    return starts


def sample_scans(stats: list[NameStats], starts: dict[str, int], window_start: int,
                 sample: int = PROPERTY_SAMPLE, most: int = MAX_SAMPLE_SCANS
                 ) -> list[tuple[int, list[str]]]:
    """The property scans, as ``(start, names)``: names with at most ``sample`` events in
    one scan from ``window_start``; busier names from their ``starts`` in at most ``most``
    scans (names with close starts share one, from the earliest of them)."""
    light = [s.name for s in stats if s.count <= sample]
    heavy = sorted((starts[s.name], s.name) for s in stats if s.count > sample)
    per_scan = max(1, -(-len(heavy) // most))  # ceiling
    scans = [(group[0][0], [name for _start, name in group])
             for group in (heavy[i:i + per_scan] for i in range(0, len(heavy), per_scan))]
    return scans + ([(window_start, light)] if light else [])


def property_type(value: Any) -> str | None:
    """The catalogue type of a JSON value; ``None`` for null (not counted)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, dict):
        return "OBJECT"
    return "LIST"


def _example(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(
        value, option=orjson.OPT_SORT_KEYS).decode()
    return text[:EXAMPLE_CHARS]


def property_definitions(blobs: list[str | None]) -> list[PropertyDefinition]:
    """What a list of ``properties`` JSON objects (newest first) carries: per key, the
    type seen (MIXED when more than one), how many carry a non-null value, and up to
    EXAMPLES distinct values, newest first. Ranked by count desc, then key."""
    types: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for blob in blobs:
        if not blob:
            continue
        props = orjson.loads(blob)
        if not isinstance(props, dict):
            continue
        for key, value in props.items():
            kind = property_type(value)
            if kind is None:
                continue
            types.setdefault(key, set()).add(kind)
            counts[key] = counts.get(key, 0) + 1
            seen = examples.setdefault(key, [])
            if len(seen) < EXAMPLES:
                text = _example(value)
                if text not in seen:
                    seen.append(text)
    out = [PropertyDefinition(key, next(iter(kinds)) if len(kinds) == 1 else "MIXED",
                              counts[key], examples[key]) for key, kinds in types.items()]
    out.sort(key=lambda p: (-p.count, p.key))
    return out


def compute_event_definitions(events: pa.Table, samples: pa.Table, first: int | None,
                              sample: int = PROPERTY_SAMPLE) -> list[EventDefinition]:
    """The catalogue over a window: ``events`` (CATALOGUE_COLUMNS) are the window's
    events; ``samples`` (SAMPLE_COLUMNS) hold at least the ``sample`` most recent events of
    each listed name (more are ignored: only each name's ``sample`` latest by ``(time,
    insert_id)`` are read). Names ranked by count desc, then name; ``first`` of them."""
    stats = name_stats(events, first)
    wanted = pa.array([s.name for s in stats], pa.string())
    samples = samples.filter(pc.is_in(samples.column("event_name"), value_set=wanted))
    order = pc.sort_indices(samples, [("event_name", "ascending"), ("time", "descending"),
                                      ("insert_id", "descending")])
    samples = samples.take(order)
    by_name: dict[str, list[str | None]] = {}
    for name, blob in zip(samples.column("event_name").to_pylist(),
                          samples.column("properties").to_pylist(), strict=True):
        kept = by_name.setdefault(name, [])
        if len(kept) < sample:
            kept.append(blob)
    return [EventDefinition(s.name, s.category, s.count, s.users, s.last_seen,
                            len(by_name.get(s.name, [])),
                            property_definitions(by_name.get(s.name, [])))
            for s in stats]
