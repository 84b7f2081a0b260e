"""The job's "outputs buffered, not yet written" marker in Redis, per parallel subtask.

Contract (the gateway reads it): key ``cep:pipeline:buffered:<subtask>`` holds the number
of outputs that subtask has buffered and not yet written to its sinks (0 or absent: none).
It is set non-zero, with a TTL, before the element that made the subtask's buffer non-empty
is acknowledged, and set to 0 once a flush empties it, so ``Kafka consumer lag (offsets
committed at checkpoints) + sum of SCAN cep:pipeline:buffered:*`` is never below what is
still to become visible. The TTL (``ttl_s``, refreshed whenever the value is set non-zero
and at least every third of it while non-empty) makes a dead subtask's key expire. The
number is the buffer's size when it was written, not kept exact per element (Redis is
written on transitions only).
"""

from __future__ import annotations

import time
from typing import Any

KEY_PREFIX = "cep:pipeline:buffered:"


class PendingMarker:
    def __init__(self, redis_url: str, ttl_s: int = 60) -> None:
        self._url = redis_url
        self._ttl_s = ttl_s

    def open(self, subtask: int) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(self._url, socket_timeout=5.0,
                                                 socket_connect_timeout=5.0)
        self._key = f"{KEY_PREFIX}{subtask}"
        self._written: int | None = None
        self._at = 0.0
        # A restored buffer is not counted until its timers fire (at once, on restore):
        # say "something may be pending" briefly rather than 0.
        self._client.set(self._key, 1, ex=5)

    def update(self, buffered: int) -> None:
        """Write ``buffered`` when it crosses empty/non-empty, or to refresh the TTL."""
        now = time.monotonic()
        if buffered > 0:
            if self._written is None or self._written <= 0 or now - self._at >= self._ttl_s / 3:
                self._client.set(self._key, buffered, ex=self._ttl_s)
                self._written, self._at = buffered, now
        elif self._written != 0:
            self._client.set(self._key, 0, ex=self._ttl_s)
            self._written, self._at = 0, now

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
