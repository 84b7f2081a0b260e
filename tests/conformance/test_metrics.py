"""``GET /metrics`` on every backend: the same ingest counts and pipeline gauges.

The distributed profile's stores are written by the PyFlink job, in its own process: the
gateway there reports its Kafka appends, the job's consumer lag per topic, and the job's
Cassandra, Neo4j and Redis writes as the job left them in Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.conftest import Project, ev

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
JOB_STORES = ("cassandra", "neo4j", "redis")


def scrape(project: Project) -> Samples:
    resp = httpx.get(project.gateway.url + "/metrics", timeout=30)
    assert resp.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def test_metrics_follow_ingest_and_the_pipeline(project: Project) -> None:
    distributed = project.gateway.env.get("CEP_PROFILE") == "distributed"
    accepted = ("cep_ingest_accepted_events_total",
                frozenset({("kind", "event"), ("source", "api")}))
    first = scrape(project)
    before = first.get(accepted, 0)
    writes_before = write_counts(first)  # the job's are cumulative, across tests and runs
    answer = project.send([ev("App Launch", 0, user="m1"), ev("Search", 1, user="m1"),
                           {"event_name": "Search"}])
    assert answer["accepted"] == 2
    project.query("{ pipelineStatus { pendingEvents } }")  # waits until processed

    samples = scrape(project)
    assert samples[accepted] - before == 2
    assert samples[("cep_pipeline_up", frozenset())] == 1
    assert samples[("cep_pipeline_pending_events", frozenset())] == 0
    assert samples[("cep_pipeline_processed_events_total", frozenset())] >= 2
    writes = write_counts(samples)
    if distributed:
        assert writes["kafka"] >= 1
        lag = {dict(labels)["topic"]: v for (name, labels), v in samples.items()
               if name == "cep_kafka_consumer_lag_events"
               and dict(labels)["group"] == "cep-flink"}
        assert any(topic.startswith("raw.") for topic in lag), lag
        assert all(v >= 0 for v in lag.values()), lag
        # The live views are published on their own branch: they may trail the offsets.
        samples = scrape_until(project, lambda s: all(
            write_counts(s).get(store, 0) > writes_before.get(store, 0)
            for store in JOB_STORES))
        for store in JOB_STORES:
            assert_consistent_histogram(samples, store)
    else:
        assert {"local_log", "duckdb"} <= set(writes), writes


def write_counts(samples: Samples) -> dict[str, float]:
    return {dict(labels)["store"]: v for (name, labels), v in samples.items()
            if name == "cep_store_write_duration_seconds_count"}


def scrape_until(project: Project, done: Callable[[Samples], bool],
                 timeout_s: float = 30.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    samples = scrape(project)
    while not done(samples):
        assert time.monotonic() < deadline, write_counts(samples)
        time.sleep(0.2)
        samples = scrape(project)
    return samples


def assert_consistent_histogram(samples: Samples, store: str) -> None:
    """Buckets cumulative in ``le``, ending at the count; errors no more than the count."""
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                     if name == "cep_store_write_duration_seconds_bucket"
                     and dict(labels)["store"] == store)
    count = samples[("cep_store_write_duration_seconds_count", frozenset({("store", store)}))]
    assert len(buckets) == 15, buckets  # WRITE_BUCKETS and +Inf
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), buckets
    assert buckets[-1] == (float("inf"), count)
    assert samples[("cep_store_write_duration_seconds_sum", frozenset({("store", store)}))] > 0
    assert 0 <= samples[("cep_store_write_errors_total", frozenset({("store", store)}))] <= count
