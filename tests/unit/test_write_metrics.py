"""The PyFlink job's store write metrics: what a sink adds to the Redis hash per flush and
what the gateway reads back from it (``stream.flink.write_metrics``)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.flink.write_metrics import (
    STORE_WRITES_KEY,
    WRITE_BUCKETS,
    StoreWriteTally,
    StoreWriteTotals,
    decode_store_writes,
)


class FakeRedisHash:
    """HINCRBY / HINCRBYFLOAT on one hash, through a transaction pipeline, as strings
    (what ``HGETALL`` answers with ``decode_responses``)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.round_trips = 0
        self.transactions: list[bool] = []

    def pipeline(self, transaction: bool = True) -> FakeRedisHash.Pipeline:
        self.transactions.append(transaction)
        return FakeRedisHash.Pipeline(self)

    class Pipeline:
        def __init__(self, owner: FakeRedisHash) -> None:
            self._owner = owner
            self._queued: list[tuple[str, str, float]] = []

        def hincrby(self, key: str, field: str, n: int) -> None:
            assert isinstance(n, int)
            self._queued.append((key, field, n))

        def hincrbyfloat(self, key: str, field: str, x: float) -> None:
            self._queued.append((key, field, x))

        def execute(self) -> None:
            self._owner.round_trips += 1
            for key, field, n in self._queued:
                assert key == STORE_WRITES_KEY
                before = float(self._owner.fields.get(field, "0"))
                total = before + n
                self._owner.fields[field] = str(int(total) if isinstance(n, int) else total)


class Unreachable:
    def pipeline(self, transaction: bool = True) -> Any:
        raise ConnectionError("Redis is down")


def test_a_flush_adds_cumulative_buckets_sum_count_and_errors_in_one_round_trip() -> None:
    redis = FakeRedisHash()
    tally = StoreWriteTally()
    tally.observe("cassandra", 0.003)
    tally.observe("cassandra", 0.2)
    tally.observe("neo4j", 12.0, failed=True)  # above the last bound: only in +Inf
    tally.flush(redis)
    assert redis.round_trips == 1
    assert redis.transactions == [True]  # a reader never sees a count without its buckets
    assert "cassandra:le=0.0025" not in redis.fields  # zero increments are not sent
    assert redis.fields["cassandra:le=0.005"] == "1"
    assert redis.fields["cassandra:le=0.25"] == "2"
    assert redis.fields["cassandra:le=10.0"] == "2"
    assert redis.fields["cassandra:count"] == "2"
    assert float(redis.fields["cassandra:sum"]) == pytest.approx(0.203)
    assert "cassandra:errors" not in redis.fields
    assert redis.fields["neo4j:errors"] == "1"
    assert not any(f.startswith("neo4j:le=") for f in redis.fields)

    tally.flush(redis)  # nothing pending: no round trip
    assert redis.round_trips == 1
    tally.observe("cassandra", 0.0001)
    tally.flush(redis)
    got = decode_store_writes(redis.fields)
    assert got["cassandra"] == StoreWriteTotals(
        (1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3), pytest.approx(0.2031), 3, 0)
    assert got["neo4j"] == StoreWriteTotals((0,) * len(WRITE_BUCKETS), 12.0, 1, 1)
    assert "redis" not in got  # no writes yet: absent, not zeros


def test_the_timing_block_observes_failures_and_lets_them_through() -> None:
    redis = FakeRedisHash()
    tally = StoreWriteTally()
    with tally.timing("redis"):
        pass
    with pytest.raises(KeyError), tally.timing("redis"):
        raise KeyError("boom")
    tally.flush(redis)
    got = decode_store_writes(redis.fields)["redis"]
    assert (got.count, got.errors) == (2, 1)
    assert got.buckets[-1] == 2


def test_a_flush_never_raises_and_drops_what_it_could_not_send() -> None:
    tally = StoreWriteTally()
    tally.observe("cassandra", 0.01)
    tally.flush(Unreachable())  # logged at debug, not raised
    redis = FakeRedisHash()
    tally.flush(redis)
    assert redis.round_trips == 0


def test_decoding_reads_bytes_ignores_unknown_stores_and_repairs_buckets() -> None:
    fields = {b"cassandra:count": b"4", b"cassandra:sum": b"0.5",
              b"cassandra:le=0.001": b"3", b"cassandra:le=0.005": b"2",  # not monotone
              b"cassandra:le=10.0": b"9",  # above the count
              b"kafka:count": b"7", b"someone-else:count": b"1", b"redis:count": b"0"}
    got = decode_store_writes(fields)
    assert set(got) == {"cassandra"}
    buckets = got["cassandra"].buckets
    assert buckets[:4] == (0, 3, 3, 3)
    assert buckets[-1] == 4
    assert list(buckets) == sorted(buckets)
