"""The PyFlink job's store write timings, handed to the gateway's ``GET /metrics`` through
Redis (the job runs in its own process, which no one scrapes).

The job's sinks time each store write — a flushed batch, never an event — in a
:class:`StoreWriteTally` and add it, once per flush and in one Redis round trip, to the hash
:data:`STORE_WRITES_KEY`: per store, fields ``<store>:le=<bound>`` (cumulative bucket counts,
as Prometheus' ``le``), ``<store>:sum`` (seconds), ``<store>:count`` and ``<store>:errors``
(failed writes, which also count in the histogram). Every gateway reads the same hash at
scrape time (:func:`decode_store_writes`), so they all show the same numbers.

The counts are cumulative across job restarts and attempts (nothing resets the hash):
Prometheus counters only ever grow, which is what its ``rate`` expects. A flush adds its
increments in one ``MULTI``/``EXEC``, so a reader never sees a count without its buckets.

No heavy imports here: the job's interpreter has no ``prometheus_client`` and the gateway
imports this module for :data:`WRITE_BUCKETS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("cep.flink.write_metrics")

# Store writes run from under a millisecond (a log append, the in-memory live store) to
# seconds (a large DuckDB commit, a Neo4j batch that waited on a lock).
WRITE_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
STORE_WRITES_KEY = "cep:metrics:store-writes"
JOB_STORES = ("cassandra", "neo4j", "redis")  # the only store labels read back (bounded)
# A sink's metrics client waits at most this long (connect, answer): a stalled Redis then
# costs a flush a second, never blocks it.
FLUSH_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class StoreWriteTotals:
    """One store's writes so far: ``buckets`` are cumulative counts per bound of
    :data:`WRITE_BUCKETS` (each at most ``count``), ``seconds`` their summed wall time."""

    buckets: tuple[int, ...]
    seconds: float
    count: int
    errors: int


class _Pending:
    __slots__ = ("buckets", "count", "errors", "seconds")

    def __init__(self) -> None:
        self.buckets = [0] * len(WRITE_BUCKETS)
        self.seconds = 0.0
        self.count = 0
        self.errors = 0


class Pipelined(Protocol):
    """What :meth:`StoreWriteTally.flush` needs of a client (``redis.Redis``)."""

    def pipeline(self, transaction: bool = ...) -> Any: ...


class StoreWriteTally:
    """The store writes of one sink since its last :meth:`flush` (not thread safe: one per
    sink instance, which Flink calls from one thread)."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def observe(self, store: str, seconds: float, failed: bool = False) -> None:
        p = self._pending.get(store)
        if p is None:
            p = self._pending[store] = _Pending()
        for i, bound in enumerate(WRITE_BUCKETS):
            if seconds <= bound:
                p.buckets[i] += 1
        p.seconds += seconds
        p.count += 1
        if failed:
            p.errors += 1

    @contextmanager
    def timing(self, store: str) -> Iterator[None]:
        """Observe the block's wall time as one write to ``store`` (failed if it raises)."""
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.observe(store, time.perf_counter() - started, failed=True)
            raise
        self.observe(store, time.perf_counter() - started)

    def increments(self) -> tuple[dict[str, int], dict[str, float]]:
        """The pending writes as hash increments: integer fields, float fields (sums).
        Zero increments are left out."""
        ints: dict[str, int] = {}
        floats: dict[str, float] = {}
        for store, p in self._pending.items():
            for bound, n in zip(WRITE_BUCKETS, p.buckets, strict=True):
                if n:
                    ints[f"{store}:le={bound!r}"] = n
            ints[f"{store}:count"] = p.count
            if p.errors:
                ints[f"{store}:errors"] = p.errors
            floats[f"{store}:sum"] = p.seconds
        return ints, floats

    def flush(self, client: Pipelined) -> None:
        """Add the pending writes to :data:`STORE_WRITES_KEY` in one round trip, and forget
        them. Never raises: a metrics write must not fail a store write (what it could not
        send is dropped and logged at debug)."""
        if not self._pending:
            return
        ints, floats = self.increments()
        self._pending.clear()
        try:
            pipe = client.pipeline(transaction=True)
            for field, n in ints.items():
                pipe.hincrby(STORE_WRITES_KEY, field, n)
            for field, x in floats.items():
                pipe.hincrbyfloat(STORE_WRITES_KEY, field, x)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - metrics are best effort; see docstring
            log.debug("cannot add store write metrics to Redis: %r", exc)


def decode_store_writes(fields: Mapping[Any, Any]) -> dict[str, StoreWriteTotals]:
    """The totals per job store in the hash's ``fields`` (``HGETALL``, keys and values as
    ``str`` or ``bytes``); stores with no writes yet are absent. Buckets are made monotone
    and capped at the count, so a hand-edited or half-migrated hash still reads as a valid
    histogram."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    out: dict[str, StoreWriteTotals] = {}
    for store in JOB_STORES:
        count = int(float(text.get(f"{store}:count", "0")))
        if count <= 0:
            continue
        buckets: list[int] = []
        running = 0
        for bound in WRITE_BUCKETS:
            running = min(count, max(running, int(float(text.get(f"{store}:le={bound!r}",
                                                                  "0")))))
            buckets.append(running)
        out[store] = StoreWriteTotals(tuple(buckets), float(text.get(f"{store}:sum", "0")),
                                      count, int(float(text.get(f"{store}:errors", "0"))))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
