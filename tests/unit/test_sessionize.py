"""Sessionization rules (DESIGN.md "Sessions"), and arrival-order independence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.contract.event import Event
from stream.operators.sessionize import Sessionizer, SessionRules, session_id_for, session_key

MIN = 60_000
T0 = 1_760_000_000_000


def ev(name: str, minute: float, iid: str | None = None, *, device: str | None = "D",
       user: str | None = None, url: str | None = None, sid: str | None = None) -> Event:
    return Event(project="p", insert_id=iid or f"{name}-{minute}", event_name=name,
                 category="x", time=T0 + int(minute * MIN), ingest_time=T0,
                 distinct_user_id=user, device_id=device, url=url, session_id=sid)


def fold(events: list[Event], rules: SessionRules | None = None) -> list[tuple[int, int, int]]:
    rows = Sessionizer(rules).fold(session_key(events[0]), events)
    return [((r.start_time - T0) // MIN, (r.end_time - T0) // MIN, r.events) for r in rows]


def test_inactivity_over_timeout_starts_a_new_session() -> None:
    events = [ev("A", 0), ev("B", 29), ev("C", 59), ev("D", 89.5)]
    # 29 → 59 is exactly 30 minutes: still the same session; 59 → 89.5 is over.
    assert fold(events) == [(0, 59, 3), (89, 89, 1)]


def test_start_event_opens_and_end_event_closes() -> None:
    events = [ev("Search", 0), ev("App Launch", 1), ev("Search", 2), ev("App Close", 3),
              ev("Search", 4)]
    assert fold(events) == [(0, 0, 1), (1, 3, 3), (4, 4, 1)]


def test_producer_session_id_is_honoured_and_never_split() -> None:
    events = [ev("A", 0, sid="mine"), ev("B", 200, sid="mine"), ev("App Launch", 201, sid="mine")]
    rows = Sessionizer().fold("p:mine", events)
    assert [(r.session_id, r.events) for r in rows] == [("mine", 3)]


def test_session_aggregates_landing_exit_conversion_and_crash() -> None:
    events = [ev("App Launch", 0, url="a"), ev("Search", 1, url="b"), ev("Purchase", 2),
              ev("App Crash", 3, url="c")]
    (row,) = Sessionizer().fold("d:D", events)
    assert (row.landing_url, row.exit_url, row.converted, row.crashed, row.closed) == (
        "a", "c", True, True, False)
    assert row.session_id == session_id_for("p", "d:D", T0)


def test_ids_are_deterministic_and_depend_on_start_time() -> None:
    assert session_id_for("p", "d:D", 5) == session_id_for("p", "d:D", 5)
    assert session_id_for("p", "d:D", 5) != session_id_for("p", "d:D", 6)
    assert session_id_for("p", "d:D", 5) != session_id_for("q", "d:D", 5)


def test_custom_rules_timeout_and_conversion_events() -> None:
    rules = SessionRules(timeout_ms=5 * MIN, conversion_events=frozenset({"Checkout"}))
    rows = Sessionizer(rules).fold("d:D", [ev("A", 0), ev("Checkout", 4), ev("Purchase", 10)])
    assert [(r.events, r.converted) for r in rows] == [(2, True), (1, False)]


def test_step_matches_fold_for_in_order_events() -> None:
    events = [ev("App Launch", 0), ev("A", 10), ev("App Close", 11), ev("B", 12), ev("C", 100)]
    s = Sessionizer()
    row = None
    seen = []
    for e in events:
        row, new = s.step(row, "d:D", e)
        if new:
            seen.append(row)
    assert [(r.session_id, r.events) for r in seen] == [
        (r.session_id, r.events) for r in s.fold("d:D", events)]


names = st.sampled_from(["App Launch", "App Close", "Search", "Add to Cart", "Purchase"])
timeline = st.lists(st.tuples(names, st.integers(0, 240)), min_size=1, max_size=25)


@settings(max_examples=200, deadline=None)
@given(timeline, st.randoms(use_true_random=False))
def test_fold_is_independent_of_arrival_order(items: list[tuple[str, int]], rnd) -> None:
    events = [ev(name, minute, iid=f"i{n}") for n, (name, minute) in enumerate(items)]
    shuffled = list(events)
    rnd.shuffle(shuffled)
    a = Sessionizer().fold("d:D", events)
    b = Sessionizer().fold("d:D", shuffled)
    assert [(r.session_id, r.events, r.end_time) for r in a] == [
        (r.session_id, r.events, r.end_time) for r in b]
