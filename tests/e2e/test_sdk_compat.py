"""Issue 8: the official Segment, RudderStack, PostHog and Mixpanel Python SDKs pointed at a
running ``cep serve``, read back through GraphQL. Where an SDK cannot reach a plain-HTTP
host, its documented payload is sent with httpx instead (said where it happens)."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from mixpanel import Consumer, Mixpanel
from posthog import Posthog
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.e2e.conftest import Gateway

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1")

SESSIONS = """query($d: String) { sessions(window: {last: "30d"}, filter: {deviceId: $d}) {
  edges { node { userId deviceId eventCount landingPage converted
    events { insertId eventName userId deviceId sessionId url time properties country
             deviceType os } } } } }"""
SEGMENT = """query($k: String!, $v: String!) { segment(filter: {traits: [{key: $k, value: $v}]})
  { edges { node { userId email city country } } } }"""
DEAD = "{ deadLetters(first: 100) { edges { index reason payload source } } }"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("sdk"), env={"CEP_RATE_QUERIES": "0"})
    gateway.start()
    yield gateway
    gateway.stop()


def sessions(gw: Gateway, keys: dict[str, Any], device: str) -> list[dict[str, Any]]:
    gw.wait_processed(keys["read_key"])
    data = gw.gql(keys["read_key"], SESSIONS, {"d": device})
    assert "errors" not in data, data
    return [edge["node"] for edge in data["data"]["sessions"]["edges"]]


def users_with(gw: Gateway, keys: dict[str, Any], key: str, value: str) -> list[dict[str, Any]]:
    data = gw.gql(keys["read_key"], SEGMENT, {"k": key, "v": value})
    assert "errors" not in data, data
    return [edge["node"] for edge in data["data"]["segment"]["edges"]]


def dead_letters(gw: Gateway, keys: dict[str, Any]) -> list[dict[str, Any]]:
    gw.wait_processed(keys["read_key"])
    return list(gw.gql(keys["read_key"], DEAD)["data"]["deadLetters"]["edges"])


def iso(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def test_segment_sdk_journey_identity_and_traits(gw: Gateway) -> None:
    keys = gw.create_project("segment")
    client = SegmentClient(keys["write_key"], host=gw.url, sync_mode=True)
    try:
        client.identify("seg-u1", {"plan": "pro", "email": "ana@example.com",
                                   "address": {"city": "Pune", "country": "IN"}},
                        anonymous_id="seg-anon")
        client.page(anonymous_id="seg-anon", name="Home",
                    properties={"url": "https://shop.example/home", "title": "Shop"},
                    context={"userAgent": IPHONE})
        client.track(anonymous_id="seg-anon", event="Add to Cart",
                     properties={"item": "Milk", "price": 1.5},
                     context={"app": {"version": "2.3.1"}})
        client.screen(user_id="seg-u1", anonymous_id="seg-anon", name="Checkout")
        for _ in range(2):  # a retried message is counted once
            client.track("seg-u1", "Purchase", {"amount": 1.5}, anonymous_id="seg-anon",
                         message_id="seg-purchase-1")
        client.group("seg-u1", "acme", {"tier": "enterprise"}, anonymous_id="seg-anon")
        client.alias("seg-old-anon", "seg-u1")
        client.track(anonymous_id="seg-old-anon", event="Search", properties={"q": "tea"})
    finally:
        # sync_mode starts no consumer thread (and shutdown() would iterate its None list).
        client.flush()
    (main,) = sessions(gw, keys, "seg-anon")
    events = main["events"]
    assert [e["eventName"] for e in events] == [
        "Page View", "Add to Cart", "Screen View", "Purchase", "Group"]
    assert {e["userId"] for e in events} == {"seg-u1"}, "identify tied the anonymous id"
    assert (main["userId"], main["landingPage"], main["converted"]) == (
        "seg-u1", "https://shop.example/home", True)
    page, cart, screen, purchase, group = events
    assert (page["url"], page["deviceType"], page["os"]) == (
        "https://shop.example/home", "mobile", "iOS")
    assert page["properties"]["name"] == "Home"
    assert page["properties"]["title"] == "Shop"
    assert cart["properties"]["item"] == "Milk"
    assert cart["properties"]["price"] == 1.5
    assert cart["properties"]["app_version"] == "2.3.1"
    assert cart["properties"]["context"]["library"]["name"] == "analytics-python"
    assert screen["url"] == "Checkout"
    assert purchase["insertId"] == "seg-purchase-1"
    assert group["properties"]["group_id"] == "acme"
    assert group["properties"]["group_traits"] == {"tier": "enterprise"}
    (aliased,) = sessions(gw, keys, "seg-old-anon")
    assert aliased["userId"] == "seg-u1", "alias ties the previous id to the user"
    (user,) = users_with(gw, keys, "plan", "pro")
    assert user == {"userId": "seg-u1", "email": "ana@example.com", "city": "Pune",
                    "country": "IN"}
    assert dead_letters(gw, keys) == []


def test_rudderstack_sdk_gzipped_batch(gw: Gateway) -> None:
    keys = gw.create_project("rudder")
    client = RudderClient(keys["write_key"], host=gw.url, sync_mode=True)  # gzip by default
    try:
        assert client.gzip
        client.track(anonymous_id="rs-anon", event="App Launch", properties={"cold": True})
        client.identify("rs-u1", {"plan": "rudder-pro"}, anonymous_id="rs-anon")
        client.track("rs-u1", "Purchase", {"amount": 3}, anonymous_id="rs-anon")
    finally:
        client.flush()  # sync_mode: no consumer thread to join
    (session,) = sessions(gw, keys, "rs-anon")
    assert [(e["eventName"], e["userId"]) for e in session["events"]] == [
        ("App Launch", "rs-u1"), ("Purchase", "rs-u1")]
    assert session["events"][0]["properties"]["cold"] is True
    assert [u["userId"] for u in users_with(gw, keys, "plan", "rudder-pro")] == ["rs-u1"]


def test_segment_http_api_variants(gw: Gateway) -> None:
    """analytics.js's payloads (its library needs a browser): short paths, text/plain bodies
    with the write key inside, a device clock that is off, and the HTTP API's errors."""
    keys = gw.create_project("segment-http")
    now = datetime.now(UTC)
    skewed = now + timedelta(hours=2)  # the device's clock is 2 h fast
    message = {"type": "track", "event": "Search", "anonymousId": "js-anon",
               "messageId": "js-1", "properties": {"q": "milk"},
               "timestamp": (skewed - timedelta(seconds=5)).isoformat(),
               "sentAt": skewed.isoformat(), "writeKey": keys["write_key"],
               "context": {"page": {"url": "https://shop.example/search?q=milk"},
                           "library": {"name": "analytics.js", "version": "next-1.70.0"},
                           "ip": "8.8.8.8"}}
    resp = httpx.post(gw.url + "/v1/t", content=orjson.dumps(message),
                      headers={"Content-Type": "text/plain"})
    assert (resp.status_code, resp.json()) == (200, {"success": True})
    # Segment's identify on CEP's own /v1/identify path, with Basic auth.
    resp = httpx.post(gw.url + "/v1/identify", auth=(keys["write_key"], ""),
                      json={"userId": "js-u1", "anonymousId": "js-anon",
                            "traits": {"plan": "js-plan", "company": {"name": "Acme"}}})
    assert resp.json() == {"success": True}
    # Segment's batch with a message that has no identity at all: a dead letter, still 200.
    batch = {"batch": [{"type": "page", "anonymousId": "js-anon", "messageId": "js-2",
                        "properties": {"url": "https://shop.example/p/1"}},
                       {"type": "track", "event": "Orphan", "messageId": "js-3"}],
             "writeKey": keys["write_key"]}
    assert httpx.post(gw.url + "/v1/b", content=orjson.dumps(batch)).json() == {
        "success": True}
    bad = httpx.post(gw.url + "/v1/track", content=b"{not json",
                     headers={"Authorization": f"Bearer {keys['write_key']}"})
    assert bad.status_code == 400
    assert bad.json()["success"] is False
    unknown = httpx.post(gw.url + "/v1/track", json={"event": "x", "userId": "u"},
                         auth=("not-a-key", ""))
    assert unknown.status_code == 401
    (session,) = sessions(gw, keys, "js-anon")
    search, page = session["events"]
    assert (search["eventName"], search["userId"], search["url"], search["country"]) == (
        "Search", "js-u1", "https://shop.example/search?q=milk", "US")
    lag = (now - timedelta(seconds=5)) - iso(search["time"])
    assert abs(lag.total_seconds()) < 3, "time = timestamp + (receivedAt - sentAt)"
    assert (page["eventName"], page["url"]) == ("Page View", "https://shop.example/p/1")
    (user,) = users_with(gw, keys, "company.name", "Acme")
    assert user["userId"] == "js-u1"
    (letter,) = dead_letters(gw, keys)
    assert (letter["index"], letter["source"]) == (1, "segment")
    assert letter["reason"].startswith("distinct_user_id:")
    assert orjson.loads(letter["payload"])["event_name"] == "Orphan"


def test_posthog_sdk_capture_identify_alias(gw: Gateway) -> None:
    keys = gw.create_project("posthog")
    client = Posthog(keys["write_key"], host=gw.url, sync_mode=True)
    anon = {"$device_id": "ph-anon", "$session_id": "ph-s1"}
    try:
        client.capture("$pageview", distinct_id="ph-anon",
                       properties={**anon, "$current_url": "https://shop.example/"})
        client.capture("Add to Cart", distinct_id="ph-anon",
                       properties={**anon, "item": "Tea", "$ip": "8.8.8.8"})  # geoip off
        client.capture("$identify", distinct_id="ph-u1",
                       properties={"$anon_distinct_id": "ph-anon",
                                   "$set": {"plan": "ph-team", "email": "bo@example.com"}})
        purchase = str(uuid.uuid4())
        for _ in range(2):
            client.capture("Purchase", distinct_id="ph-u1", uuid=purchase,
                           properties={**anon, "amount": 4, "$ip": "8.8.8.8"},
                           disable_geoip=False)
        client.alias(previous_id="ph-anon-2", distinct_id="ph-u1")
        client.capture("Search", distinct_id="ph-anon-2", properties={"$device_id": "ph-anon-2"})
        client.set(distinct_id="ph-u1", properties={"city": "Lyon"})
    finally:
        client.shutdown()
    (session,) = sessions(gw, keys, "ph-anon")
    page, cart, bought = session["events"]
    assert [e["eventName"] for e in session["events"]] == ["Page View", "Add to Cart",
                                                           "Purchase"]
    assert {e["userId"] for e in session["events"]} == {"ph-u1"}
    assert {e["sessionId"] for e in session["events"]} == {"ph-s1"}
    assert page["url"] == "https://shop.example/"
    assert cart["properties"]["item"] == "Tea"
    assert cart["country"] is None, "$geoip_disable: the IP is dropped"
    assert "$ip" not in cart["properties"]
    assert (bought["insertId"], bought["country"]) == (purchase, "US")
    (aliased,) = sessions(gw, keys, "ph-anon-2")
    assert aliased["userId"] == "ph-u1"
    (user,) = users_with(gw, keys, "plan", "ph-team")
    assert (user["userId"], user["email"], user["city"]) == ("ph-u1", "bo@example.com", "Lyon")
    assert dead_letters(gw, keys) == []


def test_posthog_js_wire_variants(gw: Gateway) -> None:
    """posthog-js's payloads (its library needs a browser): gzip without Content-Encoding,
    the form's base64 ``data``, the ``/e/`` and ``/i/v0/e/`` paths, and ``/decide/``."""
    keys = gw.create_project("posthog-js")
    now_ms = int(time.time() * 1000)

    def js_event(name: str, **props: Any) -> dict[str, Any]:
        return {"event": name, "uuid": str(uuid.uuid4()), "offset": 50,
                "properties": {"token": keys["write_key"], "distinct_id": "js-ph-anon",
                               "$device_id": "js-ph-anon", "$raw_user_agent": IPHONE,
                               **props}}

    zipped = gzip.compress(orjson.dumps([js_event("$pageview", **{
        "$current_url": "https://shop.example/a"})]))
    resp = httpx.post(f"{gw.url}/e/?compression=gzip-js&_={now_ms}", content=zipped,
                      headers={"Content-Type": "text/plain"})
    assert (resp.status_code, resp.json()) == (200, {"status": 1})
    data = base64.b64encode(orjson.dumps(js_event("Search", q="tea"))).decode()
    resp = httpx.post(gw.url + "/capture/", data={"data": data})
    assert resp.json() == {"status": 1}
    resp = httpx.post(gw.url + "/i/v0/e/", json=[js_event("$screen", **{
        "$screen_name": "Basket"})])
    assert resp.json() == {"status": 1}
    assert httpx.post(gw.url + "/decide/?v=3", json={}).json()["featureFlags"] == {}
    refused = httpx.post(gw.url + "/batch/", json={"api_key": "nope", "batch": []})
    assert refused.status_code == 401
    (session,) = sessions(gw, keys, "js-ph-anon")
    assert [(e["eventName"], e["url"], e["deviceType"]) for e in session["events"]] == [
        ("Page View", "https://shop.example/a", "mobile"), ("Search", None, "mobile"),
        ("Screen View", "Basket", "mobile")]
    assert session["userId"] == "js-ph-anon", "anonymous: the device stands for the user"


def test_mixpanel_sdk_track_people_import(gw: Gateway) -> None:
    keys = gw.create_project("mixpanel")
    url = gw.url
    consumer = Consumer(events_url=f"{url}/track", people_url=f"{url}/engage",
                        import_url=f"{url}/import")
    mp = Mixpanel(keys["write_key"], consumer=consumer)
    an_hour_ago = int(time.time()) - 3600
    mp.import_data(None, "mp-u1", "App Launch", an_hour_ago,
                   {"$device_id": "mp-dev", "source": "backfill"},
                   api_secret=keys["write_key"])  # /import: the key as Basic auth user
    mp.track("mp-u1", "Search", {"$device_id": "mp-dev", "query": "milk",
                                 "$current_url": "https://shop.example/s"})
    mp.people_set("mp-u1", {"$email": "cy@example.com", "plan": "mp-pro", "$city": "Oslo"})
    mp.people_set_once("mp-u1", {"first_seen": "2026-01-01"})
    # Mixpanel.alias() always posts to api.mixpanel.com over https (it builds its own
    # Consumer()), so its documented payload is sent here instead.
    alias = {"event": "$create_alias", "properties": {
        "distinct_id": "mp-anon", "alias": "mp-u1", "token": keys["write_key"]}}
    resp = httpx.post(url + "/track", data={"data": orjson.dumps(alias).decode(),
                                            "verbose": "1"})
    assert resp.json() == {"status": 1, "error": None}
    track = {"event": "Browse", "properties": {"token": keys["write_key"],
                                               "distinct_id": "$device:mp-anon",
                                               "time": time.time() - 10}}
    resp = httpx.get(url + "/track", params={
        "data": base64.b64encode(orjson.dumps(track)).decode()})
    assert resp.text == "1"
    (session,) = [s for s in sessions(gw, keys, "mp-dev") if s["eventCount"] == 1
                  and s["events"][0]["eventName"] == "App Launch"]
    launch = session["events"][0]
    assert iso(launch["time"]) == datetime.fromtimestamp(an_hour_ago, UTC)
    assert (launch["userId"], launch["properties"]["source"]) == ("mp-u1", "backfill")
    (search,) = [e for s in sessions(gw, keys, "mp-dev") for e in s["events"]
                 if e["eventName"] == "Search"]
    assert (search["url"], search["properties"]["query"]) == ("https://shop.example/s",
                                                              "milk")
    assert "token" not in search["properties"]
    (browse,) = sessions(gw, keys, "mp-anon")
    assert browse["userId"] == "mp-u1", "$create_alias ties the anonymous id"
    (user,) = users_with(gw, keys, "plan", "mp-pro")
    assert (user["userId"], user["email"], user["city"]) == ("mp-u1", "cy@example.com",
                                                             "Oslo")
    assert [u["userId"] for u in users_with(gw, keys, "first_seen", "2026-01-01")] == ["mp-u1"]


def test_mixpanel_import_strict_mode(gw: Gateway) -> None:
    keys = gw.create_project("mixpanel-import")
    t = int(time.time()) - 600
    batch = [{"event": "Signup", "properties": {"distinct_id": "imp-u1", "time": t * 1000,
                                                "$insert_id": "imp-1", "$device_id": "imp-d"}},
             {"event": "Signup", "properties": {"distinct_id": "imp-u2", "$insert_id": "imp-2"}}]
    ndjson = b"\n".join(orjson.dumps(record) for record in batch)
    resp = httpx.post(gw.url + "/import?strict=1", content=ndjson,
                      auth=(keys["write_key"], ""),
                      headers={"Content-Type": "application/x-ndjson"})
    assert resp.status_code == 400
    assert resp.json() == {
        "code": 400, "error": "some data points in the request failed validation",
        "failed_records": [{"index": 1, "$insert_id": "imp-2", "insert_id": "imp-2",
                            "field": "properties.time",
                            "message": "required field is missing"}],
        "num_records_imported": 1, "status": "Bad Request"}
    resp = httpx.post(gw.url + "/import", json=batch[:1], auth=(keys["write_key"], ""))
    assert resp.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    (session,) = sessions(gw, keys, "imp-d")
    assert [e["insertId"] for e in session["events"]] == ["imp-1"], "deduped by $insert_id"
    assert iso(session["events"][0]["time"]) == datetime.fromtimestamp(t, UTC)
    (letter,) = dead_letters(gw, keys)
    assert (letter["index"], letter["source"]) == (1, "mixpanel")
