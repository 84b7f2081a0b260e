"""Segments: which users match place, device, demographic, trait and behaviour filters.

The population is the users with any event in the window. A user's place and device are
their profile's traits where identify set them, else the value on their latest event in
the window that has one (DESIGN.md "Identity": identify wins over inference). Text
filters compare case-insensitively; every given filter must hold.
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
from resolvers.frames import sorted_codes

# Profile-first attributes of a user, with the event column each falls back to.
ATTRIBUTES = ("city", "state", "country", "device_type", "os", "app_version")
NODE_COLUMNS = ("user_id", "city", "state", "country", "postal_code", "lat", "long",
                "device_type", "os", "app_version", "gender", "age", "email", "phone")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Did (or did not) do ``event`` at least ``at_least`` times in the window, or in its
    last ``within_ms`` when given."""

    event: str
    at_least: int = 1
    within_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Sequence:
    """Did ``events`` in this order, the last within ``within_ms`` of the first."""

    events: tuple[str, ...]
    within_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    city: str | None = None
    state: str | None = None
    country: str | None = None
    device_type: str | None = None
    os: str | None = None
    app_version: str | None = None
    gender: str | None = None
    age_min: float | None = None
    age_max: float | None = None
    traits: tuple[tuple[str, str], ...] = ()
    did: tuple[Behaviour, ...] = ()
    did_not: tuple[Behaviour, ...] = ()
    did_in_order: tuple[Sequence, ...] = ()

    def names(self) -> set[str]:
        """Event names the behaviour filters count."""
        out = {b.event for b in (*self.did, *self.did_not)}
        for s in self.did_in_order:
            out.update(s.events)
        return out

    def is_empty(self) -> bool:
        return self == Segment()


def validate(segment: Segment, path: str = "filter") -> Segment:
    if segment.age_min is not None and segment.age_max is not None and \
            segment.age_min > segment.age_max:
        raise bad_input(f"{path}.ageMin", "must not be greater than ageMax")
    for name, rules in (("did", segment.did), ("didNot", segment.did_not)):
        for i, b in enumerate(rules):
            if not b.event:
                raise bad_input(f"{path}.{name}[{i}].event", "must not be empty")
            if b.at_least < 1:
                raise bad_input(f"{path}.{name}[{i}].atLeast", "must be at least 1")
    for i, s in enumerate(segment.did_in_order):
        if len(s.events) < 2:
            raise bad_input(f"{path}.didInOrder[{i}].events", "needs at least two events")
    for i, (key, _value) in enumerate(segment.traits):
        if not key:
            raise bad_input(f"{path}.traits[{i}].key", "must not be empty")
    return segment


def user_attributes(events: pa.Table, profiles: pa.Table) -> pa.Table:
    """One row per user of ``events`` (ordered by user id): NODE_COLUMNS + traits, profile
    first, else the value on the user's latest event that has one (latest by time; among
    events at the same millisecond, the greatest value — so row order never matters)."""
    uniq, user = sorted_codes(events.column("user_id"))
    n = len(uniq)
    times = events.column("time").to_numpy()
    own: dict[str, pa.Array] = {}
    for column in ATTRIBUTES:
        values = events.column(column) if column in events.column_names else None
        picked = np.full(n, -1, dtype=np.int64)
        if values is not None:
            labels, code = sorted_codes(values)  # codes rank the values in sorted order
            rows = np.flatnonzero(code >= 0)
            if len(rows):
                latest = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
                np.maximum.at(latest, user[rows], times[rows])
                last = rows[times[rows] == latest[user[rows]]]
                np.maximum.at(picked, user[last], code[last])
            own[column] = labels.take(pa.array(picked, mask=picked < 0))
        else:
            own[column] = pa.nulls(n, pa.string())
    ids = uniq.cast(pa.string())
    # each user's profile row, if any (profiles are few: identify calls)
    at = pc.index_in(ids, value_set=profiles.column("user_id").combine_chunks()
                     if profiles.num_rows else pa.array([], pa.string()))
    types = {"lat": pa.float64(), "long": pa.float64(), "age": pa.float64()}
    arrays: list[pa.Array] = [ids]
    for column in (*NODE_COLUMNS[1:], "traits"):
        kind = types.get(column, pa.string())
        from_profile = (profiles.column(column).combine_chunks().take(at)
                        if profiles.num_rows else pa.nulls(n, kind))
        fallback = own.get(column)
        arrays.append(pc.coalesce(from_profile, fallback) if fallback is not None
                      else from_profile.cast(kind))
    return pa.Table.from_arrays(arrays, names=[*NODE_COLUMNS, "traits"])


def _same(values: pa.Array | pa.ChunkedArray, wanted: str) -> np.ndarray[Any, Any]:
    """Case-insensitive equality, null never equal."""
    folded = pc.utf8_lower(values.cast(pa.string()))
    mask = pc.fill_null(pc.equal(folded, wanted.casefold()), False)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _counts(events: pa.Table, user: np.ndarray[Any, Any], n: int, rule: Behaviour,
            window_end: int) -> np.ndarray[Any, Any]:
    """Per user code, how many ``rule.event`` events (in the rule's last ``within_ms``)."""
    mask = np.asarray(pc.fill_null(pc.equal(events.column("event_name"), rule.event),
                                   False).to_numpy(zero_copy_only=False), dtype=bool)
    if rule.within_ms is not None:
        mask &= events.column("time").to_numpy() >= window_end - rule.within_ms
    return np.bincount(user[mask], minlength=n)


def _in_order(events: pa.Table, seq: Sequence) -> set[str]:
    """Users who did ``seq.events`` in order ((time, insert_id) order), the last within
    ``within_ms`` of the first: for each occurrence of the first event, the earliest
    completion is found greedily, which is optimal for a plain ordered sequence."""
    if events.num_rows == 0:
        return set()
    wanted = pc.is_in(events.column("event_name"), value_set=pa.array(list(set(seq.events))))
    rows = events.filter(wanted)
    by_user: dict[str, list[tuple[int, str, str]]] = {}
    for u, n, t, i in zip(rows.column("user_id").to_pylist(),
                          rows.column("event_name").to_pylist(),
                          rows.column("time").to_pylist(),
                          rows.column("insert_id").to_pylist(), strict=True):
        by_user.setdefault(u, []).append((t, i, n))
    done: set[str] = set()
    for user, items in by_user.items():
        items.sort()
        for start, (t0, _i, name) in enumerate(items):
            if name != seq.events[0]:
                continue
            step = 1
            for t, _j, n in items[start + 1:]:
                if seq.within_ms is not None and t - t0 > seq.within_ms:
                    break
                if n == seq.events[step]:
                    step += 1
                    if step == len(seq.events):
                        break
            if step == len(seq.events):
                done.add(user)
                break
    return done


def compute_segment(events: pa.Table, profiles: pa.Table, segment: Segment,
                    window_end: int) -> pa.Table:
    """The users of ``events`` (the window's events, every name, any row order) matching
    ``segment``: NODE_COLUMNS + traits, ordered by user id."""
    users = user_attributes(events, profiles)
    n = users.num_rows
    keep = np.ones(n, bool)
    for column in (*ATTRIBUTES, "gender"):
        wanted = getattr(segment, column)
        if wanted is not None:
            keep &= _same(users.column(column), wanted)
    ages = users.column("age")
    if segment.age_min is not None:
        keep &= np.asarray(pc.fill_null(pc.greater_equal(ages, segment.age_min), False)
                           .to_numpy(zero_copy_only=False), dtype=bool)
    if segment.age_max is not None:
        keep &= np.asarray(pc.fill_null(pc.less_equal(ages, segment.age_max), False)
                           .to_numpy(zero_copy_only=False), dtype=bool)
    if segment.traits:
        parsed = [orjson.loads(t) if t else {} for t in users.column("traits").to_pylist()]
        for key, value in segment.traits:
            keep &= np.array([p.get(key) is not None and str(p.get(key)).casefold()
                              == value.casefold() for p in parsed], bool)
    if segment.did or segment.did_not:
        _uniq, user = sorted_codes(events.column("user_id"))
        for rule in segment.did:
            keep &= _counts(events, user, n, rule, window_end) >= rule.at_least
        for rule in segment.did_not:
            keep &= _counts(events, user, n, rule, window_end) < rule.at_least
    if segment.did_in_order:
        ids = users.column("user_id").to_pylist()
        for seq in segment.did_in_order:
            done = _in_order(events, seq)
            keep &= np.array([u in done for u in ids], bool)
    return users.filter(pa.array(keep))


def encode_user_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(f"u:{user_id}".encode()).decode()


def decode_user_cursor(cursor: str, field: str = "after") -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise bad_input(field, "not a cursor returned by this API") from None
    if not text.startswith("u:"):
        raise bad_input(field, "not a cursor returned by this API")
    return text[2:]


def page_users(users: pa.Table, first: int, after: str | None) -> tuple[pa.Table, bool]:
    """``first`` users (ordered by id; NODE_COLUMNS) after the cursor, and whether more
    follow — without turning every id of the segment into a Python string."""
    start = 0
    if after:
        last = decode_user_cursor(after)
        start = int(pc.sum(pc.less_equal(users.column("user_id"), last)).as_py() or 0)
    page = users.select(list(NODE_COLUMNS)).slice(start, first)
    return page, start + first < users.num_rows
