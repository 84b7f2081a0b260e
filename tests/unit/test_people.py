"""A person's page and the event catalogue on hand-made tables (no store involved)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pytest
from graphql import GraphQLError, parse, validate

from resolvers.cost import cost_rule
from resolvers.people import (
    CATALOGUE_COLUMNS,
    EXAMPLE_CHARS,
    EventCount,
    PropertyDefinition,
    compute_event_definitions,
    compute_person,
    decode_event_cursor,
    encode_event_cursor,
    name_stats,
    newest_sessions,
    page_events,
    property_definitions,
    property_type,
    sample_scans,
    sample_starts,
    validate_first,
    validate_user_id,
)
from resolvers.schema import build_schema
from resolvers.sessions import encode_cursor
from storage.cassandra_store import CassandraStore, day_of
from storage.columns import profiles_table, user_keys
from storage.ports import EventQuery
from tests.unit.tables import events_table, ms

T = ms("2026-11-02T10:00:00")
MIN = 60_000
DAY = 86_400_000


def event(insert_id: str, name: str, minute: float, user: str, device: str | None = None,
          **extra: Any) -> dict[str, Any]:
    return {"insert_id": insert_id, "event_name": name, "category": "User Actions",
            "time": T + int(minute * MIN), "ingest_time": T + int(minute * MIN),
            "user_id": user, "device_id": device, **extra}


def profiles(traits: dict[str, dict[str, Any]]) -> pa.Table:
    rows = [(user, key, value if isinstance(value, str) else orjson.dumps(value).decode(),
             float(value) if isinstance(value, int | float) else None)
            for user, items in traits.items() for key, value in items.items()]
    return profiles_table(rows)


def sessions(rows: list[tuple[str, str, float]]) -> pa.Table:
    """(session id, resolved user, start minute) rows, by start."""
    rows = sorted(rows, key=lambda r: (r[2], r[0]))
    return pa.table({"session_id": [r[0] for r in rows],
                     "resolved_user": [r[1] for r in rows],
                     "start_time": pa.array([T + int(r[2] * MIN) for r in rows], pa.int64())})


def code(exc: pytest.ExceptionInfo[GraphQLError]) -> tuple[str, str]:
    return (exc.value.extensions or {})["code"], exc.value.message.split(":")[0]


# -- the person page ----------------------------------------------------------------------

ANN = events_table([
    event("a1", "App Launch", 0, "ann", "phone", city="Pune", os="Android"),
    event("a2", "Search", 1, "ann", "phone", city="Pune", os="Android"),
    # the laptop's events count for ann: the store resolved its tie
    event("a3", "Search", 50, "ann", "laptop", city="Mumbai", os="macOS"),
    event("a4", "Purchase", 52, "ann", "laptop", city="Mumbai", os="macOS"),
    event("b1", "Search", 3, "bob", "tablet", city="Delhi"),
])


def test_a_person_is_their_resolved_events_with_the_profile_first() -> None:
    traits = profiles({"ann": {"city": "Bengaluru", "email": "ann@example.com",
                               "plan": "gold"}, "bob": {"email": "bob@example.com"}})
    person = compute_person("ann", ANN, traits, sessions([
        ("s1", "ann", 0), ("s2", "ann", 50), ("s3", "bob", 3)]))
    assert person is not None
    assert person.device_ids == ["laptop", "phone"]
    assert (person.event_count, person.session_count) == (4, 2)
    assert (person.first_seen, person.last_seen) == (T, T + 52 * MIN)
    assert person.top_events == [EventCount("Search", 2), EventCount("App Launch", 1),
                                 EventCount("Purchase", 1)]
    # identify wins (city); else the latest event that has one (os)
    assert person.attributes["city"] == "Bengaluru"
    assert person.attributes["os"] == "macOS"
    assert person.attributes["email"] == "ann@example.com"
    assert person.traits == {"city": "Bengaluru", "email": "ann@example.com", "plan": "gold"}


def test_no_profile_and_no_events_is_nobody_and_a_profile_alone_is_someone() -> None:
    empty = ANN.slice(0, 0)
    assert compute_person("cy", ANN, profiles({}), sessions([])) is None
    assert compute_person("cy", ANN, profiles({"ann": {"city": "Pune"}}), sessions([])) is None
    person = compute_person("cy", empty, profiles({"cy": {"city": "Goa", "phone": "+91"}}),
                            sessions([]))
    assert person is not None
    assert (person.event_count, person.session_count, person.first_seen) == (0, 0, None)
    assert (person.attributes["city"], person.attributes["phone"]) == ("Goa", "+91")
    assert person.device_ids == []
    assert person.top_events == []


def test_events_page_newest_first_and_the_cursor_continues_without_gaps() -> None:
    table = events_table([event(f"i{k}", "Tap" if k % 2 else "View", k // 2, "ann")
                          for k in range(7)])  # pairs at the same millisecond
    order = ["i6", "i5", "i4", "i3", "i2", "i1", "i0"]
    page = page_events(table, 3)
    assert page.total == 7
    assert page.has_next
    assert page.rows.column("insert_id").to_pylist() == order[:3]
    seen, after = [], None
    while True:
        page = page_events(table, 2, after)
        ids = page.rows.column("insert_id").to_pylist()
        seen += ids
        if not page.has_next:
            break
        last = page.rows.to_pylist()[-1]
        after = encode_event_cursor(last["time"], last["insert_id"])
    assert seen == order
    taps = page_events(table, 10, event_name="Tap")
    assert taps.total == 3
    assert not taps.has_next
    assert taps.rows.column("insert_id").to_pylist() == ["i5", "i3", "i1"]
    assert page_events(table, 0).rows.num_rows == 0


def test_a_cursor_that_is_not_an_event_cursor_names_the_field() -> None:
    assert decode_event_cursor(encode_event_cursor(5, "x:y")) == (5, "x:y")
    for bad in ("nonsense", encode_cursor(5, "s1")):
        with pytest.raises(GraphQLError) as exc:
            page_events(ANN, 2, bad, field="events.after")
        assert code(exc) == ("BAD_USER_INPUT", "events.after")


def test_sessions_latest_first() -> None:
    table = sessions([("s1", "ann", 0), ("s3", "ann", 9), ("s2", "ann", 9), ("s4", "ann", 4)])
    assert newest_sessions(table, 3).column("session_id").to_pylist() == ["s3", "s2", "s4"]


def test_bad_input_names_the_field() -> None:
    for user_id in ("", "  ", "u" * 1025):
        with pytest.raises(GraphQLError) as exc:
            validate_user_id(user_id)
        assert code(exc) == ("BAD_USER_INPUT", "userId")
    assert validate_user_id("u" * 1024) == "u" * 1024
    with pytest.raises(GraphQLError) as exc:
        validate_first(-1, "topEvents.first")
    assert code(exc) == ("BAD_USER_INPUT", "topEvents.first")


class FakeCassandra(CassandraStore):
    """The Cassandra adapter's scan over rows in memory: ``events_by_name`` partitions and
    the ``identities`` table are all it reads."""

    def __init__(self, rows: list[dict[str, Any]], ties: dict[str, str]) -> None:
        self.rows, self.ties = rows, ties

    def _one(self, cql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        assert "FROM event_names" in cql
        return sorted({(day_of(r["time"]), r["event_name"]) for r in self.rows})

    def _run(self, cql: str, params: Iterable[Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
        columns = cql.split("SELECT ", 1)[1].split(" FROM", 1)[0].split(", ")
        return [[tuple(r.get(c) for c in columns) for r in self.rows
                 if (r["event_name"], day_of(r["time"])) == (name, day)
                 and start <= r["time"] < end] for _project, name, day, start, end in params]

    def _identities(self, project: str, devices: set[str]) -> dict[str, str]:
        return {d: u for d, u in self.ties.items() if d in devices}


def test_the_cassandra_scan_keeps_the_events_resolved_to_one_user() -> None:
    rows = [{"event_name": n, "time": T + k * MIN, "insert_id": f"i{k}", "ingest_time": T,
             "distinct_user_id": u, "device_id": d, "browser": "Safari"}
            for k, (n, u, d) in enumerate([("Open", None, "laptop"), ("Open", "ann", "phone"),
                                           ("Buy", "bob", "laptop"), ("Buy", None, "tab")])]
    store = FakeCassandra(rows, {"laptop": "ann"})
    table = store.scan_events("p", EventQuery(T, T + DAY, columns=(
        "insert_id", "device_id", "ingest_time", "browser"), user_id="ann"))
    # bob's own event on ann's laptop stays his: an event's own user wins
    assert table.to_pylist() == [
        {"insert_id": "i0", "device_id": "laptop", "ingest_time": T, "browser": "Safari"},
        {"insert_id": "i1", "device_id": "phone", "ingest_time": T, "browser": "Safari"}]
    assert table.schema.field("ingest_time").type == pa.int64()
    tab = store.scan_events("p", EventQuery(T, T + DAY, columns=("user_id",), user_id="tab"))
    assert tab.column("user_id").to_pylist() == ["tab"]


# -- the event catalogue ------------------------------------------------------------------

def catalogue(rows: list[tuple[str, str, float, str]]) -> pa.Table:
    """(event, category, minute, user) rows."""
    return pa.table({
        "event_name": [r[0] for r in rows], "category": [r[1] for r in rows],
        "time": pa.array([T + int(r[2] * MIN) for r in rows], pa.int64()),
        "user_key": pa.array(user_keys([r[3] for r in rows]), pa.uint64())}).select(
            list(CATALOGUE_COLUMNS))


def samples(rows: list[tuple[str, float, str, dict[str, Any] | None]]) -> pa.Table:
    """(event, minute, insert id, properties) rows."""
    return pa.table({
        "event_name": [r[0] for r in rows],
        "time": pa.array([T + int(r[1] * MIN) for r in rows], pa.int64()),
        "insert_id": [r[2] for r in rows],
        "properties": [None if r[3] is None else orjson.dumps(r[3]).decode() for r in rows]})


def test_property_types_with_mixed_and_nulls_not_counted() -> None:
    assert [property_type(v) for v in ("a", 1, 2.5, True, {"a": 1}, [1], None)] == [
        "STRING", "NUMBER", "NUMBER", "BOOLEAN", "OBJECT", "LIST", None]
    long = "x" * 150
    found = property_definitions([
        orjson.dumps(p).decode() for p in (
            {"amount": 5, "item": "tea", "flag": True, "note": None},
            {"amount": "5", "item": "coffee", "tags": ["a"]},
            {"amount": 7.5, "item": "tea", "meta": {"b": 1, "a": 2}},
            {"item": long, "flag": False},
            {"item": "juice"},
        )] + [None, "[1, 2]"])
    assert found == [
        PropertyDefinition("item", "STRING", 5, ["tea", "coffee", "x" * EXAMPLE_CHARS]),
        PropertyDefinition("amount", "MIXED", 3, ["5", "7.5"]),
        PropertyDefinition("flag", "BOOLEAN", 2, ["true", "false"]),
        PropertyDefinition("meta", "OBJECT", 1, ['{"a":2,"b":1}']),
        PropertyDefinition("tags", "LIST", 1, ['["a"]']),
    ]


def test_names_rank_by_count_then_name_with_users_and_latest_category() -> None:
    table = catalogue([
        ("Search", "User Actions", 1, "ann"), ("Search", "User Actions", 2, "ann"),
        ("Search", "Custom", 3, "bob"),
        ("Add", "User Actions", 1, "ann"), ("Add", "Custom Events", 5, "cy"),
        ("Add", "User Actions", 5, "ann"),  # same ms: the greatest category
        ("Zoom", "User Actions", 9, "ann"),
    ])
    stats = name_stats(table)
    assert [(s.name, s.count, s.users, s.category, s.last_seen) for s in stats] == [
        ("Add", 3, 2, "User Actions", T + 5 * MIN),
        ("Search", 3, 2, "Custom", T + 3 * MIN),
        ("Zoom", 1, 1, "User Actions", T + 9 * MIN),
    ]
    assert [s.name for s in name_stats(table, 2)] == ["Add", "Search"]
    assert name_stats(table.slice(0, 0)) == []


def test_busy_names_sample_only_their_most_recent_events() -> None:
    table = catalogue([("Tap", "c", m, "ann") for m in range(10)]
                      + [("Buy", "c", m, "bob") for m in (3, 8)])
    stats = name_stats(table)
    starts = sample_starts(table, stats, window_start=0, sample=4)
    assert starts == {"Tap": T + 6 * MIN, "Buy": 0}
    rows = [("Tap", m, f"t{m}", {"v": m}) for m in range(5, 10)]
    rows += [("Tap", 9, "t9b", {"v": "late", "extra": 1}),  # same ms as t9: id order
             ("Buy", 3, "b3", {"amount": 1}), ("Buy", 8, "b8", None),
             ("Gone", 1, "g1", {"x": 1})]  # a name not listed is ignored
    defs = compute_event_definitions(table, samples(rows), first=None, sample=4)
    assert [(d.name, d.count, d.users, d.sampled) for d in defs] == [
        ("Tap", 10, 1, 4), ("Buy", 2, 1, 2)]
    tap, buy = defs
    # the four latest by (time, insert id): t9b, t9, t8, t7
    assert tap.properties == [PropertyDefinition("v", "MIXED", 4, ["late", "9", "8"]),
                              PropertyDefinition("extra", "NUMBER", 1, ["1"])]
    assert buy.properties == [PropertyDefinition("amount", "NUMBER", 1, ["1"])]
    assert compute_event_definitions(table, samples(rows), first=1, sample=4)[0].name == "Tap"


def test_busy_names_share_at_most_a_few_scans() -> None:
    stats = name_stats(catalogue([(f"E{k}", "c", m, "ann") for k in range(5)
                                  for m in range(k + 1)]))  # E4: 5 events … E0: 1
    starts = {"E4": 40, "E3": 30, "E2": 20, "E1": 10, "E0": 0}
    assert sample_scans(stats, starts, 0, sample=1, most=2) == [
        (10, ["E1", "E2"]), (30, ["E3", "E4"]), (0, ["E0"])]
    assert sample_scans(stats, starts, 0, sample=2, most=10) == [
        (20, ["E2"]), (30, ["E3"]), (40, ["E4"]), (0, ["E1", "E0"])]
    assert sample_scans(stats, starts, 0, sample=9) == [(0, ["E4", "E3", "E2", "E1", "E0"])]
    assert sample_scans([], {}, 0) == []


# -- cost ---------------------------------------------------------------------------------

SCHEMA = build_schema()._schema


def cost(query: str) -> int:
    found = validate(SCHEMA, parse(query), [cost_rule(0, 10_000)])
    assert len(found) == 1, found
    return int((found[0].extensions or {})["cost"])


def test_the_new_lists_count_their_pages() -> None:
    assert cost('{ user(userId: "a") { events(first: 10) { edges { node { insertId } } } } }'
                ) == 1 + (1 + 10 * (1 + (1 + 1)))
    assert cost('{ user(userId: "a") { sessions(first: 3) { id } topEvents { event } } }'
                ) == 1 + (1 + 3 * 1) + (1 + 5 * 1)
    assert cost("{ eventDefinitions(first: 10) { name properties { key examples } } }"
                ) == 1 + 10 * (1 + (1 + 20 * (1 + 1)))
