"""The demo generator's ground truth, sent over HTTP, must come back exactly through GraphQL.

The generator knows every session it meant to produce (device, start, end, events,
purchase) and which records it broke on purpose; the platform has to find exactly those —
despite SDK retries, late uploads and devices that log in half-way.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from stream.generate import generate, send
from tests.e2e.conftest import Gateway

QUERY = """query($after: String) { sessions(window: {from: "2020-01-01"}, first: 1000,
  after: $after) { totalCount pageInfo { hasNextPage endCursor }
  edges { node { deviceId userId startTime endTime eventCount converted } } } }"""


def all_sessions(gw: Gateway, key: str) -> list[dict[str, Any]]:
    out, after = [], None
    while True:
        page = gw.gql(key, QUERY, {"after": after})["data"]["sessions"]
        out += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


def iso_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_generated_stream_round_trips_to_its_truth(gateway: Gateway,
                                                   keys: dict[str, Any]) -> None:
    end = int(time.time() * 1000) - 3_600_000
    data = generate(seed=7, users=60, days=7, end_ms=end, invalid_rate=0.01)
    result = asyncio.run(send(data, gateway.url, keys["write_key"]))
    assert data.invalid_indexes, "the generator should have broken some records"
    assert sorted(r.index for r in result.rejected) == sorted(data.invalid_indexes)
    gateway.wait_processed(keys["read_key"])

    got = [s for s in all_sessions(gateway, keys["read_key"]) if s["deviceId"]]
    want = Counter((t.device_id, t.start_ms, t.end_ms, t.events, t.purchase)
                   for t in data.sessions)
    have = Counter((s["deviceId"], iso_ms(s["startTime"]), iso_ms(s["endTime"]),
                    s["eventCount"], s["converted"]) for s in got)
    assert have == want

    # Identity: a device tied to its owner anywhere in the stream counts for the owner in
    # every session, even those before the login; an untied device stays itself.
    invalid = set(data.invalid_indexes)
    tied = {e["device_id"]: e["distinct_user_id"] for i, e in enumerate(data.events)
            if i not in invalid and e.get("device_id") and e.get("distinct_user_id")}
    for s in got:
        assert s["userId"] == tied.get(s["deviceId"], s["deviceId"]), s
