"""Sessions, identity and de-duplication scenarios (DESIGN.md "Semantics")."""

from __future__ import annotations

from tests.conformance.conftest import Project, ev


def shape(p: Project) -> list[tuple[str | None, int, list[str]]]:
    return [(s["deviceId"], s["eventCount"], [e["eventName"] for e in s["events"]])
            for s in p.sessions()]


def test_inactivity_launch_and_close_cut_sessions(project: Project) -> None:
    project.send([ev("App Launch", 0), ev("Search", 10), ev("Search", 40),  # 30 min: same
                  ev("Search", 71),                                          # 31 min: new
                  ev("App Launch", 72), ev("App Close", 73), ev("Search", 74)])
    assert shape(project) == [
        ("d1", 3, ["App Launch", "Search", "Search"]), ("d1", 1, ["Search"]),
        ("d1", 2, ["App Launch", "App Close"]), ("d1", 1, ["Search"])]


def test_a_late_event_bridges_two_sessions_into_one(project: Project) -> None:
    project.send([ev("Search", 0), ev("Search", 50)])
    assert [s["eventCount"] for s in project.sessions()] == [1, 1]
    project.send([ev("Product View", 25)])  # arrives late, 25 min from both
    assert shape(project) == [("d1", 3, ["Search", "Product View", "Search"])]


def test_a_late_start_event_splits_a_session(project: Project) -> None:
    project.send([ev("Search", 0), ev("Search", 10), ev("Search", 20)])
    project.send([ev("App Launch", 15)])
    assert shape(project) == [("d1", 2, ["Search", "Search"]),
                              ("d1", 2, ["App Launch", "Search"])]


def test_retries_count_once_and_the_first_copy_wins(project: Project) -> None:
    first = ev("Purchase", 1, insert_id="order-1", custom_properties={"amount": 5})
    retry = {**first, "custom_properties": {"amount": 500}}
    project.send([ev("App Launch", 0), first])
    project.send([retry, retry])
    data = project.query("""{ sessions(window: {last: "1d"}) { edges { node { eventCount
        events { insertId properties } } } } }""")
    (node,) = [e["node"] for e in data["sessions"]["edges"]]
    assert node["eventCount"] == 2
    assert node["events"][1]["properties"] == {"amount": 5}


def test_a_login_ties_the_devices_earlier_and_later_sessions(project: Project) -> None:
    project.send([ev("App Launch", 0, device="phone"), ev("Search", 120, device="phone"),
                  ev("Login", 121, device="phone", user="ann"),
                  ev("Search", 300, device="phone"),
                  ev("App Launch", 0, device="tablet", user="ann")])
    users = {(s["deviceId"], s["userId"]) for s in project.sessions()}
    assert users == {("phone", "ann"), ("tablet", "ann")}
    assert len(project.sessions()) == 4, "a user on two devices has sessions on each"


def test_server_events_without_device_are_sessionized_per_user(project: Project) -> None:
    project.send([ev("Order Dispatched", 0, device=None, user="bo", source_id="orders"),
                  ev("Order Delivered", 20, device=None, user="bo", source_id="orders")])
    assert [(s["deviceId"], s["userId"], s["eventCount"]) for s in project.sessions()] == [
        (None, "bo", 2)]


def test_producer_session_ids_are_honoured(project: Project) -> None:
    project.send([ev("Search", 0, session_id="web-1"), ev("Search", 200, session_id="web-1"),
                  ev("Search", 201)])
    ids = sorted(s["id"] for s in project.sessions())
    assert "web-1" in ids
    assert len(ids) == 2


def test_metrics_count_sessions_that_start_in_the_window(project: Project) -> None:
    project.send([ev("App Launch", 0, url="shop/home"), ev("Purchase", 5),
                  ev("App Launch", 100, device="d2", url="shop/deals"),
                  ev("App Launch", 200, device="d3", url="shop/home")])
    m = project.query("""{ sessionMetrics(window: {last: "1d"}) { count bounceRate
        purchaseSessionRate averageEventsPerSession averageDurationSeconds
        topLandingPages(first: 1) { url sessions } } }""")["sessionMetrics"]
    assert m == {"count": 3, "bounceRate": 2 / 3, "purchaseSessionRate": 1 / 3,
                 "averageEventsPerSession": 4 / 3, "averageDurationSeconds": 100.0,
                 "topLandingPages": [{"url": "shop/home", "sessions": 2}]}


def test_profile_traits_win_over_geo_ip_in_segments(project: Project) -> None:
    project.send([ev("App Launch", 0, device="p1", user="cy", ip="8.8.8.8"),
                  ev("App Launch", 0, device="p2", user="di", ip="8.8.8.8")])
    project.send([{"distinct_user_id": "cy", "traits": {"country": "IN", "city": "Pune"}}],
                 path="/v1/identify")
    q = """query($s: SegmentFilter) { sessionMetrics(window: {last: "1d"}, segment: $s) {
        count } }"""
    assert project.query(q, {"s": {"country": "IN"}})["sessionMetrics"]["count"] == 1
    assert project.query(q, {"s": {"country": "US"}})["sessionMetrics"]["count"] == 1


def test_a_late_event_far_before_a_producer_session_still_joins_it(project: Project) -> None:
    project.send([ev("Search", 100, session_id="web-9"), ev("Search", 110, session_id="web-9")])
    assert [s["eventCount"] for s in project.sessions()] == [2]
    project.send([ev("Page View", 0, session_id="web-9")])  # 100 min earlier, same session id
    sessions = project.sessions()
    assert [(s["id"], s["eventCount"]) for s in sessions] == [("web-9", 3)]
    assert [e["eventName"] for e in sessions[0]["events"]] == ["Page View", "Search", "Search"]
