"""``GET /metrics`` of a real ``cep serve`` (embedded): counts that follow what was done.

Events good and bad over ``/v1/events``, GraphQL operations named, anonymous, failing and
without a key, a subscription opened and completed, a one-off campaign send: each shows in
the exposition (parsed with prometheus-client's own parser) with the right counts, and no
key, project, user, insert id or client-chosen field name appears anywhere in it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Gateway
from tests.e2e.ws_client import PROTOCOLS, TRANSPORT_WS, connected

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gw: Gateway) -> tuple[str, Samples]:
    resp = httpx.get(gw.url + "/metrics", timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        assert family.name.startswith("cep_"), family.name
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return resp.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def until(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def event(name: str, user: str, **extra: Any) -> dict[str, Any]:
    return {"event_name": name, "time": int(time.time() * 1000) - 60_000,
            "insert_id": f"ins-{uuid.uuid4().hex}", "distinct_user_id": user,
            "device_id": f"dev-{user}", **extra}


@pytest.fixture(scope="module")
def project(gateway: Gateway) -> dict[str, Any]:
    return gateway.create_project(f"metrics-{uuid.uuid4().hex[:8]}")


def test_ingest_counts_requests_records_and_reasons(gateway: Gateway,
                                                   project: dict[str, Any]) -> None:
    _, before = scrape(gateway)
    user = f"user-{uuid.uuid4().hex[:8]}"
    good = [event("App Launch", user), event("Search", user), event("Purchase", user)]
    bad = [
        {k: v for k, v in event("Search", user).items() if k != "insert_id"},
        event("Search", user, time=int(time.time() * 1000) + 30 * 86_400_000),
        event("Search", user, secret_field_7f3a="x"),
    ]
    resp = httpx.post(gateway.url + "/v1/events", content=orjson.dumps(good + bad),
                      headers={"Authorization": f"Bearer {project['write_key']}"}, timeout=30)
    assert resp.status_code == 200
    assert resp.json()["accepted"] == 3
    assert httpx.post(gateway.url + "/v1/events", content=b"[]").status_code == 401
    gateway.wait_processed(project["read_key"])

    def grew(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    _, after = scrape(gateway)
    assert grew(after, "cep_ingest_requests_total", route="/v1/events", code="200") == 1
    assert grew(after, "cep_ingest_requests_total", route="/v1/events", code="401") == 1
    assert grew(after, "cep_ingest_accepted_events_total", kind="event", source="api") == 3
    for reason in ("missing_field", "time_in_future", "unknown_field"):
        assert grew(after, "cep_ingest_rejected_events_total", kind="event", source="api",
                    reason=reason) == 1, reason
    assert value(after, "cep_pipeline_up") == 1
    assert value(after, "cep_pipeline_pending_events") == 0
    until(lambda: grew(scrape(gateway)[1], "cep_pipeline_processed_events_total") >= 3)
    for store in ("local_log", "duckdb", "networkx", "live"):
        assert grew(after, "cep_store_write_duration_seconds_count", store=store) >= 1, store
        assert value(after, "cep_store_write_errors_total", store=store) == 0, store


def test_graphql_latency_by_bounded_operation_name(gateway: Gateway,
                                                   project: dict[str, Any]) -> None:
    key = project["read_key"]
    for _ in range(2):
        assert "errors" not in gateway.gql(key, "query MetricsProbe { pipelineStatus { "
                                                "pendingEvents } }")
    assert "errors" not in gateway.gql(key, "{ pipelineStatus { pendingEvents } }")
    assert "errors" in gateway.gql(key, "query Broken { noSuchField }")
    gateway.gql("not-a-key", "query Sneaky { pipelineStatus { pendingEvents } }")
    resp = httpx.post(gateway.url + "/graphql", timeout=30, json={
        "query": "{ pipelineStatus { pendingEvents } }", "operationName": "user 42 bob@x.io"},
        headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 400  # refused by strawberry before any operation runs

    _, samples = scrape(gateway)
    count = "cep_graphql_operation_duration_seconds_count"
    assert value(samples, count, operation="MetricsProbe", type="query") == 2
    assert value(samples, "cep_graphql_operation_duration_seconds_bucket",
                 operation="MetricsProbe", type="query", le="+Inf") == 2
    assert value(samples, count, operation="anonymous", type="query") >= 1
    assert value(samples, "cep_graphql_operation_errors_total", operation="Broken",
                 type="query") == 1
    assert value(samples, count, operation="unauthenticated", type="query") >= 1
    operations = {dict(labels).get("operation") for name, labels in samples
                  if name == count}
    assert "Sneaky" not in operations


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_active_subscriptions_go_up_and_back_to_zero(
        gateway: Gateway, project: dict[str, Any], protocol: str) -> None:
    def active() -> float:
        return value(scrape(gateway)[1], "cep_graphql_active_subscriptions")

    assert active() == 0
    async with connected(gateway, protocol, project["read_key"]) as sub:
        await sub.subscribe("w", 'subscription Watch { liveEvents(filter: {event: "Ping"}) '
                                 "{ insertId } }")
        await _until_async(lambda: active() == 1)
        await sub.send({"id": "w", "type": "complete" if protocol == TRANSPORT_WS else "stop"})
        await _until_async(lambda: active() == 0)
        await sub.subscribe("w2", 'subscription { liveEvents(filter: {event: "Ping"}) '
                                  "{ insertId } }")
        await _until_async(lambda: active() == 1)
    await _until_async(lambda: active() == 0)  # the connection closed with it running


async def _until_async(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_campaign_deliveries_by_status(gateway: Gateway, project: dict[str, Any]) -> None:
    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    resp = httpx.post(gateway.url + "/v1/events", json=[event("Charged", buyer)], timeout=30,
                      headers={"Authorization": f"Bearer {project['write_key']}"})
    assert resp.status_code == 200
    gateway.wait_processed(project["read_key"])
    _, before = scrape(gateway)
    body = gateway.gql(project["admin_key"], """mutation($ch: ChannelInput!) { sendEngagement(
        segment: {did: [{event: "Charged"}]}, channel: $ch,
        template: {body: "Thanks"}) { queued } }""", {"ch": {"type": "LOG"}})
    assert "errors" not in body, body
    queued = body["data"]["sendEngagement"]["queued"]
    assert queued >= 1
    sent = ("cep_campaign_deliveries_total", frozenset({("channel", "log"),
                                                        ("status", "sent")}))
    until(lambda: scrape(gateway)[1].get(sent, 0) - before.get(sent, 0) == queued)


def test_no_key_project_or_user_in_the_exposition(gateway: Gateway,
                                                 project: dict[str, Any]) -> None:
    text, _ = scrape(gateway)
    for secret in (project["write_key"], project["read_key"], project["admin_key"],
                   project["project"], "user-", "buyer-", "dev-", "ins-", "secret_field_7f3a",
                   "bob@x.io", "Sneaky"):
        assert secret not in text, secret
