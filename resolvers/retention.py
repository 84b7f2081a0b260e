"""Retention, churn and lifecycle: who comes back, who leaves, who is new (DESIGN.md
"Semantics": Retention, Churn).

Each question has a frozen query, a ``validate_...`` that raises ``bad_input`` naming the
GraphQL argument, a ``..._fetch`` saying which events the caller must scan, and a pure
``compute_...`` that *is* the semantics. Compute functions take the scanned events (columns
``user_id``, ``event_name``, ``time``; a superset of the fetch is fine), ``now_ms``, and an
optional segment as the collection of allowed user ids (``None``: everyone). Nothing after
``now_ms`` counts, and no period that has not started by ``now_ms`` is reported.

Periods are ``frames.period_index`` periods (day, week from Monday, month) in the local
calendar of ``timezone`` (UTC when ``None``). The reported periods are those ``p`` with
``period_index(window.start) <= p <= period_index(window.end - 1)``, started by ``now_ms``,
ascending; leading rows with no data at all (cohort size 0, or nothing active in ``p`` and
``p - 1``) are left out, so an open-ended window does not list empty periods since 1970.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from resolvers.frames import PERIODS, encode, period_index, period_label, zone
from resolvers.window import Window

MODES = ("ON", "ON_OR_AFTER")
MAX_PERIODS = 366
_DENSE_CELLS = 1 << 25  # above this many (row, column) cells, distinct pairs are sorted instead
_NEVER = np.iinfo(np.int64).max

IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class EventFetch:
    """What the caller must scan for a runner: events named ``event_names`` (``None``: any
    event) with ``start <= time < end`` (unix ms), with ``columns``."""

    event_names: frozenset[str] | None
    start: int
    end: int
    columns: tuple[str, ...] = ("user_key", "event_name", "time")

    def narrowed(self, users: Collection[str] | None) -> tuple[str, ...]:
        """The columns to scan when only ``users`` count: their ids are needed then."""
        return self.columns if users is None else (*self.columns, "user_id")


_ANY = ("user_key", "time")  # any-event scans need no names


@dataclass(frozen=True, slots=True)
class RetentionQuery:
    window: Window
    period: str = "WEEK"
    periods: int = 8
    start_event: str | None = None
    return_event: str | None = None
    mode: str = "ON"
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Cohort:
    start: str  # the first day of the cohort's period (ISO date, local calendar)
    size: int
    retained: list[int]  # retained[k]: members who returned in period start + k


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cohorts: list[Cohort]


@dataclass(frozen=True, slots=True)
class PeriodQuery:
    """``churn`` and ``lifecycle``."""

    window: Window
    period: str = "WEEK"
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class ChurnPeriod:
    period: str
    active: int
    previous_active: int
    churned: int
    rate: float


@dataclass(frozen=True, slots=True)
class LifecyclePeriod:
    period: str
    new: int
    returning: int
    resurrecting: int
    dormant: int


# --- shared helpers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRows:
    """Events as numpy arrays in input order: ``user`` codes in ``0..n_users-1`` and
    ``time`` (ms), keeping only allowed users and times up to ``until``."""

    user: IntArray
    time: IntArray
    n_users: int
    names: pa.ChunkedArray
    keep: BoolArray | None

    def named(self, names: str | Collection[str] | None) -> BoolArray:
        """Which kept rows have one of ``names`` (``None``: every row)."""
        if names is None:
            return np.ones(len(self.user), dtype=bool)
        if isinstance(names, str):
            hit = pc.equal(self.names, names)
        else:
            hit = pc.is_in(self.names, value_set=pa.array(sorted(names), pa.string()))
        mask = np.asarray(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        return mask if self.keep is None else mask[self.keep]

    def pick(self, names: str | Collection[str] | None) -> tuple[IntArray, IntArray]:
        """``(user, time)`` of the kept rows with one of ``names`` — without copying when
        every row qualifies (ten million rows cost ~50 ms a copy)."""
        if names is None:
            return self.user, self.time
        mask = self.named(names)
        return self.user[mask], self.time[mask]


def user_rows(events: pa.Table, users: Collection[str] | None = None,
              until: int | None = None) -> UserRows:
    """Encode users as dense codes (``user_key`` when there, else ``user_id``); drop users
    not in ``users`` (which needs ``user_id``) and times after ``until`` (both optional)."""
    by_key = users is None and "user_key" in events.column_names
    codes, dictionary = encode(events.column("user_key" if by_key else "user_id"))
    times = np.asarray(events.column("time").to_numpy(), dtype=np.int64)
    keep: BoolArray | None = None
    if users is not None:
        allowed = pc.is_in(dictionary, value_set=pa.array(list(users), pa.string()))
        keep = np.asarray(allowed.to_numpy(zero_copy_only=False), dtype=bool)[codes]
    if until is not None:
        in_time = times <= until
        keep = in_time if keep is None else keep & in_time
    if keep is not None:
        codes, times = codes[keep], times[keep]
    names = (events.column("event_name") if "event_name" in events.column_names
             else pa.chunked_array([], pa.string()))  # any-event scans skip the names
    return UserRows(codes, times, len(dictionary), names, keep)


def distinct_pairs(rows: IntArray, cols: IntArray, n_rows: int,
                   n_cols: int) -> tuple[IntArray, IntArray]:
    """The distinct ``(row, col)`` pairs, ordered by ``(row, col)``."""
    keys = rows * n_cols + cols
    if n_rows * n_cols <= _DENSE_CELLS:
        seen = np.zeros(n_rows * n_cols, dtype=bool)
        seen[keys] = True
        keys = np.flatnonzero(seen)
    else:
        keys = np.unique(keys)
    return keys // n_cols, keys % n_cols


def check_period(period: str, field: str = "period") -> str:
    """The ``frames`` period name for a GraphQL ``DAY | WEEK | MONTH`` (any case)."""
    lowered = period.lower()
    if lowered not in PERIODS:
        raise bad_input(field, f"unknown period {period!r} (use DAY, WEEK or MONTH)")
    return lowered


def period_start_ms(index: int, period: str, tz: ZoneInfo | None) -> int:
    """The first instant (unix ms) of period ``index`` in the local calendar of ``tz``."""
    day = date.fromisoformat(period_label(index, period))
    local = datetime(day.year, day.month, day.day, tzinfo=tz or UTC)
    return int(local.timestamp()) * 1000


def _index(time_ms: int, period: str, tz: ZoneInfo | None) -> int:
    return int(period_index(np.array([time_ms], dtype=np.int64), period, tz)[0])


def _reported(window: Window, period: str, tz: ZoneInfo | None, now_ms: int) -> tuple[int, int]:
    """First and last period to report: those holding the window, started by now."""
    last = min(_index(window.end - 1, period, tz), _index(now_ms, period, tz))
    return _index(window.start, period, tz), last


# --- retention ------------------------------------------------------------------------


def validate_retention(query: RetentionQuery) -> None:
    check_period(query.period)
    if not 1 <= query.periods <= MAX_PERIODS:
        raise bad_input("periods", f"must be between 1 and {MAX_PERIODS}")
    if query.mode.upper() not in MODES:
        raise bad_input("mode", f"unknown mode {query.mode!r} (use ON or ON_OR_AFTER)")
    for field, name in (("startEvent", query.start_event), ("returnEvent", query.return_event)):
        if name is not None and not name.strip():
            raise bad_input(field, "must not be empty (leave it out for any event)")
    zone(query.timezone)


def retention_fetch(query: RetentionQuery, now_ms: int) -> EventFetch:
    """Start and return events from the beginning of time (first-ever start events) up to
    now; in ``ON`` mode no later than the last reported period of the last cohort."""
    validate_retention(query)
    names = (None if query.start_event is None or query.return_event is None
             else frozenset((query.start_event, query.return_event)))
    end = now_ms + 1
    if query.mode.upper() == "ON":
        period, tz = check_period(query.period), zone(query.timezone)
        _, last = _reported(query.window, period, tz, now_ms)
        end = max(0, min(end, period_start_ms(last + query.periods, period, tz)))
    if names is None and query.start_event is None and query.return_event is None:
        return EventFetch(None, 0, end, _ANY)
    return EventFetch(names, 0, end)


def compute_retention(events: pa.Table, query: RetentionQuery, now_ms: int,
                      users: Collection[str] | None = None) -> RetentionResult:
    """Cohort ``p`` = users whose first-ever ``start_event`` (any event when ``None``) is in
    the window and in period ``p``. ``retained[k]`` = members who did ``return_event`` (any
    time) in period ``p + k`` (``ON``) or in ``p + k`` or later (``ON_OR_AFTER``), for
    ``k = 0 .. periods - 1`` but only for periods started by ``now_ms``. Cohorts ascend."""
    validate_retention(query)
    period, tz, width = check_period(query.period), zone(query.timezone), query.periods
    first_p, last_p = _reported(query.window, period, tz, now_ms)
    if last_p < first_p:
        return RetentionResult([])
    n_cohorts = last_p - first_p + 1
    rows = user_rows(events, users, until=now_ms)
    start_user, start_time = rows.pick(query.start_event)
    first = np.full(rows.n_users, _NEVER, dtype=np.int64)
    np.minimum.at(first, start_user, start_time)
    members = np.flatnonzero((first >= query.window.start) & (first < query.window.end))
    cohort = period_index(first[members], period, tz) - first_p
    inside = (cohort >= 0) & (cohort < n_cohorts)
    members, cohort = members[inside], cohort[inside]
    position = np.full(rows.n_users, -1, dtype=np.int64)
    position[members] = np.arange(len(members))

    return_user, return_time = rows.pick(query.return_event)
    member = position[return_user]
    hit = member >= 0
    member = member[hit]
    k = period_index(return_time[hit], period, tz) - first_p - cohort[member]
    if query.mode.upper() == "ON":
        hit = (k >= 0) & (k < width)
        member, k = distinct_pairs(member[hit], k[hit], len(members), width)
        retained = np.bincount(cohort[member] * width + k, minlength=n_cohorts * width)
    else:  # retained in k if their last return is in p + k or later
        hit = k >= 0
        latest = np.full(len(members), -1, dtype=np.int64)
        np.maximum.at(latest, member[hit], np.minimum(k[hit], width - 1))
        back = latest >= 0
        last_k = np.bincount(cohort[back] * width + latest[back], minlength=n_cohorts * width)
        retained = last_k.reshape(n_cohorts, width)[:, ::-1].cumsum(axis=1)[:, ::-1].ravel()
    table = retained.reshape(n_cohorts, width)
    sizes = np.bincount(cohort, minlength=n_cohorts)
    now_p = _index(now_ms, period, tz)
    cohorts = [
        Cohort(period_label(first_p + i, period), int(sizes[i]),
               [int(x) for x in table[i, :min(width, now_p - first_p - i + 1)]])
        for i in range(n_cohorts)]
    nonempty = np.flatnonzero(sizes)
    return RetentionResult(cohorts[int(nonempty[0]):] if len(nonempty) else [])


# --- churn and lifecycle --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Activity:
    """Per period ``lo + i``: distinct active users and those also active in the period
    before (``continued[0]`` is 0: the period before ``lo`` is not looked at)."""

    lo: int
    active: IntArray
    continued: IntArray


def _activity(rows: UserRows, periods: IntArray, lo: int, hi: int) -> _Activity:
    n = hi - lo + 1
    inside = (periods >= lo) & (periods <= hi)
    user, offset = rows.user[inside], periods[inside] - lo
    present = np.zeros(rows.n_users, dtype=bool)
    present[user] = True
    compact = np.cumsum(present) - 1  # only users active in range take matrix rows
    user, offset = distinct_pairs(compact[user], offset, int(present.sum()), n)
    active = np.bincount(offset, minlength=n)
    again = (user[1:] == user[:-1]) & (offset[1:] == offset[:-1] + 1)
    continued = np.bincount(offset[1:][again], minlength=n)
    return _Activity(lo, active, continued)


def validate_period_query(query: PeriodQuery) -> None:
    check_period(query.period)
    zone(query.timezone)


def _span(rows: UserRows, query: PeriodQuery, now_ms: int) -> tuple[_Activity, int, int] | None:
    """Activity over ``[p0 - 1, p1]`` (starting later when there is no data before), and
    the first and last period to report."""
    period, tz = check_period(query.period), zone(query.timezone)
    first_p, last_p = _reported(query.window, period, tz, now_ms)
    periods = period_index(rows.time, period, tz)
    inside = periods[(periods >= first_p - 1) & (periods <= last_p)]
    if last_p < first_p or not len(inside):
        return None
    lo = max(first_p - 1, int(inside.min()))
    return _activity(rows, periods, lo, last_p), max(first_p, lo), last_p


def churn_fetch(query: PeriodQuery, now_ms: int) -> EventFetch:
    """Any event from the start of the period before the window's first period to the end
    of its last period (no later than now)."""
    validate_period_query(query)
    period, tz = check_period(query.period), zone(query.timezone)
    first_p, last_p = _reported(query.window, period, tz, now_ms)
    start = period_start_ms(first_p - 1, period, tz)
    end = max(start, min(now_ms + 1, period_start_ms(last_p + 1, period, tz)))
    return EventFetch(None, start, end, _ANY)


def compute_churn(events: pa.Table, query: PeriodQuery, now_ms: int,
                  users: Collection[str] | None = None) -> list[ChurnPeriod]:
    """Per period ``p``: ``active`` = users with any event in ``p``; ``previous_active`` =
    users with any event in ``p - 1``; ``churned`` = those of them not active in ``p``;
    ``rate = churned / previous_active`` (0.0 when nobody was active before)."""
    validate_period_query(query)
    period = check_period(query.period)
    span = _span(user_rows(events, users, until=now_ms), query, now_ms)
    if span is None:
        return []
    act, first_p, last_p = span
    out = []
    for p in range(first_p, last_p + 1):
        i = p - act.lo
        before = int(act.active[i - 1]) if i else 0
        churned = before - int(act.continued[i])
        out.append(ChurnPeriod(period_label(p, period), int(act.active[i]), before, churned,
                               churned / before if before else 0.0))
    return out


def lifecycle_fetch(query: PeriodQuery, now_ms: int) -> EventFetch:
    """Any event from the beginning of time (first-ever events) to the end of the window's
    last period (no later than now)."""
    validate_period_query(query)
    period, tz = check_period(query.period), zone(query.timezone)
    _, last_p = _reported(query.window, period, tz, now_ms)
    return EventFetch(None, 0, max(0, min(now_ms + 1, period_start_ms(last_p + 1, period, tz))),
                      _ANY)


def compute_lifecycle(events: pa.Table, query: PeriodQuery, now_ms: int,
                      users: Collection[str] | None = None) -> list[LifecyclePeriod]:
    """PostHog's lifecycle per period ``p``: ``new`` = first-ever event in ``p``;
    ``returning`` = active in ``p`` and ``p - 1``; ``resurrecting`` = active in ``p``, not
    in ``p - 1``, and not new; ``dormant`` = active in ``p - 1``, not in ``p`` (positive)."""
    validate_period_query(query)
    period, tz = check_period(query.period), zone(query.timezone)
    rows = user_rows(events, users, until=now_ms)
    span = _span(rows, query, now_ms)
    if span is None:
        return []
    act, first_p, last_p = span
    first = np.full(rows.n_users, _NEVER, dtype=np.int64)
    np.minimum.at(first, rows.user, rows.time)
    debut = period_index(first[first != _NEVER], period, tz) - act.lo
    new = np.bincount(debut[(debut >= 0) & (debut < len(act.active))],
                      minlength=len(act.active))
    out = []
    for p in range(first_p, last_p + 1):
        i = p - act.lo
        before = int(act.active[i - 1]) if i else 0
        kept = int(act.continued[i])
        out.append(LifecyclePeriod(period_label(p, period), int(new[i]), kept,
                                   int(act.active[i]) - int(new[i]) - kept, before - kept))
    return out
