"""sessionMetrics semantics on declarative sessions (no store involved)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from graphql import GraphQLError

from resolvers.sessions import compute_session_metrics, decode_cursor, encode_cursor, page_sessions
from resolvers.window import resolve_window


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def sessions(*rows: tuple[str, int, int, str | None, bool]) -> pa.Table:
    """(start ISO, duration s, events, landing url, converted)"""
    return pa.table({
        "session_id": [f"s{i}" for i in range(len(rows))],
        "start_time": [ms(r[0]) for r in rows],
        "end_time": [ms(r[0]) + r[1] * 1000 for r in rows],
        "events": pa.array([r[2] for r in rows], pa.int32()),
        "landing_url": [r[3] for r in rows],
        "converted": [r[4] for r in rows],
    })


def test_metrics_follow_the_design() -> None:
    table = sessions(("2026-11-01T10:00:00", 60, 3, "home", True),   # a Sunday
                     ("2026-11-02T10:00:00", 0, 1, "cart", False),   # Monday
                     ("2026-11-02T23:59:59", 120, 5, "home", False),
                     ("2026-12-01T00:00:00", 30, 1, None, False))
    m = compute_session_metrics(table, top_pages=5)
    assert m.count == 4
    assert m.average_duration_seconds == pytest.approx((60 + 0 + 120 + 30) / 4)
    assert m.average_events_per_session == pytest.approx(10 / 4)
    assert (m.purchase_session_rate, m.bounce_rate) == (0.25, 0.5)
    assert [(p.url, p.sessions) for p in m.landing_pages] == [("home", 2), ("cart", 1)]
    assert [(d.day, d.sessions) for d in m.per_day] == [
        ("2026-11-01", 1), ("2026-11-02", 2), ("2026-12-01", 1)]
    assert [(w.day, w.sessions) for w in m.per_week] == [
        ("2026-10-26", 1), ("2026-11-02", 2), ("2026-11-30", 1)], "weeks start on Monday"
    assert [(x.day, x.sessions) for x in m.per_month] == [("2026-11-01", 3), ("2026-12-01", 1)]


def test_empty_window_is_all_zero() -> None:
    m = compute_session_metrics(sessions(), top_pages=5)
    assert (m.count, m.bounce_rate, m.per_day) == (0, 0.0, [])


def test_pages_follow_the_cursor() -> None:
    table = sessions(*[(f"2026-11-0{d}T10:00:00", 1, 2, "x", False) for d in range(1, 6)])
    first = page_sessions(table, 2, None)
    assert ([r["session_id"] for r in first.rows], first.has_next, first.total) == (
        ["s0", "s1"], True, 5)
    cursor = encode_cursor(first.rows[-1]["start_time"], first.rows[-1]["session_id"])
    rest = page_sessions(table, 10, cursor)
    assert ([r["session_id"] for r in rest.rows], rest.has_next) == (["s2", "s3", "s4"], False)
    with pytest.raises(GraphQLError, match="after: not a cursor"):
        decode_cursor("@@@")


@pytest.mark.parametrize(("last", "span"), [("5m", 300_000), ("5mins", 300_000),
                                            ("2h", 7_200_000), ("30d", 30 * 86_400_000),
                                            ("1w", 7 * 86_400_000), ("10s", 10_000)])
def test_last_windows(last: str, span: int) -> None:
    w = resolve_window(last, None, None, now_ms=10**12)
    assert w.end - w.start == span + 1


def test_from_to_windows_and_errors() -> None:
    w = resolve_window(None, "2026-11-01", "2026-11-02", now_ms=0)
    assert (w.start, w.end) == (ms("2026-11-01T00:00:00"), ms("2026-11-03T00:00:00"))
    w = resolve_window(None, "2026-11-01T10:00:00+02:00", "2026-11-01T12:00:00Z", now_ms=0)
    assert w.end - w.start == 4 * 3_600_000
    for args, msg in (((("5y"), None, None), "window.last: unknown unit"),
                      ((None, "yesterday", None), "window.from: 'yesterday' is not an ISO-8601"),
                      ((None, "2026-11-02", "2026-11-01T00:00:00Z"), "window: to must be"),
                      (("5m", "2026-11-01", None), "window: give either")):
        with pytest.raises(GraphQLError, match=msg):
            resolve_window(*args, now_ms=0)
