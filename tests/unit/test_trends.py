"""trends semantics on declarative journeys (no store involved).

Calendar: 2026-11-23 and 2026-11-30 are Mondays; November ends on Monday the 30th.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.funnels import PropertyFilter
from resolvers.trends import (
    TrendSeriesQuery,
    TrendsFetch,
    TrendsQuery,
    compute_trends,
    trends_fetch,
    validate_trends,
)
from resolvers.window import Window
from tests.unit.tables import events_table, ms

Event = tuple[str, str, str | None, dict[str, Any] | None]  # name, ISO time, session, props


def journeys(spec: dict[str, tuple[str | None, list[Event]]]) -> pa.Table:
    """{user: (os, [(event name, ISO time, session, custom properties)])} -> events."""
    return events_table([
        {"insert_id": f"{user}{i}", "user_id": user, "event_name": name, "time": ms(at),
         "session_id": session, "os": os,
         "properties": None if props is None else orjson.dumps(props).decode()}
        for user, (os, evs) in spec.items()
        for i, (name, at, session, props) in enumerate(evs)])


EVENTS = journeys({
    "ann": ("iOS", [
        ("App Launch", "2026-11-20T10:00", "s0", None),  # before the day and week windows
        ("App Launch", "2026-11-29T10:00", "s1", None),
        ("Purchase", "2026-11-29T10:30", "s1", {"amount": 5, "plan": "pro"}),
        ("Purchase", "2026-11-30T09:00", "s2", {"amount": 20, "plan": "pro"}),
        ("App Launch", "2026-12-01T08:00", "s3", None)]),
    "bob": ("Android", [
        ("App Launch", "2026-11-29T23:30", "s4", None),
        ("Purchase", "2026-11-30T00:15", "s4", {"amount": 12, "plan": "free"}),  # s4 spans
        ("Purchase", "2026-12-01T12:00", "s5", {"amount": 8})]),                   # midnight
    "cy": ("iOS", [
        ("App Launch", "2026-12-01T23:00", "s6", None)]),
})
DAYS = Window(ms("2026-11-28T00:00"), ms("2026-12-03T00:00"))
DAY_LABELS = [f"2026-{d}T00:00:00Z" for d in ("11-28", "11-29", "11-30", "12-01", "12-02")]
LAUNCH, PURCHASE, ANY = (TrendSeriesQuery("App Launch"), TrendSeriesQuery("Purchase"),
                         TrendSeriesQuery())


def trends(*series: TrendSeriesQuery, window: Window = DAYS, interval: str = "DAY",
           **options: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    r = compute_trends(EVENTS, TrendsQuery(series, window, interval, **options))
    assert r.interval == interval
    return r.buckets, [(s.name, s.breakdown_value, s.total, s.values) for s in r.series]


# --- each math --------------------------------------------------------------------------


def test_total_counts_events_per_day_empty_days_included() -> None:
    buckets, series = trends(LAUNCH, PURCHASE)
    assert buckets == DAY_LABELS
    assert series == [("App Launch", None, 4.0, [0.0, 2.0, 0.0, 2.0, 0.0]),
                      ("Purchase", None, 4.0, [0.0, 1.0, 2.0, 1.0, 0.0])]


def test_unique_users_total_is_distinct_over_the_window() -> None:
    _, series = trends(TrendSeriesQuery(math="UNIQUE_USERS"))
    # 11-29 ann bob; 11-30 ann bob; 12-01 ann bob cy: three people, not 7
    assert series == [("All events", None, 3.0, [0.0, 2.0, 2.0, 3.0, 0.0])]


def test_per_user_average_divides_by_the_bucket_users() -> None:
    _, series = trends(TrendSeriesQuery("Purchase", math="PER_USER_AVERAGE", name="avg"))
    # 11-29 ann 1/1; 11-30 ann + bob 2/2; 12-01 bob 1/1; window 4 purchases / 2 buyers
    assert series == [("avg", None, 2.0, [0.0, 1.0, 1.0, 1.0, 0.0])]


def test_sessions_count_a_session_in_every_bucket_it_touches_once_in_total() -> None:
    _, series = trends(TrendSeriesQuery(math="SESSIONS"))
    # 11-29 s1 s4; 11-30 s2 s4; 12-01 s3 s5 s6 -> s1..s6: 6 sessions
    assert series == [("All events", None, 6.0, [0.0, 2.0, 2.0, 3.0, 0.0])]


def test_events_without_a_session_are_not_sessions() -> None:
    table = events_table([
        {"insert_id": "a", "user_id": "u", "event_name": "X", "time": ms("2026-11-29T01:00")},
        {"insert_id": "b", "user_id": "u", "event_name": "X", "time": ms("2026-11-29T02:00"),
         "session_id": "s"}])
    r = compute_trends(table, TrendsQuery([TrendSeriesQuery("X", math="SESSIONS")], DAYS))
    assert (r.series[0].total, r.series[0].values) == (1.0, [0.0, 1.0, 0.0, 0.0, 0.0])


# --- intervals and time zones -----------------------------------------------------------


def test_weeks_start_on_monday() -> None:
    buckets, series = trends(LAUNCH, TrendSeriesQuery(math="UNIQUE_USERS"),
                             window=Window(ms("2026-11-23T00:00"), ms("2026-12-07T00:00")),
                             interval="WEEK")
    # Sunday 11-29 is in the week of 11-23; Monday 11-30 starts the next
    assert buckets == ["2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"]
    assert series == [("App Launch", None, 4.0, [2.0, 2.0]),
                      ("All events", None, 3.0, [2.0, 3.0])]


def test_months_are_calendar_months_cut_by_the_window() -> None:
    buckets, series = trends(LAUNCH, PURCHASE, interval="MONTH",
                             window=Window(ms("2026-11-15T00:00"), ms("2026-12-15T00:00")))
    assert buckets == ["2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"]
    # ann's 11-20 launch is in the window now; the month bucket starts before it
    assert series == [("App Launch", None, 5.0, [3.0, 2.0]),
                      ("Purchase", None, 4.0, [3.0, 1.0])]


def test_days_in_a_time_zone() -> None:
    new_york = Window(ms("2026-11-29T05:00"), ms("2026-12-02T05:00"))
    buckets, series = trends(LAUNCH, PURCHASE, window=new_york, timezone="America/New_York")
    assert buckets == ["2026-11-29T00:00:00-05:00", "2026-11-30T00:00:00-05:00",
                       "2026-12-01T00:00:00-05:00"]
    # bob's purchase at 00:15 UTC on 11-30 is 19:15 on the 29th in New York
    assert series == [("App Launch", None, 4.0, [2.0, 0.0, 2.0]),
                      ("Purchase", None, 4.0, [2.0, 1.0, 1.0])]


def test_hours_utc_and_half_hour_zone() -> None:
    w = Window(ms("2026-11-29T23:00"), ms("2026-11-30T01:00"))
    assert trends(ANY, window=w, interval="HOUR") == (
        ["2026-11-29T23:00:00Z", "2026-11-30T00:00:00Z"],
        [("All events", None, 2.0, [1.0, 1.0])])
    # Kolkata hours start at :30 UTC: 23:30 and 00:15 UTC share 05:00-06:00 local
    assert trends(ANY, window=w, interval="HOUR", timezone="Asia/Kolkata") == (
        ["2026-11-30T04:00:00+05:30", "2026-11-30T05:00:00+05:30",
         "2026-11-30T06:00:00+05:30"],
        [("All events", None, 2.0, [0.0, 2.0, 0.0])])


def test_daylight_saving_hours() -> None:
    def labels(start: str, end: str) -> list[str]:
        return trends(ANY, window=Window(ms(start), ms(end)), interval="HOUR",
                      timezone="Europe/Berlin")[0]

    # autumn: 02:00-03:00 happens twice, two buckets; spring: 02:00-03:00 never happens
    assert labels("2026-10-25T00:00", "2026-10-25T02:00") == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    assert labels("2026-03-29T00:00", "2026-03-29T02:00") == [
        "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]


# --- filters, names and breakdowns ------------------------------------------------------


def test_where_filters_on_properties_and_columns() -> None:
    big = TrendSeriesQuery("Purchase", (PropertyFilter("amount", "gte", 10),))
    ios = TrendSeriesQuery(None, (PropertyFilter("os", "eq", "iOS"),), name="iOS events")
    _, series = trends(big, ios)
    assert series == [("Purchase", None, 2.0, [0.0, 0.0, 2.0, 0.0, 0.0]),
                      ("iOS events", None, 5.0, [0.0, 2.0, 1.0, 2.0, 0.0])]


def test_breakdown_by_property_ranks_by_total_unset_last() -> None:
    _, series = trends(PURCHASE, breakdown="plan")
    assert series == [("Purchase", "pro", 2.0, [0.0, 1.0, 1.0, 0.0, 0.0]),
                      ("Purchase", "free", 1.0, [0.0, 0.0, 1.0, 0.0, 0.0]),
                      ("Purchase", None, 1.0, [0.0, 0.0, 0.0, 1.0, 0.0])]
    _, top = trends(PURCHASE, breakdown="plan", breakdown_limit=2)
    assert [s[1] for s in top] == ["pro", "free"]  # the rest is left out
    _, numbers = trends(PURCHASE, breakdown="amount", breakdown_limit=1)
    assert numbers == [("Purchase", "12", 1.0, [0.0, 0.0, 1.0, 0.0, 0.0])]  # JSON, by text


def test_breakdown_by_column_per_series() -> None:
    _, series = trends(LAUNCH, TrendSeriesQuery("Purchase", math="UNIQUE_USERS"),
                       TrendSeriesQuery("Nothing"), breakdown="os")
    assert series == [("App Launch", "iOS", 3.0, [0.0, 1.0, 0.0, 2.0, 0.0]),
                      ("App Launch", "Android", 1.0, [0.0, 1.0, 0.0, 0.0, 0.0]),
                      ("Purchase", "Android", 1.0, [0.0, 0.0, 1.0, 1.0, 0.0]),
                      ("Purchase", "iOS", 1.0, [0.0, 1.0, 1.0, 0.0, 0.0])]
    # a series without events has no values to break down, but is there without one
    assert trends(TrendSeriesQuery("Nothing"))[1] == [
        ("Nothing", None, 0.0, [0.0] * 5)]


def test_fetch_names_the_scan() -> None:
    query = TrendsQuery([TrendSeriesQuery("B", (PropertyFilter("amount", "gt", 1),)),
                         TrendSeriesQuery("A", math="SESSIONS")], DAYS, breakdown="os")
    assert trends_fetch(query) == TrendsFetch(
        ("A", "B"), DAYS.start, DAYS.end,
        ("time", "event_name", "session_id", "os", "properties"))
    anything = TrendsQuery([TrendSeriesQuery(math="UNIQUE_USERS"), TrendSeriesQuery("A")],
                           DAYS)
    assert trends_fetch(anything) == TrendsFetch(
        None, DAYS.start, DAYS.end, ("time", "event_name", "user_id"))


# --- bad input --------------------------------------------------------------------------


def q(*series: TrendSeriesQuery, **options: Any) -> TrendsQuery:
    return TrendsQuery(series or (ANY,), options.pop("window", DAYS), **options)


@pytest.mark.parametrize(("query", "message"), [
    (TrendsQuery([], DAYS), "series: give 1 to 10 series"),
    (TrendsQuery([ANY] * 11, DAYS), "series: give 1 to 10 series"),
    (q(TrendSeriesQuery("")), r"series\[0\]\.event: must not be empty"),
    (q(ANY, TrendSeriesQuery(math="MEDIAN")), r"series\[1\]\.math: unknown math 'MEDIAN'"),
    (q(TrendSeriesQuery("A", (PropertyFilter("k", "like", 1),))),
     r"series\[0\]\.where\[0\]\.op"),
    (q(interval="YEAR"), "interval: unknown interval 'YEAR'"),
    (q(breakdown=" "), "breakdown: give a property key"),
    (q(breakdown_limit=0), "breakdownLimit: must be between 1 and 100"),
    (q(breakdown_limit=101), "breakdownLimit: must be between 1 and 100"),
    (q(timezone="Mars/Olympus"), "timezone: 'Mars/Olympus' is not an IANA time zone"),
    (q(interval="HOUR", window=Window(ms("2026-10-01T00:00"), ms("2026-11-12T00:00"))),
     "window: holds more than 1,000 HOUR buckets"),
    (q(interval="HOUR", window=Window(0, ms("2026-11-12T00:00"))),
     "window: holds more than 1,000 HOUR buckets"),
    (q(window=Window(ms("2024-01-01T00:00"), ms("2026-11-12T00:00"))),
     "window: holds 1,046 DAY buckets"),
])
def test_bad_input_names_the_argument(query: TrendsQuery, message: str) -> None:
    for check in (validate_trends, lambda x: compute_trends(EVENTS, x)):
        with pytest.raises(GraphQLError, match=message) as info:
            check(query)
        assert info.value.extensions == {"code": "BAD_USER_INPUT"}


def test_a_thousand_hours_pass() -> None:
    w = Window(ms("2026-10-01T00:00"), ms("2026-10-01T00:00") + 1000 * 3_600_000)
    assert len(compute_trends(EVENTS, q(interval="HOUR", window=w)).buckets) == 1000


# --- against a slow, obviously correct reference ----------------------------------------


@dataclass(frozen=True)
class Row:
    user: str
    name: str
    time: int
    session: str | None
    os: str | None
    plan: str | None
    amount: int | None


def ref_bucket(t: int, interval: str, tz: ZoneInfo | None) -> int:
    """The start (ms) of the local hour / day / Monday / month 1st holding ``t``."""
    local = datetime.fromtimestamp(t / 1000, tz or UTC)
    if interval == "HOUR":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        day = local.date()
        if interval == "WEEK":
            day -= timedelta(days=day.weekday())
        elif interval == "MONTH":
            day = day.replace(day=1)
        start = datetime(day.year, day.month, day.day, tzinfo=tz or UTC)
    return int(start.timestamp() * 1000)


def ref_trends(rows: list[Row], query: TrendsQuery) -> tuple[list[str], list[tuple[Any, ...]]]:
    tz = ZoneInfo(query.timezone) if query.timezone else None
    w = query.window
    every = [*range(w.start, w.end, 15 * 60_000), w.end - 1]  # every bucket holds one
    starts = sorted({ref_bucket(t, query.interval, tz) for t in every})
    labels = []
    for s in starts:
        text = datetime.fromtimestamp(s / 1000, tz or UTC).isoformat()
        labels.append(text.replace("+00:00", "Z") if tz is None else text)

    def key(row: Row) -> str | None:
        if query.breakdown is None:
            return None
        value = getattr(row, query.breakdown)
        return value if value is None or isinstance(value, str) else json.dumps(value)

    def measure(mine: list[Row], math: str) -> float:
        users = {r.user for r in mine}
        if math == "TOTAL":
            return float(len(mine))
        if math == "UNIQUE_USERS":
            return float(len(users))
        if math == "SESSIONS":
            return float(len({r.session for r in mine if r.session is not None}))
        return len(mine) / len(users) if users else 0.0

    out: list[tuple[Any, ...]] = []
    for spec in query.series:
        mine = [r for r in rows if w.start <= r.time < w.end
                and spec.event in (None, r.name)
                and all(ref_where(r, f) for f in spec.where)]
        found = []
        for value in {key(r) for r in mine} if query.breakdown else {None}:
            group = [r for r in mine if key(r) == value]
            values = [measure([r for r in group
                               if ref_bucket(r.time, query.interval, tz) == s], spec.math)
                      for s in starts]
            found.append((spec.label, value, measure(group, spec.math), values))
        found.sort(key=lambda f: (-f[2], f[1] is None, f[1] or ""))
        out += found[:query.breakdown_limit]
    return labels, out


def ref_where(row: Row, f: PropertyFilter) -> bool:
    if f.key == "amount":
        return row.amount is not None and row.amount >= f.value
    return row.os == f.value


BASE = ms("2026-10-20T00:00")  # spans Berlin's (10-25) and New York's (11-01) clock change
STEP = 37 * 60_000
rows_st = st.lists(st.builds(
    Row, st.sampled_from(["u1", "u2", "u3", "u4"]), st.sampled_from(["A", "B", "C"]),
    st.integers(0, 1_400).map(lambda i: BASE + i * STEP),
    st.sampled_from([None, "s1", "s2", "s3"]), st.sampled_from([None, "iOS", "Android"]),
    st.sampled_from([None, "pro", "free"]), st.none() | st.integers(1, 5)), max_size=40)
filters_st = st.lists(st.sampled_from([PropertyFilter("amount", "gte", 3),
                                       PropertyFilter("os", "eq", "iOS")]),
                      max_size=1).map(tuple)
series_st = st.builds(TrendSeriesQuery, st.sampled_from([None, "A", "B"]), filters_st,
                      st.sampled_from(["TOTAL", "UNIQUE_USERS", "PER_USER_AVERAGE",
                                       "SESSIONS"]))


def table_of(rows: list[Row]) -> pa.Table:
    def props(r: Row) -> str | None:
        found = {k: v for k, v in (("plan", r.plan), ("amount", r.amount)) if v is not None}
        return orjson.dumps(found).decode() if found else None

    return events_table([{"insert_id": f"e{i:03d}", "user_id": r.user, "event_name": r.name,
                          "time": r.time, "session_id": r.session, "os": r.os,
                          "properties": props(r)} for i, r in enumerate(rows)])


@settings(max_examples=200, deadline=None)
@given(rows=rows_st, series=st.lists(series_st, min_size=1, max_size=3),
       span=st.lists(st.integers(0, 1_400), min_size=2, max_size=2, unique=True),
       offset=st.sampled_from([0, 1, 29 * 60_000]),
       interval=st.sampled_from(["HOUR", "DAY", "WEEK", "MONTH"]),
       tz=st.sampled_from([None, "America/New_York", "Asia/Kolkata", "Europe/Berlin"]),
       breakdown=st.sampled_from([None, "os", "plan", "amount"]), limit=st.integers(1, 3))
def test_matches_reference(rows: list[Row], series: list[TrendSeriesQuery], span: list[int],
                           offset: int, interval: str, tz: str | None, breakdown: str | None,
                           limit: int) -> None:
    lo, hi = sorted(span)
    window = Window(BASE + lo * STEP + offset, BASE + hi * STEP)
    query = TrendsQuery(series, window, interval, breakdown, tz, limit)
    got = compute_trends(table_of(rows), query)
    assert (got.buckets, [(s.name, s.breakdown_value, s.total, s.values)
                          for s in got.series]) == ref_trends(rows, query)
