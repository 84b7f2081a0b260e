"""Declarative event tables for the query runners' unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from resolvers.frames import EVENT_SCAN_COLUMNS


def ms(text: str) -> int:
    """An ISO time (UTC) in unix milliseconds."""
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as the event store hands them back: every scan column, ordered by (time, id)."""
    rows = sorted(rows, key=lambda r: (r["time"], r["insert_id"]))
    types = {"time": pa.int64(), "dedupe_key": pa.uint64()}
    return pa.table({c: pa.array([r.get(c) for r in rows], types.get(c, pa.string()))
                     for c in EVENT_SCAN_COLUMNS})
