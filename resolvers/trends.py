"""Trends: how many events (or users, or sessions) per hour, day, week or month.

``compute_trends`` *is* the semantics of ``trends``; the runner only scans what
``trends_fetch`` names and hands the rows here (any order, users outside the segment
already dropped).

*Buckets* are the hours, days, weeks (from Monday) or calendar months of the local calendar
of ``timezone`` (UTC when ``None``) that meet the window ``[start, end)``, every one listed,
empty or not; the first and last may be cut by the window (an event outside it never
counts). A bucket is labelled by its start: ISO-8601 with the zone's offset at that
instant (``Z`` in UTC). An hour bucket is an hour of local wall-clock time: across a
daylight-saving change the repeated hour is two buckets, the skipped one none.

A *series* matches events named ``event`` (any event when ``None``) passing every ``where``
filter (as funnel steps filter: ``resolvers.filters``). Per bucket, and over the whole
window for ``total``:

- ``TOTAL``: matching events.
- ``UNIQUE_USERS``: their distinct resolved users (``user_id``); ``total`` is the distinct
  users of the whole window, not the sum of the buckets.
- ``PER_USER_AVERAGE``: events / distinct users (0.0 with none); ``total`` the same over
  the window.
- ``SESSIONS``: distinct ``session_id`` of matching events (events without one ignored); a
  session spanning two buckets counts in both, once in ``total``.

With ``breakdown`` (an event field such as ``os`` or ``url``, else a custom property —
as in funnel breakdowns), each series splits by the event's value (strings as they are,
other scalars as JSON, ``None`` where unset), and only its ``breakdown_limit`` values with
the highest ``total`` are kept (ties by value, unset last); the rest are dropped, not
folded together. Series come in the order asked, each one's values by that ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from graphql import GraphQLError

from resolvers.errors import bad_input
from resolvers.filters import where_mask
from resolvers.frames import (
    EVENT_ATTRIBUTES,
    Int64s,
    codes,
    distinct,
    encode,
    period_index,
    property_values,
    zone,
)
from resolvers.funnels import PropertyFilter, breakdown_label, validate_where
from resolvers.retention import period_start_ms
from resolvers.window import Window

INTERVALS = ("HOUR", "DAY", "WEEK", "MONTH")
MATHS = ("TOTAL", "UNIQUE_USERS", "PER_USER_AVERAGE", "SESSIONS")
PER_USER = ("UNIQUE_USERS", "PER_USER_AVERAGE")
MAX_SERIES = 10
MAX_BUCKETS = 1_000
MAX_BREAKDOWN_LIMIT = 100
ALL_EVENTS = "All events"
_HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class TrendSeriesQuery:
    event: str | None = None  # None: any event
    where: Sequence[PropertyFilter] = ()
    math: str = "TOTAL"
    name: str | None = None  # None: the event name, else "All events"

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return ALL_EVENTS if self.event is None else self.event


@dataclass(frozen=True, slots=True)
class TrendsQuery:
    series: Sequence[TrendSeriesQuery]
    window: Window
    interval: str = "DAY"
    breakdown: str | None = None
    timezone: str | None = None
    breakdown_limit: int = 10


@dataclass(frozen=True, slots=True)
class TrendSeries:
    name: str
    event: str | None
    math: str
    breakdown_value: str | None
    total: float
    values: list[float]  # aligned with TrendsResult.buckets


@dataclass(frozen=True, slots=True)
class TrendsResult:
    interval: str
    buckets: list[str]
    series: list[TrendSeries]


@dataclass(frozen=True, slots=True)
class TrendsFetch:
    """What to scan: events named ``event_names`` (every event when ``None``) in
    ``[start, end)`` with ``columns``."""

    event_names: tuple[str, ...] | None
    start: int
    end: int
    columns: tuple[str, ...]


# --- validation -------------------------------------------------------------------------

def validate_trends(query: TrendsQuery, buckets: bool = True) -> None:
    """``bad_input`` naming the argument; ``buckets=False`` skips the bucket count (for a
    window whose start is only known once the events are read)."""
    if not 1 <= len(query.series) <= MAX_SERIES:
        raise bad_input("series", f"give 1 to {MAX_SERIES} series")
    for i, series in enumerate(query.series):
        field = f"series[{i}]"
        if series.event is not None and not series.event.strip():
            raise bad_input(f"{field}.event", "must not be empty (leave it out for any event)")
        if series.math not in MATHS:
            raise bad_input(f"{field}.math",
                            f"unknown math {series.math!r} (use {', '.join(MATHS)})")
        validate_where(field, series.where)
    if query.interval not in INTERVALS:
        raise bad_input("interval", f"unknown interval {query.interval!r} "
                                    f"(use {', '.join(INTERVALS)})")
    if query.breakdown is not None and not query.breakdown.strip():
        raise bad_input("breakdown", "give a property key")
    if not 1 <= query.breakdown_limit <= MAX_BREAKDOWN_LIMIT:
        raise bad_input("breakdownLimit", f"must be between 1 and {MAX_BREAKDOWN_LIMIT}")
    if query.window.end <= query.window.start:
        raise bad_input("window", "to must be after from")
    tz = zone(query.timezone)
    if buckets:
        bucket_starts(query.window, query.interval, tz)


def trends_fetch(query: TrendsQuery) -> TrendsFetch:
    """The scan ``compute_trends`` needs (call ``validate_trends`` first)."""
    events = [s.event for s in query.series]
    names = None if None in events else tuple(sorted({e for e in events if e is not None}))
    keys = [f.key for s in query.series for f in s.where]
    keys += [query.breakdown] if query.breakdown else []
    maths = {s.math for s in query.series}
    columns = ["time"]
    if any(e is not None for e in events):
        columns.append("event_name")
    if maths & set(PER_USER):
        columns.append("user_id")
    if "SESSIONS" in maths:
        columns.append("session_id")
    columns += sorted({k for k in keys if k in EVENT_ATTRIBUTES} - set(columns))
    if any(k not in EVENT_ATTRIBUTES for k in keys):
        columns.append("properties")
    return TrendsFetch(names, query.window.start, query.window.end, tuple(columns))


# --- buckets ----------------------------------------------------------------------------

def _too_many(interval: str, count: str) -> GraphQLError:
    return bad_input("window", f"holds {count} {interval} buckets (at most {MAX_BUCKETS:,}): "
                               "narrow the window or use a longer interval")


def bucket_starts(window: Window, interval: str, tz: ZoneInfo | None) -> list[int]:
    """The start (unix ms) of every bucket meeting ``window``, ascending; ``bad_input``
    naming ``window`` beyond ``MAX_BUCKETS``."""
    if interval == "HOUR":
        return _hour_starts(window, tz)
    period = interval.lower()
    first, last = (int(period_index(np.array([t], np.int64), period, tz)[0])
                   for t in (window.start, window.end - 1))
    if last - first + 1 > MAX_BUCKETS:
        raise _too_many(interval, f"{last - first + 1:,}")
    return [period_start_ms(i, period, tz) for i in range(first, last + 1)]


def _hour_floor(time_ms: int, tz: ZoneInfo | None) -> int:
    if tz is None:
        return time_ms - time_ms % _HOUR_MS
    local = datetime.fromtimestamp(time_ms // 1000, tz)  # fold set in a repeated hour
    return int(local.replace(minute=0, second=0).timestamp()) * 1000


def _hour_starts(window: Window, tz: ZoneInfo | None) -> list[int]:
    if window.end - window.start > 2 * MAX_BUCKETS * _HOUR_MS:  # hours are at most 2 h long
        raise _too_many("HOUR", f"more than {MAX_BUCKETS:,}")
    starts: list[int] = []
    start = _hour_floor(window.start, tz)
    while start < window.end:
        if len(starts) == MAX_BUCKETS:
            raise _too_many("HOUR", f"more than {MAX_BUCKETS:,}")
        starts.append(start)
        start = max(_hour_floor(start + _HOUR_MS, tz), start + 1)
    return starts


def bucket_label(start_ms: int, tz: ZoneInfo | None) -> str:
    """ISO-8601 with the offset at that instant; ``Z`` in UTC."""
    moment = datetime.fromtimestamp(start_ms // 1000, tz or UTC).isoformat()
    return moment.replace("+00:00", "Z") if tz is None else moment


# --- the computation --------------------------------------------------------------------

def compute_trends(events: pa.Table, query: TrendsQuery) -> TrendsResult:
    """Every series per bucket (see the module's docstring). ``events`` holds at least
    ``trends_fetch(query).columns``; rows outside the window are ignored."""
    validate_trends(query, buckets=False)
    tz = zone(query.timezone)
    starts = np.asarray(bucket_starts(query.window, query.interval, tz), np.int64)
    times = np.asarray(events.column("time").to_numpy(), np.int64)
    inside = (times >= query.window.start) & (times < query.window.end)
    bucket = np.maximum(np.searchsorted(starts, times, side="right") - 1, 0)
    matches = [_matches(events, s, inside) for s in query.series]
    group, labels = _groups(events, query.breakdown, np.logical_or.reduce(matches))
    maths = {s.math for s in query.series}
    units = _Units(
        codes(events.column("user_id"))[0] if maths & set(PER_USER) else None,
        encode(events.column("session_id"))[0] if "SESSIONS" in maths else None)
    grid = _Grid(group, bucket, len(labels), len(starts))
    out: list[TrendSeries] = []
    for spec, mask in zip(query.series, matches, strict=True):
        values, totals, present = grid.measure(spec.math, np.flatnonzero(mask), units)
        chosen = [0] if query.breakdown is None else sorted(
            np.flatnonzero(present).tolist(),
            key=lambda k: (-totals[k], labels[k] is None, labels[k] or ""),
        )[:query.breakdown_limit]
        out += [TrendSeries(spec.label, spec.event, spec.math, labels[k], float(totals[k]),
                            values[k].tolist()) for k in chosen]
    return TrendsResult(query.interval, [bucket_label(int(s), tz) for s in starts], out)


def _matches(events: pa.Table, spec: TrendSeriesQuery, inside: np.ndarray[Any, Any]
             ) -> np.ndarray[Any, Any]:
    mask = inside.copy()
    if spec.event is not None:
        named = pc.equal(events.column("event_name"), spec.event).fill_null(False)
        mask &= np.asarray(named.to_numpy(zero_copy_only=False), dtype=bool)
    if spec.where:
        rows = np.flatnonzero(mask)
        mask[rows[~where_mask(events.take(rows), spec.where)]] = False
    return mask


def _groups(events: pa.Table, breakdown: str | None, needed: np.ndarray[Any, Any]
            ) -> tuple[Int64s, list[str | None]]:
    """Each row's breakdown value as a code (-1 for rows no series matched), and the label
    of each code; one group (``None``) without a breakdown."""
    if breakdown is None:
        return np.zeros(len(needed), np.int64), [None]
    rows = np.flatnonzero(needed)
    group = np.full(len(needed), -1, np.int64)
    if breakdown in EVENT_ATTRIBUTES and breakdown in events.column_names:
        found, dictionary = codes(events.column(breakdown).take(pa.array(rows, pa.int64())))
        group[rows] = found
        return group, [breakdown_label(v) for v in dictionary.to_pylist()]
    lookup: dict[str | None, int] = {}
    group[rows] = [lookup.setdefault(breakdown_label(v), len(lookup))
                   for v in property_values(events.take(rows), breakdown)]
    return group, list(lookup)


@dataclass(frozen=True, slots=True)
class _Units:
    """Per row: a user code, a session code (-1 without a session); ``None`` if unneeded."""

    users: Int64s | None
    sessions: Int64s | None


@dataclass(frozen=True, slots=True)
class _Grid:
    """Rows placed in (group, bucket) cells: ``group * n_buckets + bucket``."""

    group: Int64s
    bucket: Int64s
    n_groups: int
    n_buckets: int

    def measure(self, math: str, rows: Int64s, units: _Units
                ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """``(values[group, bucket], totals[group], groups with a matching event)``."""
        group = self.group[rows]
        cell = group * self.n_buckets + self.bucket[rows]
        counts = np.bincount(cell, minlength=self.n_groups * self.n_buckets).reshape(
            self.n_groups, self.n_buckets).astype(np.float64)
        present = counts.sum(axis=1)
        if math == "TOTAL":
            return counts, present, present > 0
        if math == "SESSIONS":
            assert units.sessions is not None
            session = units.sessions[rows]
            known = session >= 0
            values, totals = self._distinct(group[known], cell[known], session[known])
            return values, totals, present > 0
        assert units.users is not None
        values, totals = self._distinct(group, cell, units.users[rows])
        if math == "UNIQUE_USERS":
            return values, totals, present > 0
        averages = np.divide(counts, values, out=np.zeros_like(counts), where=values > 0)
        overall = np.divide(present, totals, out=np.zeros_like(present), where=totals > 0)
        return averages, overall, present > 0

    def _distinct(self, group: Int64s, cell: Int64s, unit: Int64s
                  ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Distinct units per cell and per group."""
        n_cells = self.n_groups * self.n_buckets
        per_cell = np.bincount(_distinct_firsts(cell, unit), minlength=n_cells)
        per_group = np.bincount(_distinct_firsts(group, unit), minlength=self.n_groups)
        return (per_cell.reshape(self.n_groups, self.n_buckets).astype(np.float64),
                per_group.astype(np.float64))


def _distinct_firsts(first: Int64s, second: Int64s) -> Int64s:
    """``first`` of each distinct ``(first, second)`` pair (both non-negative codes)."""
    if not len(first):
        return first
    width = int(second.max()) + 1
    if int(first.max()) < (1 << 62) // width:
        return distinct(first * width + second) // width
    order = np.lexsort((second, first))
    a, b = first[order], second[order]
    new = np.concatenate(([True], (a[1:] != a[:-1]) | (b[1:] != b[:-1])))
    return a[new]
