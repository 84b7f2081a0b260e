"""HTTP ingest routes: ``POST /v1/events`` and ``POST /v1/identify``.

401 without a valid key, 403 for a key that may not ingest, 413 over the (uncompressed)
size or record limit, 400 for a body that is not JSON at all, 429 with ``Retry-After`` over
the key's records per second (``gateway.limits``), 503 with ``Retry-After`` while the
pipeline is more than ``max_backlog`` events behind; otherwise 200 with
``{"accepted": N, "rejected": [{"index": i, "reason": "…"}]}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Authenticator, credentials
from gateway.ingest import BodyTooLarge, Ingestor, inflate, is_gzip
from gateway.limits import RateLimiter, retry_after
from storage.control import KeyInfo
from storage.local_log import LogClosed
from stream.contract.envelope import BodyError, split_records

log = logging.getLogger("cep.ingest")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def error_response(status: int, message: str, code: str) -> Response:
    return json_response({"error": message, "code": code}, status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped when it is gzip, refused past ``limit`` bytes either way."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body: {declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body: over the {limit}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip" or is_gzip(body):
        body = inflate(body, limit)
    return body


@dataclass(eq=False)
class Refused(Exception):
    """A request refused whole, before anything of it is accepted; CEP's routes answer it
    with ``response()``, the SDK-compatible ones in each SDK's own shape."""

    status: int
    message: str
    code: str
    retry_after: str | None = None

    def response(self) -> Response:
        resp = error_response(self.status, self.message, self.code)
        if self.retry_after is not None:
            resp.headers["Retry-After"] = self.retry_after
        return resp


class IngestEndpoints:
    def __init__(self, ingestor: Ingestor, auth: Authenticator, max_body_bytes: int,
                 limiter: RateLimiter | None = None,
                 backlog: Callable[[], Awaitable[int]] | None = None,
                 max_backlog: int = 0) -> None:
        self._ingestor = ingestor
        self._auth = auth
        self._limit = max_body_bytes
        self._limiter = limiter or RateLimiter(0)
        self._backlog = backlog
        self._max_backlog = max_backlog

    async def events(self, request: Request) -> Response:
        return await self._ingest(request, "event")

    async def identify(self, request: Request) -> Response:
        return await self._ingest(request, "profile")

    # -- admission, shared with the SDK-compatible routes (gateway.sdk_compat) -------------

    @property
    def body_limit(self) -> int:
        return self._limit

    def authorize(self, key: str | None,
                  hint: str = ": Authorization: Bearer <key>") -> KeyInfo:
        """The project of a key that may ingest; else ``Refused`` 401 or 403."""
        info = self._auth.check(key) if key else None
        if info is None:
            raise Refused(401, "a valid write key is required" + hint, "UNAUTHENTICATED")
        if info.kind not in ("write", "admin"):
            raise Refused(403, f"a {info.kind} key cannot ingest; use the write key",
                          "FORBIDDEN")
        return info

    async def check_backlog(self) -> None:
        """``Refused`` 503 while the pipeline is far behind: rather than let the backlog (and
        what tracks it) grow without bound. Nothing of the request is accepted."""
        if self._backlog is None or self._max_backlog <= 0:
            return
        behind = await self._backlog()
        if behind > self._max_backlog:
            raise Refused(503, f"the pipeline is {behind} events behind (bound "
                          f"{self._max_backlog}); retry the same batch later", "UNAVAILABLE",
                          "5")

    def spend(self, key: str, records: int) -> None:
        """Take ``records`` from the key's rate budget; else ``Refused`` 429."""
        wait = self._limiter.take(key, records)
        if wait > 0:
            raise Refused(429, f"rate limit: this key may send {self._limiter.rate:g} records "
                          f"a second; retry after {retry_after(wait)} s", "RATE_LIMITED",
                          retry_after(wait))

    async def _ingest(self, request: Request, kind: str) -> Response:
        key = credentials(request.headers)
        try:
            info = self.authorize(key)
            await self.check_backlog()
        except Refused as refused:
            return refused.response()
        try:
            records = split_records(await read_body(request, self._limit))
            self.spend(key or "", len(records))
            if kind == "event":
                result = await self._ingestor.events(info.project, records)
            else:
                result = await self._ingestor.profiles(info.project, records)
        except Refused as refused:
            return refused.response()
        except BodyTooLarge as exc:
            return error_response(413, str(exc), "PAYLOAD_TOO_LARGE")
        except (BodyError, ValueError) as exc:
            return error_response(400, str(exc), "BAD_REQUEST")
        except (LogClosed, OSError) as exc:
            # Nothing of this request was acknowledged: the client retries the same batch.
            log.error("event log unavailable: %s", exc)
            resp = error_response(503, "the event log is unavailable; retry the same batch",
                                  "UNAVAILABLE")
            resp.headers["Retry-After"] = "1"
            return resp
        return json_response(result.as_json())
