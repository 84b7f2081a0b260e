"""crashes semantics on declarative journeys (no store involved)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.crashes import (
    CRASH_GROUPS,
    CrashCause,
    CrashGroup,
    CrashReport,
    compute_crashes,
)
from resolvers.window import Window
from tests.unit.tables import events_table, ms


def journeys(spec: dict[str, list[tuple[str, str, str | None, dict[str, Any] | None]]]
             ) -> pa.Table:
    """{user: [(event name, ISO time, os, properties)]} -> the events table."""
    return events_table([
        {"insert_id": f"{user}{i}", "user_id": user, "event_name": name, "time": ms(at),
         "os": os, "properties": None if props is None else json.dumps(props)}
        for user, evs in spec.items() for i, (name, at, os, props) in enumerate(evs)])


SESSION_ATTRIBUTES = ("r_os", "app_version", "r_device_type", "r_country")


def sessions_table(rows: list[dict[str, Any]]) -> pa.Table:
    rows = sorted(rows, key=lambda r: (r["start_time"], r["session_id"]))
    columns: dict[str, Any] = {
        "session_id": pa.array([r["session_id"] for r in rows], pa.string()),
        "resolved_user": pa.array([r["resolved_user"] for r in rows], pa.string()),
        "start_time": pa.array([r["start_time"] for r in rows], pa.int64()),
        "crashed": pa.array([False] * len(rows), pa.bool_())}
    for c in SESSION_ATTRIBUTES:
        columns[c] = pa.array([r.get(c) for r in rows], pa.string())
    return pa.table(columns)


def sessions(*spec: tuple[str, str, str | None]) -> pa.Table:
    """(user, ISO start, r_os)"""
    return sessions_table([{"session_id": f"s{i}", "resolved_user": user,
                            "start_time": ms(at), "r_os": os}
                           for i, (user, at, os) in enumerate(spec)])


WEEK = Window(ms("2026-11-01T00:00"), ms("2026-11-08T00:00"))
EVENTS = journeys({
    "ann": [("App Launch", "2026-11-02T10:00", "iOS", None),
            ("App Crash", "2026-11-02T10:01", "iOS",
             {"reason": "OutOfMemory", "exception": "NSException"}),
            ("App Launch", "2026-11-03T00:00", "Android", None)],  # a second device
    "bob": [("App Launch", "2026-11-03T00:00", "Android", None),
            ("App Crash", "2026-11-03T00:05", "Android", {"exception": "NullPointerException"}),
            ("App Crash", "2026-11-04T00:00", "Android",
             {"reason": "", "exception": "NullPointerException"})],
    "cy": [("App Launch", "2026-11-05T00:00", "iOS", None),
           ("Page View", "2026-11-05T00:01", None, None),
           ("App Crash", "2026-11-05T12:00", "iOS", None)],
    "dee": [("App Crash", "2026-10-31T23:59:59.999", "Android", None),  # before the window
            ("App Launch", "2026-11-06T00:00", "Android", None),
            ("App Crash", "2026-11-08T00:00", "Android", None)],  # at the excluded end
    "eve": [("Fatal Error", "2026-11-06T00:00", "iOS", {"reason": 42})],
})
SESSIONS = sessions(("ann", "2026-11-02T10:00", "iOS"), ("ann", "2026-11-03T00:00", "Android"),
                    ("bob", "2026-11-03T00:00", "Android"), ("bob", "2026-11-04T00:00", "Android"),
                    ("cy", "2026-11-05T00:00", "iOS"), ("dee", "2026-11-06T00:00", "Android"),
                    ("dee", "2026-10-31T23:00", "Android"),  # before the window
                    ("eve", "2026-11-06T00:00", None))


def test_totals_and_causes() -> None:
    r = compute_crashes(EVENTS, SESSIONS, WEEK, first=2)
    # crashes in the window: ann, bob x2, cy = 4; sessions: all but dee's 10-31 = 7
    assert (r.crashes, r.sessions) == (4, 7)
    assert r.crashes_per_1000_sessions == pytest.approx(4000 / 7)
    # active: ann bob cy dee eve; crashed: ann bob cy -> 2/5
    assert r.crash_free_users == 2 / 5
    # NPE x2 (an empty reason falls through to exception), OutOfMemory, unknown (cy)
    assert r.top_causes == [CrashCause("NullPointerException", 2), CrashCause("OutOfMemory", 1)]
    assert r.groups == []


def test_crash_event_names_are_a_parameter() -> None:
    r = compute_crashes(EVENTS, SESSIONS, WEEK, crash_events=("App Crash", "Fatal Error"))
    # + eve: crash-free 1/5; her reason 42 is not a string -> unknown
    assert (r.crashes, r.crash_free_users) == (5, 1 / 5)
    assert r.top_causes == [CrashCause("NullPointerException", 2), CrashCause("unknown", 2),
                            CrashCause("OutOfMemory", 1)]


def test_groups_by_os() -> None:
    r = compute_crashes(EVENTS, SESSIONS, WEEK, by="OS")
    # Android: crashes bob x2; sessions ann bob bob dee = 4; users ann bob dee (events on
    #   Android in the window), crashed there: bob -> 2/3 (ann crashed, but on iOS).
    # iOS: crashes ann cy; sessions ann cy = 2; users ann cy eve, crashed ann cy -> 1/3.
    # None: no crash; eve's session; users cy (Page View without os), who did not crash
    #   *there* -> 1.0. Ranked by crashes, then key with None last.
    assert r.groups == [
        CrashGroup("Android", 2, 4, 500.0, 2 / 3),
        CrashGroup("iOS", 2, 2, 1000.0, 1 / 3),
        CrashGroup(None, 0, 1, 0.0, 1.0)]


def test_a_group_with_crashes_but_no_sessions_rates_zero() -> None:
    events = journeys({"ann": [("App Crash", "2026-11-02T10:00", "iOS", None)]})
    r = compute_crashes(events, sessions(), WEEK, by="OS")
    assert r.groups == [CrashGroup("iOS", 1, 0, 0.0, 0.0)]
    assert (r.crashes_per_1000_sessions, r.crash_free_users) == (0.0, 0.0)


def test_empty_input() -> None:
    r = compute_crashes(events_table([]), sessions(), WEEK, by="COUNTRY", first=3)
    # No active users: nobody crashed, so crash-free is 1.0.
    assert r == CrashReport(0, 0, 0.0, 1.0, [], [])


def chunked(table: pa.Table) -> pa.Table:
    """The same rows in two record batches, as stores often hand them back."""
    half = table.num_rows // 2
    return pa.concat_tables([table.slice(0, half), table.slice(half)])


def test_chunked_tables_give_the_same_answer() -> None:
    assert compute_crashes(chunked(EVENTS), chunked(SESSIONS), WEEK, "OS") == compute_crashes(
        EVENTS, SESSIONS, WEEK, "OS")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"by": "CITY"}, "by: 'CITY' is not one of OS, APP_VERSION, DEVICE_TYPE, COUNTRY"),
    ({"first": -1}, "first: must be >= 0"),
])
def test_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(GraphQLError, match=message):
        compute_crashes(EVENTS, SESSIONS, WEEK, **kwargs)


# -- property: compute_crashes == an obviously-correct reference ----------------------------

BASE = ms("2026-11-01T00:00")
HOUR = 3_600_000
CRASH = ("App Crash", "Fatal")


def reference(rows: list[dict[str, Any]], sess: list[dict[str, Any]], w: Window,
              by: str | None, first: int | None) -> CrashReport:
    inside = [r for r in rows if w.start <= r["time"] < w.end]
    crashes = [r for r in inside if r["event_name"] in CRASH]
    starting = [s for s in sess if w.start <= s["start_time"] < w.end]

    def rate(c: int, s: int) -> float:
        return 1000 * c / s if s else 0.0

    def crash_free(users: set[str], crashed: set[str]) -> float:
        return len(users - crashed) / len(users) if users else 1.0

    def cause(r: dict[str, Any]) -> str:
        props = json.loads(r["properties"]) if r["properties"] else {}
        for name in ("reason", "exception"):
            if isinstance(props.get(name), str) and props[name]:
                return str(props[name])
        return "unknown"

    causes = sorted(Counter(cause(r) for r in crashes).items(), key=lambda kv: (-kv[1], kv[0]))
    groups = []
    if by is not None:
        ecol, scol = CRASH_GROUPS[by]
        for key in {r[ecol] for r in crashes} | {s[scol] for s in starting}:
            c = [r for r in crashes if r[ecol] == key]
            n = len([s for s in starting if s[scol] == key])
            users = {r["user_id"] for r in inside if r[ecol] == key}
            groups.append(CrashGroup(key, len(c), n, rate(len(c), n),
                                     crash_free(users, {r["user_id"] for r in c})))
        groups.sort(key=lambda g: (-g.crashes, g.key is None, g.key or ""))
    return CrashReport(
        crashes=len(crashes), sessions=len(starting),
        crashes_per_1000_sessions=rate(len(crashes), len(starting)),
        crash_free_users=crash_free({r["user_id"] for r in inside},
                                    {r["user_id"] for r in crashes}),
        top_causes=[CrashCause(c, n) for c, n in causes[:first]], groups=groups)


PROPERTIES = [None, {"reason": "oom"}, {"exception": "npe"}, {"reason": "", "exception": "npe"},
              {"reason": 1}, {"reason": "npe", "exception": "x"}, {}]
attribute = st.sampled_from(["p", "q", None])
event_rows = st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(CRASH + ("View",)),
                                st.integers(0, 4 * 24), st.integers(0, len(PROPERTIES) - 1),
                                st.tuples(attribute, attribute, attribute, attribute)),
                      max_size=30)
session_rows = st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 4 * 24),
                                  st.tuples(attribute, attribute, attribute, attribute)),
                        max_size=12)


@settings(max_examples=200, deadline=None)
@given(event_rows, session_rows, st.integers(0, 2 * 24), st.integers(1, 3 * 24),
       st.none() | st.sampled_from(sorted(CRASH_GROUPS)), st.none() | st.integers(0, 3))
def test_matches_reference(raw_events: list[Any], raw_sessions: list[Any], start_h: int,
                           span_h: int, by: str | None, first: int | None) -> None:
    columns = [c for c, _ in CRASH_GROUPS.values()]
    rows = [{"insert_id": f"e{i}", "user_id": user, "event_name": name,
             "time": BASE + h * HOUR,
             "properties": None if PROPERTIES[p] is None else json.dumps(PROPERTIES[p]),
             **dict(zip(columns, attrs, strict=True))}
            for i, (user, name, h, p, attrs) in enumerate(raw_events)]
    sess = [{"session_id": f"s{i}", "resolved_user": user, "start_time": BASE + h * HOUR,
             **dict(zip(SESSION_ATTRIBUTES, attrs, strict=True))}
            for i, (user, h, attrs) in enumerate(raw_sessions)]
    w = Window(BASE + start_h * HOUR, BASE + (start_h + span_h) * HOUR)
    got = compute_crashes(events_table(rows), sessions_table(sess), w, by, first, CRASH)
    # Same formulas on the same integers: the floats agree exactly.
    assert got == reference(rows, sess, w, by, first)
