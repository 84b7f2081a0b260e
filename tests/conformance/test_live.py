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

from tests.conformance.conftest import Project
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
