"""Segments: which users match place, device, demographic, trait and behaviour filters.

The population is the users with any event in the window. A user's place and device are
their profile's traits where identify set them, else the value on their latest event in
the window that has one (DESIGN.md "Identity": identify wins over inference). Text
filters compare case-insensitively; every given filter must hold.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

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


@dataclass(frozen=True, slots=True)
class Users:
    """The matching users, ordered by id, with their profile-first columns."""

    table: pa.Table  # NODE_COLUMNS
    ids: list[str] = field(default_factory=list)


def user_attributes(events: pa.Table, profiles: pa.Table) -> pa.Table:
    """One row per user of ``events`` (ordered by user id): NODE_COLUMNS, profile first,
    else the user's latest event value in ``events`` (rows in (time, insert_id) order)."""
    uniq, inverse = sorted_codes(events.column("user_id"))
    columns: dict[str, list[Any]] = {"user_id": uniq.to_pylist()}
    for column in ATTRIBUTES:
        latest: list[Any] = [None] * len(uniq)
        if column in events.column_names:
            values = events.column(column)
            rows = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))
            if len(rows):
                # each user's last row with a value: the first one seen walking backwards
                backwards = rows[::-1]
                owners, first = np.unique(inverse[backwards], return_index=True)
                taken = values.take(pa.array(backwards[first])).to_pylist()
                for owner, value in zip(owners.tolist(), taken, strict=True):
                    latest[owner] = value
        columns[column] = latest
    by_user = {r["user_id"]: r for r in profiles.to_pylist()}
    out: dict[str, list[Any]] = {c: [] for c in NODE_COLUMNS}
    for i, user in enumerate(columns["user_id"]):
        profile = by_user.get(user, {})
        out["user_id"].append(user)
        for column in NODE_COLUMNS[1:]:
            own = columns[column][i] if column in ATTRIBUTES else None
            value = profile.get(column)
            out[column].append(value if value is not None else own)
    out_traits = [by_user.get(u, {}).get("traits") for u in columns["user_id"]]
    types = {"lat": pa.float64(), "long": pa.float64(), "age": pa.float64()}
    arrays = [pa.array(out[c], types.get(c, pa.string())) for c in NODE_COLUMNS]
    return pa.Table.from_arrays([*arrays, pa.array(out_traits, pa.string())],
                                names=[*NODE_COLUMNS, "traits"])


def _same(a: Any, b: str) -> bool:
    return a is not None and str(a).casefold() == b.casefold()


def _counts(events: pa.Table, rule: Behaviour, window_end: int) -> dict[str, int]:
    names = events.column("event_name").to_numpy(zero_copy_only=False)
    mask = names == rule.event
    if rule.within_ms is not None:
        times = events.column("time").to_numpy()
        mask &= times >= window_end - rule.within_ms
    users = events.column("user_id").to_numpy(zero_copy_only=False)[mask]
    uniq, counts = np.unique(users.astype(str), return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist(), strict=True))


def _in_order(events: pa.Table, seq: Sequence) -> set[str]:
    """Users who did ``seq.events`` in order (rows in time order), the last within
    ``within_ms`` of the first: for each occurrence of the first event, the earliest
    completion is found greedily, which is optimal for a plain ordered sequence."""
    wanted = set(seq.events)
    rows = [(u, n, t) for u, n, t in zip(events.column("user_id").to_pylist(),
                                         events.column("event_name").to_pylist(),
                                         events.column("time").to_pylist(), strict=True)
            if n in wanted]
    by_user: dict[str, list[tuple[str, int]]] = {}
    for u, n, t in rows:
        by_user.setdefault(u, []).append((n, t))
    done: set[str] = set()
    for user, items in by_user.items():
        for start, (name, t0) in enumerate(items):
            if name != seq.events[0]:
                continue
            step = 1
            for n, t in items[start + 1:]:
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
    """The users of ``events`` (the window's events, every name, in (time, insert_id)
    order) matching ``segment``: NODE_COLUMNS + traits, ordered by user id."""
    users = user_attributes(events, profiles)
    keep = np.ones(users.num_rows, bool)
    cols = {c: users.column(c).to_pylist() for c in (*NODE_COLUMNS, "traits")}
    for column in (*ATTRIBUTES, "gender"):
        wanted = getattr(segment, column)
        if wanted is not None:
            keep &= np.array([_same(v, wanted) for v in cols[column]], bool)
    ages = cols["age"]
    if segment.age_min is not None:
        keep &= np.array([a is not None and a >= segment.age_min for a in ages], bool)
    if segment.age_max is not None:
        keep &= np.array([a is not None and a <= segment.age_max for a in ages], bool)
    if segment.traits:
        parsed = [orjson.loads(t) if t else {} for t in cols["traits"]]
        for key, value in segment.traits:
            keep &= np.array([_same(p.get(key), value) for p in parsed], bool)
    ids = cols["user_id"]
    for rule in segment.did:
        counts = _counts(events, rule, window_end)
        keep &= np.array([counts.get(u, 0) >= rule.at_least for u in ids], bool)
    for rule in segment.did_not:
        counts = _counts(events, rule, window_end)
        keep &= np.array([counts.get(u, 0) < rule.at_least for u in ids], bool)
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


def page_users(users: pa.Table, first: int, after: str | None) -> tuple[list[dict[str, Any]],
                                                                         bool]:
    """``first`` users (ordered by id) after the cursor, and whether more follow."""
    ids = users.column("user_id").to_pylist()
    start = 0
    if after:
        last = decode_user_cursor(after)
        start = int(np.searchsorted(np.array(ids, dtype=object), last, side="right")) \
            if ids else 0
    page = users.slice(start, first).to_pylist()
    return page, start + first < len(ids)
