"""``GET /metrics``: what the gateway and its pipeline do, in Prometheus' text format.

Every instrument lives in a registry of its own, one per platform, so several gateways in
one process (the tests) keep their own counts. Counters and histograms are updated where
things happen — ingest answers and judgements, store writes, GraphQL operations, campaign
deliveries — a request's or a batch's worth at once, never once per event on the ingest
path. Gauges of state (pending events, the job's Kafka lag) are read at scrape time from what
the platform already knows (``PipelineReading``): a scrape never waits on Kafka. The one
exception is the PyFlink job's store writes (distributed profile), which only Redis knows:
a scrape reads them with a short timeout and leaves them out when Redis does not answer.

Labels hold bounded values only: route paths, status codes, store and channel names,
rejection reason codes (``stream.contract.reasons``), operation names capped at
``gateway.metrics_graphql.MAX_OPERATION_NAMES``. Never a project, a key, a user, or anything
else a client chooses freely.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.channels.config import CHANNEL_TYPES
from gateway.ingest import EventLog, IngestResult
from stream.contract.reasons import reason_code
from stream.flink.write_metrics import WRITE_BUCKETS, StoreWriteTotals

log = logging.getLogger("cep.metrics")

P = ParamSpec("P")
R = TypeVar("R")

# GraphQL operations run from milliseconds to the query timeout. (Store writes use
# WRITE_BUCKETS, shared with the PyFlink job, which reports its writes through Redis.)
OPERATION_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELIVERY_STATUSES = frozenset({"sent", "failed", "skipped", "holdout", "capped", "postponed"})


@dataclass(frozen=True, slots=True)
class PipelineReading:
    """The pipeline as last known, without asking anyone: ``None`` where it is not known
    (the distributed profile before its first lag measurement)."""

    healthy: bool
    pending: int | None  # accepted, not yet processed: ``pipelineStatus.pendingEvents``
    processed: int | None  # events processed since the runner started / by the job's group
    consumer_lag: Mapping[str, int] | None = None  # per Kafka topic (distributed only)
    consumer_group: str = ""


class StoreWrites:
    """One store's write latency and errors."""

    def __init__(self, seconds: Histogram, errors: Counter) -> None:
        self._seconds = seconds
        self._errors = errors

    def observe(self, seconds: float, failed: bool = False) -> None:
        self._seconds.observe(seconds)
        if failed:
            self._errors.inc()

    def timed(self, write: Callable[P, R]) -> Callable[P, R]:
        """``write``, observed: its wall time, and an error when it raises."""
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                result = write(*args, **kwargs)
            except BaseException:
                self.observe(time.perf_counter() - started, failed=True)
                raise
            self.observe(time.perf_counter() - started)
            return result
        return run


class TimedLog:
    """An event log whose appends are observed (the Ingestor's one write)."""

    def __init__(self, log: EventLog, writes: StoreWrites) -> None:
        self._log = log
        self._writes = writes

    async def append(self, payload: bytes, items: int) -> int:
        started = time.perf_counter()
        try:
            offset = await self._log.append(payload, items)
        except BaseException:
            self._writes.observe(time.perf_counter() - started, failed=True)
            raise
        self._writes.observe(time.perf_counter() - started)
        return offset


class Metrics:
    """The instruments of one platform and its gateway, in ``registry``."""

    def __init__(self) -> None:
        # Without this, every counter and histogram also exposes a ``_created`` gauge per
        # label set: twice the series, for a start time scrapers do not need. (A switch of
        # the library, for the process: the gateway is the library's only user in it.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
        self.registry = r = CollectorRegistry()
        ProcessCollector(namespace="cep", registry=r)  # CPU, memory, open files
        self.ingest_requests = Counter(
            "cep_ingest_requests", "Ingest requests answered, by route and HTTP status code.",
            ["route", "code"], registry=r)
        self._accepted = Counter(
            "cep_ingest_accepted_events",
            "Records accepted into the event log, by kind (event, profile) and source.",
            ["kind", "source"], registry=r)
        self._rejected = Counter(
            "cep_ingest_rejected_events",
            "Records rejected (to the dead letters), by kind, source and reason code.",
            ["kind", "source", "reason"], registry=r)
        # Exposed by _StoreWritesCollector, one family each with the job's writes.
        self._write_seconds = Histogram(
            _WRITE_SECONDS, _WRITE_SECONDS_HELP, ["store"], buckets=WRITE_BUCKETS,
            registry=None)
        self._write_errors = Counter(_WRITE_ERRORS, _WRITE_ERRORS_HELP, ["store"],
                                     registry=None)
        self._store_writes = _StoreWritesCollector(self._write_seconds, self._write_errors)
        r.register(self._store_writes)
        self.operation_seconds = Histogram(
            "cep_graphql_operation_duration_seconds",
            "Wall time of a GraphQL query or mutation (parse to result), by operation name.",
            ["operation", "type"], buckets=OPERATION_BUCKETS, registry=r)
        self.operation_errors = Counter(
            "cep_graphql_operation_errors",
            "GraphQL operations answered with errors, by operation name.",
            ["operation", "type"], registry=r)
        self.subscriptions = Gauge(
            "cep_graphql_active_subscriptions", "GraphQL subscriptions running now.",
            registry=r)
        self._deliveries = Counter(
            "cep_campaign_deliveries", "Campaign deliveries settled (or postponed), by "
            "channel and status.", ["channel", "status"], registry=r)

    # -- updated where things happen -------------------------------------------------------

    def judged(self, kind: str, source: str, result: IngestResult) -> None:
        """One request's records, once the log has them (``Ingestor``)."""
        if result.accepted:
            self._accepted.labels(kind, source).inc(result.accepted)
        if result.rejected:
            for code, n in Tally(reason_code(reason) for _, reason in result.rejected).items():
                self._rejected.labels(kind, source, code).inc(n)

    def store(self, name: str) -> StoreWrites:
        return StoreWrites(self._write_seconds.labels(name), self._write_errors.labels(name))

    def delivery(self, channel: str, status: str) -> None:
        kind = channel.upper()
        self._deliveries.labels(kind.lower() if kind in CHANNEL_TYPES else "other",
                                status if status in DELIVERY_STATUSES else "other").inc()

    # -- read at scrape time ---------------------------------------------------------------

    def watch_pipeline(self, read: Callable[[], PipelineReading]) -> None:
        """Report the pipeline gauges from ``read()`` at every scrape (``read`` must not do
        I/O: it answers from what the platform last measured)."""
        self.registry.register(_PipelineCollector(read))

    def watch_job_writes(self, read: Callable[[], Mapping[str, StoreWriteTotals]]) -> None:
        """Add the PyFlink job's store writes, ``read()`` at every scrape, to the store
        write series. ``read`` may do I/O with a short timeout (the scrape runs in a worker
        thread); when it raises, the scrape leaves those series out."""
        self._store_writes.read_job = read

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_WRITE_SECONDS = "cep_store_write_duration_seconds"
_WRITE_SECONDS_HELP = ("Wall time of one write (an append, a commit, an update; a flushed "
                       "batch for the PyFlink job's stores) to a store.")
_WRITE_ERRORS = "cep_store_write_errors"
_WRITE_ERRORS_HELP = "Writes to a store that failed."
# ``le`` labels as the library writes its own histograms' (untyped in the library).
_WRITE_LES = tuple(floatToGoString(b) for b in WRITE_BUCKETS)  # type: ignore[no-untyped-call]


class _StoreWritesCollector(Collector):
    """The gateway's own store writes and, when known, the PyFlink job's: one histogram
    family and one counter family, labelled by store (the job's stores never share a name
    with the gateway's)."""

    def __init__(self, seconds: Histogram, errors: Counter) -> None:
        self._seconds = seconds
        self._errors = errors
        self.read_job: Callable[[], Mapping[str, StoreWriteTotals]] | None = None

    def describe(self) -> Iterable[Metric]:
        return [*self._seconds.describe(), *self._errors.describe()]

    def collect(self) -> Iterable[Metric]:
        job: Mapping[str, StoreWriteTotals] = {}
        if self.read_job is not None:
            try:
                job = self.read_job()
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail on Redis
                log.debug("job store writes left out of the scrape: %r", exc)
        seconds = HistogramMetricFamily(_WRITE_SECONDS, _WRITE_SECONDS_HELP, labels=["store"])
        for own in self._seconds.collect():
            seconds.samples.extend(own.samples)
        errors = CounterMetricFamily(_WRITE_ERRORS, _WRITE_ERRORS_HELP, labels=["store"])
        for own in self._errors.collect():
            errors.samples.extend(own.samples)
        for store, totals in sorted(job.items()):
            buckets = [(le, float(n)) for le, n in zip(_WRITE_LES, totals.buckets, strict=True)]
            seconds.add_metric([store], [*buckets, ("+Inf", float(totals.count))],
                               totals.seconds)
            errors.add_metric([store], totals.errors)
        yield seconds
        yield errors


class _PipelineCollector(Collector):
    def __init__(self, read: Callable[[], PipelineReading]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return ()  # families vary with what is known; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        reading = self._read()
        yield GaugeMetricFamily(
            "cep_pipeline_up", "1 while the pipeline processes (the embedded runner has no "
            "error; the job's lag can be read), else 0.", value=1 if reading.healthy else 0)
        if reading.pending is not None:
            yield GaugeMetricFamily(
                "cep_pipeline_pending_events",
                "Events accepted and not yet processed (pipelineStatus.pendingEvents).",
                value=reading.pending)
        if reading.processed is not None:
            yield CounterMetricFamily(
                "cep_pipeline_processed_events", "Events processed (its rate is the "
                "processing rate): by the runner since start, or by the job's group.",
                value=reading.processed)
        if reading.consumer_lag is not None:
            lag = GaugeMetricFamily(
                "cep_kafka_consumer_lag_events",
                "Messages on a topic not yet committed by the PyFlink job's consumer group.",
                labels=["group", "topic"])
            for topic, behind in sorted(reading.consumer_lag.items()):
                lag.add_metric([reading.consumer_group, topic], behind)
            yield lag


class IngestRequestCounter:
    """ASGI middleware counting the answers of the ingest routes by path and status code;
    any other request costs it one dictionary lookup."""

    def __init__(self, app: ASGIApp, metrics: Metrics, paths: Iterable[str]) -> None:
        self.app = app
        self._counter = metrics.ingest_requests
        self._routes = {path: path.rstrip("/") or "/" for path in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app answers: an exception becomes a 500 further out

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._counter.labels(route, str(status)).inc()


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``. No key, like ``/healthz``: it holds counts and timings only, no
    project, key or user (scrapers rarely carry credentials; restrict it at the network)."""
    async def endpoint(_request: Request) -> Response:
        # In a worker thread: collecting may read Redis (the job's writes, short timeout).
        return Response(await run_in_threadpool(metrics.exposition),
                        media_type=CONTENT_TYPE_LATEST)
    return endpoint
