"""Dependency faults on the distributed profile (issue 7): Redis, Neo4j and Cassandra are
each stopped for a while during sustained ingest, then started again.

While a store is down, ingest keeps answering 200 (Kafka holds the events), `/readyz` names
the store, and queries that need it answer ``UNAVAILABLE`` naming it. The PyFlink job fails
its writes, restarts from its last checkpoint, and once the store is back catches up: every
event acknowledged is stored exactly once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conformance.distributed import DistributedGateway, distributed_backend

RATE_BATCH, RATE_EVERY = 20, 0.2  # 100 events a second, below the job's ceiling (issue 3)
DOWN_SECONDS = 12.0
NOW = int(time.time() * 1000)


class Producer:
    """Sends batches like an SDK: the same batch again until it gets a 200."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.acked: set[str] = set()
        self.answers: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.started = time.monotonic()

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                batch = [{"event_name": "Product View", "time": NOW - 3_600_000 + n + i,
                          "insert_id": f"fault-{n + i}", "device_id": f"dev-{(n + i) % 17}"}
                         for i in range(RATE_BATCH)]
                while not self.stop.is_set():
                    try:
                        resp = client.post(self.url + "/v1/events",
                                           content=orjson.dumps(batch), headers={
                                               "Authorization": f"Bearer {self.key}"})
                        self.answers[resp.status_code] = self.answers.get(
                            resp.status_code, 0) + 1
                        if resp.status_code == 200:
                            self.acked.update(e["insert_id"] for e in batch)
                            break
                    except httpx.HTTPError:
                        self.answers[0] = self.answers.get(0, 0) + 1
                    time.sleep(0.5)
                n += RATE_BATCH
                time.sleep(RATE_EVERY)

    def rate(self) -> float:
        return len(self.acked) / (time.monotonic() - self.started)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributedGateway]:
    # Restarts enough to outlast each outage (fixed delay 5 s between them).
    with distributed_backend(tmp_path_factory.mktemp("faults"),
                             ("--max-restarts", "1000")) as g:
        yield g


def readiness(gw: DistributedGateway) -> dict[str, Any]:
    return dict(httpx.get(gw.url + "/readyz", timeout=60).json())


def error_of(gw: DistributedGateway, key: str, query: str) -> dict[str, Any] | None:
    body = gw.gql(key, query)
    errors = body.get("errors") or []
    return dict(errors[0]) if errors else None


def wait_for(check: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1.0)
    raise AssertionError(f"{what} within {within:.0f} s (last: {last!r})")


SESSIONS = '{ sessions(window: {last: "1d"}, first: 1) { totalCount } }'
PATHS = '{ journeyGraph(window: {last: "1d"}) { nodes { id } } }'


def test_a_store_down_during_ingest_loses_nothing_and_says_so(gw: DistributedGateway,
                                                              tmp_path: Path) -> None:
    assert gw.stack is not None
    keys = gw.create_project(f"faults-{uuid.uuid4().hex[:6]}")
    read = keys["read_key"]
    probe = gw.create_project(f"probe-{uuid.uuid4().hex[:6]}")  # not counted below
    producer = Producer(gw.url, keys["write_key"])
    producer.thread.start()
    figures: dict[str, dict[str, Any]] = {}
    try:
        # stored sessions first: a query over none never reaches the graph
        wait_for(lambda: (gw.gql(read, SESSIONS).get("data") or {}).get("sessions", {}).get(
            "totalCount"), 180, "the first sessions stored")
        base_acked, base_at = len(producer.acked), time.monotonic()
        time.sleep(5)
        figures["baseline"] = {"rate": round((len(producer.acked) - base_acked)
                                             / (time.monotonic() - base_at))}
        for service, query, store in (("redis", None, "Redis"),
                                      ("neo4j", PATHS, "Neo4j"),
                                      ("cassandra", SESSIONS, "Cassandra")):
            acked_before, down_at = len(producer.acked), time.monotonic()
            asyncio.run(gw.stack.down((service,)))
            ready = wait_for(lambda s=service: (r := readiness(gw))["dependencies"][s] != "ok"
                             and r, 60, f"/readyz naming {service} down")
            assert ready["status"] == "degraded"
            if query is not None:
                error = wait_for(lambda q=query: error_of(gw, read, q), 60,
                                 f"a query needing {store} to fail")
                assert error["extensions"] == {"code": "UNAVAILABLE", "store": store}, error
            time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
            down_for = time.monotonic() - down_at
            accepted_down = len(producer.acked) - acked_before
            asyncio.run(gw.stack.up((service,)))
            wait_for(lambda s=service: readiness(gw)["dependencies"][s] == "ok", 180,
                     f"{service} back in /readyz")
            figures[service] = {"down_s": round(down_for, 1),
                                "accepted_while_down": accepted_down,
                                "rate_while_down": round(accepted_down / down_for)}
            assert accepted_down >= 0.5 * down_for / RATE_EVERY * RATE_BATCH, figures
        stores_answers = dict(producer.answers)
        # Kafka down: ingest cannot land anything, so it says 503 with Retry-After (the
        # producer retries the same batch), and takes batches again once Kafka is back.
        asyncio.run(gw.stack.down(("kafka",)))
        refused = wait_for(lambda: (r := httpx.post(
            gw.url + "/v1/events", timeout=60, json=[{
                "event_name": "Probe", "time": NOW, "insert_id": uuid.uuid4().hex,
                "device_id": "probe"}], headers={
                "Authorization": f"Bearer {probe['write_key']}"})).status_code == 503 and r,
            90, "ingest answering 503 with Kafka down")
        assert refused.headers["Retry-After"]
        assert refused.json()["code"] == "UNAVAILABLE"
        acked_before = len(producer.acked)
        asyncio.run(gw.stack.up(("kafka",)))
        wait_for(lambda: len(producer.acked) > acked_before + 5 * RATE_BATCH, 180,
                 "ingest accepting again after Kafka came back")
        figures["kafka"] = {"refused_while_down": producer.answers.get(503, 0)}
        time.sleep(3)
    finally:
        producer.stop.set()
        producer.thread.join(timeout=60)
    assert set(stores_answers) == {200}, stores_answers  # Kafka took every batch
    gw.wait_processed(read, timeout=600)
    data = gw.gql(read, """{ featureUsage(window: {last: "1d"}, by: EVENT) { key events }
        }""")
    assert "errors" not in data, data
    stored = {f["key"]: f["events"] for f in data["data"]["featureUsage"]}["Product View"]
    metrics = gw.gql(read, """{ sessionMetrics(window: {last: "1d"}) { count
        averageEventsPerSession } }""")["data"]["sessionMetrics"]
    in_sessions = round(metrics["count"] * metrics["averageEventsPerSession"])
    print(f"dependency faults: {figures}; acked {len(producer.acked)}, stored {stored}, "
          f"counted by session rows {in_sessions} in {metrics['count']} sessions")
    assert stored == len(producer.acked), "every acknowledged event stored exactly once"
