"""featureUsage semantics on declarative journeys (no store involved)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.features import FEATURE_KEYS, FeatureUsage, compute_feature_usage
from resolvers.frames import DAY_MS
from resolvers.window import Window
from tests.unit.tables import events_table, ms


def journeys(spec: dict[str, list[tuple[str, str, str | None, str]]]) -> pa.Table:
    """{user: [(event name, ISO time, url, category)]} -> the events table."""
    return events_table([
        {"insert_id": f"{user}{i}", "user_id": user, "event_name": name, "time": ms(at),
         "url": url, "category": category}
        for user, evs in spec.items() for i, (name, at, url, category) in enumerate(evs)])


WEEK = Window(ms("2026-11-01T00:00"), ms("2026-11-08T00:00"))
EVENTS = journeys({
    # first in window 11-01 09:00; back 11-05 >= 11-04 09:00: retained (3 days)
    "ann": [("Page View", "2026-11-01T09:00", "/home", "Nav"),
            ("Search", "2026-11-02T10:00", "/search", "Nav"),
            ("Page View", "2026-11-05T09:00", "/home", "Nav")],
    # first 11-03 12:00; last 11-06 11:59, 1 min short: not retained
    "bob": [("Page View", "2026-11-03T12:00", "/home", "Nav"),
            ("Page View", "2026-11-06T11:59", "/home", "Nav")],
    # first 11-06 00:00; back exactly 3 days later (after the window, fetched up to now)
    "cy": [("Search", "2026-11-06T00:00", "/search", "Discovery"),
           ("Add To Cart", "2026-11-09T00:00", None, "Commerce")],
    # the 10-30 view is before the window and ignored; first 11-07 23:00: not retained
    "dee": [("Page View", "2026-10-30T00:00", "/home", "Nav"),
            ("Purchase", "2026-11-07T23:00", None, "Commerce")],
})
# active: ann bob cy dee; retained (3 days): ann cy


def rows(result: list[FeatureUsage]) -> list[tuple[str, int, int, float | None]]:
    return [(f.key, f.events, f.users, f.retention_lift) for f in result]


def test_by_event() -> None:
    # Page View: ann 2 + bob 2 events; users ann (retained) bob -> 1/2; others cy (ret.),
    #   dee -> 1/2; lift 1.0.
    # Search: ann cy, both retained -> 1; others bob dee -> 0: no lift.
    # Purchase: dee -> 0; others ann bob cy -> 2/3: lift 0.0. Add To Cart: after the window.
    assert rows(compute_feature_usage(EVENTS, WEEK, "EVENT", retention_days=3)) == [
        ("Page View", 4, 2, 1.0), ("Search", 2, 2, None), ("Purchase", 1, 1, 0.0)]


def test_by_url_skips_missing_urls() -> None:
    assert rows(compute_feature_usage(EVENTS, WEEK, "URL", retention_days=3)) == [
        ("/home", 4, 2, 1.0), ("/search", 2, 2, None)]


def test_by_category_ties_rank_by_key() -> None:
    # Nav: ann 3 + bob 2 events, same users as Page View -> 1.0.
    # Discovery: cy -> 1; others ann bob dee -> 1/3: lift 3.0. Commerce: dee -> 0.0.
    result = compute_feature_usage(EVENTS, WEEK, "CATEGORY", retention_days=3)
    assert [r[:3] for r in rows(result)] == [
        ("Nav", 5, 2), ("Commerce", 1, 1), ("Discovery", 1, 1)]
    assert [r.retention_lift for r in result] == [1.0, 0.0, pytest.approx(3.0)]


def test_default_seven_days_and_first() -> None:
    # Nobody is back 7 days after their first event in the window: every other-users rate
    # is 0, so no lift anywhere.
    result = compute_feature_usage(EVENTS, WEEK, "EVENT", first=2)
    assert rows(result) == [("Page View", 4, 2, None), ("Search", 2, 2, None)]
    assert compute_feature_usage(EVENTS, WEEK, "EVENT", first=0) == []


def test_a_key_everyone_used_has_no_lift() -> None:
    table = journeys({"ann": [("Home", "2026-11-01T00:00", None, "c"),
                              ("Home", "2026-11-05T00:00", None, "c")],
                      "bob": [("Home", "2026-11-07T23:59:59.999", None, "c")]})
    assert rows(compute_feature_usage(table, WEEK, "EVENT", retention_days=1)) == [
        ("Home", 3, 2, None)]


def test_empty_input() -> None:
    assert compute_feature_usage(events_table([]), WEEK, "URL") == []


def test_chunked_tables_give_the_same_answer() -> None:
    half = EVENTS.num_rows // 2
    chunked = pa.concat_tables([EVENTS.slice(0, half), EVENTS.slice(half)])
    assert compute_feature_usage(chunked, WEEK, "URL", retention_days=3) == (
        compute_feature_usage(EVENTS, WEEK, "URL", retention_days=3))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"by": "PAGE"}, "by: 'PAGE' is not one of EVENT, URL, CATEGORY"),
    ({"first": -1}, "first: must be >= 0"),
    ({"retention_days": 0}, "retentionDays: must be between 1 and 365"),
    ({"retention_days": 366}, "retentionDays: must be between 1 and 365"),
])
def test_bad_input(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"by": "EVENT", "first": None, "retention_days": 7} | kwargs
    with pytest.raises(GraphQLError, match=message):
        compute_feature_usage(EVENTS, WEEK, **args)


# -- property: compute_feature_usage == an obviously-correct reference ---------------------

BASE = ms("2026-11-01T00:00")
HOUR = 3_600_000


def reference(rows: list[dict[str, Any]], w: Window, by: str, first: int | None,
              days: int) -> list[FeatureUsage]:
    column = FEATURE_KEYS[by]
    inside = [r for r in rows if w.start <= r["time"] < w.end]
    active = {r["user_id"] for r in inside}

    def retained(user: str) -> bool:
        first_seen = min(r["time"] for r in inside if r["user_id"] == user)
        return any(r["time"] >= first_seen + days * DAY_MS
                   for r in rows if r["user_id"] == user)

    def rate(users: set[str]) -> float:
        return sum(retained(u) for u in users) / len(users)

    out = []
    for key in {r[column] for r in inside if r[column] is not None}:
        mine = [r for r in inside if r[column] == key]
        users = {r["user_id"] for r in mine}
        others = active - users
        lift = None
        if others and rate(others):
            lift = rate(users) / rate(others)
        out.append(FeatureUsage(key, len(mine), len(users), lift))
    out.sort(key=lambda f: (-f.users, -f.events, f.key))
    return out[:first]


# A coarse grid (12-hour steps) so that returns exactly `days` later, window boundaries and
# keys every active user used are common.
STEP = 12 * HOUR
event_rows = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["x", "y", "z"]),
                                st.sampled_from(["/a", "/b", None]), st.sampled_from("PQ"),
                                st.integers(0, 12)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(event_rows, st.integers(0, 6), st.integers(1, 6),
       st.sampled_from(sorted(FEATURE_KEYS)), st.none() | st.integers(0, 3), st.integers(1, 3))
def test_matches_reference(raw: list[tuple[str, str, str | None, str, int]], start: int,
                           span: int, by: str, first: int | None, days: int) -> None:
    rows = [{"insert_id": f"e{i}", "user_id": user, "event_name": name, "url": url,
             "category": category, "time": BASE + q * STEP}
            for i, (user, name, url, category, q) in enumerate(raw)]
    w = Window(BASE + start * STEP, BASE + (start + span) * STEP)
    got = compute_feature_usage(events_table(rows), w, by, first, days)
    want = reference(rows, w, by, first, days)
    assert [(f.key, f.events, f.users) for f in got] == [
        (f.key, f.events, f.users) for f in want]
    assert [f.retention_lift for f in got] == [
        None if f.retention_lift is None else pytest.approx(f.retention_lift) for f in want]
