"""Live subscriptions end to end: ``cep serve``, events over HTTP, subscribers over WebSocket.

Both sub-protocols (``graphql-transport-ws`` and ``graphql-ws``) with a plain WebSocket
client speaking them by hand, and the ``gql`` client as a third-party check. Events posted
to ``/v1/events`` arrive in order with their fields; a subscriber resuming with ``after``
loses nothing; another project's key sees nothing; a missing or bad key is refused with
4401 and a reason; a subscriber that never reads is dropped with the reason while ingest
keeps answering 200.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Gateway
from tests.e2e.ws_client import (
    LEGACY_WS,
    PROTOCOLS,
    TRANSPORT_WS,
    connected,
    opened,
    ws_url,
)

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
FIELDS = ("id insertId eventName category time userId deviceId sessionId url properties "
          "city country deviceType os")


def post(gateway: Gateway, key: str, records: list[dict[str, Any]]) -> httpx.Response:
    resp = httpx.post(gateway.url + "/v1/events", content=orjson.dumps(records), timeout=60,
                      headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(records), resp.text
    return resp


async def apost(gateway: Gateway, key: str, records: list[dict[str, Any]]) -> None:
    await asyncio.to_thread(post, gateway, key, records)


def event(name: str, user: str, k: int, **extra: Any) -> dict[str, Any]:
    return {"event_name": name, "time": int(time.time() * 1000) - 1000 + k,
            "insert_id": f"{user}-{k}-{uuid.uuid4().hex[:6]}", "distinct_user_id": user,
            "device_id": f"dev-{user}", **extra}


@pytest.fixture
def project(gateway: Gateway) -> dict[str, Any]:
    return gateway.create_project(f"live-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_posted_events_arrive_in_order_on_every_subscription(
        gateway: Gateway, project: dict[str, Any], protocol: str) -> None:
    user, session = f"u-{uuid.uuid4().hex[:8]}", f"sess-{uuid.uuid4().hex[:8]}"
    records = [event(name, user, k, session_id=session, url=f"shop.example/{k}",
                     ip="136.24.0.114", user_agent=IPHONE, custom_properties={"n": k})
               for k, name in enumerate(["App Launch", "Search", "Add to Cart", "Purchase"])]
    async with connected(gateway, protocol, project["read_key"]) as sub:
        after = {"after": "0"}  # everything retained: nothing missed while subscribing
        await sub.subscribe("user", "subscription($after: String) { userActivity(userId: "
                            f'"{user}", after: $after) {{ {FIELDS} }} }}', after)
        await sub.subscribe("session", "subscription($after: String) { liveSession(sessionId: "
                            f'"{session}", after: $after) {{ insertId }} }}', after)
        await sub.subscribe("cart", "subscription($after: String) { liveEvents(filter: "
                            '{event: "Add to Cart", deviceType: "MOBILE"}, after: $after) '
                            "{ insertId } }", after)
        await apost(gateway, project["write_key"], records[:2])
        await apost(gateway, project["write_key"], records[2:])
        got = await sub.collect({"user": 4, "session": 4, "cart": 1})
    assert [e["insertId"] for e in got["user"]] == [r["insert_id"] for r in records]
    assert [e["insertId"] for e in got["session"]] == [r["insert_id"] for r in records]
    assert [e["insertId"] for e in got["cart"]] == [records[2]["insert_id"]]
    ids = [int(e["id"]) for e in got["user"]]
    assert ids == sorted(ids), "ids are ordered cursors"
    purchase = got["user"][3]
    assert purchase == {
        "id": purchase["id"], "insertId": records[3]["insert_id"], "eventName": "Purchase",
        "category": purchase["category"], "time": purchase["time"], "userId": user,
        "deviceId": f"dev-{user}", "sessionId": session, "url": "shop.example/3",
        "properties": {"n": 3}, "city": purchase["city"], "country": "US",
        "deviceType": "mobile", "os": "iOS"}
    assert purchase["time"].endswith("Z")
    assert purchase["category"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_resuming_after_the_last_id_loses_nothing(
        gateway: Gateway, project: dict[str, Any], protocol: str) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    records = [event("Search", user, k) for k in range(6)]
    query = ("subscription($user: String!, $after: String) { userActivity(userId: $user, "
             "after: $after) { id insertId } }")
    async with connected(gateway, protocol, project["read_key"]) as sub:
        await sub.subscribe("1", query, {"user": user, "after": "0"})
        await apost(gateway, project["write_key"], records[:3])
        seen = await sub.results("1", 3)
    await apost(gateway, project["write_key"], records[3:])  # while disconnected
    async with connected(gateway, protocol, project["read_key"]) as sub:
        await sub.subscribe("1", query, {"user": user, "after": seen[-1]["id"]})
        seen += await sub.results("1", 3)
        await apost(gateway, project["write_key"], [event("Search", user, 9, insert_id="last")])
        assert [e["insertId"] for e in await sub.results("1", 1)] == ["last"], \
            "nothing repeated after the resumed ones"
    assert [e["insertId"] for e in seen] == [r["insert_id"] for r in records]


async def test_another_projects_key_sees_nothing_of_this_project(
        gateway: Gateway, project: dict[str, Any]) -> None:
    other = gateway.create_project(f"other-{uuid.uuid4().hex[:8]}")
    user = f"u-{uuid.uuid4().hex[:8]}"
    mine = [event("Search", user, k) for k in range(3)]
    async with connected(gateway, TRANSPORT_WS, project["read_key"]) as sub, \
            connected(gateway, TRANSPORT_WS, other["read_key"]) as spy:
        for s in (sub, spy):
            await s.subscribe("all", 'subscription { liveEvents(after: "0") { insertId } }')
            await s.subscribe("user", f'subscription {{ userActivity(userId: "{user}", '
                              'after: "0") { insertId } }')
        await apost(gateway, project["write_key"], mine)
        got = await sub.collect({"all": 3, "user": 3})
        assert [e["insertId"] for e in got["all"]] == [r["insert_id"] for r in mine]
        # The other project's own event arrives; had any of this project's come, it would
        # be first.
        await apost(gateway, other["write_key"], [event("Search", user, 0, insert_id="theirs")])
        first = await spy.receive()
        assert first["id"] in ("all", "user")
        assert first["payload"]["data"] == {
            "liveEvents" if first["id"] == "all" else "userActivity": {"insertId": "theirs"}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("how", "reason"), [
    ("none", "no valid project key"),
    ("bad params", "unknown or revoked project key in the connection params"),
    ("bad header", "no valid project key"),
])
async def test_a_missing_or_bad_key_is_refused_with_4401(
        gateway: Gateway, protocol: str, how: str, reason: str) -> None:
    headers = {"Authorization": "Bearer not-a-key"} if how == "bad header" else None
    payload = {"Authorization": "Bearer not-a-key"} if how == "bad params" else {}
    async with opened(gateway, protocol, headers=headers) as sub:
        await sub.send({"type": "connection_init", "payload": payload})
        if protocol == LEGACY_WS:
            answer = await sub.receive()
            assert answer["type"] == "connection_error"
            assert answer["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
            assert answer["payload"]["message"].startswith(reason)
        with pytest.raises(ConnectionClosed) as closed:
            await sub.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason.startswith(reason)


@pytest.mark.parametrize(("protocol", "how"), [
    (TRANSPORT_WS, "header"), (LEGACY_WS, "key param"), (TRANSPORT_WS, "lowercase param")])
async def test_every_documented_way_of_sending_the_key(
        gateway: Gateway, project: dict[str, Any], protocol: str, how: str) -> None:
    key = project["read_key"]
    headers = {"Authorization": f"Bearer {key}"} if how == "header" else None
    payload = {"key": key} if how == "key param" else (
        {"authorization": f"Bearer {key}"} if how == "lowercase param" else {})
    async with opened(gateway, protocol, headers=headers) as sub:
        assert (await sub.init(payload))["type"] == "connection_ack"
        await sub.subscribe("1", 'subscription { liveEvents(after: "0") { insertId } }')
        await apost(gateway, project["write_key"], [event("Search", "u", 0, insert_id="x1")])
        assert await sub.results("1", 1) == [{"insertId": "x1"}]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_write_key_may_not_subscribe(gateway: Gateway, project: dict[str, Any],
                                             protocol: str) -> None:
    async with connected(gateway, protocol, project["write_key"]) as sub:
        await sub.subscribe("1", 'subscription { userActivity(userId: "u") { id } }')
        error = await sub.error("1")
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "this needs a read key; a write key was given" in error["message"]


async def test_live_metrics_tick_with_open_sessions_and_top_events(
        gateway: Gateway, project: dict[str, Any]) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    async with connected(gateway, LEGACY_WS, project["read_key"]) as sub:
        await sub.subscribe("m", "subscription { liveMetrics(intervalSeconds: 1) { "
                            "activeSessions eventsPerSecond topEvents { event count } } }")
        await sub.subscribe("e", 'subscription { liveEvents(after: "0") { insertId } }')
        await apost(gateway, project["write_key"],
                    [event("Search", user, 0), event("Search", user, 1), event("Buy", user, 2)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = await sub.receive()
            if message["id"] != "m":
                continue
            metrics = message["payload"]["data"]["liveMetrics"]
            if metrics["topEvents"]:
                break
    assert metrics["activeSessions"] == 1
    assert metrics["topEvents"] == [{"event": "Search", "count": 2}, {"event": "Buy", "count": 1}]
    assert metrics["eventsPerSecond"] > 0


async def test_a_subscriber_that_never_reads_is_dropped_and_ingest_keeps_answering(
        gateway: Gateway, project: dict[str, Any]) -> None:
    # A small receive buffer and a one-frame client queue: once the client stops reading,
    # the server's writes stall after a few MB (events of ~10 kB here), this subscriber's
    # bounded queue (1,000 events) fills, and the store drops it.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    blob = {"blob": "x" * 10_000}
    async with connected(gateway, TRANSPORT_WS, project["read_key"], sock=sock,
                         max_queue=1, ping_interval=None, compression=None) as sub:
        await sub.subscribe("1", f'subscription {{ liveEvents(after: "0") {{ {FIELDS} }} }}')
        await apost(gateway, project["write_key"], [event("Search", "u", 0, insert_id="w")])
        assert [e["insertId"] for e in await sub.results("1", 1)] == ["w"]
        # Stop reading; ingest at about 800 events/s for 3 s, each request answered promptly.
        sent, slowest = 0, 0.0
        for b in range(12):
            records = [event("Search", f"u{k % 50}", b * 1000 + k, custom_properties=blob)
                       for k in range(200)]
            started = time.monotonic()
            await apost(gateway, project["write_key"], records)
            slowest = max(slowest, time.monotonic() - started)
            sent += len(records)
            await asyncio.sleep(0.25)
        await asyncio.to_thread(gateway.wait_processed, project["read_key"])
        assert slowest < 2, f"a request took {slowest:.1f} s"
        # Reading again: what was buffered, then the reason it was dropped, then the end.
        delivered = 0
        while (message := await sub.receive())["type"] == "next" and \
                "errors" not in message["payload"]:
            delivered += 1
        assert (await sub.receive())["type"] == "complete"
    assert message["type"] == "next", message
    error = message["payload"]["errors"][0]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["message"].startswith("subscriber fell more than 1000 events behind and was "
                                       "dropped; reconnect with the last id seen")
    assert delivered < sent - 1000, "dropped long before it got everything"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_gql_client_subscribes_on_both_protocols(
        gateway: Gateway, project: dict[str, Any], protocol: str) -> None:
    from gql import Client, gql
    from gql.transport.websockets import WebsocketsTransport

    user = f"u-{uuid.uuid4().hex[:8]}"
    transport = WebsocketsTransport(url=ws_url(gateway), subprotocols=[protocol],
                                    init_payload={"Authorization":
                                                  f"Bearer {project['read_key']}"})
    query = gql(f'subscription {{ userActivity(userId: "{user}", after: "0") '
                "{ insertId eventName } }")
    await apost(gateway, project["write_key"], [event("Search", user, 0, insert_id="g1"),
                                                event("Purchase", user, 1, insert_id="g2")])
    got: list[dict[str, Any]] = []
    async with Client(transport=transport) as session:
        async for result in session.subscribe(query):
            got.append(result["userActivity"])
            if len(got) == 2:
                break
    assert got == [{"insertId": "g1", "eventName": "Search"},
                   {"insertId": "g2", "eventName": "Purchase"}]
