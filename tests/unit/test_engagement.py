"""engagement semantics on declarative journeys (no store involved)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pyarrow as pa
import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.engagement import EngagementResult, EventRate, compute_engagement, events_window
from resolvers.frames import DAY_MS
from resolvers.window import Window
from tests.unit.tables import events_table, ms


def journeys(spec: dict[str, list[tuple[str, str, str]]]) -> list[dict[str, Any]]:
    """{user: [(event name, ISO time, session id)]} -> event rows."""
    return [{"insert_id": f"{user}{i}", "user_id": user, "event_name": name, "time": ms(at),
             "session_id": sid}
            for user, evs in spec.items() for i, (name, at, sid) in enumerate(evs)]


def sessions_of(rows: list[dict[str, Any]]) -> pa.Table:
    """Sessions as the store resolves them: first / last event time of each session id."""
    spans: dict[str, tuple[str, int, int]] = {}
    for r in rows:
        user, lo, hi = spans.get(r["session_id"], (r["user_id"], r["time"], r["time"]))
        spans[r["session_id"]] = (user, min(lo, r["time"]), max(hi, r["time"]))
    return sessions_table([(sid, *span) for sid, span in spans.items()])


def sessions_table(rows: list[tuple[str, str, int, int]]) -> pa.Table:
    """(session id, resolved user, start ms, end ms), ordered by (start, id)."""
    rows = sorted(rows, key=lambda r: (r[2], r[0]))
    return pa.table({"session_id": pa.array([r[0] for r in rows], pa.string()),
                     "resolved_user": pa.array([r[1] for r in rows], pa.string()),
                     "start_time": pa.array([r[2] for r in rows], pa.int64()),
                     "end_time": pa.array([r[3] for r in rows], pa.int64()),
                     "events": pa.array([1] * len(rows), pa.int32())})


WEEK = Window(ms("2026-11-01T00:00"), ms("2026-11-08T00:00"))
JOURNEYS = {
    # Two devices: s6 starts while s1 is still open.
    "ann": [("App Launch", "2026-11-02T10:00", "s1"), ("Page View", "2026-11-02T10:05", "s1"),
            ("Search", "2026-11-02T10:03", "s6"), ("Page View", "2026-11-02T10:20", "s6"),
            ("App Launch", "2026-11-07T20:00", "s2"), ("Page View", "2026-11-07T20:01", "s2")],
    "bob": [("App Launch", "2026-10-15T09:00", "s0"), ("Page View", "2026-11-05T12:00", "s3")],
    # Starts in the last ms of the window and runs past its end.
    "cy": [("App Launch", "2026-11-07T23:59:59.999", "s4"),
           ("App Close", "2026-11-08T00:00:30", "s4")],
    "dee": [("App Launch", "2026-10-08T23:59:59.999", "s5")],  # 1 ms before end - 30d
    "eve": [("App Launch", "2026-11-08T00:00", "s7")],  # at the (excluded) end
    "fay": [("App Launch", "2026-10-09T00:00", "s8")],  # exactly end - 30d
}


def test_engagement_follows_the_design() -> None:
    rows = journeys(JOURNEYS)
    e = compute_engagement(events_table(rows), sessions_of(rows), WEEK, first=3)
    # window: ann, bob, cy; day [11-07, 11-08): ann 20:00, cy 23:59:59.999;
    # 7 days = the window; 30 days [10-09, 11-08): + fay (dee is 1 ms early, eve at the end).
    assert (e.active_users, e.dau, e.wau, e.mau) == (3, 2, 3, 4)
    assert e.stickiness == 0.5
    # ann: s1 [10:00, 10:05], s6 [10:03, 10:20], s2 [11-07 20:00, 20:01]:
    # gaps max(10:03 - 10:05, 0) = 0 and 11-07 20:00 - 11-02 10:20 = 5d 9h 40m = 466800 s;
    # bob and cy have one session each in the window (s0 starts before it).
    assert e.average_seconds_between_sessions == pytest.approx((0 + 466_800) / 2)
    # s1 s6 s2 s3 s4 by ann, bob, cy
    assert e.sessions_per_user == pytest.approx(5 / 3)
    # Page View: s1 s6 s2 s3 = 4; App Launch: s1 s2 s4 = 3; App Close (s4, after the end
    # but in a session that started in the window) 1; Search 1; ties by name.
    assert e.interactions_per_session == [
        EventRate("Page View", 0.8), EventRate("App Launch", 0.6), EventRate("App Close", 0.2)]


def test_session_ties_order_by_id() -> None:
    t = ms("2026-11-03T10:00")
    table = sessions_table([("b", "ann", t, t + 10_000), ("a", "ann", t, t + 60_000),
                            ("c", "ann", t + 100_000, t + 110_000)])
    e = compute_engagement(events_table([]), table, WEEK)
    # a, b, c: max(t - (t+60s), 0) = 0, (t+100s) - (t+10s) = 90 s -> 45 s
    # (b, a, c would give 0 and 40 s).
    assert e.average_seconds_between_sessions == 45.0
    assert (e.sessions_per_user, e.active_users, e.interactions_per_session) == (3.0, 0, [])


def test_empty_input() -> None:
    e = compute_engagement(events_table([]), sessions_table([]), WEEK, first=5)
    assert e == EngagementResult(0, 0, 0, 0, 0.0, None, 0.0, [])


def test_one_session_each_has_no_gap_and_first_zero_lists_nothing() -> None:
    rows = journeys({"ann": [("App Launch", "2026-11-02T10:00", "s1")],
                     "bob": [("App Launch", "2026-11-02T11:00", "s2")]})
    e = compute_engagement(events_table(rows), sessions_of(rows), WEEK, first=0)
    assert (e.average_seconds_between_sessions, e.sessions_per_user) == (None, 1.0)
    assert e.interactions_per_session == []


def test_separate_session_events_are_restricted_to_the_window_sessions() -> None:
    rows = journeys(JOURNEYS)
    extra = journeys({"zed": [("Search", "2026-11-03T00:00", "elsewhere")]})
    e = compute_engagement(events_table(rows), sessions_of(rows), WEEK,
                           session_events=events_table(rows + extra))
    assert [r.event for r in e.interactions_per_session] == [
        "Page View", "App Launch", "App Close", "Search"]
    assert e.interactions_per_session[-1].per_session == 0.2


def test_events_window_looks_back_thirty_days() -> None:
    assert events_window(WEEK) == Window(WEEK.end - 30 * DAY_MS, WEEK.end)
    long = Window(WEEK.end - 60 * DAY_MS, WEEK.end)
    assert events_window(long) == long


def chunked(table: pa.Table) -> pa.Table:
    """The same rows in two record batches, as stores often hand them back."""
    half = table.num_rows // 2
    return pa.concat_tables([table.slice(0, half), table.slice(half)])


def test_chunked_tables_give_the_same_answer() -> None:
    rows = journeys(JOURNEYS)
    events, sessions = events_table(rows), sessions_of(rows)
    assert compute_engagement(chunked(events), chunked(sessions), WEEK) == compute_engagement(
        events, sessions, WEEK)


def test_bad_first() -> None:
    with pytest.raises(GraphQLError, match=r"interactionsPerSession\.first: must be >= 0"):
        compute_engagement(events_table([]), sessions_table([]), WEEK, first=-1)


# -- property: compute_engagement == an obviously-correct reference ------------------------

BASE = ms("2026-10-01T00:00")
HOUR = 3_600_000


def reference(rows: list[dict[str, Any]], sessions: list[tuple[str, str, int, int]],
              w: Window, first: int | None) -> EngagementResult:
    def active(lo: int) -> int:
        return len({r["user_id"] for r in rows if lo <= r["time"] < w.end})

    dau, mau = active(w.end - DAY_MS), active(w.end - 30 * DAY_MS)
    inside = [s for s in sessions if w.start <= s[2] < w.end]
    per_user: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for s in inside:
        per_user[s[1]].append(s)
    gaps = []
    for own in per_user.values():
        own.sort(key=lambda s: (s[2], s[0]))
        gaps += [max(b[2] - a[3], 0) for a, b in zip(own, own[1:], strict=False)]
    ids = {s[0] for s in inside}
    counts = Counter(r["event_name"] for r in rows if r["session_id"] in ids)
    rates = sorted(((n, c / len(inside)) for n, c in counts.items()),
                   key=lambda x: (-x[1], x[0]))
    return EngagementResult(
        active_users=active(w.start), dau=dau, wau=active(w.end - 7 * DAY_MS), mau=mau,
        stickiness=dau / mau if mau else 0.0,
        average_seconds_between_sessions=sum(gaps) / len(gaps) / 1000 if gaps else None,
        sessions_per_user=len(inside) / len(per_user) if inside else 0.0,
        interactions_per_session=[EventRate(n, r) for n, r in rates[:first]])


# A coarse grid (6-hour steps; sessions start on 13 whole days) so that ties, overlaps and
# events exactly on the window's, day's, week's and month's boundaries are common.
STEP = 6 * HOUR
session_rows = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 12),
                                  st.integers(0, 3000)), max_size=12)
event_rows = st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from(["x", "y", "z"]),
                                st.integers(0, 40 * 4), st.integers(-1, 11)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(session_rows, event_rows, st.integers(0, 12 * 4), st.integers(1, 20 * 4),
       st.none() | st.integers(0, 3))
def test_matches_reference(raw_sessions: list[tuple[str, int, int]],
                           raw_events: list[tuple[str, str, int, int]], start: int,
                           span: int, first: int | None) -> None:
    sessions = [(f"s{i}", user, BASE + day * DAY_MS, BASE + day * DAY_MS + m * 60_000)
                for i, (user, day, m) in enumerate(raw_sessions)]
    rows = [{"insert_id": f"e{i}", "user_id": user, "event_name": name,
             "time": BASE + q * STEP, "session_id": f"s{sid}" if sid >= 0 else None}
            for i, (user, name, q, sid) in enumerate(raw_events)]
    w = Window(BASE + start * STEP, BASE + (start + span) * STEP)
    got = compute_engagement(events_table(rows), sessions_table(sessions), w, first=first)
    assert_same(got, reference(rows, sessions, w, first))


def assert_same(got: EngagementResult, want: EngagementResult) -> None:
    assert (got.active_users, got.dau, got.wau, got.mau) == (
        want.active_users, want.dau, want.wau, want.mau)
    assert got.stickiness == pytest.approx(want.stickiness)
    assert got.average_seconds_between_sessions == pytest.approx(
        want.average_seconds_between_sessions)
    assert got.sessions_per_user == pytest.approx(want.sessions_per_user)
    assert [r.event for r in got.interactions_per_session] == [
        r.event for r in want.interactions_per_session]
    assert [r.per_session for r in got.interactions_per_session] == pytest.approx(
        [r.per_session for r in want.interactions_per_session])
