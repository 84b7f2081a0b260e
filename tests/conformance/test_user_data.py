"""A user's data on every backend (issue 10, right to be forgotten): ``userData`` finds the
same records, ``deleteUserData`` erases them from every store — DuckDB / Cassandra, the
networkx / Neo4j journey graph, the in-process / Redis live views, dead letters — and
nothing the user sends afterwards (or again) is stored. Other users' answers stay as they
were."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conformance.conftest import Project, ev
from tests.conformance.conftest import ann_journey as ann
from tests.e2e.ws_client import TRANSPORT_WS, connected

AL, SEARCH, LOGIN, BUY, CHARGED = "App Launch", "Search", "Login", "Purchase", "Charged"
USER_DATA = """query($u: String!) { userData(userId: $u) { userId total records } }"""
DELETE = """mutation($u: String!) { deleteUserData(userId: $u) {
    userId total erased { store records } } }"""


def bob() -> list[dict[str, Any]]:
    return [ev(AL, 0, device="bob-phone", user="bob", insert_id="b1"),
            ev(SEARCH, 1, device="bob-phone", user="bob", insert_id="b2"),
            ev(BUY, 2, device="bob-phone", user="bob", insert_id="b3")]


@pytest.fixture
def two_users(project: Project) -> Project:
    project.send([{"distinct_user_id": "ann", "traits": {"city": "Pune",
                                                        "email": "ann@example.com"}},
                  {"distinct_user_id": "bob", "traits": {"city": "Delhi"}}],
                 path="/v1/identify")
    project.send([*ann(), *bob()])
    result = project.send([{"event_name": SEARCH, "time": "soon", "insert_id": "bad-a",
                            "distinct_user_id": "ann"},
                           {"event_name": SEARCH, "time": "soon", "insert_id": "bad-b",
                            "distinct_user_id": "bob"}])
    assert len(result["rejected"]) == 2
    return project


def admin(p: Project, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    p.gateway.wait_processed(p.keys["read_key"], timeout=180)
    body = p.gateway.gql(p.keys["admin_key"], query, variables)
    assert "errors" not in body, body
    return dict(body["data"])


def kinds(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["record"], []).append(r)
    return out


def session_users(p: Project) -> list[str]:
    return sorted({s["userId"] for s in p.sessions()})


ANSWERS = """{
  launched: segment(filter: {did: [{event: "App Launch"}]}, window: {last: "1d"}) {
    edges { node { userId } } }
  inPune: segment(filter: {city: "Pune"}, window: {last: "1d"}) { totalCount }
  paths(target: "Purchase", window: {last: "1d"}) { path sessions users }
  journeyGraph(window: {last: "1d"}) { sessions links { source target count } }
  deadLetters(first: 10) { edges { payload } }
}"""


def test_export_finds_every_record_of_the_user(two_users: Project) -> None:
    data = admin(two_users, USER_DATA, {"u": "ann"})["userData"]
    assert data["total"] == len(data["records"])
    found = kinds(data["records"])
    assert sorted(e["insert_id"] for e in found["event"]) == ["a1", "a2", "a3", "a4", "a5",
                                                              "a6"]
    assert len(found["session"]) == 3
    assert sorted(i["device_id"] for i in found["identity"]) == ["ann-phone", "ann-tablet"]
    assert {t["key"]: t["value_text"] for t in found["trait"]} == {
        "city": "Pune", "email": "ann@example.com"}
    assert sorted(len(j["steps"]) for j in found["journey"]) == [1, 2, 3]
    assert len(found["dead_letter"]) == 1
    assert "bad-a" in found["dead_letter"][0]["payload"]


def test_deletion_erases_the_user_everywhere_and_only_them(two_users: Project) -> None:
    p = two_users
    before = p.query(ANSWERS)
    assert [e["node"]["userId"] for e in before["launched"]["edges"]] == ["ann", "bob"]

    erased = admin(p, DELETE, {"u": "ann"})["deleteUserData"]
    counts = {e["store"]: e["records"] for e in erased["erased"]}
    assert (counts["events"], counts["sessions"], counts["identities"],
            counts["profile_traits"], counts["dead_letters"]) == (6, 3, 2, 2, 1)

    after = p.query(ANSWERS)
    assert [e["node"]["userId"] for e in after["launched"]["edges"]] == ["bob"]
    assert after["inPune"]["totalCount"] == 0
    assert after["paths"] == [{"path": [AL, SEARCH, BUY], "sessions": 1, "users": 1}]
    assert after["journeyGraph"]["sessions"] == 1
    assert sorted((x["source"], x["target"], x["count"])
                  for x in after["journeyGraph"]["links"]) == [
        (f"1:{AL}", f"2:{SEARCH}", 1), (f"2:{SEARCH}", f"3:{BUY}", 1),
        (f"3:{BUY}", "4:Drop-off", 1)]
    letters = [e["payload"] for e in after["deadLetters"]["edges"]]
    assert len(letters) == 1
    assert "bad-b" in letters[0]
    assert session_users(p) == ["bob"]
    assert admin(p, USER_DATA, {"u": "ann"})["userData"]["total"] == 0
    live = asyncio.run(live_users(p))
    assert "ann" not in live
    assert "ann-phone" not in live
    assert "bob" in live


def test_nothing_the_user_sends_afterwards_is_stored(two_users: Project) -> None:
    p = two_users
    admin(p, DELETE, {"u": "ann"})
    p.send([*ann(),  # the same events again (a replay, an SDK retrying)
            ev(SEARCH, 200, device="ann-phone", insert_id="a7"),  # her anonymous device
            ev(SEARCH, 201, device="ann-laptop", user="ann", insert_id="a8"),  # a new one
            ev(SEARCH, 202, device="ann-phone", user="bob", insert_id="b4")])  # bob on it
    p.send([{"distinct_user_id": "ann", "traits": {"city": "Mumbai"}}], path="/v1/identify")
    assert session_users(p) == ["bob"]
    assert sorted(e["insert_id"] for e in kinds(admin(p, USER_DATA, {"u": "bob"})[
        "userData"]["records"])["event"]) == ["b1", "b2", "b3", "b4"]
    assert admin(p, USER_DATA, {"u": "ann"})["userData"]["total"] == 0


async def live_users(p: Project) -> set[str]:
    """The user ids of every event the live views retain for the project (read up to a
    marker event sent after subscribing)."""
    marker = f"marker-{time.time_ns()}"
    query = 'subscription { liveEvents(after: "0") { insertId userId } }'
    async with connected(p.gateway, TRANSPORT_WS, p.keys["read_key"]) as sub:
        await sub.subscribe("all", query)
        await asyncio.to_thread(p.send, [{
            "event_name": "Heartbeat", "time": int(time.time() * 1000), "insert_id": marker,
            "device_id": "marker-device"}])
        seen: set[str] = set()
        while True:
            (event,) = await sub.results("all", 1, within=120)
            if event["insertId"] == marker:
                return seen
            seen.add(event["userId"])
