"""Per-key rate limits on a real gateway (issue 7): over budget, ingest and GraphQL answer
429 with Retry-After, accept nothing of that request, and other keys are not affected."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("limits"),
                env={"CEP_RATE_INGEST": "50", "CEP_RATE_QUERIES": "2"})
    g.start()
    yield g
    g.stop()


def events(n: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [{"event_name": "Search", "time": now, "insert_id": uuid.uuid4().hex,
             "device_id": "d1"} for _ in range(n)]


def post(gw: Gateway, key: str, records: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(gw.url + "/v1/events", json=records, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})


def test_ingest_over_the_budget_is_429_and_accepts_nothing(gw: Gateway) -> None:
    keys = gw.create_project("ingest")
    assert post(gw, keys["write_key"], events(100)).status_code == 200  # the 2 s burst
    over = post(gw, keys["write_key"], events(30))
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1
    assert over.json()["code"] == "RATE_LIMITED"
    other = gw.create_project("other")
    assert post(gw, other["write_key"], events(10)).status_code == 200
    time.sleep(1.0)  # 50 records' worth
    assert post(gw, keys["write_key"], events(30)).status_code == 200
    time.sleep(3.0)  # the refused 30 must not count: 130 stored
    gw.wait_processed(keys["read_key"])
    time.sleep(1.0)
    count = httpx.post(gw.url + "/graphql", timeout=30, json={"query": (
        '{ sessions(window: {last: "1d"}, first: 10) { edges { node { eventCount } } } }')},
        headers={"Authorization": f"Bearer {keys['admin_key']}"}).json()
    assert sum(e["node"]["eventCount"] for e in count["data"]["sessions"]["edges"]) == 130


def test_queries_over_the_budget_are_429_with_retry_after(gw: Gateway) -> None:
    keys = gw.create_project("queries")
    time.sleep(2.5)  # a full bucket (2 s of 2 a second)
    query = {"query": "{ pipelineStatus { pendingEvents } }"}
    headers = {"Authorization": f"Bearer {keys['read_key']}"}
    answers = [httpx.post(gw.url + "/graphql", json=query, headers=headers, timeout=30)
               for _ in range(5)]
    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert answers[4].status_code == 429
    assert answers[4].headers["Retry-After"] == "1"
    error = answers[4].json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    other = gw.create_project("queries-other")
    assert httpx.post(gw.url + "/graphql", json=query, timeout=30, headers={
        "Authorization": f"Bearer {other['read_key']}"}).status_code == 200


def test_ingest_refuses_with_503_while_the_pipeline_is_past_its_backlog_bound(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    g = Gateway(tmp_path_factory.mktemp("backlog"), env={"CEP_MAX_BACKLOG": "1000"})
    g.start()
    try:
        keys = g.create_project("backlog")
        assert post(g, keys["write_key"], events(3000)).status_code == 200  # under: accepted
        # The runner gathers records for up to a second before a step: the backlog is 3000.
        refused = post(g, keys["write_key"], events(10))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["code"] == "UNAVAILABLE"
        assert "behind" in refused.json()["error"]
        g.wait_processed(keys["read_key"])
        assert post(g, keys["write_key"], events(10)).status_code == 200  # caught up
    finally:
        g.stop()
