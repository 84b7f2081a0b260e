"""``GET /metrics`` on every backend: the same ingest counts and pipeline gauges.

The distributed profile's stores are written by the PyFlink job, in its own process, so the
gateway there reports its Kafka appends and the job's consumer lag per topic instead of the
embedded runner's store writes.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.conftest import Project, ev

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(project: Project) -> Samples:
    resp = httpx.get(project.gateway.url + "/metrics", timeout=30)
    assert resp.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def test_metrics_follow_ingest_and_the_pipeline(project: Project) -> None:
    distributed = project.gateway.env.get("CEP_PROFILE") == "distributed"
    accepted = ("cep_ingest_accepted_events_total",
                frozenset({("kind", "event"), ("source", "api")}))
    before = scrape(project).get(accepted, 0)
    answer = project.send([ev("App Launch", 0, user="m1"), ev("Search", 1, user="m1"),
                           {"event_name": "Search"}])
    assert answer["accepted"] == 2
    project.query("{ pipelineStatus { pendingEvents } }")  # waits until processed

    samples = scrape(project)
    assert samples[accepted] - before == 2
    assert samples[("cep_pipeline_up", frozenset())] == 1
    assert samples[("cep_pipeline_pending_events", frozenset())] == 0
    assert samples[("cep_pipeline_processed_events_total", frozenset())] >= 2
    writes = {dict(labels)["store"]: v for (name, labels), v in samples.items()
              if name == "cep_store_write_duration_seconds_count"}
    if distributed:
        assert writes["kafka"] >= 1
        lag = {dict(labels)["topic"]: v for (name, labels), v in samples.items()
               if name == "cep_kafka_consumer_lag_events"
               and dict(labels)["group"] == "cep-flink"}
        assert any(topic.startswith("raw.") for topic in lag), lag
        assert all(v >= 0 for v in lag.values()), lag
    else:
        assert {"local_log", "duckdb"} <= set(writes), writes
