"""The event contract: aliases, nesting, and per-record reasons that name the field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from stream.contract.envelope import BodyError, EnvelopeParser, split_records
from stream.contract.registry import SchemaRegistry

NOW = 1_764_000_000_000


def parser(**kw: Any) -> EnvelopeParser:
    return EnvelopeParser(SchemaRegistry(), lambda: NOW, **kw)


def judge(*records: dict[str, Any], **kw: Any):
    raws = [msgspec.Raw(msgspec.json.encode(r)) for r in records]
    return parser(**kw).events("proj", raws)


def good(**over: Any) -> dict[str, Any]:
    base = {"event_name": "Add to Cart", "time": NOW - 1000, "insert_id": "i1",
            "distinct_user_id": "u1", "custom_properties": {"item": "Coffee"}}
    base.update(over)
    return base


def test_seed_envelope_is_accepted_with_category_from_the_catalogue() -> None:
    (event,) = judge(good(device_id="d1", url="moreretail.com/cart", ip="1.2.3.4")).accepted
    assert (event.event_name, event.category, event.time, event.ingest_time) == (
        "Add to Cart", "User Actions", NOW - 1000, NOW)
    assert (event.device_id, event.url, event.props()) == (
        "d1", "moreretail.com/cart", {"item": "Coffee"})


def test_aliases_and_default_properties_nesting() -> None:
    record = {"event": "Search", "properties": {"query": "milk"},
              "default_properties": {"time": NOW, "$insert_id": "x9", "distinct_id": "u7",
                                     "URL": "moreretail.com/search"}}
    (event,) = judge(record).accepted
    assert (event.event_name, event.insert_id, event.distinct_user_id, event.url,
            event.props()) == ("Search", "x9", "u7", "moreretail.com/search",
                                  {"query": "milk"})


@pytest.mark.parametrize(("record", "reason"), [
    ({"time": NOW, "insert_id": "i", "device_id": "d"}, "event_name: required field is missing"),
    (good(time=None), "time: required field is missing"),
    (good(time="yesterday"), "time: expected"),
    (good(time=1_700_000_000), "time: 1700000000 is not unix milliseconds"),
    (good(time=NOW + 2 * 86_400_000), "time: "),
    (good(insert_id=None), "insert_id: required field is missing"),
    (good(distinct_user_id=None), "distinct_user_id: one of distinct_user_id or device_id"),
    (good(colour="red"), "colour: unknown field"),
    (good(custom_properties=[1]), "custom_properties: expected `object`"),
    (good(event_name="Purchase", custom_properties={"amount": -3}),
     "custom_properties.amount: -3 is less than the minimum of 0"),
    (good(default_properties={"nope": 1}), "default_properties.nope: unknown field"),
])
def test_bad_records_name_the_field_and_reason(record: dict[str, Any], reason: str) -> None:
    record = {k: v for k, v in record.items() if v is not None}
    judged = judge(good(insert_id="ok"), record)
    assert len(judged.accepted) == 1, "a bad record must never sink its batch"
    ((index, got),) = judged.rejected
    assert index == 1
    assert got.startswith(reason), got


def test_oversize_event_is_rejected_alone() -> None:
    big = good(custom_properties={"blob": "x" * 2000})
    judged = judge(good(insert_id="small"), big, max_event_bytes=1000)
    assert [e.insert_id for e in judged.accepted] == ["small"]
    assert "over the 1000-byte limit" in judged.rejected[0][1]


def test_split_records_array_ndjson_and_garbage() -> None:
    assert len(split_records(b'[{"a":1},{"b":2}]')) == 2
    assert len(split_records(b'{"a":1}\n{"b":2}\n\n')) == 2
    assert len(split_records(b'{\n "a": 1\n}')) == 1
    for body in (b"", b"hello", b"[1, 2", b"42"):
        with pytest.raises(BodyError):
            split_records(body)


def test_a_broken_ndjson_line_is_one_rejected_record() -> None:
    records = split_records(msgspec.json.encode(good()) + b"\n{broken\n")
    judged = parser().events("proj", records)
    assert len(judged.accepted) == 1
    assert judged.rejected[0][0] == 1


def test_profiles_need_a_user_and_flat_traits() -> None:
    raws = [msgspec.Raw(msgspec.json.encode(r)) for r in (
        {"distinct_user_id": "u1", "traits": {"city": "Pune", "age": 31}},
        {"traits": {"city": "Pune"}},
        {"distinct_user_id": "u2", "traits": {"address": {"x": 1}}},
    )]
    judged = parser().profiles("proj", raws)
    assert [p.traits for p in judged.accepted] == [{"city": "Pune", "age": 31}]
    assert [r for _, r in judged.rejected] == [
        "distinct_user_id: required field is missing",
        "traits.address: nested objects and arrays are not allowed"]
