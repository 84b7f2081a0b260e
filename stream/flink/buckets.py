"""Sink buckets: which key of ``BufferOutputs`` an output goes to.

A flush writes one bucket, so the fewer buckets a subtask holds, the larger its batches
(every write pays a round trip or more per store, whatever its size). The job therefore
uses as many buckets as subtasks, with ids chosen so that each lands on its own subtask.
PyFlink's ``key_by`` keys by a one-field ``Row`` holding the key (``KeyByKeySelector``),
whose ``hashCode`` is ``62 + key`` for an int key (``RowUtils.deepHashCodeRow``: kind 0,
then ``Arrays.deepHashCode`` nesting); Flink sends it to key group
``murmurHash(hash) % max_parallelism`` and that group to subtask
``group * parallelism // max_parallelism`` (``KeyGroupRangeAssignment``). Were the mapping
ever to differ (a PyFlink upgrade), outputs would still all be written, only in fewer,
larger batches on fewer subtasks — the log says which subtask holds which bucket.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def murmur_hash(code: int) -> int:
    """Flink's ``MathUtils.murmurHash(int)``: non-negative."""
    code &= _M32
    code = _rotl((code * 0xCC9E2D51) & _M32, 15)
    code = _rotl((code * 0x1B873593) & _M32, 13)
    code = ((code * 5 + 0xE6546B64) & _M32) ^ 4
    code ^= code >> 16
    code = (code * 0x85EBCA6B) & _M32
    code ^= code >> 13
    code = (code * 0xC2B2AE35) & _M32
    code ^= code >> 16
    signed = code - (1 << 32) if code >= 1 << 31 else code
    return signed if signed >= 0 else (-signed if signed != -(1 << 31) else 0)


def subtask_of(key: int, parallelism: int, max_parallelism: int) -> int:
    """The subtask PyFlink sends int key ``key`` to (``key_by(..., Types.INT())``)."""
    row_hash = (62 + key) & _M32  # Row.of(key).hashCode()
    return (murmur_hash(row_hash) % max_parallelism) * parallelism // max_parallelism


def bucket_keys(parallelism: int, max_parallelism: int, per_subtask: int = 1) -> list[int]:
    """``per_subtask`` int keys for each subtask, the smallest that land there."""
    found: dict[int, list[int]] = {i: [] for i in range(parallelism)}
    key = 0
    while any(len(keys) < per_subtask for keys in found.values()):
        keys = found[subtask_of(key, parallelism, max_parallelism)]
        if len(keys) < per_subtask:
            keys.append(key)
        key += 1
    return [k for i in range(parallelism) for k in found[i]]


def bucket_of(key: str, buckets: Sequence[int]) -> int:
    """The bucket of a (project, session key) — or any other key: stable across processes
    and restarts (``hash`` of a str is salted per process)."""
    return buckets[zlib.crc32(key.encode()) % len(buckets)]
