"""funnel, funnelUsers and funnelTrend semantics on declarative journeys (no store involved)."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.frames import EVENT_ATTRIBUTES
from resolvers.funnels import (
    FunnelBreakdown,
    FunnelExclusion,
    FunnelQuery,
    FunnelStep,
    FunnelStepResult,
    FunnelTrendPoint,
    PropertyFilter,
    breakdown_label,
    compute_funnel,
    compute_funnel_trend,
    compute_funnel_users,
    funnel_fetch,
)
from stream.operators.match import value_matches
from tests.unit.tables import events_table
from tests.unit.tables import ms as iso_ms

DAY = "2026-11-02"  # a Monday
HOUR = 3_600_000


def ms(text: str) -> int:
    """``10:05`` (on DAY) or a full ISO time, UTC."""
    if "T" not in text:
        text = f"{DAY}T{text}"
    return iso_ms(text)


Journey = dict[str, list[tuple[Any, ...]]]


def journeys(spec: Journey) -> pa.Table:
    """{user: [(event, time[, properties[, session]])]}; same-time events keep list order."""
    rows = []
    for user, evs in spec.items():
        for i, (name, at, *rest) in enumerate(evs):
            props = rest[0] if rest else None
            rows.append({"insert_id": f"{user}{i:03d}", "user_id": user, "event_name": name,
                         "time": ms(at), "session_id": rest[1] if len(rest) > 1 else "s",
                         "properties": None if props is None else json.dumps(props)})
    return events_table(rows)


def query(*steps: str | FunnelStep, start: str = "00:00", end: str = "2026-11-03T00:00",
          window_ms: int = HOUR, **options: Any) -> FunnelQuery:
    return FunnelQuery(steps=[s if isinstance(s, FunnelStep) else FunnelStep(s) for s in steps],
                       start=ms(start), end=ms(end), conversion_window_ms=window_ms, **options)


def users(result: list[FunnelStepResult]) -> list[int]:
    return [s.users for s in result]


# --- hand-computed journeys -------------------------------------------------------------

SHOP: Journey = {
    "ann": [("App Launch", "10:00"), ("View", "10:05"), ("Purchase", "10:20")],
    # Purchase before View: View counts (step 2 at +30 min), no Purchase after it.
    "bob": [("App Launch", "10:00"), ("Purchase", "10:10"), ("View", "10:30")],
    # 09:00 attempt: View 3.5 h later is outside the hour; the 12:00 attempt completes.
    "cat": [("App Launch", "09:00"), ("App Launch", "12:00"), ("View", "12:30"),
            ("Purchase", "12:50")],
    "dan": [("View", "10:00"), ("Purchase", "10:01")],  # never entered
}


def test_ordered_funnel_counts_each_user_once_at_the_furthest_step() -> None:
    result = compute_funnel(journeys(SHOP), query("App Launch", "View", "Purchase"))
    # step 1: ann bob cat; step 2: all three; step 3: ann cat.
    # medians: View gaps ann 300 s, bob 1800 s, cat 1800 s -> 1800;
    # Purchase gaps ann 900 s, cat 1200 s -> 1050.
    assert result.steps == [
        FunnelStepResult("App Launch", 3, 1.0, 1.0, 0, None),
        FunnelStepResult("View", 3, 1.0, 1.0, 0, 1800.0),
        FunnelStepResult("Purchase", 2, 2 / 3, 2 / 3, 1, 1050.0)]
    assert result.breakdowns == []


def test_funnel_users_reached_and_dropped() -> None:
    table, q = journeys(SHOP), query("App Launch", "View", "Purchase")
    assert compute_funnel_users(table, q, 1) == ["ann", "bob", "cat"]
    assert compute_funnel_users(table, q, 3) == ["ann", "cat"]
    assert compute_funnel_users(table, q, 3, dropped=True) == ["bob"]
    assert compute_funnel_users(table, q, 2, dropped=True) == []


def test_window_and_range_boundaries() -> None:
    table = journeys({
        "ann": [("A", "10:00"), ("B", "11:00")],  # exactly the window: counts
        "bob": [("A", "10:00"), ("B", "11:00:00.001")],  # 1 ms over: does not
        "cat": [("A", "2026-11-02T23:59"), ("B", "2026-11-03T00:30")],  # step 2 past end: ok
        "dan": [("A", "2026-11-03T00:00"), ("B", "2026-11-03T00:01")],  # starts at end: out
        "eve": [("A", "00:00"), ("B", "00:01")],  # starts at start: in
    })
    q = query("A", "B")
    assert users(compute_funnel(table, q).steps) == [4, 3]
    assert compute_funnel_users(table, q, 2, dropped=True) == ["bob"]


def test_equal_times_follow_row_order_and_one_event_is_one_step() -> None:
    table = journeys({
        "ann": [("A", "10:00"), ("B", "10:00")],  # same ms, A first in row order
        "bob": [("B", "10:00"), ("A", "10:00")],  # B first: not after A
    })
    assert users(compute_funnel(table, query("A", "B")).steps) == [2, 1]
    assert compute_funnel(table, query("A", "B")).steps[1].median_seconds_from_previous == 0.0
    twice = journeys({"ann": [("A", "10:00")], "bob": [("A", "10:00"), ("A", "10:10")]})
    assert users(compute_funnel(twice, query("A", "A")).steps) == [2, 1]


def test_one_step_and_many_steps() -> None:
    names = [f"E{i}" for i in range(12)]
    table = journeys({"ann": [(n, f"10:{i:02d}") for i, n in enumerate(names)],
                      "bob": [(n, f"10:{i:02d}") for i, n in enumerate(names[:7])]})
    result = compute_funnel(table, query(*names))
    assert users(result.steps) == [2] * 7 + [1] * 5
    assert result.steps[11].median_seconds_from_previous == 60.0
    assert users(compute_funnel(table, query("E3")).steps) == [2]


def test_empty_input_is_all_zero() -> None:
    result = compute_funnel(journeys({}), query("A", "B", breakdown="plan"))
    assert result.steps == [FunnelStepResult("A", 0, 0.0, 0.0, 0, None),
                            FunnelStepResult("B", 0, 0.0, 0.0, 0, None)]
    assert result.breakdowns == []
    assert compute_funnel_users(journeys({}), query("A", "B"), 2, dropped=True) == []
    trend = compute_funnel_trend(journeys({}), query("A", "B"), "DAY")
    assert trend == [FunnelTrendPoint("2026-11-02", 0, 0, 0.0)]


def test_strict_order_needs_consecutive_events() -> None:
    table = journeys({"ann": [("A", "10:00"), ("X", "10:01"), ("B", "10:02")],
                      "bob": [("A", "10:00"), ("B", "10:02")],
                      # the first A is interrupted; the second A is followed by B
                      "cat": [("A", "10:00"), ("X", "10:01"), ("A", "10:02"), ("B", "10:03")]})
    assert users(compute_funnel(table, query("A", "B")).steps) == [3, 3]
    assert users(compute_funnel(table, query("A", "B", order="STRICT")).steps) == [3, 2]


def test_any_order_counts_distinct_steps_from_the_earliest() -> None:
    table = journeys({"ann": [("C", "10:00"), ("A", "10:10"), ("B", "10:40")],
                      "bob": [("B", "10:00"), ("A", "11:30")],  # 90 min apart: 1 step
                      "cat": [("A", "10:00"), ("A", "10:05")],  # one distinct step
                      "dan": [("B", "10:00"), ("C", "10:20")]})
    result = compute_funnel(table, query("A", "B", "C", order="ANY"))
    # >=1 step: all 4; >=2: ann, dan; >=3: ann. Gaps: 2nd step ann 600 s, dan 1200 s;
    # 3rd step ann 1800 s.
    assert users(result.steps) == [4, 2, 1]
    assert [s.median_seconds_from_previous for s in result.steps] == [None, 900.0, 1800.0]
    # two steps on one event name: one event can be only one of them
    same = compute_funnel(table, query("A", "A", order="ANY"))
    assert users(same.steps) == [3, 1]  # ann, bob, cat have an A; only cat has two


def test_any_order_reassigns_an_event_that_fits_two_steps() -> None:
    # The first A fits both steps and takes step 1; the second A fits step 1 only, so the
    # first moves to step 2: both count.
    table = journeys({"ann": [("A", "10:00", {"plan": "pro"}), ("A", "10:10", {"plan": "free"})]})
    pro = FunnelStep("A", where=[PropertyFilter("plan", "eq", "pro")])
    result = compute_funnel(table, query("A", pro, order="ANY"))
    assert users(result.steps) == [1, 1]
    assert result.steps[1].median_seconds_from_previous == 600.0


def test_exclusions_stop_the_attempt_not_the_user() -> None:
    table = journeys({"ann": [("A", "10:00"), ("B", "10:01"), ("X", "10:02"), ("C", "10:03")],
                      "bob": [("A", "10:00"), ("X", "10:01"), ("A", "10:02"), ("B", "10:03"),
                              ("C", "10:04")],  # the second attempt is clean
                      "cat": [("A", "10:00"), ("B", "10:01"), ("C", "10:02"), ("X", "10:03")]})
    q = query("A", "B", "C", exclusions=[FunnelExclusion("X", 1, 3)])
    result = compute_funnel(table, q)
    assert users(result.steps) == [3, 3, 2]  # ann keeps step 2
    assert compute_funnel_users(table, q, 3, dropped=True) == ["ann"]
    later = query("A", "B", "C", exclusions=[FunnelExclusion("X", 2, 3)])
    assert users(compute_funnel(table, later).steps) == [3, 3, 2]


def test_optional_steps_may_be_skipped() -> None:
    table = journeys({"ann": [("A", "10:00"), ("B", "10:01"), ("C", "10:03")],
                      "bob": [("A", "10:00"), ("C", "10:05")],
                      "cat": [("A", "10:00"), ("B", "10:02")]})
    result = compute_funnel(table, query("A", FunnelStep("B", optional=True), "C"))
    # B done by ann and cat; C reached by ann (from B, 120 s) and bob (from A, 300 s);
    # C's conversion is relative to step 1 (the last required step before it).
    assert result.steps == [
        FunnelStepResult("A", 3, 1.0, 1.0, 0, None),
        FunnelStepResult("B", 2, 2 / 3, 2 / 3, 1, 90.0),
        FunnelStepResult("C", 2, 2 / 3, 2 / 3, 1, 210.0)]
    q = query("A", FunnelStep("B", optional=True), "C")
    assert compute_funnel_users(table, q, 3, dropped=True) == ["cat"]
    assert compute_funnel_users(table, q, 2) == ["ann", "cat"]


def test_step_time_limit_picks_the_event_that_allows_the_furthest_reach() -> None:
    table = journeys({"ann": [("A", "10:00"), ("B", "10:00:10"), ("B", "10:01:40"),
                              ("C", "10:02:30")]})
    q = query("A", "B", FunnelStep("C", max_seconds_from_previous=60))
    # the first B is 140 s before C: too far; the second B (100 s after A) is 50 s before C
    assert [s.median_seconds_from_previous for s in compute_funnel(table, q).steps] == [
        None, 100.0, 50.0]
    strict = query("A", FunnelStep("B", max_seconds_from_previous=5), order="STRICT")
    assert users(compute_funnel(table, strict).steps) == [1, 0]


def test_hold_constant_properties() -> None:
    ios, android = {"platform": "ios"}, {"platform": "android"}
    table = journeys({"ann": [("A", "10:00", ios), ("B", "10:01", android), ("B", "10:02", ios)],
                      "bob": [("A", "10:00", ios), ("B", "10:01", android)],
                      "cat": [("A", "10:00"), ("B", "10:01")]})  # unset matches unset
    result = compute_funnel(table, query("A", "B", hold_constant=["platform"]))
    assert users(result.steps) == [3, 2]
    assert result.steps[1].median_seconds_from_previous == 90.0  # ann 120 s, cat 60 s


def test_sessions_are_the_units() -> None:
    table = journeys({"ann": [("A", "10:00", None, "s1"), ("A", "10:05", None, "s2"),
                              ("B", "10:06", None, "s1"), ("B", "10:07", None, None)]})
    q = query("A", "B", count_by="SESSIONS")
    assert users(compute_funnel(table, q).steps) == [2, 1]
    assert compute_funnel_users(table, q, 2, dropped=True) == ["ann"]
    assert users(compute_funnel(table, query("A", "B")).steps) == [1, 1]


def test_breakdown_by_the_first_event_property() -> None:
    table = journeys({"ann": [("A", "10:00", {"plan": "pro"}), ("B", "10:01"),
                              ("A", "11:00", {"plan": "free"})],
                      "bob": [("A", "10:00", {"plan": "pro"})],
                      "cat": [("A", "10:00"), ("B", "10:05")],
                      "dan": [("A", "10:00", {"plan": 3})]})
    result = compute_funnel(table, query("A", "B", breakdown="plan"))
    assert users(result.steps) == [4, 2]  # ann once overall
    assert [(b.key, users(b.steps)) for b in result.breakdowns] == [
        ("pro", [2, 1]), ("3", [1, 0]), ("free", [1, 0]), (None, [1, 1])]
    assert isinstance(result.breakdowns[0], FunnelBreakdown)


def test_trend_per_day_and_week() -> None:
    table = journeys({"ann": [("A", "10:00"), ("B", "10:10")],
                      "bob": [("A", "2026-11-03T10:00")],
                      # enters on both days: counted in each day's own funnel
                      "cat": [("A", "2026-11-02T23:50"), ("A", "2026-11-03T09:00"),
                              ("B", "2026-11-03T09:30")]})
    q = query("A", "B", start="06:00", end="2026-11-05T00:00")
    assert compute_funnel_trend(table, q, "DAY") == [
        FunnelTrendPoint("2026-11-02", 2, 1, 0.5),
        FunnelTrendPoint("2026-11-03", 2, 1, 0.5),
        FunnelTrendPoint("2026-11-04", 0, 0, 0.0)]
    assert compute_funnel_trend(table, q, "WEEK") == [FunnelTrendPoint("2026-11-02", 3, 2, 2 / 3)]


def test_step_filters() -> None:
    table = journeys({"ann": [("A", "10:00", {"amount": "12.5"}), ("B", "10:01", {"tag": "x"})],
                      "bob": [("A", "10:00", {"amount": 3}), ("B", "10:01")],
                      "cat": [("A", "10:00", {"amount": 40}), ("B", "10:01", {"tag": "y"})]})
    step = FunnelStep("A", where=[PropertyFilter("amount", "gt", 10)])
    q = query(step, FunnelStep("B", where=[PropertyFilter("tag", "neq", "y")]))
    assert users(compute_funnel(table, q).steps) == [2, 1]  # ann (12.5 > 10) and cat
    by_user = query(FunnelStep("A", where=[PropertyFilter("user_id", "in", ["bob", "cat"])]))
    assert users(compute_funnel(table, by_user).steps) == [0]  # user_id is not an attribute
    by_name = query(FunnelStep("A", where=[PropertyFilter("event_name", "contains", "A")]))
    assert users(compute_funnel(table, by_name).steps) == [3]


@pytest.mark.parametrize(("actual", "op", "operand", "expected"), [
    (1, "eq", "1", True), ("1.0", "eq", 1, True), ("a", "eq", "a", True), (True, "eq", True, True),
    (True, "eq", 1, False), (None, "eq", "a", False), (None, "neq", "a", True),
    ("b", "neq", "a", True), (2, "neq", 2.0, False), ("10", "gt", 9, True),
    ("b", "gt", "a", True), ("b", "gt", 1, False), (5, "lte", 5, True), (4, "lt", "x", False),
    ("abc", "contains", "bc", True), ("abc", "contains", "C", False), (12, "contains", 2, True),
    ("x", "in", ["x", 1], True), (1.0, "in", ["x", 1], True), ("y", "in", ["x"], False),
    (None, "is_set", None, False), ("", "is_set", None, True), (None, "is_not_set", None, True),
])
def test_value_matches(actual: Any, op: str, operand: Any, expected: bool) -> None:
    assert value_matches(actual, op, operand) is expected


@pytest.mark.parametrize(("q", "message"), [
    (query(), "steps: give 1 to 50"),
    (query(*["A"] * 51), "steps: give 1 to 50"),
    (query("A", window_ms=0), "conversionWindow: must be positive"),
    (query("A", start="10:00", end="09:00"), "window: to must be after"),
    (query("A", FunnelStep("B", where=[PropertyFilter("k", "like", 1)])),
     r"steps\[1\]\.where\[0\]\.op: unknown operator 'like'"),
    (query("A", FunnelStep("B", where=[PropertyFilter("k", "in", 1)])),
     r"steps\[1\]\.where\[0\]\.value: in needs"),
    (query("A", FunnelStep("B", where=[PropertyFilter("k", "eq", None)])),
     r"steps\[1\]\.where\[0\]\.value"),
    (query(FunnelStep("A", optional=True), "B"), r"steps\[0\]\.optional"),
    (query("A", FunnelStep("B", optional=True), order="ANY"), r"steps\[1\]\.optional"),
    (query(FunnelStep("A", max_seconds_from_previous=5)), r"steps\[0\]\.maxSecondsFromPrevious"),
    (query("A", FunnelStep("B", max_seconds_from_previous=0)),
     r"steps\[1\]\.maxSecondsFromPrevious: must be positive"),
    (query("A", order="SOMETIMES"), "order: unknown order"),
    (query("A", count_by="DEVICES"), "countBy: unknown unit"),
    (query("A", "B", exclusions=[FunnelExclusion("X", 2, 2)]), r"exclusions\[0\]\.fromStep"),
    (query("A", "B", "C", exclusions=[FunnelExclusion("X", 2, 2)]),
     r"exclusions\[0\]\.toStep"),
    (query("A", "B", exclusions=[FunnelExclusion("X", 1, 2)], order="ANY"), r"exclusions\[0\]"),
    (query("A", "B", exclusions=[FunnelExclusion("X", 1, 2, [PropertyFilter("k", "?")])]),
     r"exclusions\[0\]\.where\[0\]\.op"),
    (query("A", hold_constant=[""]), r"holdConstant\[0\]"),
    (query("A", breakdown=""), "breakdown: give a property key"),
])
def test_bad_input_names_the_argument(q: FunnelQuery, message: str) -> None:
    with pytest.raises(GraphQLError, match=message) as info:
        compute_funnel(journeys({}), q)
    assert info.value.extensions == {"code": "BAD_USER_INPUT"}


def test_bad_step_and_interval() -> None:
    q = query("A", "B")
    for step, dropped in ((0, False), (3, False), (1, True)):
        with pytest.raises(GraphQLError, match="step: "):
            compute_funnel_users(journeys({}), q, step, dropped)
    with pytest.raises(GraphQLError, match="interval: unknown interval 'HOUR'"):
        compute_funnel_trend(journeys({}), q, "HOUR")


def test_fetch_plan() -> None:
    q = query(FunnelStep("B", where=[PropertyFilter("plan", "eq", "pro")]),
              FunnelStep("A", where=[PropertyFilter("country", "eq", "DE")]),
              exclusions=[FunnelExclusion("X", 1, 2)], count_by="SESSIONS", breakdown="os")
    plan = funnel_fetch(q)
    assert (plan.event_names, plan.all_events) == (("A", "B", "X"), False)
    assert (plan.start, plan.end) == (ms("00:00"), ms("2026-11-03T01:00"))
    assert plan.columns == ("time", "dedupe_key", "event_name", "user_key", "session_id",
                            "country", "os", "properties")
    assert funnel_fetch(query("A", order="STRICT")).all_events


def test_row_order_is_time_then_dedupe_key_whatever_order_rows_come_in() -> None:
    rows = [{"insert_id": f"e{i}", "event_name": name, "time": ms(t), "user_id": user,
             "dedupe_key": key}
            for i, (user, name, t, key) in enumerate([
                ("ann", "A", "10:00", 7), ("ann", "B", "10:00", 3),  # B sorts first: no
                ("bob", "A", "10:00", 1), ("bob", "B", "10:00", 9),  # A sorts first: yes
                ("cy", "A", "10:01", 5), ("cy", "B", "10:02", 2)])]
    q = query("A", "B")
    expected = [1.0 * n for n in (3, 2)]
    for shuffled in (rows, rows[::-1], rows[1::2] + rows[::2]):
        table = pa.Table.from_pylist(shuffled, schema=events_table(rows).select(
            ["insert_id", "event_name", "time", "user_id", "dedupe_key"]).schema)
        got = compute_funnel(table, q)
        assert [float(s.users) for s in got.steps] == expected
        assert compute_funnel_users(table, q, 2) == ["bob", "cy"]


# --- the property test: compute_* against a brute-force reference ------------------------

def ref_value(row: dict[str, Any], key: str) -> Any:
    if key in EVENT_ATTRIBUTES:
        return row.get(key)
    value = json.loads(row["properties"] or "{}").get(key)
    return value if isinstance(value, str | int | float | bool) else None


def ref_matches(row: dict[str, Any], event: str, where: Any) -> bool:
    return row["event_name"] == event and all(
        value_matches(ref_value(row, f.key), f.op, f.value) for f in where)


def ref_held(row: dict[str, Any], q: FunnelQuery) -> tuple[Any, ...]:
    return tuple((type(v).__name__, v) for v in (ref_value(row, k) for k in q.hold_constant))


def ref_ordered(evs: list[dict[str, Any]], e: int, q: FunnelQuery) -> list[int]:
    """Every valid path from entry e, by brute force; the best by (reach, preference)."""
    steps, entry = q.steps, evs[e]

    def fits(path: list[tuple[int, int]], k: int, i: int) -> bool:
        row, (_, last) = evs[i], path[-1]
        limit = steps[k].max_seconds_from_previous
        if (not ref_matches(row, steps[k].event, steps[k].where)
                or ref_held(row, q) != ref_held(entry, q)
                or row["time"] - entry["time"] > q.conversion_window_ms
                or (limit is not None and row["time"] - evs[last]["time"] > limit * 1000)
                or (q.order == "STRICT" and i != last + 1)):
            return False
        for x in q.exclusions:
            if x.to_step - 1 == k:
                anchor = max(at for kk, at in path if kk <= x.from_step - 1)
                if any(ref_matches(evs[j], x.event, x.where) for j in range(anchor + 1, i)):
                    return False
        return True

    def paths(path: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
        yield path
        for k in range(path[-1][0] + 1, len(steps)):
            for i in range(path[-1][1] + 1, len(evs)):
                if fits(path, k, i):
                    yield from paths([*path, (k, i)])
            if not steps[k].optional:
                break

    def rank(path: list[tuple[int, int]]) -> tuple[int, list[tuple[int, int]]]:
        done = dict(path)
        reach = path[-1][0]
        return -reach, [(0, done[k]) if k in done else (1, 0) for k in range(1, reach + 1)]

    chosen = min(paths([(0, e)]), key=rank)
    best = dict(chosen)
    return [best.get(k, -1) for k in range(len(steps))]


def ref_any(evs: list[dict[str, Any]], a: int, q: FunnelQuery) -> list[int]:
    def matched(i: int) -> set[int]:
        return {k for k, s in enumerate(q.steps) if ref_matches(evs[i], s.event, s.where)}

    def assignable(rows: list[int], used: frozenset[int] = frozenset()) -> bool:
        return not rows or any(assignable(rows[1:], used | {k})
                               for k in matched(rows[0]) - used)

    taken: list[int] = []
    for i in range(a, len(evs)):
        if (evs[i]["time"] - evs[a]["time"] <= q.conversion_window_ms and matched(i)
                and ref_held(evs[i], q) == ref_held(evs[a], q) and assignable([*taken, i])):
            taken.append(i)
    return taken + [-1] * (len(q.steps) - len(taken))


Counted = dict[Any, list[tuple[str, list[bool], list[int]]]]


def reference(rows: list[dict[str, Any]], q: FunnelQuery, split: str | None) -> Counted:
    """{split value: [(user, done per step, ms from the previous step done)]}"""
    units: dict[Any, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["time"], r["insert_id"])):
        if q.count_by == "SESSIONS" and row["session_id"] is None:
            continue
        unit = row["user_id"] if q.count_by == "USERS" else (row["user_id"], row["session_id"])
        units.setdefault(unit, []).append(row)
    out: Counted = {}
    for evs in units.values():
        best: dict[Any, tuple[int, list[int]]] = {}
        for e, row in enumerate(evs):
            firsts = q.steps if q.order == "ANY" else q.steps[:1]
            if not (q.start <= row["time"] < q.end and any(
                    ref_matches(row, s.event, s.where) for s in firsts)):
                continue
            found = ref_any(evs, e, q) if q.order == "ANY" else ref_ordered(evs, e, q)
            reach = max(k + 1 for k, at in enumerate(found) if at >= 0)
            key: Any = None
            if split == "day":
                key = row["time"] // 86_400_000
            elif split is not None:
                key = breakdown_label(ref_value(row, split))
            if key not in best or reach > best[key][0]:
                best[key] = (reach, found)
        for key, (_, found) in best.items():
            done = [at >= 0 for at in found]
            times = [evs[at]["time"] for at in found if at >= 0]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            out.setdefault(key, []).append((evs[0]["user_id"], done, [0] + gaps))
    for counted in out.values():  # gaps by step index, not by position among the done
        for _, done, gaps in counted:
            by_step = iter(gaps)
            gaps[:] = [next(by_step) if d else 0 for d in done]
    return out


def ref_steps(q: FunnelQuery, counted: list[tuple[str, list[bool], list[int]]]
              ) -> list[FunnelStepResult]:
    out: list[FunnelStepResult] = []
    reached = [sum(done[k] for _, done, _ in counted) for k in range(len(q.steps))]
    required = 0
    for k, step in enumerate(q.steps):
        base = reached[required] if k else reached[0]
        gaps = [g[k] / 1000 for _, done, g in counted if done[k]]
        out.append(FunnelStepResult(
            step.event, reached[k], reached[k] / base if base else 0.0,
            reached[k] / reached[0] if reached[0] else 0.0, base - reached[k],
            statistics.median(gaps) if k and gaps else None))
        if not step.optional:
            required = k
    return out


BASE_MS = ms("20:00")  # the slots cross midnight: two trend days
SLOT = 20 * 60_000  # event times are whole slots: ties and exact window edges happen
FILTERS = [PropertyFilter("p", "eq", 1), PropertyFilter("p", "is_set"),
           PropertyFilter("p", "neq", "x"), PropertyFilter("p", "gt", 1)]
FEATURES = ("where", "optional", "limit", "exclusion", "hold", "sessions", "breakdown")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], FunnelQuery]:
    """Two users' events over ~5 h and a funnel using at most two optional features."""
    names = draw(st.sampled_from(["AB", "ABC", "ABCD"]))
    # Event data from a drawn seed: far more varied streams than shrink-friendly lists give.
    rnd = random.Random(draw(st.integers(0, 2**32)))
    rows = [{"insert_id": f"{i:03d}", "user_id": rnd.choice(["u1", "u2"]),
             "event_name": rnd.choice(names), "time": BASE_MS + rnd.randint(0, 14) * SLOT,
             "session_id": rnd.choice(["s1", "s1", "s2", None]),
             "properties": rnd.choice([None, '{"p": 1}', '{"p": 1}', '{"p": 2}', '{"p": "x"}'])}
            for i in range(rnd.randint(4, 24))]
    order = draw(st.sampled_from(["ORDERED", "STRICT", "ANY"]))
    on = draw(st.sets(st.sampled_from(FEATURES), max_size=2))
    if order == "ANY":
        on -= {"optional", "limit", "exclusion"}
    steps = []
    for k in range(draw(st.sampled_from([1, 2, 2, 3, 3, 4, 4]))):
        where = [draw(st.sampled_from(FILTERS))] if "where" in on and draw(st.booleans()) else []
        steps.append(FunnelStep(
            draw(st.sampled_from(names[:3])), where,
            optional=k > 0 and "optional" in on and draw(st.booleans()),
            max_seconds_from_previous=draw(st.sampled_from([None, 600, 1200, 2400]))
            if k > 0 and "limit" in on else None))
    exclusions = []
    if "exclusion" in on and len(steps) >= 2:
        start_step = draw(st.integers(1, len(steps) - 1))
        exclusions.append(FunnelExclusion(draw(st.sampled_from(names)), start_step,
                                          draw(st.integers(start_step + 1, len(steps)))))
    first = draw(st.integers(0, 6))
    q = FunnelQuery(
        steps=steps, start=BASE_MS + first * SLOT,
        end=BASE_MS + (first + draw(st.integers(3, 14))) * SLOT,
        conversion_window_ms=draw(st.sampled_from([HOUR, 2 * HOUR, 6 * HOUR])), order=order,
        exclusions=exclusions, hold_constant=["p"] if "hold" in on else [],
        count_by="SESSIONS" if "sessions" in on else "USERS",
        breakdown=draw(st.sampled_from(["p", "session_id"])) if "breakdown" in on else None)
    return rows, q


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_compute_matches_the_brute_force_reference(
        scenario: tuple[list[dict[str, Any]], FunnelQuery]) -> None:
    rows, q = scenario
    check_against_reference(rows, q)
    for order in {"ORDERED", "STRICT", "ANY"} - {q.order}:  # the same stream, each order
        if order == "ANY":
            steps = [FunnelStep(s.event, s.where) for s in q.steps]
            check_against_reference(rows, replace(q, order=order, steps=steps, exclusions=[]))
        else:
            check_against_reference(rows, replace(q, order=order))


def check_against_reference(rows: list[dict[str, Any]], q: FunnelQuery) -> None:
    table = events_table(rows)
    result = compute_funnel(table, q)
    counted = reference(rows, q, None).get(None, [])
    assert result.steps == ref_steps(q, counted)
    if q.breakdown:
        per_value = reference(rows, q, q.breakdown)
        expected = sorted(((key, ref_steps(q, counted)) for key, counted in per_value.items()),
                          key=lambda kv: (-kv[1][0].users, kv[0] is None, kv[0] or ""))
        assert [(b.key, b.steps) for b in result.breakdowns] == expected
    required = 0
    for k, step in enumerate(q.steps):
        reached = sorted({u for u, done, _ in counted if done[k]})
        assert compute_funnel_users(table, q, k + 1) == reached
        if k:
            dropped = sorted({u for u, done, _ in counted if done[required] and not done[k]})
            assert compute_funnel_users(table, q, k + 1, dropped=True) == dropped
        if not step.optional:
            required = k
    daily = reference(rows, q, "day")
    for point in compute_funnel_trend(table, q, "DAY"):
        day = ms(f"{point.period}T00:00") // 86_400_000
        entrants = daily.get(day, [])
        assert (point.entered, point.converted) == (
            len(entrants), sum(done[-1] for _, done, _ in entrants))
