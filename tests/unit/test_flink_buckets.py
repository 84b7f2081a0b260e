"""Sink bucket keys land one per subtask (observed in a PyFlink 2.2 mini cluster)."""

from __future__ import annotations

from stream.flink.buckets import bucket_keys, bucket_of, subtask_of

# (key, subtask) as BufferOutputs logged them with parallelism 2, max parallelism 128
OBSERVED = [(0, 0), (1, 0), (2, 1), (3, 1), (4, 0), (5, 0), (6, 1), (7, 0), (8, 1), (9, 1),
            (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0), (16, 0), (17, 1), (18, 1),
            (22, 1), (24, 1), (25, 1), (28, 1), (29, 1)]


def test_subtask_of_matches_flink() -> None:
    assert [(k, subtask_of(k, 2, 128)) for k, _ in OBSERVED] == OBSERVED


def test_one_bucket_per_subtask() -> None:
    for parallelism in (1, 2, 3, 4, 8):
        keys = bucket_keys(parallelism, 128)
        assert sorted(subtask_of(k, parallelism, 128) for k in keys) == list(range(parallelism))
    keys = bucket_keys(2, 128, per_subtask=3)
    assert [subtask_of(k, 2, 128) for k in keys] == [0, 0, 0, 1, 1, 1]
    assert {bucket_of(f"p\x1fd:{i}", keys) for i in range(100)} == set(keys)
