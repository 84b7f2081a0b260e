"""HTTP ingest error mapping, with a fake ingestor and key store (pure routing logic)."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.auth import Authenticator
from gateway.http_ingest import IngestEndpoints
from gateway.ingest import IngestResult
from storage.control import KeyInfo
from storage.local_log import LogClosed


class FakeControl:
    def authenticate(self, key: str) -> KeyInfo | None:
        return {"w": KeyInfo("p", "write"), "r": KeyInfo("p", "read")}.get(key)


class FakeIngestor:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[int] = []

    async def events(self, project: str, records: list[Any]) -> IngestResult:
        if self.fail:
            raise self.fail
        self.calls.append(len(records))
        return IngestResult(len(records), [])

    profiles = events


def client(ingestor: FakeIngestor, limit: int = 1000) -> httpx.AsyncClient:
    ep = IngestEndpoints(ingestor, Authenticator(FakeControl()), limit)  # type: ignore[arg-type]
    app = Starlette(routes=[Route("/v1/events", ep.events, methods=["POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_status_codes() -> None:
    async with client(FakeIngestor()) as c:
        assert (await c.post("/v1/events", content=b"[{}]")).status_code == 401
        resp = await c.post("/v1/events", content=b"[{}]", headers={"Authorization": "Bearer r"})
        assert resp.status_code == 403
        ok = await c.post("/v1/events", content=b"[{}, {}]",
                          headers={"Authorization": "Basic dzo="})
        assert ok.json() == {"accepted": 2, "rejected": []}, "Segment-style Basic auth works"
        big = await c.post("/v1/events", content=b"[" + b" " * 2000 + b"]",
                           headers={"Authorization": "Bearer w"})
        assert big.status_code == 413
        bomb = await c.post("/v1/events", content=gzip.compress(b"[" + b" " * 5000 + b"]"),
                            headers={"Authorization": "Bearer w", "Content-Encoding": "gzip"})
        assert bomb.status_code == 413
        bad = await c.post("/v1/events", content=b"nope", headers={"Authorization": "Bearer w"})
        assert bad.status_code == 400


async def test_a_log_that_cannot_take_writes_answers_503_with_retry_after() -> None:
    for failure in (LogClosed("event log is closed"), OSError(28, "No space left on device")):
        async with client(FakeIngestor(fail=failure)) as c:
            resp = await c.post("/v1/events", content=b"[{}]",
                                headers={"Authorization": "Bearer w"})
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "1"
        assert resp.json()["code"] == "UNAVAILABLE"
