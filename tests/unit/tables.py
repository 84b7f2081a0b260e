"""Declarative event tables for the query runners' unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from resolvers.frames import EVENT_SCAN_COLUMNS
from storage.columns import user_keys


def ms(text: str) -> int:
    """An ISO time (UTC) in unix milliseconds."""
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as the event store hands them back: every scan column, ordered by (time, id)."""
    rows = sorted(rows, key=lambda r: (r["time"], r["insert_id"]))
    keys = user_keys([r.get("user_id") or "" for r in rows])
    rows = [{**r, "user_key": k} for r, k in zip(rows, keys, strict=True)]
    types = {"time": pa.int64(), "ingest_time": pa.int64(), "dedupe_key": pa.uint64(),
             "user_key": pa.uint64()}
    return pa.table({c: pa.array([r.get(c) for r in rows], types.get(c, pa.string()))
                     for c in EVENT_SCAN_COLUMNS})


Journeys = dict[str, list[tuple[str, str]]]  # user → [(event name, ISO time)]


def name_table(rows: list[tuple[str, str, int]]) -> pa.Table:
    """(user, event name, time ms) rows, put in store order (time, insert_id); rows with
    the same time keep their given order. ``user_key`` is there as stores hand it back."""
    ordered = sorted(rows, key=lambda r: r[2])
    return pa.table({
        "insert_id": [f"{i:06d}" for i in range(len(ordered))],
        "user_id": pa.array([r[0] for r in ordered], pa.string()),
        "user_key": pa.array(user_keys([r[0] for r in ordered]), pa.uint64()),
        "event_name": pa.array([r[1] for r in ordered], pa.string()),
        "time": pa.array([r[2] for r in ordered], pa.int64()),
    })


def journeys(spec: Journeys) -> pa.Table:
    return name_table([(user, name, ms(at)) for user, events in spec.items()
                       for name, at in events])
