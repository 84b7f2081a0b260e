"""Ingest over real HTTP against a running ``cep serve``, read back through GraphQL."""

from __future__ import annotations

import gzip
import time
import uuid
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import Gateway

NOW = int(time.time() * 1000)


def event(name: str, offset_s: float, *, device: str, user: str | None = None,
          url: str | None = None, **props: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"event_name": name, "time": NOW - 3_600_000 + int(offset_s * 1000),
                              "insert_id": str(uuid.uuid4()), "device_id": device}
    if user:
        record["distinct_user_id"] = user
    if url:
        record["url"] = url
    if props:
        record["custom_properties"] = props
    return record


def post(gw: Gateway, key: str | None, body: bytes, path: str = "/v1/events",
         **headers: str) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(gw.url + path, content=body, headers=headers, timeout=60)


def test_healthz_and_auth(gateway: Gateway, keys: dict[str, Any]) -> None:
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    body = orjson.dumps([event("Search", 0, device="x")])
    assert post(gateway, None, body).status_code == 401
    assert post(gateway, "cep_w_not-a-key", body).status_code == 401
    resp = post(gateway, keys["read_key"], body)
    assert resp.status_code == 403
    gql = gateway.gql("nope", "{ pipelineStatus { pendingEvents } }")
    assert gql["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_batch_with_bad_records_keeps_the_good_ones(gateway: Gateway,
                                                    keys: dict[str, Any]) -> None:
    good = [event("App Launch", 0, device="d-mixed", url="shop/home"),
            event("Search", 5, device="d-mixed", query="milk")]
    bad = [{"event_name": "Search", "time": "soon", "insert_id": "b1", "device_id": "x"},
           {"event_name": "Search", "time": NOW, "device_id": "x"}]
    resp = post(gateway, keys["write_key"], orjson.dumps([good[0], bad[0], good[1], bad[1]]))
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["accepted"] == 2
    assert [(r["index"], r["reason"].split(":")[0]) for r in answer["rejected"]] == [
        (1, "time"), (3, "insert_id")]
    gateway.wait_processed(keys["read_key"])
    dead = gateway.gql(keys["read_key"], "{ deadLetters(first: 100) { edges { index reason "
                                         "payload } } }")["data"]["deadLetters"]["edges"]
    assert {d["index"] for d in dead} >= {1, 3}
    assert any('"soon"' in d["payload"] for d in dead)


def test_ndjson_and_gzip_bodies(gateway: Gateway, keys: dict[str, Any]) -> None:
    records = [event("Product View", i, device="d-nd") for i in range(3)]
    ndjson = b"\n".join(orjson.dumps(r) for r in records)
    assert post(gateway, keys["write_key"], ndjson).json()["accepted"] == 3
    zipped = gzip.compress(orjson.dumps([event("Product View", 9, device="d-gz")]))
    resp = post(gateway, keys["write_key"], zipped, **{"Content-Encoding": "gzip"})
    assert resp.json() == {"accepted": 1, "rejected": []}


def test_size_limits_and_non_json(gateway: Gateway, keys: dict[str, Any]) -> None:
    huge = b"[" + b",".join([orjson.dumps(event("Search", 0, device="big", pad="x" * 1000))]
                            * 11_000) + b"]"
    resp = post(gateway, keys["write_key"], huge)
    assert resp.status_code == 413
    assert "limit" in resp.json()["error"]
    bomb = gzip.compress(b"[" + b" " * (11 << 20) + b"]")
    assert post(gateway, keys["write_key"], bomb, **{"Content-Encoding": "gzip"}
                ).status_code == 413
    resp = post(gateway, keys["write_key"], b"this is not json")
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("body:")


def test_events_become_sessions_with_metrics(gateway: Gateway, keys: dict[str, Any]) -> None:
    dev = "d-journey"
    journey = [event("App Launch", 0, device=dev, url="shop/home"),
               event("Search", 20, device=dev, url="shop/search", query="milk"),
               event("Add to Cart", 40, device=dev, item="Milk", price=1.5),
               event("Purchase", 60, device=dev, user="alice", amount=1.5),
               event("App Close", 70, device=dev)]
    late = event("Push Opened", -5, device=dev)  # before the launch: its own session
    resp = post(gateway, keys["write_key"], orjson.dumps(journey))
    assert resp.json()["accepted"] == 5
    assert post(gateway, keys["write_key"], orjson.dumps([late])).json()["accepted"] == 1
    assert post(gateway, keys["write_key"], orjson.dumps(journey[:2])).json()["accepted"] == 2
    gateway.wait_processed(keys["read_key"])
    data = gateway.gql(keys["read_key"], """
      query($f: SessionFilter) { sessions(window: {last: "2h"}, filter: $f) { totalCount
        edges { node { id userId eventCount landingPage exitPage converted closed
          durationSeconds events { eventName userId } } } } }""",
                       {"f": {"deviceId": dev}})["data"]["sessions"]
    nodes = [e["node"] for e in data["edges"]]
    assert [n["eventCount"] for n in nodes] == [1, 5], "retried events counted once"
    main = nodes[1]
    assert (main["userId"], main["landingPage"], main["converted"], main["closed"],
            main["durationSeconds"]) == ("alice", "shop/home", True, True, 70.0)
    assert [e["eventName"] for e in main["events"]] == [
        "App Launch", "Search", "Add to Cart", "Purchase", "App Close"]
    assert {e["userId"] for e in main["events"]} == {"alice"}, "the device's tie resolves"
    assert nodes[0]["userId"] == "alice"


def test_graphql_track_and_identify(gateway: Gateway, keys: dict[str, Any]) -> None:
    res = gateway.gql(keys["write_key"], """
      mutation($e: [EventInput!]!, $p: [ProfileInput!]!) {
        track(events: $e) { accepted rejected { index reason } }
        identify(profiles: $p) { accepted rejected { index reason } } }""", {
        "e": [{"eventName": "App Launch", "time": NOW - 1000, "insertId": "gql-1",
               "deviceId": "gql-d", "distinctUserId": "gql-u"},
              {"eventName": "Purchase", "time": NOW - 900, "insertId": "gql-2",
               "deviceId": "gql-d", "customProperties": {"amount": "free"}}],
        "p": [{"distinctUserId": "gql-u", "traits": {"city": "Pune", "country": "IN"}}]})
    assert res["data"]["track"]["accepted"] == 1
    assert res["data"]["track"]["rejected"][0]["reason"].startswith("custom_properties.amount")
    assert res["data"]["identify"] == {"accepted": 1, "rejected": []}
    gateway.wait_processed(keys["read_key"])
    data = gateway.gql(keys["read_key"], """{ sessionMetrics(window: {last: "1h"},
        segment: {city: "Pune"}) { count } }""")
    assert data["data"]["sessionMetrics"]["count"] == 1, "identify traits win over geo-IP"
    res = httpx.post(gateway.url + "/v1/identify", content=orjson.dumps(
        [{"distinct_user_id": "bob", "traits": {"age": 40}}, {"traits": {}}]),
        headers={"Authorization": f"Bearer {keys['write_key']}"})
    assert res.json() == {"accepted": 1, "rejected": [
        {"index": 1, "reason": "distinct_user_id: required field is missing"}]}


def test_query_errors_are_coded(gateway: Gateway, keys: dict[str, Any]) -> None:
    res = gateway.gql(keys["read_key"], '{ sessionMetrics(window: {last: "5 fortnights"}) '
                                        '{ count } }')
    err = res["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert err["message"].startswith("window.last:")
    res = gateway.gql(keys["write_key"], '{ sessions { totalCount } }')
    assert res["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    deep = "{ sessions { edges { node { events { eventName } } } } }"
    assert "data" in gateway.gql(keys["read_key"], deep)


IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1")


def test_enrichment_from_ip_and_user_agent_with_attribution(gateway: Gateway,
                                                            keys: dict[str, Any]) -> None:
    record = {**event("App Launch", 0, device="d-enrich"), "ip": "8.8.8.8",
              "user_agent": IPHONE}
    odd = {**event("App Launch", 0, device="d-odd"), "ip": "not-an-ip", "user_agent": "???"}
    assert post(gateway, keys["write_key"], orjson.dumps([record, odd])).json()["accepted"] == 2
    gateway.wait_processed(keys["read_key"])
    q = """query($d: String) { sessions(filter: {deviceId: $d}) { edges { node {
        country deviceType os events { country deviceType os } } } } }"""
    node = gateway.gql(keys["read_key"], q, {"d": "d-enrich"})["data"]["sessions"]["edges"][0]
    assert (node["node"]["country"], node["node"]["deviceType"], node["node"]["os"]) == (
        "US", "mobile", "iOS")
    odd_node = gateway.gql(keys["read_key"], q, {"d": "d-odd"})["data"]["sessions"]["edges"]
    assert odd_node[0]["node"]["country"] is None, "unknown input gives defaults, not errors"
    about = gateway.gql(keys["read_key"], "{ about { geoSource geoAttribution { text url } } }")
    about = about["data"]["about"]
    if "dbip" in about["geoSource"].lower() or "db-ip" in about["geoSource"].lower():
        assert about["geoAttribution"] == {"text": "IP Geolocation by DB-IP",
                                           "url": "https://db-ip.com"}


def test_session_settings_change_how_new_sessions_are_cut(gateway: Gateway,
                                                          keys: dict[str, Any]) -> None:
    q = "{ sessionSettings { timeoutMinutes conversionEvents startEvents endEvents } }"
    before = gateway.gql(keys["read_key"], q)["data"]["sessionSettings"]
    assert before == {"timeoutMinutes": 30, "startEvents": ["App Launch"],
                      "endEvents": ["App Close"],
                      "conversionEvents": ["Charged", "Place Order", "Purchase"]}
    m = """mutation($i: SessionSettingsInput!) { updateSessionSettings(input: $i) {
        timeoutMinutes conversionEvents } }"""
    bad = gateway.gql(keys["admin_key"], m, {"i": {"timeoutMinutes": 0}})["errors"][0]
    assert bad["message"].startswith("input.timeoutMinutes:")
    assert gateway.gql(keys["read_key"], m, {"i": {"timeoutMinutes": 5}})["errors"][0][
        "extensions"]["code"] == "FORBIDDEN"
    done = gateway.gql(keys["admin_key"], m, {"i": {"timeoutMinutes": 5,
                                                    "conversionEvents": ["Subscribe"]}})
    assert done["data"]["updateSessionSettings"] == {"timeoutMinutes": 5,
                                                     "conversionEvents": ["Subscribe"]}
    dev = "d-settings"
    records = [event("Search", 0, device=dev), event("Subscribe", 240, device=dev),
               event("Search", 600, device=dev)]  # 4 min, then 6 min of silence
    assert post(gateway, keys["write_key"], orjson.dumps(records)).json()["accepted"] == 3
    gateway.wait_processed(keys["read_key"])
    nodes = gateway.gql(keys["read_key"], """{ sessions(filter: {deviceId: "d-settings"}) {
        edges { node { eventCount converted } } } }""")["data"]["sessions"]["edges"]
    assert [(n["node"]["eventCount"], n["node"]["converted"]) for n in nodes] == [
        (2, True), (1, False)]
    gateway.gql(keys["admin_key"], m, {"i": {"timeoutMinutes": 30, "conversionEvents": [
        "Charged", "Place Order", "Purchase"]}})


def test_privacy_setting_drops_the_ip_after_enrichment(gateway: Gateway,
                                                       keys: dict[str, Any]) -> None:
    q = "{ privacySettings { dropIp } }"
    assert gateway.gql(keys["read_key"], q)["data"] == {"privacySettings": {"dropIp": False}}
    m = "mutation($d: Boolean!) { updatePrivacySettings(dropIp: $d) { dropIp } }"
    assert gateway.gql(keys["read_key"], m, {"d": True})["errors"][0]["extensions"][
        "code"] == "FORBIDDEN"
    assert gateway.gql(keys["admin_key"], m, {"d": True})["data"] == {
        "updatePrivacySettings": {"dropIp": True}}
    assert gateway.gql(keys["read_key"], q)["data"] == {"privacySettings": {"dropIp": True}}
    record = {**event("App Launch", 0, device="d-private"), "ip": "8.8.8.8"}
    assert post(gateway, keys["write_key"], orjson.dumps([record])).json()["accepted"] == 1
    gateway.wait_processed(keys["read_key"])
    node = gateway.gql(keys["read_key"], """{ sessions(filter: {deviceId: "d-private"}) {
        edges { node { country events { country } } } } }""")["data"]["sessions"]["edges"]
    assert node[0]["node"]["country"] == "US", "still placed from the IP"
    assert gateway.gql(keys["admin_key"], m, {"d": False})["data"] == {
        "updatePrivacySettings": {"dropIp": False}}
