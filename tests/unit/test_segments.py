"""Segment and breakdown semantics on declarative journeys (no store involved)."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.breakdown import age_band, compute_breakdown
from resolvers.segments import (
    NODE_COLUMNS,
    Behaviour,
    Segment,
    Sequence,
    compute_segment,
    decode_user_cursor,
    encode_user_cursor,
    page_users,
    validate,
)
from storage.columns import profiles_table

MIN = 60_000


def events(rows: list[tuple[str, str, int, str | None, str | None]]) -> pa.Table:
    """(user, event, minute, city, os) rows, sorted into (time, insert_id) order."""
    rows = sorted(rows, key=lambda r: r[2])
    return pa.table({
        "insert_id": [f"e{i:04d}" for i in range(len(rows))],
        "event_name": [r[1] for r in rows],
        "time": pa.array([r[2] * MIN for r in rows], pa.int64()),
        "user_id": [r[0] for r in rows],
        "city": pa.array([r[3] for r in rows], pa.string()),
        "state": pa.array([None] * len(rows), pa.string()),
        "country": pa.array([None] * len(rows), pa.string()),
        "device_type": pa.array([None] * len(rows), pa.string()),
        "os": pa.array([r[4] for r in rows], pa.string()),
        "app_version": pa.array([None] * len(rows), pa.string()),
    })


def profiles(traits: dict[str, dict[str, Any]]) -> pa.Table:
    rows = []
    for user, items in traits.items():
        for key, value in items.items():
            num = float(value) if isinstance(value, int | float) else None
            rows.append((user, key, value if isinstance(value, str) else
                         orjson.dumps(value).decode(), num))
    return profiles_table(rows)


def ids(table: pa.Table) -> list[str]:
    return list(table.column("user_id").to_pylist())


JOURNEYS = events([
    ("ann", "App Launch", 0, "Pune", "iOS"), ("ann", "Search", 2, None, "iOS"),
    ("ann", "Charged", 4, "Mumbai", "iOS"),          # latest city: Mumbai
    ("bob", "App Launch", 1, "Pune", "Android"), ("bob", "Charged", 20, None, "Android"),
    ("cy", "Charged", 3, None, None), ("cy", "App Launch", 5, "Delhi", "iOS"),
])


def test_profile_traits_win_else_the_latest_event_value() -> None:
    """Row order never matters: at the same millisecond the greatest value wins."""
    people = profiles({"bob": {"city": "Goa", "age": 40}})
    table = compute_segment(JOURNEYS, people, Segment(), window_end=30 * MIN)
    got = {r["user_id"]: (r["city"], r["os"], r["age"]) for r in table.to_pylist()}
    assert got == {"ann": ("Mumbai", "iOS", None), "bob": ("Goa", "Android", 40.0),
                   "cy": ("Delhi", "iOS", None)}
    assert table.column_names == [*NODE_COLUMNS, "traits"]


def test_filters_combine_and_compare_case_insensitively() -> None:
    people = profiles({"bob": {"city": "Goa", "age": 40, "plan": "pro"},
                       "ann": {"age": 17, "gender": "F", "plan": "free"}})
    seg = compute_segment
    assert ids(seg(JOURNEYS, people, Segment(os="ios"), 30 * MIN)) == ["ann", "cy"]
    assert ids(seg(JOURNEYS, people, Segment(city="goa"), 30 * MIN)) == ["bob"]
    assert ids(seg(JOURNEYS, people, Segment(age_min=18), 30 * MIN)) == ["bob"]
    assert ids(seg(JOURNEYS, people, Segment(age_max=17, gender="f"), 30 * MIN)) == ["ann"]
    assert ids(seg(JOURNEYS, people, Segment(traits=(("plan", "PRO"),)), 30 * MIN)) == ["bob"]


def test_behaviour_counts_windows_and_order() -> None:
    people = profiles({})
    seg = compute_segment
    end = 30 * MIN
    assert ids(seg(JOURNEYS, people, Segment(did=(Behaviour("Charged"),)), end)) == [
        "ann", "bob", "cy"]
    # only Charged events in the last 15 minutes of the window (from minute 15)
    assert ids(seg(JOURNEYS, people, Segment(did=(Behaviour("Charged", 1, 15 * MIN),)),
                   end)) == ["bob"]
    assert ids(seg(JOURNEYS, people, Segment(did_not=(Behaviour("Search"),)), end)) == [
        "bob", "cy"]
    assert ids(seg(JOURNEYS, people, Segment(did=(Behaviour("App Launch", 2),)), end)) == []
    in_order = Segment(did_in_order=(Sequence(("App Launch", "Charged"), 5 * MIN),))
    # ann: launch 0 → charged 4 (within 5); bob: 19 min apart; cy: charged before launch
    assert ids(seg(JOURNEYS, people, in_order, end)) == ["ann"]
    unbounded = Segment(did_in_order=(Sequence(("App Launch", "Charged")),))
    assert ids(seg(JOURNEYS, people, unbounded, end)) == ["ann", "bob"]


def test_bad_filters_name_the_field() -> None:
    with pytest.raises(GraphQLError, match=r"^filter.ageMin: must not be greater"):
        validate(Segment(age_min=50, age_max=20))
    with pytest.raises(GraphQLError, match=r"^filter.didNot\[0\].atLeast"):
        validate(Segment(did_not=(Behaviour("X", 0),)))
    with pytest.raises(GraphQLError, match=r"^filter.didInOrder\[0\].events"):
        validate(Segment(did_in_order=(Sequence(("X",)),)))


def test_user_pages_follow_the_cursor() -> None:
    table = compute_segment(JOURNEYS, profiles({}), Segment(), 30 * MIN)
    page, more = page_users(table, 2, None)
    assert (page.column("user_id").to_pylist(), more) == (["ann", "bob"], True)
    page, more = page_users(table, 2, encode_user_cursor("bob"))
    assert (page.column("user_id").to_pylist(), more) == (["cy"], False)
    page, more = page_users(table, 2, encode_user_cursor("bz"))  # a cursor between ids
    assert (page.column("user_id").to_pylist(), more) == (["cy"], False)
    assert decode_user_cursor(encode_user_cursor("a:b")) == "a:b"
    with pytest.raises(GraphQLError, match="^after:"):
        decode_user_cursor("nonsense")


def reference(rows: list[tuple[str, str, int, str | None, str | None]],
              seg: Segment, end: int) -> list[str]:
    """Obviously correct: per user, walk their events in order."""
    out = []
    ordered = sorted(enumerate(rows), key=lambda x: (x[1][2], x[0]))
    for user in sorted({r[0] for r in rows}):
        mine = [r for _i, r in ordered if r[0] == user]
        # the latest city; at the same minute, the greatest value
        cities = [(r[2], r[3]) for r in mine if r[3] is not None]
        city = max(cities)[1] if cities else None
        if seg.city is not None and (city or "").casefold() != seg.city.casefold():
            continue
        ok = True
        for rule in seg.did:
            n = sum(1 for r in mine if r[1] == rule.event and
                    (rule.within_ms is None or r[2] * MIN >= end - rule.within_ms))
            ok &= n >= rule.at_least
        for s in seg.did_in_order:
            found = False
            for i, r in enumerate(mine):
                if r[1] != s.events[0]:
                    continue
                k = 1
                for later in mine[i + 1:]:
                    if s.within_ms is not None and (later[2] - r[2]) * MIN > s.within_ms:
                        break
                    if later[1] == s.events[k]:
                        k += 1
                        if k == len(s.events):
                            break
                found |= k == len(s.events)
            ok &= found
        if ok:
            out.append(user)
    return out


row = st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]), st.sampled_from(["A", "B", "C"]),
                st.integers(0, 60), st.sampled_from([None, "Pune", "pune", "Goa"]),
                st.none())


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(row, max_size=30),
       city=st.sampled_from([None, "Pune", "goa"]),
       did=st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(1, 3),
                              st.sampled_from([None, 10 * MIN])), max_size=2),
       seq=st.lists(st.tuples(st.lists(st.sampled_from(["A", "B", "C"]), min_size=2,
                                       max_size=3), st.sampled_from([None, 5 * MIN])),
                    max_size=1))
def test_segments_match_the_reference(rows: list[Any], city: str | None, did: list[Any],
                                      seq: list[Any]) -> None:
    seg = Segment(city=city, did=tuple(Behaviour(*d) for d in did),
                  did_in_order=tuple(Sequence(tuple(e), w) for e, w in seq))
    # events() sorts by minute stably, as the reference does
    got = ids(compute_segment(events(rows), profiles({}), seg, 60 * MIN))
    assert got == reference(rows, seg, 60 * MIN)


def sessions(rows: list[tuple[str, int, bool, bool]]) -> pa.Table:
    """(user, seconds, converted, crashed)"""
    return pa.table({
        "resolved_user": [r[0] for r in rows],
        "start_time": pa.array([0] * len(rows), pa.int64()),
        "end_time": pa.array([r[1] * 1000 for r in rows], pa.int64()),
        "converted": [r[2] for r in rows], "crashed": [r[3] for r in rows],
    })


def test_breakdown_metrics_per_key_with_unknown_last() -> None:
    table = sessions([("a", 10, True, False), ("a", 30, False, True), ("b", 20, False, False),
                      ("c", 40, True, False)])
    keys = ["NY", "NY", None, "Goa"]
    got = {m: [(r.key, r.value, r.sessions) for r in compute_breakdown(table, m, keys)]
           for m in ("SESSIONS", "USERS", "CONVERSION_RATE", "AVG_SESSION_SECONDS",
                     "CRASH_RATE")}
    assert got["SESSIONS"] == [("NY", 2.0, 2), ("Goa", 1.0, 1), (None, 1.0, 1)]
    assert got["USERS"] == [("Goa", 1.0, 1), ("NY", 1.0, 2), (None, 1.0, 1)]
    assert got["CONVERSION_RATE"] == [("Goa", 1.0, 1), ("NY", 0.5, 2), (None, 0.0, 1)]
    assert got["AVG_SESSION_SECONDS"] == [("Goa", 40.0, 1), ("NY", 20.0, 2), (None, 20.0, 1)]
    assert got["CRASH_RATE"] == [("NY", 0.5, 2), ("Goa", 0.0, 1), (None, 0.0, 1)]
    assert compute_breakdown(sessions([]), "SESSIONS", []) == []


def test_age_bands() -> None:
    assert [age_band(a) for a in (None, -1, 0, 17.9, 18, 24, 25, 64, 65, 120)] == [
        None, None, "<18", "<18", "18-24", "18-24", "25-34", "55-64", "65+", "65+"]
