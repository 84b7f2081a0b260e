"""Sessions: the list, one session with its events, and session metrics.

Each runner validates its input, fetches columns through the ports, and computes the answer
in ``compute`` — that function *is* the semantics in DESIGN.md ("Sessions"), so every
backend that hands back the same columns gives the same answer.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from resolvers.frames import period_index, period_label


@dataclass(frozen=True, slots=True)
class PageCount:
    url: str
    sessions: int


@dataclass(frozen=True, slots=True)
class PeriodCount:
    day: str
    sessions: int


@dataclass(frozen=True, slots=True)
class SessionMetricsResult:
    count: int
    average_duration_seconds: float
    average_events_per_session: float
    purchase_session_rate: float
    bounce_rate: float
    landing_pages: list[PageCount]
    per_day: list[PeriodCount]
    per_week: list[PeriodCount]
    per_month: list[PeriodCount]


def _counts(starts_ms: np.ndarray, period: str) -> list[PeriodCount]:
    """Sessions per period (``frames.period_index``: weeks start on Monday), oldest first."""
    if not len(starts_ms):
        return []
    values, counts = np.unique(period_index(starts_ms, period), return_counts=True)
    return [PeriodCount(period_label(int(v), period), int(c))
            for v, c in zip(values, counts, strict=True)]


def compute_session_metrics(sessions: pa.Table, top_pages: int) -> SessionMetricsResult:
    """Metrics over the sessions that start in the window (already filtered)."""
    n = sessions.num_rows
    if n == 0:
        return SessionMetricsResult(0, 0.0, 0.0, 0.0, 0.0, [], [], [], [])
    start = sessions.column("start_time").to_numpy()
    end = sessions.column("end_time").to_numpy()
    events = sessions.column("events").to_numpy()
    converted = sessions.column("converted").to_numpy(zero_copy_only=False)
    durations = (end - start) / 1000.0
    landing = sessions.column("landing_url").drop_null()
    pages: list[PageCount] = []
    if len(landing):
        vc = pc.value_counts(landing).to_pylist()
        ranked = sorted(vc, key=lambda d: (-d["counts"], d["values"]))
        pages = [PageCount(d["values"], int(d["counts"])) for d in ranked[:top_pages]]
    return SessionMetricsResult(
        count=n,
        average_duration_seconds=float(durations.mean()),
        average_events_per_session=float(events.mean()),
        purchase_session_rate=float(converted.sum()) / n,
        bounce_rate=float((events == 1).sum()) / n,
        landing_pages=pages,
        per_day=_counts(start, "day"),
        per_week=_counts(start, "week"),
        per_month=_counts(start, "month"),
    )


def encode_cursor(start_time: int, session_id: str) -> str:
    return base64.urlsafe_b64encode(f"{start_time}:{session_id}".encode()).decode()


def decode_cursor(cursor: str, field: str = "after") -> tuple[int, str]:
    try:
        start, sid = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        return int(start), sid
    except (ValueError, UnicodeDecodeError):
        raise bad_input(field, "not a cursor returned by this API") from None


@dataclass(frozen=True, slots=True)
class SessionPage:
    total: int
    rows: list[dict[str, object]]
    has_next: bool


def page_sessions(sessions: pa.Table, first: int, after: str | None) -> SessionPage:
    """Sessions ordered by (start time, id), ``first`` of them after the cursor."""
    total = sessions.num_rows
    if after:
        start, sid = decode_cursor(after)
        starts = sessions.column("start_time")
        ids = sessions.column("session_id")
        mask = pc.or_(pc.greater(starts, start),
                      pc.and_(pc.equal(starts, start), pc.greater(ids, sid)))
        sessions = sessions.filter(mask)
    rows = sessions.slice(0, first).to_pylist()
    return SessionPage(total, rows, sessions.num_rows > first)

