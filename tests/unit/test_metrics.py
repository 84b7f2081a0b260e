"""Metrics labels stay bounded: rejection reasons as codes, operation names capped."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.ingest import IngestResult
from gateway.metrics import Metrics, PipelineReading
from gateway.metrics_graphql import OperationNames
from stream.contract.envelope import EnvelopeParser
from stream.contract.reasons import REASON_CODES, reason_code
from stream.contract.registry import SchemaRegistry
from stream.flink.write_metrics import StoreWriteTotals

NOW = 1_764_000_000_000


def good(**over: Any) -> dict[str, Any]:
    base = {"event_name": "Search", "time": NOW - 1000, "insert_id": "i1",
            "distinct_user_id": "u1"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def reason_of(record: dict[str, Any] | bytes, kind: str = "event") -> str:
    """The reason the real parser gives (the mapping must follow what it says)."""
    registry = SchemaRegistry()
    registry.set_strict("strict")
    parser = EnvelopeParser(registry, lambda: NOW, max_event_bytes=1000)
    raw = msgspec.Raw(record if isinstance(record, bytes) else msgspec.json.encode(record))
    judge = parser.events if kind == "event" else parser.profiles
    project = "strict" if isinstance(record, dict) and record.get("event_name") == "Nope" \
        else "p"
    ((_, reason),) = judge(project, [raw]).rejected
    return reason


@pytest.mark.parametrize(("record", "code"), [
    (good(custom_properties={"blob": "x" * 2000}), "too_large"),
    (b"[1, 2]", "malformed"),
    (b"{broken", "malformed"),
    (good(event_name=None), "missing_field"),
    (good(time=None), "missing_field"),
    (good(insert_id=None), "missing_field"),
    (good(distinct_user_id=None), "missing_field"),
    (good(**{"user 42 bob@x.io": 1}), "unknown_field"),
    (good(**{"a: b": 1}), "unknown_field"),
    (good(default_properties={"nope": 1}), "unknown_field"),
    (good(time="yesterday"), "wrong_type"),
    (good(custom_properties=[1]), "wrong_type"),
    (good(event_name="x" * 201), "too_long"),
    (good(insert_id="x" * 129), "too_long"),
    (good(time=1_700_000_000), "time_not_ms"),
    (good(time=NOW + 2 * 86_400_000), "time_in_future"),
    (good(time=NOW - 4000 * 86_400_000), "time_too_old"),
    (good(event_name="Purchase", custom_properties={"amount": -3}), "schema_violation"),
    (good(event_name="Purchase", custom_properties={"amount": "a lot"}), "schema_violation"),
    (good(event_name="Nope"), "unregistered_event"),
])
def test_every_rejection_of_the_envelope_has_its_code(record: dict[str, Any] | bytes,
                                                      code: str) -> None:
    reason = reason_of(record)
    assert reason_code(reason) == code, reason


@pytest.mark.parametrize(("record", "code"), [
    ({"traits": {"city": "Pune"}}, "missing_field"),
    ({"distinct_user_id": "u2", "traits": {"address": {"x": 1}}}, "wrong_type"),
    ({"distinct_user_id": "u2", "shoe size": 44}, "unknown_field"),
])
def test_profile_rejections_have_codes(record: dict[str, Any], code: str) -> None:
    assert reason_code(reason_of(record, "profile")) == code


def test_an_unknown_reason_is_other_never_its_text() -> None:
    assert reason_code("something new happened to user 42") == "other"
    assert reason_code("") == "other"
    assert set(REASON_CODES) >= {reason_code(r) for r in ("x: y", "record: z")}


def test_operation_names_are_capped_and_checked() -> None:
    names = OperationNames(limit=2)
    assert names.label(None) == "anonymous"
    assert names.label("") == "anonymous"
    assert names.label("First") == "First"
    assert names.label("user 42 bob@x.io") == "other", "not a GraphQL name"
    assert names.label("x" * 65) == "other", "over 64 characters"
    assert names.label("Second") == "Second"
    assert names.label("Third") == "other", "past the cap"
    assert names.label("First") == "First", "known names keep their label"
    assert names.label("First", authenticated=False) == "unauthenticated"


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_judged_counts_by_code_and_deliveries_by_bounded_status() -> None:
    metrics = Metrics()
    metrics.judged("event", "api", IngestResult(5, [(1, "colour: unknown field"),
                                                    (3, "shoe: unknown field"),
                                                    (4, "time: required field is missing")]))
    metrics.delivery("WEBHOOK", "sent")
    metrics.delivery("pigeon", "lost")
    got = samples(metrics)
    assert got[("cep_ingest_accepted_events_total",
                frozenset({("kind", "event"), ("source", "api")}))] == 5
    rejected = {dict(labels)["reason"]: v for (name, labels), v in got.items()
                if name == "cep_ingest_rejected_events_total"}
    assert rejected == {"unknown_field": 2, "missing_field": 1}
    deliveries = {(dict(labels)["channel"], dict(labels)["status"]): v
                  for (name, labels), v in got.items()
                  if name == "cep_campaign_deliveries_total"}
    assert deliveries == {("webhook", "sent"): 1, ("other", "other"): 1}


def test_pipeline_gauges_show_what_is_known() -> None:
    metrics = Metrics()
    reading = PipelineReading(True, 7, 40, {"raw.user_actions": 5, "events.dead": 0},
                              "cep-flink")
    metrics.watch_pipeline(lambda: reading)
    got = samples(metrics)
    assert got[("cep_pipeline_pending_events", frozenset())] == 7
    assert got[("cep_pipeline_processed_events_total", frozenset())] == 40
    assert got[("cep_kafka_consumer_lag_events", frozenset(
        {("group", "cep-flink"), ("topic", "raw.user_actions")}))] == 5
    reading = PipelineReading(False, None, None)
    got = samples(metrics)
    assert got[("cep_pipeline_up", frozenset())] == 0
    assert not any(name == "cep_pipeline_pending_events" for name, _ in got)


def test_the_jobs_store_writes_join_the_store_write_families() -> None:
    metrics = Metrics()
    metrics.store("kafka").observe(0.002)
    job = {"cassandra": StoreWriteTotals((0, 1, 2) + (3,) * 11, 0.9, 4, 1)}
    reading: list[Any] = [job]

    def read() -> dict[str, StoreWriteTotals]:
        if isinstance(reading[0], Exception):
            raise reading[0]
        return dict(reading[0])

    metrics.watch_job_writes(read)
    text = metrics.exposition().decode()
    assert text.count("# TYPE cep_store_write_duration_seconds histogram") == 1
    assert text.count("# TYPE cep_store_write_errors_total counter") == 1
    got = samples(metrics)
    cassandra = frozenset({("store", "cassandra")})
    assert got[("cep_store_write_duration_seconds_count", cassandra)] == 4
    assert got[("cep_store_write_duration_seconds_sum", cassandra)] == 0.9
    assert got[("cep_store_write_duration_seconds_bucket",
                cassandra | {("le", "0.001")})] == 1
    assert got[("cep_store_write_duration_seconds_bucket",
                cassandra | {("le", "10.0")})] == 3
    assert got[("cep_store_write_duration_seconds_bucket", cassandra | {("le", "+Inf")})] == 4
    assert got[("cep_store_write_errors_total", cassandra)] == 1
    assert got[("cep_store_write_duration_seconds_count", frozenset({("store", "kafka")}))] == 1

    reading[0] = ConnectionError("Redis is down")  # the scrape answers without the job's
    got = samples(metrics)
    assert ("cep_store_write_duration_seconds_count", cassandra) not in got
    assert got[("cep_store_write_duration_seconds_count", frozenset({("store", "kafka")}))] == 1
