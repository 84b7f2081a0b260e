"""The conformance suite: one set of scenarios, run against every backend.

A backend is a running gateway of one profile. Each scenario creates its own project, sends
declarative journeys, waits until the pipeline has processed them and checks the answers.
Both profiles run every scenario: the embedded one (``cep serve``) and the distributed one
(Kafka → PyFlink → Cassandra, Redis, Neo4j; ``tests/conformance/distributed.py``), so an
answer that differs between them fails here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import Gateway

BACKENDS = ["embedded", "distributed"]
T0 = int(time.time() * 1000) - 6 * 3_600_000  # scenarios happen in the last few hours
MIN = 60_000


@dataclass
class Project:
    gateway: Gateway
    keys: dict[str, Any]

    def send(self, records: list[dict[str, Any]], path: str = "/v1/events") -> dict[str, Any]:
        resp = httpx.post(self.gateway.url + path, content=orjson.dumps(records), timeout=60,
                          headers={"Authorization": f"Bearer {self.keys['write_key']}"})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        self.gateway.wait_processed(self.keys["read_key"])
        body = self.gateway.gql(self.keys["read_key"], query, variables)
        assert "errors" not in body, body
        return dict(body["data"])

    def sessions(self) -> list[dict[str, Any]]:
        data = self.query("""{ sessions(window: {last: "1d"}, first: 1000) { edges { node {
            id userId deviceId startTime endTime eventCount converted landingPage exitPage
            events { eventName } } } } }""")
        return [e["node"] for e in data["sessions"]["edges"]]


def ev(name: str, minute: float, device: str | None = "d1", user: str | None = None,
       **extra: Any) -> dict[str, Any]:
    """One declarative event ``minute`` minutes after the scenario's start."""
    record: dict[str, Any] = {"event_name": name, "time": T0 + int(minute * MIN),
                              "insert_id": extra.pop("insert_id", str(uuid.uuid4()))}
    if device:
        record["device_id"] = device
    if user:
        record["distinct_user_id"] = user
    record.update(extra)
    return record


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp(f"conformance-{request.param}")
    if request.param == "distributed":
        from tests.conformance.distributed import distributed_backend

        with distributed_backend(data) as gw:
            yield gw
        return
    gw = Gateway(data)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def project(backend: Gateway) -> Project:
    return Project(backend, backend.create_project(f"conf-{uuid.uuid4().hex[:8]}"))


def ann_journey() -> list[dict[str, Any]]:
    """Ann, anonymous on her phone until she logs in there, then on a tablet and from a
    server: one person behind three identities (insert ids a1-a6)."""
    return [
        ev("App Launch", 0, device="ann-phone", insert_id="a1"),
        ev("Search", 1, device="ann-phone", insert_id="a2"),
        ev("Login", 2, device="ann-phone", user="ann", insert_id="a3"),
        ev("App Launch", 100, device="ann-tablet", user="ann", insert_id="a4"),
        ev("Purchase", 101, device="ann-tablet", user="ann", insert_id="a5"),
        ev("Charged", 102, device=None, user="ann", insert_id="a6"),
    ]
