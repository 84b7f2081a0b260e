"""Per-key rate limits (issue 7): token buckets in the gateway process.

Ingest spends one token per record (event or profile) a request carries; GraphQL over HTTP
one per request. A request over its key's budget is answered 429 with ``Retry-After`` (whole
seconds until the bucket holds enough) and nothing of it is accepted. Each gateway process
keeps its own buckets: behind a load balancer the limit is per process.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from gateway.auth import credentials

MAX_KEYS = 100_000  # buckets kept (the least recently used go first)


class RateLimiter:
    """``rate`` tokens a second per key, at most ``burst`` saved up. ``rate`` 0: no limit."""

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else 2 * rate
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, key: str, n: float = 1.0) -> float:
        """Spend ``n`` tokens of ``key``'s bucket: 0.0 if it could, else the seconds until it
        can (nothing spent). A request larger than the burst waits for a full bucket."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        need = min(n, self.burst)
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= need:
                self._buckets[key] = (tokens - need, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (need - tokens) / self.rate
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        return wait


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


class GraphQLRateLimit:
    """ASGI wrapper of the GraphQL HTTP endpoint: one token per request of the key it
    carries (requests without a key are refused by the resolvers, not here)."""

    def __init__(self, app: Any, limiter: RateLimiter) -> None:
        self._app = app
        self._limiter = limiter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._limiter.rate > 0:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", ())}
            key = credentials(headers)
            wait = self._limiter.take(key) if key else 0.0
            if wait > 0:
                await _too_many(send, wait, "queries")
                return
        await self._app(scope, receive, send)


async def _too_many(send: Any, wait: float, what: str) -> None:
    body = orjson.dumps({"errors": [{
        "message": f"rate limit: this key's {what} are over their budget; retry after "
                   f"{retry_after(wait)} s",
        "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after(wait)}}]})
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", retry_after(wait).encode()),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
