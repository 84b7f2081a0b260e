"""``cep generate``: the synthetic grocery stream is realistic, complete and deterministic."""

from __future__ import annotations

import ipaddress
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import iptocc
import orjson
import pytest

from stream.generate import Dataset, SendError, generate, geo, send, write_ndjson
from stream.generate.arrival import INVALID_KINDS, corrupt
from stream.generate.model import CATEGORIES, DAY_MS, ORDER_SERVICE

END_MS = 1_793_000_000_000  # 2026-10-26T09:33:20Z, a Monday
REQUIRED_TRAITS = {
    "name", "email", "phone", "age", "gender", "city", "state", "country",
    "postal_code", "latitude", "longitude",
}  # fmt: skip
ENVELOPE_FIELDS = {
    "event_name", "event_category", "time", "distinct_user_id", "device_id", "insert_id",
    "source_id", "url", "ip", "user_agent", "custom_properties",
}  # fmt: skip


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=1, users=200, days=14, end_ms=END_MS)


def is_bad(record: dict[str, Any]) -> bool:
    """What any strict envelope check refuses."""
    return (
        "insert_id" not in record
        or "event_name" not in record
        or not isinstance(record.get("time"), int)
        or not 1_000_000_000_000 < record["time"] < 4_000_000_000_000
        or not (record.get("distinct_user_id") or record.get("device_id"))
        or not isinstance(record.get("custom_properties"), dict)
        or not set(record) <= ENVELOPE_FIELDS
    )


def unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """First copy of each insert_id, as de-duplication keeps it."""
    seen: set[str] = set()
    out = []
    for event in events:
        if event["insert_id"] not in seen:
            seen.add(event["insert_id"])
            out.append(event)
    return out


def by_device(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each device's events in event-time order."""
    devices: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in unique(events):
        if "device_id" in event:
            devices[event["device_id"]].append(event)
    for events_of_device in devices.values():
        events_of_device.sort(key=lambda event: event["time"])
    return devices


# ---- determinism and speed ------------------------------------------------------------


def test_same_seed_gives_byte_identical_output(dataset: Dataset) -> None:
    again = generate(seed=1, users=200, days=14, end_ms=END_MS)
    assert orjson.dumps(again.events) == orjson.dumps(dataset.events)
    assert orjson.dumps(again.profiles) == orjson.dumps(dataset.profiles)
    assert again.stats == dataset.stats


def test_another_seed_gives_another_stream(dataset: Dataset) -> None:
    other = generate(seed=2, users=200, days=14, end_ms=END_MS)
    ids = {event["insert_id"] for event in dataset.events}
    assert not ids & {event["insert_id"] for event in other.events}
    assert other.profiles != dataset.profiles


def test_generates_at_least_50k_events_per_second() -> None:
    # CPU time, so a busy machine does not fail the test; the target is 100k/s.
    started = time.process_time()
    big = generate(seed=7, users=1000, days=14, end_ms=END_MS)
    elapsed = time.process_time() - started
    assert len(big.events) > 80_000
    assert len(big.events) / elapsed >= 50_000


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="days"):
        generate(seed=1, users=1, days=0, end_ms=END_MS)
    with pytest.raises(ValueError, match="invalid_rate"):
        generate(seed=1, users=1, days=1, end_ms=END_MS, invalid_rate=1.5)


# ---- the envelope ---------------------------------------------------------------------


def test_every_event_has_a_complete_envelope(dataset: Dataset) -> None:
    assert dataset.stats.invalid == 0
    assert dataset.invalid_indexes == []
    for event in dataset.events:
        assert set(event) <= ENVELOPE_FIELDS
        assert isinstance(event["event_name"], str)
        assert event["event_category"] == CATEGORIES[event["event_name"]]
        assert type(event["time"]) is int
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            event["insert_id"])  # fmt: skip
        assert event.get("distinct_user_id") or event.get("device_id")
        assert isinstance(event["custom_properties"], dict)
        assert None not in event.values()


def test_times_lie_in_the_window(dataset: Dataset) -> None:
    start = END_MS - 14 * DAY_MS
    assert dataset.start_ms == start
    assert all(start <= event["time"] <= END_MS for event in dataset.events)
    # Activity spreads over the whole window, not just its start.
    days = {(event["time"] - start) // DAY_MS for event in dataset.events}
    assert days == set(range(14))


def test_shape_for_seed_1(dataset: Dataset) -> None:
    stats = dataset.stats
    assert stats.users == len(dataset.profiles) == 200
    assert 15_000 < stats.records < 40_000
    assert stats.unique_insert_ids == stats.records - stats.duplicates
    assert stats.devices > 200  # some users have two or three devices, plus visitors
    assert stats.sessions == len(dataset.sessions) > 800
    names = stats.by_event
    assert names["Product View"] > names["Add to Cart"] > names["Begin Checkout"]
    assert names["Begin Checkout"] > names["Purchase"] > 0


def test_server_and_device_events_carry_the_right_fields(dataset: Dataset) -> None:
    for event in dataset.events:
        if event["source_id"] == ORDER_SERVICE:
            assert "device_id" not in event
            assert "user_agent" not in event
        else:
            assert {"device_id", "url", "ip", "user_agent"} <= set(event)
            assert event["url"].startswith("moreretail.com/")


# ---- sessions and journeys ------------------------------------------------------------


def test_app_sessions_start_with_launch_and_mostly_end_with_close(dataset: Dataset) -> None:
    endings: Counter[str] = Counter()
    for events in by_device(dataset.events).values():
        if events[0]["source_id"] == "web":
            continue
        sessions: list[list[dict[str, Any]]] = []
        for event in events:
            if event["event_name"] == "App Launch":
                sessions.append([])
            assert sessions, "an app session starts with App Launch"
            sessions[-1].append(event)
        for session in sessions:
            endings[session[-1]["event_name"]] += 1
            gaps = [b["time"] - a["time"] for a, b in zip(session, session[1:], strict=False)]
            assert all(5_000 <= gap <= 90_000 for gap in gaps)
    total = sum(endings.values())
    assert endings["App Close"] / total > 0.75
    assert endings["App Close"] < total  # some just time out
    assert endings["App Crash"] > 0


def test_sessions_are_separated_by_more_than_the_timeout(dataset: Dataset) -> None:
    by_key: dict[str, list[int]] = defaultdict(list)
    for session in dataset.sessions:
        by_key[session.device_id].append(session.start_ms)
        assert session.end in {"close", "crash", "timeout"}
    ends = {(s.device_id, s.start_ms): s.end_ms for s in dataset.sessions}
    for device, starts in by_key.items():
        starts.sort()
        for before, after in zip(starts, starts[1:], strict=False):
            assert after - ends[(device, before)] > 30 * 60_000


def test_first_time_users_install_the_app(dataset: Dataset) -> None:
    devices = by_device(dataset.events)
    installs = [e for e in unique(dataset.events) if e["event_name"] == "App Install"]
    assert len(installs) > 20
    for install in installs:
        first = devices[install["device_id"]][0]
        assert first["event_name"] == "App Launch"
        assert first["custom_properties"]["first_launch"] is True
        assert install["time"] > first["time"]
    assert dataset.stats.by_event["Sign Up"] > 0


def test_evenings_are_busier_than_nights(dataset: Dataset) -> None:
    cities = {city.name: city for city in geo.CITIES}
    home = {p["distinct_user_id"]: cities[p["traits"]["city"]] for p in dataset.profiles}
    hours: Counter[int] = Counter()
    for session in dataset.sessions:
        if session.user_id is not None:
            city = home[session.user_id]
            local = session.start_ms + geo.utc_offset_ms(city, session.start_ms)
            hours[local // 3_600_000 % 24] += 1
    evening = sum(hours[h] for h in range(18, 22))
    night = sum(hours[h] for h in range(1, 5))
    assert evening > 8 * night


def test_purchases_have_positive_amounts_and_items(dataset: Dataset) -> None:
    purchases = [e for e in unique(dataset.events) if e["event_name"] == "Purchase"]
    assert purchases
    for purchase in purchases:
        props = purchase["custom_properties"]
        assert props["amount"] > 0
        assert props["currency"] in {"INR", "USD", "GBP"}
        assert props["items"]
        assert all(item["quantity"] >= 1 for item in props["items"])
        assert props["order_id"].startswith("MR")
        assert "distinct_user_id" in purchase  # checkout needs a signed-in user


def test_delivery_events_come_from_the_order_service_after_the_purchase(
    dataset: Dataset,
) -> None:
    placed = {
        e["custom_properties"]["order_id"]: e
        for e in unique(dataset.events)
        if e["event_name"] == "Purchase"
    }
    deliveries = [e for e in unique(dataset.events) if e["source_id"] == ORDER_SERVICE]
    assert {e["event_name"] for e in deliveries} >= {
        "Order Confirmed",
        "Order Dispatched",
        "Order Delivered",
    }
    for event in deliveries:
        assert event["event_category"] == "Delivery and Fulfillment"
        assert "device_id" not in event
        assert event["distinct_user_id"]
        purchase = placed[event["custom_properties"]["order_id"]]
        assert event["distinct_user_id"] == purchase["distinct_user_id"]
        assert event["time"] > purchase["time"]


# ---- identity, retries, late events ---------------------------------------------------


def test_devices_log_in_after_browsing_logged_out(dataset: Dataset) -> None:
    switched = 0
    for events in by_device(dataset.events).values():
        logins = [i for i, e in enumerate(events) if e["event_name"] == "Login"]
        if not logins or "distinct_user_id" in events[0]:
            continue
        switched += 1
        # A new user's Sign Up comes just before the Login; both carry both ids.
        tied = next(i for i, e in enumerate(events) if "distinct_user_id" in e)
        assert events[tied]["event_name"] in {"Sign Up", "Login"}
        assert tied <= logins[0] <= tied + 1
        user = events[tied]["distinct_user_id"]
        assert all(e.get("distinct_user_id") == user for e in events[tied:])
    assert switched > 10
    assert switched == dataset.stats.logged_out_then_login


def test_anonymous_devices_exist(dataset: Dataset) -> None:
    anonymous = [
        device
        for device, events in by_device(dataset.events).items()
        if all("distinct_user_id" not in e for e in events)
    ]
    assert len(anonymous) == dataset.stats.anonymous_devices > 0


def test_retried_events_are_identical_copies(dataset: Dataset) -> None:
    first: dict[str, dict[str, Any]] = {}
    copies = 0
    for event in dataset.events:
        seen = first.setdefault(event["insert_id"], event)
        if seen is not event:
            copies += 1
            assert orjson.dumps(seen) == orjson.dumps(event)
    assert copies == dataset.stats.duplicates
    assert 0.005 < copies / len(dataset.events) < 0.02


def test_some_events_arrive_after_newer_events_of_their_device(dataset: Dataset) -> None:
    newest: dict[str, int] = {}
    late = 0
    for event in unique(dataset.events):
        device = event.get("device_id")
        if device is None:
            continue
        if event["time"] < newest.get(device, 0):
            late += 1
        newest[device] = max(newest.get(device, 0), event["time"])
    assert late == dataset.stats.late_events > 10


# ---- profiles, devices, networks ------------------------------------------------------


def test_profiles_carry_demographics(dataset: Dataset) -> None:
    countries: Counter[str] = Counter()
    for profile in dataset.profiles:
        traits = profile["traits"]
        assert set(traits) >= REQUIRED_TRAITS
        assert all(not isinstance(value, dict | list) for value in traits.values())
        assert re.fullmatch(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]+", traits["email"])
        assert re.fullmatch(r"\+\d{10,12}", traits["phone"])
        assert 18 <= traits["age"] <= 72
        assert traits["gender"] in {"female", "male", "non_binary"}
        city = next(c for c in geo.CITIES if c.name == traits["city"])
        assert traits["country"] == city.country
        assert traits["state"] == city.state
        assert abs(traits["latitude"] - city.latitude) < 0.1
        countries[traits["country"]] += 1
    assert set(countries) == {"US", "IN", "GB"}


def test_ips_are_public_and_in_the_users_country(dataset: Dataset) -> None:
    country = {p["distinct_user_id"]: p["traits"]["country"] for p in dataset.profiles}
    for event in dataset.events:
        if "ip" not in event:
            continue
        address = ipaddress.ip_address(event["ip"])
        assert address.is_global
        assert not address.is_private
        if "distinct_user_id" in event:
            assert iptocc.country_code(event["ip"]) == country[event["distinct_user_id"]]


def test_curated_networks_belong_to_their_country() -> None:
    for city in geo.CITIES:
        for text in city.fixed_networks + city.mobile_networks:
            network = ipaddress.ip_network(text)
            assert network.is_global, text
            for host in (1, network.num_addresses // 2, network.num_addresses - 2):
                assert iptocc.country_code(str(network.network_address + host)) == city.country


def test_user_agents_are_current(dataset: Dataset) -> None:
    agents = {e["user_agent"]: e["source_id"] for e in dataset.events if "user_agent" in e}
    assert len(agents) > 20
    for agent, source in agents.items():
        if source == "ios-app":
            assert re.fullmatch(r"MoreRetail/5\.\d\.\d \((iPhone|iPad); iOS (18|26)[\d.]*; "
                                r"Scale/\d\.00\)", agent)  # fmt: skip
        elif source == "android-app":
            assert re.search(r"Android 1[56]; .* MoreRetail/5\.\d\.\d$", agent)
        else:
            assert agent.startswith("Mozilla/5.0 ")
        for major in re.findall(r"(?:Chrome|Edg|Firefox)/(\d+)", agent):
            assert int(major) >= 130, agent


def test_devices_describe_what_the_events_show(dataset: Dataset) -> None:
    assert len(dataset.devices) == dataset.stats.devices
    truth = {device["device_id"]: device for device in dataset.devices}
    assert {d["device_type"] for d in dataset.devices} == {"mobile", "tablet", "desktop"}
    for event in unique(dataset.events):
        if "device_id" not in event:
            continue
        device = truth[event["device_id"]]
        assert event["user_agent"] == device["user_agent"]
        assert event["source_id"] == device["source_id"]
        if "distinct_user_id" in event:
            assert event["distinct_user_id"] == device["distinct_user_id"]
        if event["event_name"] == "App Launch":
            assert event["custom_properties"]["app_version"] == device["app_version"]
            assert event["custom_properties"]["os"] == device["os"]


def test_dst_moves_the_offset() -> None:
    new_york = next(c for c in geo.CITIES if c.name == "New York")
    london = next(c for c in geo.CITIES if c.name == "London")
    july, january = 1_783_000_000_000, 1_768_000_000_000  # 2026-07-02, 2026-01-09
    assert geo.utc_offset_ms(new_york, july) == -4 * 3_600_000
    assert geo.utc_offset_ms(new_york, january) == -5 * 3_600_000
    assert geo.utc_offset_ms(london, july) == 3_600_000
    assert geo.utc_offset_ms(london, january) == 0


# ---- invalid records ------------------------------------------------------------------


def test_invalid_records_are_marked_and_broken() -> None:
    broken = generate(seed=3, users=60, days=7, end_ms=END_MS, invalid_rate=0.02)
    assert broken.invalid_indexes
    assert broken.stats.invalid == len(broken.invalid_indexes)
    assert broken.invalid_indexes == sorted(broken.invalid_indexes)
    valid_count = broken.stats.valid_records
    assert abs(len(broken.invalid_indexes) - 0.02 * valid_count) < 0.01 * valid_count
    assert [i for i, e in enumerate(broken.events) if is_bad(e)] == broken.invalid_indexes


@pytest.mark.parametrize("kind", INVALID_KINDS)
def test_each_kind_of_corruption_breaks_the_envelope(kind: str, dataset: Dataset) -> None:
    original = dataset.events[0]
    bad = corrupt(random.Random(0), original, kind)
    assert is_bad(bad)
    assert not is_bad(original)


def test_stream_passes_the_ingest_contract(dataset: Dataset) -> None:
    envelope = pytest.importorskip("stream.contract.envelope")
    registry_module = pytest.importorskip("stream.contract.registry")
    registry = registry_module.SchemaRegistry()
    registry.set_strict("demo", True)  # unknown event names would be rejected
    parser = envelope.EnvelopeParser(registry, lambda: END_MS + 60_000)
    broken = generate(seed=4, users=40, days=7, end_ms=END_MS, invalid_rate=0.03)
    judged = parser.events("demo", envelope.split_records(orjson.dumps(broken.events)))
    assert sorted(index for index, _ in judged.rejected) == broken.invalid_indexes
    judged = parser.profiles("demo", envelope.split_records(orjson.dumps(broken.profiles)))
    assert not judged.rejected


# ---- writing and sending --------------------------------------------------------------


def test_write_ndjson_writes_events_and_profiles(dataset: Dataset, tmp_path: Path) -> None:
    events_path, profiles_path = write_ndjson(dataset, tmp_path / "demo.ndjson")
    assert profiles_path == tmp_path / "demo.profiles.ndjson"
    lines = events_path.read_bytes().splitlines()
    assert len(lines) == len(dataset.events)
    assert orjson.loads(lines[0]) == dataset.events[0]
    assert len(profiles_path.read_bytes().splitlines()) == 200
    again, _ = write_ndjson(generate(1, 200, 14, END_MS), tmp_path / "again.ndjson")
    assert again.read_bytes() == events_path.read_bytes()


class Gateway:
    """A fake ingest gateway: checks the key, collects records, rejects bad ones, and
    fails the first few requests (503, dropped connection) to exercise retries."""

    def __init__(self, failures: int = 0, max_batch: int = 10_000) -> None:
        self.events: list[dict[str, Any]] = []
        self.profiles: list[dict[str, Any]] = []
        self.failures = failures
        self.max_batch = max_batch
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if request.headers["authorization"] != "Bearer wk_test":
            return httpx.Response(401, json={"error": "bad key"})
        if self.failures:
            self.failures -= 1
            if self.failures % 2:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(503)
        records = orjson.loads(request.content)
        if len(records) > self.max_batch:
            return httpx.Response(413)
        store = self.events if request.url.path == "/v1/events" else self.profiles
        rejected = []
        for index, record in enumerate(records):
            if request.url.path == "/v1/events" and (
                "insert_id" not in record or not isinstance(record.get("time"), int)
            ):
                rejected.append({"index": index, "reason": "envelope: invalid"})
            else:
                store.append(record)
        accepted = len(records) - len(rejected)
        return httpx.Response(200, json={"accepted": accepted, "rejected": rejected})


async def test_send_delivers_everything(dataset: Dataset) -> None:
    gateway = Gateway()
    result = await send(
        dataset, "http://cep.test", "wk_test", batch_size=500,
        transport=httpx.MockTransport(gateway),
    )  # fmt: skip
    assert result.accepted == len(dataset.events)
    assert result.profiles_accepted == len(dataset.profiles)
    assert result.rejected == []
    assert result.profiles_rejected == []
    assert sorted(e["insert_id"] for e in gateway.events) == sorted(
        e["insert_id"] for e in dataset.events
    )
    assert gateway.profiles == dataset.profiles
    assert result.requests == gateway.calls


async def test_send_retries_and_reports_rejections_by_dataset_index() -> None:
    broken = generate(seed=5, users=30, days=3, end_ms=END_MS, invalid_rate=0.05)
    gateway = Gateway(failures=4, max_batch=64)
    result = await send(
        broken, "http://cep.test/", "wk_test", batch_size=100, concurrency=3,
        transport=httpx.MockTransport(gateway), backoff_s=0,
    )  # fmt: skip
    assert result.retries >= 4

    def gateway_accepts(record: dict[str, Any]) -> bool:
        return "insert_id" in record and isinstance(record.get("time"), int)

    expected = [e["insert_id"] for e in broken.events if gateway_accepts(e)]
    assert sorted(e["insert_id"] for e in gateway.events) == sorted(expected)
    refused = [i for i, e in enumerate(broken.events) if not gateway_accepts(e)]
    assert refused
    assert [r.index for r in result.rejected] == refused
    assert result.accepted + len(result.rejected) == len(broken.events)


async def test_send_to_a_starlette_app_with_a_progress_bar() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    received: dict[str, list[dict[str, Any]]] = {"/v1/events": [], "/v1/identify": []}

    async def ingest(request: Request) -> JSONResponse:
        records = orjson.loads(await request.body())
        received[request.url.path].extend(records)
        return JSONResponse({"accepted": len(records), "rejected": []})

    app = Starlette(
        routes=[Route(path, ingest, methods=["POST"]) for path in ("/v1/events", "/v1/identify")]
    )
    small = generate(seed=6, users=20, days=2, end_ms=END_MS)
    result = await send(
        small, "http://cep.test", "wk_test", batch_size=64, concurrency=2,
        transport=httpx.ASGITransport(app=app), progress=True,
    )  # fmt: skip
    assert result.accepted == len(small.events) == len(received["/v1/events"])
    assert received["/v1/identify"] == small.profiles


async def test_send_gives_up_after_the_last_attempt() -> None:
    small = generate(seed=6, users=5, days=1, end_ms=END_MS)
    gateway = Gateway(failures=10_000)
    with pytest.raises(SendError, match="identify"):
        await send(
            small, "http://cep.test", "wk_test", concurrency=1,
            transport=httpx.MockTransport(gateway), max_attempts=3, backoff_s=0,
        )  # fmt: skip
    assert gateway.calls == 3


async def test_send_stops_on_a_wrong_key(dataset: Dataset) -> None:
    with pytest.raises(SendError, match="401"):
        await send(dataset, "http://cep.test", "nope", transport=httpx.MockTransport(Gateway()))
