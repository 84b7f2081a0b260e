"""conversion and repeatPurchasers semantics on declarative journeys (no store involved)."""

from __future__ import annotations

import statistics

import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.conversion import (
    ConversionQuery,
    ConversionResult,
    RepeatPurchasersQuery,
    RepeatPurchasersResult,
    compute_conversion,
    compute_repeat_purchasers,
    conversion_fetch,
    repeat_purchasers_fetch,
)
from resolvers.retention import EventFetch
from resolvers.window import Window
from tests.unit.tables import Journeys, journeys, ms, name_table

Row = tuple[str, str, int]
HOUR, DAY = 3_600_000, 86_400_000





WINDOW = Window(ms("2026-11-02T00:00"), ms("2026-11-09T00:00"))
INSTALLS: Journeys = {
    "ann": [("App Install", "2026-11-02T10:00"), ("Purchase", "2026-11-02T10:30"),
            ("Purchase", "2026-11-03T10:00")],                            # 30 min
    "bob": [("App Install", "2026-11-03T09:00")],                         # never buys
    "cid": [("App Install", "2026-10-20T09:00"), ("Purchase", "2026-11-04T09:00")],
    "dee": [("Purchase", "2026-11-01T12:00"), ("App Install", "2026-11-05T12:00"),
            ("Purchase", "2026-11-08T12:00")],                            # 3 days
    "eve": [("App Install", "2026-11-06T00:00"), ("App Install", "2026-11-06T01:00"),
            ("Purchase", "2026-11-06T02:00")],                            # 2 h from the first
}


def test_install_to_first_purchase() -> None:
    result = compute_conversion(journeys(INSTALLS),
                                ConversionQuery("App Install", "Purchase", WINDOW))
    # users: ann, bob, dee, eve (cid installed before the window); dee's earlier purchase
    # does not count. Delays 1800 s, 259200 s, 7200 s -> median 7200 s.
    assert result == ConversionResult(users=4, converted=3, rate=0.75, median_seconds=7200.0)


def test_within_limits_the_delay_inclusively() -> None:
    events = journeys(INSTALLS)
    one_day = compute_conversion(events, ConversionQuery("App Install", "Purchase", WINDOW, DAY))
    # dee took 3 days: out. Median of 1800 s and 7200 s.
    assert one_day == ConversionResult(4, 2, 0.5, 4500.0)
    three_days = compute_conversion(events, ConversionQuery("App Install", "Purchase", WINDOW,
                                                            3 * DAY))
    assert three_days.converted == 3, "exactly `within` after counts"


def test_same_millisecond_follows_row_order() -> None:
    t = ms("2026-11-03T10:00")
    rows: list[Row] = [("ann", "Purchase", t), ("ann", "App Install", t),  # purchase sorts first
                       ("bob", "App Install", t), ("bob", "Purchase", t)]
    result = compute_conversion(name_table(rows),
                                ConversionQuery("App Install", "Purchase", WINDOW))
    assert result == ConversionResult(2, 1, 0.5, 0.0)


def test_segment_empty_input_and_window_edges() -> None:
    query = ConversionQuery("App Install", "Purchase", WINDOW)
    assert compute_conversion(journeys(INSTALLS), query, users={"ann", "bob"}) == (
        ConversionResult(2, 1, 0.5, 1800.0))
    assert compute_conversion(name_table([]), query) == ConversionResult(0, 0, 0.0, None)
    spec: Journeys = {"start": [("App Install", "2026-11-02T00:00")],
                      "end": [("App Install", "2026-11-09T00:00"),
                              ("Purchase", "2026-11-09T01:00")]}
    assert compute_conversion(journeys(spec), query) == ConversionResult(1, 0, 0.0, None)


@pytest.mark.parametrize(("query", "message"), [
    (ConversionQuery("Purchase", "Purchase", WINDOW), "toEvent: must differ from fromEvent"),
    (ConversionQuery("", "Purchase", WINDOW), "fromEvent: must not be empty"),
    (ConversionQuery("App Install", " ", WINDOW), "toEvent: must not be empty"),
    (ConversionQuery("App Install", "Purchase", WINDOW, 0), "within: must be positive"),
])
def test_bad_conversion_input(query: ConversionQuery, message: str) -> None:
    with pytest.raises(GraphQLError, match=message) as caught:
        compute_conversion(name_table([]), query)
    assert caught.value.extensions == {"code": "BAD_USER_INPUT"}
    with pytest.raises(GraphQLError, match=message):
        conversion_fetch(query, 0)


def test_conversion_fetch() -> None:
    now = ms("2026-12-01T00:00")
    names = frozenset({"App Install", "Purchase"})
    assert conversion_fetch(ConversionQuery("App Install", "Purchase", WINDOW), now) == (
        EventFetch(names, 0, now + 1))
    assert conversion_fetch(ConversionQuery("App Install", "Purchase", WINDOW, DAY), now) == (
        EventFetch(names, 0, WINDOW.end + DAY))


PURCHASES: Journeys = {
    "ann": [("Purchase", "2026-11-03T10:00"), ("Purchase", "2026-11-04T10:00"),
            ("Charged", "2026-11-05T10:00")],                          # 3
    "bob": [("Purchase", "2026-11-01T10:00"), ("Purchase", "2026-11-03T10:00")],  # 1 inside
    "cid": [("Place Order", "2026-11-04T10:00"), ("Place Order", "2026-11-09T00:00")],  # 1
    "dee": [("View", "2026-11-04T10:00")],                             # not a purchaser
    "eve": [("Charged", "2026-11-02T00:00"), ("purchase", "2026-11-03T00:00")],  # 1
}


def test_repeat_purchasers() -> None:
    events = journeys(PURCHASES)
    # in the window: ann 3, bob 1, cid 1 (Nov 9 00:00 is the window's end), eve 1
    # (names are case-sensitive), dee none
    assert compute_repeat_purchasers(events, RepeatPurchasersQuery(WINDOW)) == (
        RepeatPurchasersResult(purchasers=4, users=1, share=0.25))
    assert compute_repeat_purchasers(events, RepeatPurchasersQuery(WINDOW, 1)) == (
        RepeatPurchasersResult(4, 4, 1.0))
    assert compute_repeat_purchasers(events, RepeatPurchasersQuery(WINDOW, 4)) == (
        RepeatPurchasersResult(4, 0, 0.0))
    assert compute_repeat_purchasers(events, RepeatPurchasersQuery(WINDOW, 1),
                                     conversion_events={"View"}) == (
        RepeatPurchasersResult(1, 1, 1.0))
    assert compute_repeat_purchasers(events, RepeatPurchasersQuery(WINDOW),
                                     users={"bob", "dee"}) == RepeatPurchasersResult(1, 0, 0.0)
    assert compute_repeat_purchasers(name_table([]), RepeatPurchasersQuery(WINDOW)) == (
        RepeatPurchasersResult(0, 0, 0.0))


def test_repeat_purchasers_input_and_fetch() -> None:
    with pytest.raises(GraphQLError, match="minPurchases: must be at least 1"):
        compute_repeat_purchasers(name_table([]), RepeatPurchasersQuery(WINDOW, 0))
    with pytest.raises(GraphQLError, match="minPurchases"):
        repeat_purchasers_fetch(RepeatPurchasersQuery(WINDOW, -1))
    assert repeat_purchasers_fetch(RepeatPurchasersQuery(WINDOW)) == EventFetch(
        frozenset({"Purchase", "Charged", "Place Order"}), WINDOW.start, WINDOW.end)


# --- property tests against slow, obviously correct references -----------------------

BASE = ms("2026-11-01T00:00")
USERS = ["u1", "u2", "u3", "u4"]


def ref_conversion(rows: list[Row], q: ConversionQuery, users: set[str] | None
                   ) -> tuple[int, int, float | None]:
    rows = [r for r in rows if users is None or r[0] in users]
    first: dict[str, int] = {}
    for i, (user, name, _) in enumerate(rows):
        if name == q.from_event and user not in first:
            first[user] = i
    cohort = {u: i for u, i in first.items() if q.window.start <= rows[i][2] < q.window.end}
    delays = []
    for user, i in cohort.items():
        later = [r[2] - rows[i][2] for r in rows[i + 1:] if r[0] == user and r[1] == q.to_event]
        if later and (q.within is None or later[0] <= q.within):
            delays.append(later[0])
    return len(cohort), len(delays), statistics.median(delays) / 1000 if delays else None


def with_pairs(rows: list[Row], pairs: list[tuple[str, int, int]]) -> list[Row]:
    """``rows`` plus an A then a B ``delay`` later per pair, so delays equal to ``within``
    are common."""
    return rows + [r for user, t, delay in pairs for r in ((user, "A", t), (user, "B", t + delay))]


TIMES = st.integers(0, 12).map(lambda h: BASE + 4 * h * HOUR)
A_THEN_B = st.lists(st.tuples(st.sampled_from(USERS), TIMES,
                              st.sampled_from([0, 4 * HOUR, 12 * HOUR, DAY])), max_size=4)


@settings(max_examples=200, deadline=None)
@given(rows=st.builds(with_pairs, st.lists(st.tuples(st.sampled_from(USERS),
                                                     st.sampled_from(["A", "B", "C"]), TIMES),
                                           max_size=30), A_THEN_B),
       bounds=st.lists(st.integers(0, 2 * 24), min_size=2, max_size=2, unique=True),
       within=st.sampled_from([None, 1, 4 * HOUR, 12 * HOUR, DAY]),
       users=st.none() | st.sets(st.sampled_from(USERS)))
def test_conversion_matches_reference(rows: list[Row], bounds: list[int], within: int | None,
                                      users: set[str] | None) -> None:
    lo, hi = sorted(bounds)
    query = ConversionQuery("A", "B", Window(BASE + lo * HOUR, BASE + hi * HOUR), within)
    got = compute_conversion(name_table(rows), query, users)
    n_users, converted, median = ref_conversion(sorted(rows, key=lambda r: r[2]), query, users)
    assert (got.users, got.converted) == (n_users, converted)
    assert got.rate == (converted / n_users if n_users else 0.0)
    assert got.median_seconds == (None if median is None else pytest.approx(median))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(["A", "B", "C"]),
                               st.integers(0, 4 * 24).map(lambda h: BASE + h * HOUR)),
                     max_size=30),
       bounds=st.lists(st.integers(0, 4 * 24), min_size=2, max_size=2, unique=True),
       minimum=st.integers(1, 4), names=st.sets(st.sampled_from(["A", "B", "C"])),
       users=st.none() | st.sets(st.sampled_from(USERS)))
def test_repeat_purchasers_match_reference(rows: list[Row], bounds: list[int], minimum: int,
                                           names: set[str], users: set[str] | None) -> None:
    lo, hi = sorted(bounds)
    window = Window(BASE + lo * HOUR, BASE + hi * HOUR)
    got = compute_repeat_purchasers(name_table(rows), RepeatPurchasersQuery(window, minimum),
                                    names, users)
    counts: dict[str, int] = {}
    for user, name, t in rows:
        if name in names and window.start <= t < window.end and (users is None or user in users):
            counts[user] = counts.get(user, 0) + 1
    repeat = sum(1 for c in counts.values() if c >= minimum)
    assert got == RepeatPurchasersResult(len(counts), repeat,
                                         repeat / len(counts) if counts else 0.0)
