"""Issue 8: SDK messages → CEP envelopes (pure), and the SDK routes' answers over ASGI with
the real envelope parser and Ingestor in front of an in-memory log."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway import sdk_compat
from gateway.auth import Authenticator
from gateway.http_ingest import IngestEndpoints
from gateway.ingest import Ingestor
from gateway.limits import RateLimiter
from gateway.sdk_compat import (
    BadPayload,
    SDKEndpoints,
    corrected_time,
    decode_data,
    derived_insert_id,
    is_segment_message,
    iso_ms,
    mixpanel_decode,
    mixpanel_failed_records,
    mixpanel_identity,
    mixpanel_translate_engage,
    mixpanel_translate_events,
    number_ms,
    posthog_decode,
    posthog_translate,
    segment_translate,
)
from storage.control import KeyInfo
from storage.local_log import LogClosed
from stream.contract.envelope import EnvelopeParser
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter, decode_record
from stream.contract.registry import SchemaRegistry

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z
T0 = "2025-11-24T15:00:00.000Z"  # NOW - 1 h
T0_MS = NOW - 3_600_000


# -- times -------------------------------------------------------------------------------

def test_iso_times_and_unix_numbers() -> None:
    assert iso_ms(T0) == T0_MS
    assert iso_ms("2025-11-24T15:00:00.123456Z") == T0_MS + 123
    assert iso_ms("2025-11-24T20:30:00+05:30") == T0_MS, "offsets are honoured"
    assert iso_ms("2025-11-24T15:00:00") == T0_MS, "no offset: UTC"
    assert iso_ms(T0_MS) == T0_MS
    assert iso_ms(T0_MS / 1000) == T0_MS
    assert iso_ms("yesterday") is None
    assert iso_ms(True) is None
    assert iso_ms(None) is None


def test_mixpanel_time_is_seconds_or_milliseconds_when_large() -> None:
    assert number_ms(1_764_000_000) == NOW
    assert number_ms(1_764_000_000.123) == NOW + 123
    assert number_ms(NOW) == NOW
    assert number_ms(99_999_999_999) == 99_999_999_999_000, "under 1e11: still seconds"


def test_clock_skew_correction_as_segment_documents_it() -> None:
    # The device's clock is 2 h fast: the event happened 5 s before it was sent.
    fast = "2025-11-24T18:00:00.000Z"  # device clock at send time
    event = "2025-11-24T17:59:55.000Z"
    assert corrected_time(event, fast, NOW) == NOW - 5000
    assert corrected_time(event, None, NOW) == NOW + 2 * 3_600_000 - 5000, "no sentAt: as is"
    assert corrected_time(None, fast, NOW) == NOW, "no timestamp: received"
    assert corrected_time("soon", fast, NOW) == "soon", "left for validation to name"


def test_derived_insert_id_is_deterministic_and_key_order_free() -> None:
    a = derived_insert_id({"event": "x", "properties": {"a": 1, "b": 2}})
    b = derived_insert_id({"properties": {"b": 2, "a": 1}, "event": "x"})
    assert a == b
    assert len(a) == 33
    assert a != derived_insert_id({"event": "y", "properties": {"a": 1, "b": 2}})


# -- Segment -----------------------------------------------------------------------------

def test_segment_track_maps_every_field() -> None:
    msg = {"type": "track", "event": "Add to Cart", "userId": "u1", "anonymousId": "a1",
           "messageId": "m1", "timestamp": T0, "properties": {"item": "Milk"},
           "context": {"ip": "8.8.8.8", "userAgent": "UA/1", "page": {"url": "https://x/c"},
                       "app": {"version": 7}, "device": {"type": "ios"},
                       "os": {"name": "iOS"}, "library": {"name": "analytics-python"}}}
    out = segment_translate(msg, "track", NOW)
    assert out.events == [{
        "event_name": "Add to Cart", "time": T0_MS, "insert_id": "m1",
        "distinct_user_id": "u1", "device_id": "a1", "url": "https://x/c", "ip": "8.8.8.8",
        "user_agent": "UA/1",
        "custom_properties": {"item": "Milk", "app_version": "7", "context": {
            "page": {"url": "https://x/c"}, "app": {"version": 7}, "device": {"type": "ios"},
            "os": {"name": "iOS"}, "library": {"name": "analytics-python"}}}}]
    assert (out.profiles, out.messages, out.event_origin) == ([], 1, [0])


def test_segment_page_and_screen_are_page_views() -> None:
    page = {"type": "page", "name": "Home", "category": "Shop", "anonymousId": "a1",
            "messageId": "p1", "timestamp": T0, "properties": {"url": "https://x/home"}}
    (rec,) = segment_translate(page, "page", NOW).events
    assert (rec["event_name"], rec["url"], rec["custom_properties"]) == (
        "Page View", "https://x/home", {"url": "https://x/home", "name": "Home",
                                        "category": "Shop"})
    page["properties"] = {}
    page["context"] = {"page": {"url": "https://x/ctx"}}
    (rec,) = segment_translate(page, "page", NOW).events
    assert rec["url"] == "https://x/ctx", "context.page.url when properties have none"
    screen = {"type": "screen", "name": "Basket", "userId": "u1", "messageId": "s1",
              "timestamp": T0}
    (rec,) = segment_translate(screen, "screen", NOW).events
    assert (rec["event_name"], rec["url"], rec["custom_properties"]) == (
        "Screen View", "Basket", {"name": "Basket"})


def test_segment_identify_alias_and_group() -> None:
    identify = {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {
        "plan": "pro", "address": {"city": "Pune", "postalCode": "411001", "country": "IN"},
        "company": {"name": "Acme", "size": 10}, "tags": ["a", "b"]}}
    out = segment_translate(identify, "identify", NOW)
    assert out.events == []
    assert out.profiles == [{"distinct_user_id": "u1", "device_id": "a1", "traits": {
        "city": "Pune", "postal_code": "411001", "country": "IN", "plan": "pro",
        "company.name": "Acme", "company.size": 10, "tags": '["a","b"]'}}]
    anonymous = segment_translate({"anonymousId": "a2", "traits": {"x": 1}}, "identify", NOW)
    assert anonymous.profiles == [{"distinct_user_id": "a2", "traits": {"x": 1}}], (
        "an anonymous identify keeps traits on the identity the device resolves to")
    rudder = {"userId": "u1", "context": {"traits": {"plan": "ctx", "age": 3}},
              "traits": {"plan": "root"}}
    assert segment_translate(rudder, "identify", NOW).profiles[0]["traits"] == {
        "plan": "root", "age": 3}
    alias = segment_translate({"previousId": "old", "userId": "u1"}, "alias", NOW)
    assert (alias.events, alias.profiles) == (
        [], [{"distinct_user_id": "u1", "device_id": "old", "traits": {}}])
    group = {"groupId": 42, "userId": "u1", "traits": {"tier": "gold"}, "messageId": "g1",
             "timestamp": T0}
    (rec,) = segment_translate(group, "group", NOW).events
    assert rec == {"event_name": "Group", "time": T0_MS, "insert_id": "g1",
                   "distinct_user_id": "u1",
                   "custom_properties": {"group_id": "42", "group_traits": {"tier": "gold"}}}


def test_segment_batch_shares_sent_at_and_context() -> None:
    body = {"writeKey": "w", "sentAt": "2025-11-24T15:00:10.000Z",
            "context": {"ip": "1.2.3.4"},
            "batch": [{"type": "track", "event": "A", "userId": "u", "messageId": "1",
                       "timestamp": T0},
                      {"type": "track", "event": "B", "userId": "u", "timestamp": T0,
                       "context": {"ip": "5.6.7.8"}},
                      "not an object",
                      {"type": "launch", "userId": "u", "messageId": "4"}]}
    out = segment_translate(body, "batch", NOW)
    assert (out.key, out.messages, out.event_origin) == ("w", 4, [0, 1, 2, 3])
    a, b, junk, unknown = out.events
    assert (a["time"], a["ip"], b["time"], b["ip"]) == (NOW - 10_000, "1.2.3.4",
                                                        NOW - 10_000, "5.6.7.8")
    assert b["insert_id"] == derived_insert_id(body["batch"][1])
    assert junk == "not an object"
    assert unknown["type"] == "launch", "refused by the envelope as an unknown field"


def test_segment_client_libraries_get_the_request_ip() -> None:
    msg = {"event": "A", "anonymousId": "a", "messageId": "1",
           "context": {"library": {"name": "analytics.js"}}}
    assert segment_translate(msg, "track", NOW, "9.9.9.9").events[0]["ip"] == "9.9.9.9"
    msg["context"] = {"library": {"name": "analytics-python"}}
    assert "ip" not in segment_translate(msg, "track", NOW, "9.9.9.9").events[0]


def test_segment_refuses_only_bodies_that_are_not_its_format() -> None:
    with pytest.raises(BadPayload):
        segment_translate([{"event": "x"}], "track", NOW)
    with pytest.raises(BadPayload):
        segment_translate({"batch": {"event": "x"}}, "batch", NOW)


def test_identify_path_tells_segment_from_cep() -> None:
    assert is_segment_message(b'{"userId": "u", "traits": {"a": 1}}')
    assert is_segment_message(b'{"type": "identify", "anonymousId": "a"}')
    assert not is_segment_message(b'[{"distinct_user_id": "u", "traits": {}}]')
    assert not is_segment_message(b'{"distinct_user_id": "u", "traits": {}}')
    assert not is_segment_message(b'{"distinct_user_id": "u"}\n{"distinct_user_id": "v"}')
    assert not is_segment_message(b'{"traits": {}}')


# -- PostHog -----------------------------------------------------------------------------

def test_posthog_batch_from_the_python_sdk() -> None:
    body = {"api_key": "k", "sent_at": "2025-11-24T15:00:02.000Z", "batch": [
        {"event": "Purchase", "distinct_id": "u1", "uuid": "e1", "timestamp": T0,
         "properties": {"$device_id": "d1", "$session_id": "s1", "amount": 3,
                        "$current_url": "https://x/buy", "$ip": "8.8.8.8",
                        "$geoip_disable": True, "$lib": "posthog-python",
                        "$app_version": "1.2"}},
        {"event": "$pageview", "distinct_id": "d1", "timestamp": T0,
         "properties": {"$device_id": "d1", "$current_url": "https://x/",
                        "$ip": "8.8.8.8", "$raw_user_agent": "UA/2"}}]}
    out = posthog_translate(body, NOW, "10.0.0.1")
    assert out.key == "k"
    purchase, page = out.events
    assert purchase == {
        "event_name": "Purchase", "time": NOW - 2000, "insert_id": "e1",
        "distinct_user_id": "u1", "device_id": "d1", "session_id": "s1",
        "url": "https://x/buy",
        "custom_properties": {"$device_id": "d1", "$session_id": "s1", "amount": 3,
                              "$current_url": "https://x/buy", "$geoip_disable": True,
                              "$lib": "posthog-python", "$app_version": "1.2",
                              "app_version": "1.2"}}
    assert "ip" not in purchase, "$geoip_disable drops the IP"
    assert (page["event_name"], page["url"], page["ip"], page["user_agent"]) == (
        "Page View", "https://x/", "8.8.8.8", "UA/2")
    assert "distinct_user_id" not in page, "distinct_id equal to $device_id is anonymous"
    assert page["insert_id"] == derived_insert_id(body["batch"][1])


def test_posthog_identify_set_alias_and_screen() -> None:
    events = [
        {"event": "$identify", "distinct_id": "u1", "properties": {
            "$anon_distinct_id": "anon", "$set": {"plan": "team"},
            "$set_once": {"plan": "free", "first": "2025"}}},
        {"event": "$set", "distinct_id": "u1", "$set": {"city": "Lyon"}},
        {"event": "$create_alias", "distinct_id": "anon2",
         "properties": {"distinct_id": "anon2", "alias": "u1"}},
        {"event": "$screen", "distinct_id": "u1", "timestamp": T0,
         "properties": {"$screen_name": "Cart", "$set": {"seen_cart": True}}},
        {"event": "Tap", "distinct_id": "u1", "offset": 250, "properties": {"$ip": "1.1.1.1"}},
    ]
    out = posthog_translate(events, NOW, "10.0.0.1")
    assert out.profiles == [
        {"distinct_user_id": "u1", "device_id": "anon",
         "traits": {"plan": "team", "first": "2025"}},
        {"distinct_user_id": "u1", "traits": {"city": "Lyon"}},
        {"distinct_user_id": "u1", "device_id": "anon2", "traits": {}},
        {"distinct_user_id": "u1", "traits": {"seen_cart": True}}]
    assert out.profile_origin == [0, 1, 2, 3]
    screen, tap = out.events
    assert out.event_origin == [3, 4]
    assert (screen["event_name"], screen["url"], screen["time"], screen["ip"]) == (
        "Screen View", "Cart", T0_MS, "10.0.0.1")
    assert "$set" not in screen["custom_properties"]
    assert (tap["time"], tap["ip"]) == (NOW - 250, "1.1.1.1")


def test_posthog_body_encodings() -> None:
    events = [{"event": "x", "properties": {"token": "k", "distinct_id": "u"}}]
    raw = orjson.dumps(events)
    assert posthog_decode(raw, "application/json", {}, 1 << 20) == events
    b64 = base64.b64encode(raw).decode()
    form = f"data={b64}&compression=base64".replace("+", "%2B").encode()
    assert posthog_decode(form, "application/x-www-form-urlencoded", {}, 1 << 20) == events
    zipped_b64 = base64.b64encode(gzip.compress(raw)).decode()
    assert posthog_decode(b"", "", {"data": zipped_b64}, 1 << 20) == events, "GET ?data="
    # An unescaped '+' in a form turns into a space; base64 is repaired.
    plus = base64.b64encode(b'{"event":"x>>","properties":{}}').decode()
    assert "+" in plus
    assert posthog_decode(f"data={plus}".encode(), "", {}, 1 << 20)["event"] == "x>>"
    with pytest.raises(BadPayload, match="lz64"):
        posthog_decode(b"data=abc", "", {"compression": "lz64"}, 1 << 20)
    with pytest.raises(BadPayload):
        posthog_decode(b"data=%%%", "", {}, 1 << 20)
    with pytest.raises(BadPayload):
        decode_data(b"{broken", 1 << 20)


# -- Mixpanel ----------------------------------------------------------------------------

def test_mixpanel_identity_rules() -> None:
    assert mixpanel_identity({"distinct_id": "u1"}) == ("u1", None)
    assert mixpanel_identity({"distinct_id": "$device:d1"}) == (None, "d1")
    assert mixpanel_identity({"distinct_id": "d1", "$device_id": "d1"}) == (None, "d1")
    assert mixpanel_identity({"distinct_id": "u1", "$device_id": "d1",
                              "$user_id": "u1"}) == ("u1", "d1")
    assert mixpanel_identity({"distinct_id": 7}) == ("7", None)


def test_mixpanel_events_seconds_ms_and_ties() -> None:
    data = [{"event": "Search", "properties": {
                "token": "k", "distinct_id": "u1", "time": 1_764_000_000.5,
                "$insert_id": "i1", "$device_id": "d1", "ip": "8.8.8.8", "q": "tea",
                "$current_url": "https://x/s", "$app_version_string": "3.1"}},
            {"event": "$mp_web_page_view", "properties": {"distinct_id": "u1",
                                                          "time": NOW - 5}},
            {"event": "$identify", "properties": {"$identified_id": "u1", "$anon_id": "a1"}},
            {"event": "$create_alias", "properties": {"distinct_id": "a2", "alias": "u1"}},
            {"event": "$merge", "properties": {"$distinct_ids": ["u1", "a3"]}},
            {"event": "NoTime", "properties": {"distinct_id": "u1", "$insert_id": "i9"}}]
    out = mixpanel_translate_events(data, NOW, "10.0.0.9", request_ip=True, fill_time=False)
    assert out.key == "k"
    search, page, no_time = out.events
    assert search == {"event_name": "Search", "time": NOW + 500, "insert_id": "i1",
                      "distinct_user_id": "u1", "device_id": "d1", "url": "https://x/s",
                      "ip": "8.8.8.8", "custom_properties": {
                          "q": "tea", "$current_url": "https://x/s",
                          "$app_version_string": "3.1", "app_version": "3.1"}}
    assert (page["event_name"], page["time"], page["ip"]) == ("Page View", NOW - 5,
                                                              "10.0.0.9")
    assert "time" not in no_time, "/import: no time is refused by the envelope"
    assert out.profiles == [{"distinct_user_id": "u1", "device_id": d, "traits": {}}
                            for d in ("a1", "a2", "a3")]
    (filled,) = mixpanel_translate_events({"event": "E", "properties": {"distinct_id": "u"}},
                                          NOW).events
    assert (filled["time"], "ip" in filled) == (NOW, False), "/track: received time; ip=0"


def test_mixpanel_engage_set_and_set_once() -> None:
    updates = [{"$token": "k", "$distinct_id": "u1", "$set": {"$email": "a@b.c", "plan": "x",
                                                              "$region": "MH"},
                "$set_once": {"plan": "first", "signup": "2025"}},
               {"$token": "k", "$distinct_id": "u1", "$add": {"logins": 1}},
               {"$distinct_id": "$device:d9", "$device_id": "d9", "$set": {"a": 1}},
               {"$distinct_id": "u2", "$device_id": "d2", "$user_id": "u2", "$set": {}}]
    out = mixpanel_translate_engage(updates)
    assert out.key == "k"
    assert out.profiles == [
        {"distinct_user_id": "u1", "traits": {"plan": "x", "signup": "2025",
                                              "email": "a@b.c", "state": "MH"}},
        {"distinct_user_id": "u1", "traits": {}, "$add": {"logins": 1}},
        {"distinct_user_id": "d9", "traits": {"a": 1}},
        {"distinct_user_id": "u2", "device_id": "d2", "traits": {}}]


def test_mixpanel_form_and_ndjson_bodies() -> None:
    event = {"event": "E", "properties": {"distinct_id": "u"}}
    form = b"data=" + orjson.dumps(event).replace(b'"', b"%22") + b"&verbose=1&ip=0"
    payload, params = mixpanel_decode(form, "application/x-www-form-urlencoded",
                                      {"strict": "1"}, 1 << 20)
    assert (payload, params) == (event, {"strict": "1", "verbose": "1", "ip": "0"})
    b64 = base64.b64encode(orjson.dumps(event)).decode()
    assert mixpanel_decode(f"data={b64}".encode(), "", {}, 1 << 20)[0] == event
    ndjson = orjson.dumps(event) + b"\n" + orjson.dumps(event) + b"\n"
    assert mixpanel_decode(ndjson, "application/x-ndjson", {}, 1 << 20)[0] == [event, event]
    with pytest.raises(BadPayload):
        mixpanel_decode(b"", "", {}, 1 << 20)


def test_mixpanel_strict_failed_records_name_mixpanel_fields() -> None:
    out = mixpanel_translate_events([{"event": "A", "properties": {"$insert_id": "i0"}},
                                     {"event": "B", "properties": {"$insert_id": "i1"}}],
                                    NOW, fill_time=False)
    failed = mixpanel_failed_records(out, [
        (0, "time: required field is missing"),
        (1, "custom_properties.amount: expected number")])
    assert failed == [
        {"index": 0, "$insert_id": "i0", "insert_id": "i0", "field": "properties.time",
         "message": "required field is missing"},
        {"index": 1, "$insert_id": "i1", "insert_id": "i1", "field": "properties.amount",
         "message": "expected number"}]


# -- the routes, with the real parser and Ingestor ------------------------------------------

class FakeControl:
    def authenticate(self, key: str) -> KeyInfo | None:
        return {"w": KeyInfo("p", "write"), "r": KeyInfo("p", "read")}.get(key)


class MemoryLog:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.events: list[Event] = []
        self.profiles: list[Profile] = []
        self.dead: list[DeadLetter] = []

    async def append(self, payload: bytes, items: int) -> int:
        if self.fail:
            raise self.fail
        record = decode_record(payload)
        self.events += record.events
        self.profiles += record.profiles
        self.dead += record.dead
        return 0


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_compat, "now_ms", lambda: NOW)


def app(log: MemoryLog, rate: float = 0) -> httpx.AsyncClient:
    ingestor = Ingestor(EnvelopeParser(SchemaRegistry(), lambda: NOW), log)
    auth = Authenticator(FakeControl())  # type: ignore[arg-type]
    limiter = RateLimiter(rate)
    ingest = IngestEndpoints(ingestor, auth, 1 << 20, limiter)
    sdk = SDKEndpoints(ingest, ingestor)
    routes = [Route("/v1/identify", sdk.identify, methods=["POST"]), *sdk.routes()]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=routes)),
                             base_url="http://t")


async def test_segment_batch_over_http_lands_in_the_log() -> None:
    log = MemoryLog()
    body = {"batch": [{"type": "track", "event": "Buy", "userId": "u1", "anonymousId": "a1",
                       "messageId": "m1", "timestamp": T0},
                      {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
                      {"type": "track", "event": "Orphan", "messageId": "m3",
                       "timestamp": T0}],
            "sentAt": T0}
    async with app(log) as c:
        resp = await c.post("/v1/batch", content=gzip.compress(orjson.dumps(body)),
                            headers={"Authorization": "Basic dzo=",
                                     "Content-Encoding": "gzip"})
    assert (resp.status_code, resp.json()) == (200, {"success": True})
    (event,) = log.events
    assert (event.event_name, event.time, event.insert_id, event.distinct_user_id,
            event.device_id) == ("Buy", NOW, "m1", "u1", "a1")
    assert [(p.distinct_user_id, p.traits) for p in log.profiles] == [("u1", {"plan": "pro"})]
    (letter,) = log.dead
    assert (letter.index, letter.source, letter.kind) == (1, "segment", "event")
    assert letter.reason.startswith("distinct_user_id:")


async def test_cep_identify_still_answers_in_its_own_format() -> None:
    log = MemoryLog()
    async with app(log) as c:
        own = await c.post("/v1/identify", headers={"Authorization": "Bearer w"},
                           content=orjson.dumps([{"distinct_user_id": "bob",
                                                  "traits": {"age": 40}}, {"traits": {}}]))
        segment = await c.post("/v1/identify", headers={"Authorization": "Bearer w"},
                               content=gzip.compress(orjson.dumps(
                                   {"userId": "ann", "traits": {"age": 30}})))
        bad = await c.post("/v1/identify", content=b"[{}]")
    assert own.json() == {"accepted": 1, "rejected": [
        {"index": 1, "reason": "distinct_user_id: required field is missing"}]}
    assert segment.json() == {"success": True}
    assert [(p.distinct_user_id, p.traits) for p in log.profiles] == [
        ("bob", {"age": 40}), ("ann", {"age": 30})]
    assert (bad.status_code, bad.json()["code"]) == (401, "UNAUTHENTICATED")


async def test_each_sdk_gets_its_own_error_shapes() -> None:
    async with app(MemoryLog()) as c:
        seg = await c.post("/v1/track", content=b'{"event": "x", "userId": "u"}')
        seg_bad = await c.post("/v1/track", content=b"{oops", auth=("w", ""))
        ph = await c.post("/batch/", json={"api_key": "nope", "batch": []})
        ph_read = await c.post("/capture/", json={"api_key": "r", "event": "x"})
        mp = await c.post("/track", data={"data": '{"event": "x", "properties": {}}',
                                          "verbose": "1"})
        mp_bad = await c.post("/import", content=b"{oops", auth=("w", ""))
    assert (seg.status_code, seg.json()) == (401, {
        "success": False, "code": "unauthenticated",
        "message": "a valid write key is required"})
    assert (seg_bad.status_code, seg_bad.json()["code"]) == (400, "bad_request")
    assert (ph.status_code, ph.json()["type"], ph.json()["code"]) == (
        401, "authentication_error", "unauthenticated")
    assert ph_read.status_code == 403
    assert (mp.status_code, mp.json()) == (401, {"status": 0,
                                                 "error": "a valid write key is required"})
    assert (mp_bad.status_code, mp_bad.json()["status"]) == (400, "Bad Request")


@pytest.mark.parametrize(("path", "kw"), [
    ("/v1/batch", {"json": {"batch": [{"type": "track", "event": "x", "userId": "u"}],
                            "writeKey": "w"}}),
    ("/batch/", {"json": {"api_key": "w", "batch": [{"event": "x", "distinct_id": "u"}]}}),
    ("/track", {"data": {"data": '{"event": "x", "properties": {"token": "w"}}'}}),
    ("/engage", {"data": {"data": '{"$token": "w", "$distinct_id": "u", "$set": {}}'}}),
])
async def test_an_unavailable_log_is_503_with_retry_after(path: str, kw: Any) -> None:
    async with app(MemoryLog(fail=LogClosed("closed"))) as c:
        resp = await c.post(path, **kw)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"


async def test_rate_limit_counts_every_translated_record() -> None:
    async with app(MemoryLog(), rate=1) as c:  # a burst of 2 records
        body = {"api_key": "w", "batch": [
            {"event": "x", "distinct_id": "u", "uuid": "1"},
            {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "a"}}]}
        first = await c.post("/batch/", json=body)
        second = await c.post("/batch/", json=body)
    assert first.status_code == 200
    assert (second.status_code, second.json()["code"]) == (429, "rate_limited")
    assert int(second.headers["Retry-After"]) >= 1


async def test_posthog_gzip_without_content_encoding_and_mixpanel_answers() -> None:
    log = MemoryLog()
    event = {"event": "x", "uuid": "e1", "timestamp": T0,
             "properties": {"token": "w", "distinct_id": "u"}}
    async with app(log) as c:
        ph = await c.post("/e/?compression=gzip-js", content=gzip.compress(orjson.dumps(
            [event])), headers={"Content-Type": "text/plain"})
        flags = await c.post("/flags/?v=2", json={"token": "w"})
        track = await c.post("/track/", data={
            "data": base64.b64encode(b'{"event": "y", "properties": {"token": "w", '
                                     b'"distinct_id": "u", "time": 1764000000}}').decode()})
        verbose = await c.post("/track?verbose=1", data={
            "data": '{"event": "z", "properties": {"token": "w", "distinct_id": "u"}}'})
        strict = await c.post("/import?strict=1", auth=("w", ""), json=[
            {"event": "a", "properties": {"distinct_id": "u", "time": 1764000000,
                                          "$insert_id": "a1"}},
            {"event": "b", "properties": {"distinct_id": "u", "$insert_id": "b1"}}])
        preflight = await c.options("/e/", headers={
            "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
    assert (ph.status_code, ph.json()) == (200, {"status": 1})
    assert ph.headers["Access-Control-Allow-Origin"] == "*"
    assert flags.json()["featureFlags"] == {}
    assert (track.status_code, track.text) == (200, "1")
    assert verbose.json() == {"status": 1, "error": None}
    assert (strict.status_code, strict.json()) == (400, {
        "code": 400, "error": "some data points in the request failed validation",
        "failed_records": [{"index": 1, "$insert_id": "b1", "insert_id": "b1",
                            "field": "properties.time",
                            "message": "required field is missing"}],
        "num_records_imported": 1, "status": "Bad Request"})
    assert (preflight.status_code, preflight.headers["Access-Control-Allow-Origin"],
            preflight.headers["Access-Control-Allow-Headers"]) == (
        204, "https://shop.example", "content-type")
    assert [(e.event_name, e.time) for e in log.events] == [
        ("x", T0_MS), ("y", NOW), ("z", NOW), ("a", NOW)]
    assert [d.source for d in log.dead] == ["mixpanel"]


def test_records_are_valid_msgspec_raw() -> None:
    (record,) = segment_translate({"event": "A", "userId": "u", "messageId": "1",
                                   "timestamp": T0}, "track", NOW).events
    assert msgspec.json.decode(orjson.dumps(record)) == record
