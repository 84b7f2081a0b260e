"""Segments and breakdowns (issue 4 "Segmentation"), on every backend."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.conformance.conftest import Project, ev

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Mobile Safari/537.36")


def recent(name: str, minutes_ago: float, **kw: Any) -> dict[str, Any]:
    """An event ``minutes_ago`` before now (the seed's lookups ask about the last 5 min)."""
    record = ev(name, 0, **kw)
    record["time"] = int(time.time() * 1000 - minutes_ago * 60_000)
    return record


SEGMENT = """query($f: SegmentFilter, $w: TimeWindow, $first: Int, $after: String) {
  segment(filter: $f, window: $w, first: $first, after: $after) { totalCount
    edges { cursor node { userId city country deviceType os email phone age gender } }
    pageInfo { hasNextPage endCursor } } }"""


def users(p: Project, flt: dict[str, Any], window: dict[str, Any] | None = None
          ) -> list[str]:
    data = p.query(SEGMENT, {"f": flt, "w": window or {"last": "5m"}, "first": 100})
    return [e["node"]["userId"] for e in data["segment"]["edges"]]


def seed(p: Project) -> None:
    p.send([
        recent("App Launch", 3, device="i1", user="ann", user_agent=IPHONE),
        recent("Charged", 1, device="i1", user="ann", user_agent=IPHONE,
               custom_properties={"amount": 30}),
        recent("App Launch", 2, device="i2", user="bob", user_agent=IPHONE),
        recent("App Launch", 4, device="a1", user="cy", user_agent=ANDROID),
        recent("Charged", 3, device="a1", user="cy", user_agent=ANDROID),
        recent("App Launch", 30, device="i3", user="dee", user_agent=IPHONE),  # too early
        recent("App Launch", 4.5, device="i4", user="eve", user_agent=IPHONE),
        recent("Charged", 4.4, device="i4", user="eve", user_agent=IPHONE),
    ])
    p.send([
        {"distinct_user_id": "ann", "traits": {"city": "New York", "email": "ann@example.com",
                                               "phone": "+15550001", "age": 31,
                                               "gender": "female", "plan": "gold"}},
        {"distinct_user_id": "bob", "traits": {"city": "Boston", "age": 52, "plan": "free"}},
        {"distinct_user_id": "cy", "traits": {"city": "New York", "email": "cy@example.com"}},
        {"distinct_user_id": "dee", "traits": {"city": "New York"}},
        {"distinct_user_id": "eve", "traits": {"city": "new york", "age": 19}},
    ], path="/v1/identify")


def test_the_seeds_three_lookups(project: Project) -> None:
    seed(project)
    # iPhone users in New York in the last 5 minutes
    assert users(project, {"os": "iOS", "deviceType": "mobile", "city": "New York"}) == [
        "ann", "eve"]
    # users who did App Launch in the last 5 minutes
    assert users(project, {"did": [{"event": "App Launch"}]}) == ["ann", "bob", "cy", "eve"]
    # App Launch then Charged within 5 minutes, in New York — with contact fields
    data = project.query(SEGMENT, {"w": {"last": "5m"}, "f": {
        "city": "New York", "didInOrder": [{"events": ["App Launch", "Charged"],
                                            "within": "5m"}]}})
    nodes = [e["node"] for e in data["segment"]["edges"]]
    assert [(n["userId"], n["email"], n["phone"]) for n in nodes] == [
        ("ann", "ann@example.com", "+15550001"), ("cy", "cy@example.com", None),
        ("eve", None, None)]
    assert [n["os"] for n in nodes] == ["iOS", "Android", "iOS"]


def test_demographic_trait_and_negative_filters(project: Project) -> None:
    seed(project)
    assert users(project, {"ageMin": 30, "ageMax": 60}) == ["ann", "bob"]
    assert users(project, {"gender": "FEMALE"}) == ["ann"]
    assert users(project, {"traits": [{"key": "plan", "value": "gold"}]}) == ["ann"]
    assert users(project, {"didNot": [{"event": "Charged"}]}) == ["bob"]
    assert users(project, {"did": [{"event": "Charged", "within": "2m"}]}) == ["ann"]
    assert users(project, {"did": [{"event": "App Launch", "atLeast": 2}]}) == []
    assert users(project, {}, {"last": "1h"}) == ["ann", "bob", "cy", "dee", "eve"]


def test_segment_pages_follow_the_cursor(project: Project) -> None:
    seed(project)
    first = project.query(SEGMENT, {"f": {}, "w": {"last": "1h"}, "first": 2})["segment"]
    assert first["totalCount"] == 5
    assert [e["node"]["userId"] for e in first["edges"]] == ["ann", "bob"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = project.query(SEGMENT, {"f": {}, "w": {"last": "1h"}, "first": 10,
                                   "after": first["pageInfo"]["endCursor"]})["segment"]
    assert [e["node"]["userId"] for e in rest["edges"]] == ["cy", "dee", "eve"]
    assert rest["pageInfo"]["hasNextPage"] is False


def test_saved_segments_answer_like_their_filter(project: Project) -> None:
    seed(project)
    admin = project.keys["admin_key"]
    name = f"ny-{uuid.uuid4().hex[:6]}"
    saved = project.gateway.gql(admin, """mutation($n: String!, $f: SegmentFilter!) {
        saveSegment(name: $n, filter: $f) { name filter } }""",
                                {"n": name, "f": {"city": "New York", "did": [
                                    {"event": "Charged"}]}})
    assert "errors" not in saved, saved
    listed = project.query("{ segments { name filter } }")["segments"]
    assert listed == [{"name": name, "filter": {"city": "New York", "did": [
        {"event": "Charged", "atLeast": 1}]}}], "the filter as it would be sent back"
    data = project.query("""query($n: String) { segment(savedSegment: $n,
        window: {last: "5m"}) { totalCount edges { node { userId } } } }""", {"n": name})
    assert [e["node"]["userId"] for e in data["segment"]["edges"]] == ["ann", "cy", "eve"]


def test_breakdowns_by_place_device_and_demographics(project: Project) -> None:
    seed(project)
    q = """query($m: BreakdownMetric!, $b: BreakdownDimension!) {
        breakdown(metric: $m, by: $b, window: {last: "1h"}) { key value sessions } }"""
    by_os = project.query(q, {"m": "SESSIONS", "b": "OS"})["breakdown"]
    assert by_os == [{"key": "iOS", "value": 4.0, "sessions": 4},
                     {"key": "Android", "value": 1.0, "sessions": 1}]
    by_city = project.query(q, {"m": "USERS", "b": "CITY"})["breakdown"]
    assert by_city == [{"key": "New York", "value": 3.0, "sessions": 3},
                       {"key": "Boston", "value": 1.0, "sessions": 1},
                       {"key": "new york", "value": 1.0, "sessions": 1}]
    by_age = project.query(q, {"m": "CONVERSION_RATE", "b": "AGE_BAND"})["breakdown"]
    assert by_age == [{"key": "18-24", "value": 1.0, "sessions": 1},
                      {"key": "25-34", "value": 1.0, "sessions": 1},
                      {"key": None, "value": 0.5, "sessions": 2},
                      {"key": "45-54", "value": 0.0, "sessions": 1}]


def test_bad_segment_input_names_the_field(project: Project) -> None:
    body = project.gateway.gql(project.keys["read_key"], """{ segment(filter: {did: [
        {event: "X", atLeast: 0}]}) { totalCount } }""")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"].startswith("filter.did[0].atLeast:")
