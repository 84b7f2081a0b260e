"""retention, churn and lifecycle semantics on declarative journeys (no store involved).

Calendar used by the hand-computed tests (UTC; weeks start on Monday):
W0 = Oct 26 .. Nov 1, W1 = Nov 2 .. 8, W2 = Nov 9 .. 15, W3 = Nov 16 .. 22, W4 = Nov 23 .. 29.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.retention import (
    Cohort,
    EventFetch,
    PeriodQuery,
    RetentionQuery,
    churn_fetch,
    compute_churn,
    compute_lifecycle,
    compute_retention,
    lifecycle_fetch,
    retention_fetch,
)
from resolvers.window import Window
from tests.unit.tables import Journeys, journeys, ms, name_table

JOURNEYS: Journeys = {
    "ann": [("App Launch", "2026-11-02T10:00"), ("App Launch", "2026-11-10T10:00"),
            ("Purchase", "2026-11-17T10:00")],
    "bob": [("App Launch", "2026-11-03T10:00")],
    "cid": [("App Launch", "2026-10-28T10:00"), ("App Launch", "2026-11-04T10:00")],
    "dee": [("App Launch", "2026-11-09T10:00"), ("App Launch", "2026-11-23T10:00")],
    "eve": [("View", "2026-11-05T10:00"), ("App Launch", "2026-11-12T10:00"),
            ("Purchase", "2026-11-12T11:00")],
}
NOW = ms("2026-11-24T12:00")  # in W4
COHORT_WINDOW = Window(ms("2026-11-02T00:00"), ms("2026-11-16T00:00"))  # W1 and W2


def cohorts(result_cohorts: list[Cohort]) -> list[tuple[str, int, list[int]]]:
    return [(c.start, c.size, c.retained) for c in result_cohorts]


# --- retention ------------------------------------------------------------------------


def test_launch_retention_by_week() -> None:
    query = RetentionQuery(COHORT_WINDOW, "WEEK", 4, "App Launch", "App Launch")
    result = compute_retention(journeys(JOURNEYS), query, NOW)
    # W1 cohort: ann (Nov 2), bob (Nov 3); cid's first launch is Oct 28, before the window.
    #   k0 W1: ann, bob; k1 W2: ann (Nov 10); k2 W3: nobody (ann only purchased); k3 W4: none
    # W2 cohort: dee (Nov 9), eve (first launch Nov 12; her View does not count).
    #   k0: both; k1 W3: none; k2 W4: dee (Nov 23); k3 would be W5, not started by now
    assert cohorts(result.cohorts) == [("2026-11-02", 2, [2, 1, 0, 0]),
                                       ("2026-11-09", 2, [2, 0, 1])]


def test_on_or_after_counts_any_later_return() -> None:
    query = RetentionQuery(COHORT_WINDOW, "WEEK", 4, "App Launch", "App Launch", "ON_OR_AFTER")
    result = compute_retention(journeys(JOURNEYS), query, NOW)
    # W1: k1 ann (W2); k2, k3 nobody launches in W3 or later. W2: dee launches in W4, so she
    # counts for k1 (W3 or later) and k2 (W4 or later).
    assert cohorts(result.cohorts) == [("2026-11-02", 2, [2, 1, 0, 0]),
                                       ("2026-11-09", 2, [2, 1, 1])]


def test_return_event_differs_from_start_event() -> None:
    query = RetentionQuery(COHORT_WINDOW, "week", 4, "App Launch", "Purchase")
    result = compute_retention(journeys(JOURNEYS), query, NOW)
    # W1: ann purchases Nov 17 (W3) -> k2. W2: eve purchases Nov 12, same week as her launch.
    assert cohorts(result.cohorts) == [("2026-11-02", 2, [0, 0, 1, 0]),
                                       ("2026-11-09", 2, [1, 0, 0])]


def test_defaults_use_any_event_and_a_segment_filters_users() -> None:
    query = RetentionQuery(COHORT_WINDOW, "WEEK", 4)
    result = compute_retention(journeys(JOURNEYS), query, NOW)
    # first-ever event: ann W1, bob W1, cid W0 (outside), dee W2, eve W1 (View Nov 5).
    # W1 {ann, bob, eve}: k1 W2 ann + eve; k2 W3 ann (purchase); k3 W4 nobody.
    # W2 {dee}: k0 dee; k1 W3 none; k2 W4 dee.
    assert cohorts(result.cohorts) == [("2026-11-02", 3, [3, 2, 1, 0]),
                                       ("2026-11-09", 1, [1, 0, 1])]
    only = compute_retention(journeys(JOURNEYS), query, NOW, users={"ann", "dee"})
    assert cohorts(only.cohorts) == [("2026-11-02", 1, [1, 1, 1, 0]),
                                     ("2026-11-09", 1, [1, 0, 1])]


def test_window_and_period_boundaries() -> None:
    spec: Journeys = {
        "at_start": [("Open", "2026-11-02T00:00:00.000"), ("Open", "2026-11-09T00:00:00.000")],
        "at_end": [("Open", "2026-11-09T00:00:00.000")],  # the window's end is excluded
        "last_ms": [("Open", "2026-11-08T23:59:59.999"), ("Open", "2026-11-15T23:59:59.999")],
    }
    window = Window(ms("2026-11-02T00:00"), ms("2026-11-09T00:00"))
    result = compute_retention(journeys(spec), RetentionQuery(window, "WEEK", 3), NOW)
    # one cohort (W1) of at_start and last_ms; both are back in W2 (Nov 9 00:00 is W2 and
    # Nov 15 23:59:59.999 still is); nobody in W3.
    assert cohorts(result.cohorts) == [("2026-11-02", 2, [2, 2, 0])]


def test_recent_cohorts_get_shorter_lists_and_future_periods_are_not_reported() -> None:
    spec: Journeys = {"ann": [("Open", "2026-11-20T10:00")], "bob": [("Open", "2026-11-21T10:00")]}
    window = Window(ms("2026-11-20T00:00"), ms("2026-11-30T00:00"))
    now = ms("2026-11-21T12:00")
    result = compute_retention(journeys(spec), RetentionQuery(window, "DAY", 5), now)
    # cohorts Nov 20 and Nov 21 only (Nov 22.. have not started); Nov 20 has k0, k1.
    assert cohorts(result.cohorts) == [("2026-11-20", 1, [1, 0]), ("2026-11-21", 1, [1])]


def test_events_after_now_do_not_count() -> None:
    spec: Journeys = {"ann": [("Open", "2026-11-20T10:00"), ("Open", "2026-11-20T14:00")],
                      "bob": [("Open", "2026-11-20T13:00")]}
    window = Window(ms("2026-11-20T00:00"), ms("2026-11-30T00:00"))
    result = compute_retention(journeys(spec), RetentionQuery(window, "DAY", 2),
                               ms("2026-11-20T12:00"))
    assert cohorts(result.cohorts) == [("2026-11-20", 1, [1])]


def test_leading_empty_cohorts_are_left_out_but_inner_ones_stay() -> None:
    spec: Journeys = {"ann": [("Open", "2026-11-03T10:00")], "bob": [("Open", "2026-11-05T10:00")]}
    result = compute_retention(journeys(spec), RetentionQuery(Window(0, NOW + 1), "DAY", 2),
                               ms("2026-11-05T12:00"))
    assert cohorts(result.cohorts) == [("2026-11-03", 1, [1, 0]), ("2026-11-04", 0, [0, 0]),
                                       ("2026-11-05", 1, [1])]


def test_time_zone_moves_events_across_midnight() -> None:
    spec: Journeys = {"ann": [("Open", "2026-11-01T23:30")]}  # Nov 2 00:30 in Berlin (CET)
    window = Window(ms("2026-11-01T00:00"), ms("2026-11-02T00:00"))
    utc = compute_retention(journeys(spec), RetentionQuery(window, "DAY", 1), NOW)
    berlin = compute_retention(journeys(spec),
                               RetentionQuery(window, "DAY", 1, timezone="Europe/Berlin"), NOW)
    assert cohorts(utc.cohorts) == [("2026-11-01", 1, [1])]
    # in Berlin the window is Nov 1 01:00 .. Nov 2 01:00: cohorts Nov 1 (empty, left out), Nov 2
    assert cohorts(berlin.cohorts) == [("2026-11-02", 1, [1])]


def test_months() -> None:
    spec: Journeys = {"ann": [("Open", "2026-10-31T23:59"), ("Open", "2026-12-01T00:00")],
                      "bob": [("Open", "2026-11-15T00:00"), ("Open", "2026-11-30T00:00")]}
    window = Window(ms("2026-10-01T00:00"), ms("2026-12-01T00:00"))
    result = compute_retention(journeys(spec), RetentionQuery(window, "MONTH", 3),
                               ms("2026-12-15T00:00"))
    # Oct {ann}: Nov none, Dec ann. Nov {bob}: Nov bob, Dec none; Dec is the last period.
    assert cohorts(result.cohorts) == [("2026-10-01", 1, [1, 0, 1]), ("2026-11-01", 1, [1, 0])]


def test_empty_input_and_future_window() -> None:
    query = RetentionQuery(COHORT_WINDOW, "WEEK", 4)
    assert compute_retention(name_table([]), query, NOW).cohorts == []
    future = RetentionQuery(Window(NOW + 86_400_000, NOW + 10 * 86_400_000), "DAY", 4)
    assert compute_retention(journeys(JOURNEYS), future, NOW).cohorts == []


@pytest.mark.parametrize(("query", "message"), [
    (RetentionQuery(COHORT_WINDOW, "WEEK", 0), "periods: must be between 1 and 366"),
    (RetentionQuery(COHORT_WINDOW, "WEEK", 367), "periods: must be between 1 and 366"),
    (RetentionQuery(COHORT_WINDOW, "YEAR"), "period: unknown period 'YEAR'"),
    (RetentionQuery(COHORT_WINDOW, mode="BEFORE"), "mode: unknown mode"),
    (RetentionQuery(COHORT_WINDOW, timezone="Mars/Base"), "timezone: 'Mars/Base' is not"),
    (RetentionQuery(COHORT_WINDOW, start_event=" "), "startEvent: must not be empty"),
    (RetentionQuery(COHORT_WINDOW, return_event=""), "returnEvent: must not be empty"),
])
def test_bad_retention_input(query: RetentionQuery, message: str) -> None:
    with pytest.raises(GraphQLError, match=message) as caught:
        compute_retention(name_table([]), query, NOW)
    assert caught.value.extensions == {"code": "BAD_USER_INPUT"}
    with pytest.raises(GraphQLError, match=message):
        retention_fetch(query, NOW)


def test_retention_fetch() -> None:
    named = RetentionQuery(COHORT_WINDOW, "WEEK", 4, "App Launch", "Purchase")
    late = ms("2026-12-31T00:00")
    # last cohort W2 (Nov 9) + 4 weeks: returns up to the start of Dec 7 are needed
    assert retention_fetch(named, late) == EventFetch(
        frozenset({"App Launch", "Purchase"}), 0, ms("2026-12-07T00:00"))
    assert retention_fetch(named, NOW) == EventFetch(
        frozenset({"App Launch", "Purchase"}), 0, NOW + 1)
    unbounded = RetentionQuery(COHORT_WINDOW, "WEEK", 4, "App Launch", mode="ON_OR_AFTER")
    assert retention_fetch(unbounded, late) == EventFetch(None, 0, late + 1)
    anything = RetentionQuery(COHORT_WINDOW, "WEEK", 4)
    assert retention_fetch(anything, late).columns == ("user_key", "time")


# --- churn and lifecycle --------------------------------------------------------------

# active per week: W0 {cid}; W1 {ann, bob, cid, eve}; W2 {ann, dee, eve}; W3 {ann}; W4 {dee}
PERIOD_WINDOW = Window(ms("2026-11-02T00:00"), ms("2026-11-30T00:00"))  # W1 .. W4


def test_churn_by_week() -> None:
    result = compute_churn(journeys(JOURNEYS), PeriodQuery(PERIOD_WINDOW, "WEEK"), NOW)
    assert [(c.period, c.active, c.previous_active, c.churned) for c in result] == [
        ("2026-11-02", 4, 1, 0),  # cid (W0) is back in W1
        ("2026-11-09", 3, 4, 2),  # bob and cid leave
        ("2026-11-16", 1, 3, 2),  # dee and eve leave
        ("2026-11-23", 1, 1, 1),  # ann leaves
    ]
    assert [c.rate for c in result] == pytest.approx([0.0, 0.5, 2 / 3, 1.0])


def test_lifecycle_by_week() -> None:
    result = compute_lifecycle(journeys(JOURNEYS), PeriodQuery(PERIOD_WINDOW, "WEEK"), NOW)
    assert [(x.period, x.new, x.returning, x.resurrecting, x.dormant) for x in result] == [
        ("2026-11-02", 3, 1, 0, 0),  # new ann, bob, eve; cid returns from W0
        ("2026-11-09", 1, 2, 0, 2),  # new dee; ann, eve return; bob, cid go dormant
        ("2026-11-16", 0, 1, 0, 2),  # ann returns; dee, eve dormant
        ("2026-11-23", 0, 0, 1, 1),  # dee resurrects (seen W2, not W3); ann dormant
    ]


def test_churn_and_lifecycle_edges() -> None:
    events = journeys(JOURNEYS)
    # an open-ended window starts at the first week with data (W0), whose predecessor is empty
    since_ever = PeriodQuery(Window(0, PERIOD_WINDOW.end), "WEEK")
    churn = compute_churn(events, since_ever, NOW)
    assert [(c.period, c.active, c.previous_active, c.rate) for c in churn[:2]] == [
        ("2026-10-26", 1, 0, 0.0), ("2026-11-02", 4, 1, 0.0)]
    life = compute_lifecycle(events, since_ever, NOW)
    assert (life[0].period, life[0].new) == ("2026-10-26", 1)
    # periods not started by now are not reported
    early = ms("2026-11-17T00:00")
    assert [c.period for c in compute_churn(events, PeriodQuery(PERIOD_WINDOW), early)] == [
        "2026-11-02", "2026-11-09", "2026-11-16"]
    # a segment; an empty input; a window in the future
    # dee is seen in W2 and W4 only: W1 has no data in it or before it, so it is left out
    assert [(c.period, c.active, c.churned) for c in compute_churn(
        events, PeriodQuery(PERIOD_WINDOW), NOW, users={"dee"})] == [
            ("2026-11-09", 1, 0), ("2026-11-16", 0, 1), ("2026-11-23", 1, 0)]
    assert compute_churn(name_table([]), PeriodQuery(PERIOD_WINDOW), NOW) == []
    assert compute_lifecycle(name_table([]), PeriodQuery(PERIOD_WINDOW), NOW) == []
    next_week = Window(ms("2026-11-30T00:00"), ms("2026-12-30T00:00"))
    assert compute_churn(events, PeriodQuery(next_week), NOW) == []
    assert compute_lifecycle(events, PeriodQuery(next_week), NOW) == []
    # a window starting after now but in the current week still reports that week
    assert [c.period for c in compute_churn(events, PeriodQuery(Window(NOW + 1, NOW + 2)),
                                            NOW)] == ["2026-11-23"]


def test_churn_and_lifecycle_fetch() -> None:
    late = ms("2026-12-31T00:00")
    any_event = ("user_key", "time")  # no names needed
    assert churn_fetch(PeriodQuery(PERIOD_WINDOW), NOW) == EventFetch(
        None, ms("2026-10-26T00:00"), NOW + 1, any_event)
    assert churn_fetch(PeriodQuery(PERIOD_WINDOW), late) == EventFetch(
        None, ms("2026-10-26T00:00"), ms("2026-11-30T00:00"), any_event)
    # Oct 26 00:00 in Berlin (CET, DST ended Oct 25) is Oct 25 23:00 UTC
    assert churn_fetch(PeriodQuery(PERIOD_WINDOW, "WEEK", "Europe/Berlin"), late).start == ms(
        "2026-10-25T23:00")
    assert lifecycle_fetch(PeriodQuery(PERIOD_WINDOW, "MONTH"), late) == EventFetch(
        None, 0, ms("2026-12-01T00:00"), any_event)


@pytest.mark.parametrize(("query", "message"), [
    (PeriodQuery(PERIOD_WINDOW, "HOUR"), "period: unknown period 'HOUR'"),
    (PeriodQuery(PERIOD_WINDOW, "DAY", "Nowhere"), "timezone: 'Nowhere' is not"),
])
def test_bad_period_input(query: PeriodQuery, message: str) -> None:
    for run in (compute_churn, compute_lifecycle):
        with pytest.raises(GraphQLError, match=message):
            run(name_table([]), query, NOW)
    for plan in (churn_fetch, lifecycle_fetch):
        with pytest.raises(GraphQLError, match=message):
            plan(query, NOW)


# --- property tests against slow, obviously correct references -----------------------

BASE = ms("2026-09-20T00:00")  # the streams span Oct 1, Nov 1 and New York's DST change
STEP = 30 * 60_000  # half hours: hits UTC, New York and Kolkata midnights exactly
Row = tuple[str, str, int]


def ref_index(t: int, period: str, tz: str | None) -> int:
    day = datetime.fromtimestamp(t / 1000, tz=ZoneInfo(tz) if tz else UTC).date()
    if period == "day":
        return day.toordinal()
    if period == "week":
        return (day.toordinal() - 1) // 7  # date.fromordinal(1) is a Monday
    return day.year * 12 + day.month - 1


def ref_label(index: int, period: str) -> str:
    if period == "day":
        return date.fromordinal(index).isoformat()
    if period == "week":
        return (date.fromordinal(1) + timedelta(days=7 * index)).isoformat()
    return date(index // 12, index % 12 + 1, 1).isoformat()


def ref_retention(rows: list[Row], q: RetentionQuery, now: int,
                  users: set[str] | None) -> list[tuple[str, int, list[int]]]:
    period, tz = q.period.lower(), q.timezone
    rows = [r for r in rows if r[2] <= now and (users is None or r[0] in users)]

    def index(t: int) -> int:
        return ref_index(t, period, tz)

    first: dict[str, int] = {}
    for user, name, t in rows:
        if q.start_event in (None, name) and user not in first:
            first[user] = t
    out = []
    for p in range(index(q.window.start), min(index(q.window.end - 1), index(now)) + 1):
        members = {u for u, t in first.items()
                   if q.window.start <= t < q.window.end and index(t) == p}
        retained = []
        for k in range(min(q.periods, index(now) - p + 1)):
            back = {u for u, name, t in rows if u in members and q.return_event in (None, name)
                    and (index(t) == p + k if q.mode == "ON" else index(t) >= p + k)}
            retained.append(len(back))
        out.append((ref_label(p, period), len(members), retained))
    while out and out[0][1] == 0:
        out.pop(0)
    return out


def ref_periods(rows: list[Row], q: PeriodQuery, now: int, users: set[str] | None
                ) -> list[tuple[str, int, int, int, int, int, int]]:
    """(period, active, previous active, churned, new, returning, resurrecting)"""
    period, tz = q.period.lower(), q.timezone
    rows = [r for r in rows if r[2] <= now and (users is None or r[0] in users)]

    def index(t: int) -> int:
        return ref_index(t, period, tz)

    def active(p: int) -> set[str]:
        return {u for u, _, t in rows if index(t) == p}

    debut: dict[str, int] = {}
    for user, _, t in rows:
        debut.setdefault(user, index(t))
    out: list[tuple[str, int, int, int, int, int, int]] = []
    for p in range(index(q.window.start), min(index(q.window.end - 1), index(now)) + 1):
        now_active, before = active(p), active(p - 1)
        if not out and not now_active and not before:
            continue
        new = {u for u in now_active if debut[u] == p}
        out.append((ref_label(p, period), len(now_active), len(before), len(before - now_active),
                    len(new), len(now_active & before), len(now_active - before - new)))
    return out


names_st = st.sampled_from(["A", "B", "C"])
rows_st = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4", "u5"]), names_st,
                             st.integers(0, 70 * 48).map(lambda i: BASE + i * STEP)),
                   max_size=40)
tz_st = st.sampled_from([None, "America/New_York", "Asia/Kolkata"])
period_st = st.sampled_from(["DAY", "WEEK", "MONTH"])
users_st = st.none() | st.sets(st.sampled_from(["u1", "u2", "u3", "u4", "u5"]))


@st.composite
def window_and_now(draw: st.DrawFn) -> tuple[Window, int]:
    a, b = sorted(draw(st.lists(st.integers(0, 72 * 48), min_size=2, max_size=2, unique=True)))
    now = BASE + draw(st.integers(0, 72 * 48)) * STEP + draw(st.sampled_from([0, -1, 1]))
    return Window(BASE + a * STEP, BASE + b * STEP), now


@settings(max_examples=200, deadline=None)
@given(rows=rows_st, span=window_and_now(), period=period_st, periods=st.integers(1, 5),
       start=st.sampled_from([None, "A"]), back=st.sampled_from([None, "A", "B"]),
       mode=st.sampled_from(["ON", "ON_OR_AFTER"]), tz=tz_st, users=users_st)
def test_retention_matches_reference(rows: list[Row], span: tuple[Window, int], period: str,
                                     periods: int, start: str | None, back: str | None,
                                     mode: str, tz: str | None, users: set[str] | None) -> None:
    window, now = span
    query = RetentionQuery(window, period, periods, start, back, mode, tz)
    ordered = sorted(rows, key=lambda r: r[2])
    got = compute_retention(name_table(rows), query, now, users)
    assert cohorts(got.cohorts) == ref_retention(ordered, query, now, users)


@settings(max_examples=200, deadline=None)
@given(rows=rows_st, span=window_and_now(), period=period_st, tz=tz_st, users=users_st)
def test_churn_and_lifecycle_match_reference(rows: list[Row], span: tuple[Window, int],
                                             period: str, tz: str | None,
                                             users: set[str] | None) -> None:
    window, now = span
    query = PeriodQuery(window, period, tz)
    expected = ref_periods(sorted(rows, key=lambda r: r[2]), query, now, users)
    churn = compute_churn(name_table(rows), query, now, users)
    life = compute_lifecycle(name_table(rows), query, now, users)
    assert [(c.period, c.active, c.previous_active, c.churned) for c in churn] == [
        e[:4] for e in expected]
    assert [c.rate for c in churn] == [e[3] / e[2] if e[2] else 0.0 for e in expected]
    assert [(x.period, x.new, x.returning, x.resurrecting, x.dormant) for x in life] == [
        (e[0], e[4], e[5], e[6], e[3]) for e in expected]
