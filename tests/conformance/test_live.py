"""Live subscriptions on every backend (DESIGN.md "Subscriptions"; issue 6).

Embedded: the runner's commit feeds the in-process live store. Distributed: Kafka → PyFlink
→ Redis Streams (the job's sink) → the gateway's XREAD loop. Either way a ``userActivity``
subscriber gets each of the user's events once, in stream order (ascending ids), and one
that reconnects with the last id it saw gets exactly the rest.

Stream order is the order the pipeline processed them. The embedded runner processes in
arrival order; the PyFlink job de-duplicates in parallel (keyed by insert id) before it
sessionizes by device, so one request's events may reach the live streams in another order
— hence no assertion here on event-time order within a request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from resolvers.window import iso
from tests.conformance.conftest import MIN, Project
from tests.conformance.test_segments import IPHONE
from tests.e2e.conftest import Gateway
from tests.e2e.ws_client import TRANSPORT_WS, connected

WITHIN = 120.0  # generous: the distributed path waits on PyFlink's checkpoints and buffers
QUERY = ("subscription($user: String!, $after: String) { userActivity(userId: $user, "
         "after: $after) { id insertId eventName userId deviceId } }")


def journey(user: str, names: list[str], first: int = 0) -> list[dict[str, Any]]:
    """One user's events on one device, a second apart, ending about now (live views show
    what is happening: recent event times)."""
    start = int(time.time() * 1000) - 60_000
    return [{"event_name": name, "time": start + (first + k) * 1000,
             "insert_id": f"{user}-{first + k}", "distinct_user_id": user,
             "device_id": f"{user}-phone"} for k, name in enumerate(names)]


async def test_user_activity_arrives_once_in_stream_order_and_resumes_after_the_last_id(
        project: Project) -> None:
    gw, keys = project.gateway, project.keys
    user = f"live-{uuid.uuid4().hex[:8]}"
    first = journey(user, ["App Launch", "Search", "Add to Cart"])
    rest = journey(user, ["Search", "Purchase", "App Close"], first=3)
    async with connected(gw, TRANSPORT_WS, keys["read_key"]) as sub:
        await sub.subscribe("1", QUERY, {"user": user, "after": "0"})
        await asyncio.to_thread(project.send, first)
        seen = await sub.results("1", 3, within=WITHIN)
    await asyncio.to_thread(project.send, rest)  # while nobody is subscribed
    async with connected(gw, TRANSPORT_WS, keys["read_key"]) as sub:
        await sub.subscribe("1", QUERY, {"user": user, "after": seen[-1]["id"]})
        seen += await sub.results("1", 3, within=WITHIN)
    def rows(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return sorted((e["insertId"], e["eventName"], e["userId"], e["deviceId"])
                      for e in events)

    def sent(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return sorted((r["insert_id"], r["event_name"], user, f"{user}-phone")
                      for r in records)

    assert rows(seen[:3]) == sent(first)
    assert rows(seen[3:]) == sent(rest), "resumed with exactly the rest"
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids), "stream order"
    assert len(set(ids)) == 6


OPEN_SESSIONS = """query($first: Int!, $filter: OpenSessionFilter) {
  openSessions(first: $first, filter: $filter) { sessionId userId deviceId startedAt
    lastEventAt events lastEvent city country deviceType } }"""


def test_open_sessions_list_the_sessions_in_progress_latest_activity_first(
        project: Project, backend: Gateway) -> None:
    """ann's session is in progress; bo's phone session too, a little less recently active;
    bo's tablet session timed out (its last event is past the 30 min timeout)."""
    now = int(time.time() * 1000)
    ann, bo = f"ann-{uuid.uuid4().hex[:6]}", f"bo-{uuid.uuid4().hex[:6]}"
    project.send([
        {"event_name": "App Launch", "time": now - 5 * MIN, "insert_id": f"{ann}-1",
         "distinct_user_id": ann, "device_id": f"{ann}-phone", "user_agent": IPHONE,
         "ip": "8.8.8.8"},
        {"event_name": "Add to Cart", "time": now - 1 * MIN, "insert_id": f"{ann}-2",
         "distinct_user_id": ann, "device_id": f"{ann}-phone", "user_agent": IPHONE},
        {"event_name": "Search", "time": now - 3 * MIN, "insert_id": f"{bo}-1",
         "distinct_user_id": bo, "device_id": f"{bo}-phone", "session_id": f"{bo}-open"},
        {"event_name": "App Launch", "time": now - 50 * MIN, "insert_id": f"{bo}-2",
         "distinct_user_id": bo, "device_id": f"{bo}-tablet", "session_id": f"{bo}-over"},
        {"event_name": "Search", "time": now - 45 * MIN, "insert_id": f"{bo}-3",
         "distinct_user_id": bo, "device_id": f"{bo}-tablet", "session_id": f"{bo}-over"},
    ])
    project.gateway.wait_processed(project.keys["read_key"])

    def listed(**variables: Any) -> list[dict[str, Any]]:
        body = project.gateway.gql(project.keys["read_key"], OPEN_SESSIONS,
                                   {"first": 50, **variables})
        assert "errors" not in body, body
        return list(body["data"]["openSessions"])

    # the distributed profile's live store is written by the PyFlink job: poll for it
    deadline = time.monotonic() + WITHIN
    while len(rows := listed()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(rows) == 2, rows
    ann_session, bo_session = rows
    assert ann_session["sessionId"] not in (f"{bo}-open", f"{bo}-over")
    assert ann_session == {
        "sessionId": ann_session["sessionId"], "userId": ann, "deviceId": f"{ann}-phone",
        "startedAt": iso(now - 5 * MIN), "lastEventAt": iso(now - 1 * MIN), "events": 2,
        "lastEvent": "Add to Cart", "city": "Mountain View", "country": "US",
        "deviceType": "mobile"}
    assert bo_session == {
        "sessionId": f"{bo}-open", "userId": bo, "deviceId": f"{bo}-phone",
        "startedAt": iso(now - 3 * MIN), "lastEventAt": iso(now - 3 * MIN), "events": 1,
        "lastEvent": "Search", "city": None, "country": None, "deviceType": None}
    assert listed(first=1) == [ann_session]
    assert listed(filter={"city": "mountain view"}) == [ann_session]
    assert listed(filter={"deviceType": "MOBILE", "city": "Boston"}) == []

    other = Project(backend, backend.create_project(f"conf-{uuid.uuid4().hex[:8]}"))
    body = backend.gql(other.keys["read_key"], OPEN_SESSIONS, {"first": 50})
    assert body == {"data": {"openSessions": []}}, "another project sees none of them"
