"""A person's page (``user``) and the event catalogue (``eventDefinitions``), on every
backend: identity resolution, pages newest first, property discovery, tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

from resolvers.window import iso
from tests.conformance.conftest import MIN, T0, Project, ann_journey, ev

AL, SEARCH, LOGIN, BUY, CHARGED = "App Launch", "Search", "Login", "Purchase", "Charged"
USER = """query($u: String!, $w: TimeWindow, $first: Int!, $after: String, $name: String) {
  user(userId: $u, window: $w) {
    userId traits city country email phone deviceIds firstSeen lastSeen eventCount
    sessionCount topEvents(first: 3) { event count }
    events(first: $first, after: $after, eventName: $name) { totalCount
      edges { cursor node { insertId eventName userId deviceId time } }
      pageInfo { hasNextPage endCursor } }
    sessions(first: 10) { userId deviceId eventCount startTime } } }"""
DEFINITIONS = """query($w: TimeWindow) {
  eventDefinitions(window: $w, first: 100) { name category count users lastSeen sampled
    properties { key type count examples } } }"""


def ann() -> list[dict[str, Any]]:
    return [*ann_journey(), ev(AL, 5, device="bob-phone", user="bob", insert_id="b1")]


def person(p: Project, user: str, first: int = 10, after: str | None = None,
           name: str | None = None, window: dict[str, Any] | None = None
           ) -> dict[str, Any] | None:
    data = p.query(USER, {"u": user, "w": window or {"last": "1d"}, "first": first,
                          "after": after, "name": name})
    found: dict[str, Any] | None = data["user"]
    return found


def test_a_person_page_counts_the_devices_tied_to_them(project: Project) -> None:
    project.send(ann())
    project.send([{"distinct_user_id": "ann", "traits": {
        "city": "Pune", "email": "ann@example.com", "phone": "+915550001", "plan": "gold"}}],
        path="/v1/identify")
    page = person(project, "ann")
    assert page is not None
    assert page["traits"] == {"city": "Pune", "email": "ann@example.com",
                              "phone": "+915550001", "plan": "gold"}
    assert (page["city"], page["email"], page["phone"]) == (
        "Pune", "ann@example.com", "+915550001")
    assert page["deviceIds"] == ["ann-phone", "ann-tablet"]
    assert (page["firstSeen"], page["lastSeen"]) == (iso(T0), iso(T0 + 102 * MIN))
    assert (page["eventCount"], page["sessionCount"]) == (6, 3)
    assert page["topEvents"] == [{"event": AL, "count": 2}, {"event": CHARGED, "count": 1},
                                 {"event": LOGIN, "count": 1}]
    events = page["events"]
    assert events["totalCount"] == 6
    assert [e["node"]["insertId"] for e in events["edges"]] == [
        "a6", "a5", "a4", "a3", "a2", "a1"]
    assert {e["node"]["userId"] for e in events["edges"]} == {"ann"}, "a1, a2 resolved"
    assert [(s["deviceId"], s["eventCount"], s["userId"]) for s in page["sessions"]] == [
        (None, 1, "ann"), ("ann-tablet", 2, "ann"), ("ann-phone", 3, "ann")]
    # the default window (30 days) holds it all too
    default = project.query("""{ user(userId: "ann") { eventCount } }""")["user"]
    assert default == {"eventCount": 6}


def test_events_pages_follow_the_cursor_and_keep_one_name(project: Project) -> None:
    project.send(ann())
    first = person(project, "ann", first=4)
    assert first is not None
    assert [e["node"]["insertId"] for e in first["events"]["edges"]] == [
        "a6", "a5", "a4", "a3"]
    assert first["events"]["pageInfo"]["hasNextPage"] is True
    rest = person(project, "ann", first=4, after=first["events"]["pageInfo"]["endCursor"])
    assert rest is not None
    assert [e["node"]["insertId"] for e in rest["events"]["edges"]] == ["a2", "a1"]
    assert rest["events"]["pageInfo"]["hasNextPage"] is False
    launches = person(project, "ann", name=AL)
    assert launches is not None
    assert launches["events"]["totalCount"] == 2
    assert [e["node"]["insertId"] for e in launches["events"]["edges"]] == ["a4", "a1"]


def test_nobody_is_null_and_a_profile_alone_is_somebody(project: Project) -> None:
    project.send(ann())
    project.send([{"distinct_user_id": "cy", "traits": {"email": "cy@example.com"}}],
                 path="/v1/identify")
    assert person(project, "nobody") is None
    # the tied device's events are ann's, so the device is nobody of its own
    assert person(project, "ann-phone") is None
    cy = person(project, "cy")
    assert cy is not None
    assert (cy["email"], cy["eventCount"], cy["sessionCount"], cy["firstSeen"]) == (
        "cy@example.com", 0, 0, None)
    assert cy["deviceIds"] == []
    assert cy["events"]["edges"] == []
    # outside the window: bob's one event is 5 minutes after the scenario's start
    assert person(project, "bob", window={"from": iso(T0 + 6 * MIN)}) is None


def test_another_projects_user_and_events_are_invisible(project: Project) -> None:
    other = Project(project.gateway, project.gateway.create_project(
        f"conf-{uuid.uuid4().hex[:8]}"))
    other.send([ev("Secret Event", 1, device="zed-phone", user="zed",
                   custom_properties={"secret": "x"})])
    other.send([{"distinct_user_id": "zed", "traits": {"email": "zed@example.com"}}],
               path="/v1/identify")
    project.send(ann())
    assert person(other, "zed") is not None, "a control: B sees its own user"
    assert person(project, "zed") is None
    names = [d["name"] for d in project.query(DEFINITIONS)["eventDefinitions"]]
    assert "Secret Event" not in names
    assert AL in names
    assert [d["name"] for d in other.query(DEFINITIONS)["eventDefinitions"]] == [
        "Secret Event"]


def test_the_event_catalogue_lists_names_and_the_properties_they_carry(
        project: Project) -> None:
    project.send([
        ev("Tap Banner", 1, user="u1", custom_properties={"banner": "sale", "slot": 1}),
        ev("Tap Banner", 2, user="u2", custom_properties={"banner": "new", "slot": "top",
                                                          "seen": True}),
        ev("Tap Banner", 3, user="u1", custom_properties={"banner": "sale", "slot": 2.5,
                                                          "ids": [1, 2]}),
        ev("Play Song", 4, user="u3", custom_properties={"song": {"id": 7},
                                                         "title": "t" * 150}),
        ev("Play Song", 5, user="u3", custom_properties={"title": "Hey", "song": None}),
        ev("Play Song", 6, user="u2"),
        ev("Open Menu", 7, user="u1"),
    ])
    defs = project.query(DEFINITIONS, {"w": {"last": "1d"}})["eventDefinitions"]
    assert [(d["name"], d["count"], d["users"], d["sampled"]) for d in defs] == [
        ("Play Song", 3, 2, 3), ("Tap Banner", 3, 2, 3), ("Open Menu", 1, 1, 1)]
    assert {d["category"] for d in defs} == {"Custom Events"}
    assert [d["lastSeen"] for d in defs] == [iso(T0 + 6 * MIN), iso(T0 + 3 * MIN),
                                             iso(T0 + 7 * MIN)]
    play, tap, menu = defs
    assert tap["properties"] == [
        {"key": "banner", "type": "STRING", "count": 3, "examples": ["sale", "new"]},
        {"key": "slot", "type": "MIXED", "count": 3, "examples": ["2.5", "top", "1"]},
        {"key": "ids", "type": "LIST", "count": 1, "examples": ["[1,2]"]},
        {"key": "seen", "type": "BOOLEAN", "count": 1, "examples": ["true"]},
    ]
    assert play["properties"] == [
        {"key": "title", "type": "STRING", "count": 2, "examples": ["Hey", "t" * 100]},
        {"key": "song", "type": "OBJECT", "count": 1, "examples": ['{"id":7}']},
    ]
    assert menu["properties"] == []
    top = project.query("{ eventDefinitions(first: 1) { name } }")["eventDefinitions"]
    assert [d["name"] for d in top] == ["Play Song"]


def test_bad_input_names_the_field(project: Project) -> None:
    key = project.keys["read_key"]
    for query, field in (
        ('{ user(userId: " ") { userId } }', "userId"),
        ('{ user(userId: "a", window: {last: "3y"}) { userId } }', "window.last"),
        ('{ eventDefinitions(first: -1) { name } }', "first"),
    ):
        body = project.gateway.gql(key, query)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert body["errors"][0]["message"].startswith(f"{field}:"), body
    project.send(ann())
    for query, field in (
        ('{ user(userId: "ann") { events(first: -1) { totalCount } } }', "events.first"),
        ('{ user(userId: "ann") { events(after: "x") { totalCount } } }', "events.after"),
        ('{ user(userId: "ann") { sessions(first: -1) { id } } }', "sessions.first"),
        ('{ user(userId: "ann") { topEvents(first: -2) { event } } }', "topEvents.first"),
    ):
        project.gateway.wait_processed(key)
        body = project.gateway.gql(key, query)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert body["errors"][0]["message"].startswith(f"{field}:"), body


def test_a_busy_name_shows_the_properties_of_its_latest_events(project: Project) -> None:
    # 520 ticks; only the 20 oldest carry "old", and the catalogue reads the latest 500
    project.send([ev("Tick", k * 0.1, user=f"u{k % 7}", insert_id=f"t{k:03d}",
                     custom_properties={"n": k, **({"old": True} if k < 20 else {})})
                  for k in range(520)] + [ev("Tock", 1, user="u1")])
    defs = project.query(DEFINITIONS)["eventDefinitions"]
    assert [(d["name"], d["count"], d["users"], d["sampled"]) for d in defs] == [
        ("Tick", 520, 7, 500), ("Tock", 1, 1, 1)]
    assert defs[0]["properties"] == [
        {"key": "n", "type": "NUMBER", "count": 500, "examples": ["519", "518", "517"]}]
