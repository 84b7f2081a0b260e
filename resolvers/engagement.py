"""Engagement: active users, DAU / WAU / MAU, stickiness, session cadence, interactions.

``compute_engagement`` *is* the semantics of DESIGN.md "Active users" plus the session
figures of ``engagement``; the wiring fetches the columns and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from resolvers.frames import DAY_MS, Int64s, codes
from resolvers.window import Window


@dataclass(frozen=True, slots=True)
class EventRate:
    """``event`` happened ``per_session`` times per session that started in the window."""

    event: str
    per_session: float


@dataclass(frozen=True, slots=True)
class EngagementResult:
    active_users: int
    dau: int
    wau: int
    mau: int
    stickiness: float
    average_seconds_between_sessions: float | None
    sessions_per_user: float
    interactions_per_session: list[EventRate]


def events_window(window: Window) -> Window:
    """The events ``compute_engagement`` needs: MAU looks back 30 days from the window's end,
    so fetch from the earlier of ``window.start`` and ``window.end - 30d``, up to the end."""
    return Window(min(window.start, window.end - 30 * DAY_MS), window.end)


def validate_first(first: int | None, field: str = "interactionsPerSession.first") -> None:
    if first is not None and first < 0:
        raise bad_input(field, "must be >= 0")


def _times(table: pa.Table, name: str) -> Int64s:
    return np.asarray(table.column(name).to_numpy(), dtype=np.int64)


def _count_users(users: Int64s, mask: np.ndarray[Any, Any], n_users: int) -> int:
    return int(np.count_nonzero(np.bincount(users[mask], minlength=n_users)))


def compute_engagement(events: pa.Table, sessions: pa.Table, window: Window,
                       session_events: pa.Table | None = None,
                       first: int | None = None) -> EngagementResult:
    """Engagement over ``window`` (half-open ``[start, end)``, ms).

    - ``events`` (``time``, ``user_id``) should cover ``events_window(window)``; rows
      outside ``[min(start, end-30d), end)`` are ignored. ``active_users`` counts distinct
      users with an event in the window; ``dau`` / ``wau`` / ``mau`` those with an event in
      ``[end-1d, end)`` / ``[end-7d, end)`` / ``[end-30d, end)``; ``stickiness = dau / mau``
      (0.0 when ``mau`` is 0).
    - ``sessions`` (``session_id``, ``resolved_user``, ``start_time``, ``end_time``): only
      those starting in the window count. ``average_seconds_between_sessions``: per user,
      sessions ordered by ``(start_time, session_id)``, each gap is
      ``next.start_time - previous.end_time`` clipped at 0 (overlapping devices), averaged
      over every gap of every user, in seconds; ``None`` when no user has two sessions.
      ``sessions_per_user`` = sessions / their distinct users (0.0 without sessions).
    - ``session_events`` (``session_id``, ``event_name``; defaults to ``events``): the
      events of those sessions, wherever they fall in time (rows of other sessions are
      ignored). ``interactions_per_session``: per event name, its events in those sessions
      / the number of sessions, ranked by ``per_session`` desc then name; ``first`` of them
      (all when ``None``), empty without sessions.
    """
    validate_first(first)
    times = _times(events, "time")
    users, dictionary = codes(events.column("user_id"))
    n_users = len(dictionary)

    def active(lo: int) -> int:
        return _count_users(users, (times >= lo) & (times < window.end), n_users)

    active_users = active(window.start)
    dau, wau, mau = active(window.end - DAY_MS), active(window.end - 7 * DAY_MS), active(
        window.end - 30 * DAY_MS)

    starts = _times(sessions, "start_time")
    sessions = sessions.select(["session_id", "resolved_user", "start_time", "end_time"]).filter(
        pa.array((starts >= window.start) & (starts < window.end)))
    n_sessions = sessions.num_rows
    gap, per_user = _cadence(sessions)
    return EngagementResult(
        active_users=active_users, dau=dau, wau=wau, mau=mau,
        stickiness=dau / mau if mau else 0.0,
        average_seconds_between_sessions=gap,
        sessions_per_user=per_user,
        interactions_per_session=_interactions(
            events if session_events is None else session_events,
            sessions.column("session_id"), n_sessions, first),
    )


def _cadence(sessions: pa.Table) -> tuple[float | None, float]:
    """(mean seconds between a user's consecutive sessions, sessions per user)."""
    if sessions.num_rows == 0:
        return None, 0.0
    # Only adjacency of a user's sessions matters, so users sort by code (cheaper than text).
    users, dictionary = codes(sessions.column("resolved_user"))
    keyed = pa.table({"user": users, "start": sessions.column("start_time"),
                      "id": sessions.column("session_id"), "end": sessions.column("end_time")})
    order = pc.sort_indices(keyed, sort_keys=[
        ("user", "ascending"), ("start", "ascending"), ("id", "ascending")])
    ordered = keyed.take(order)
    users = users[order.to_numpy()]
    starts, ends = _times(ordered, "start"), _times(ordered, "end")
    same_user = users[1:] == users[:-1]
    gaps = np.maximum(starts[1:] - ends[:-1], 0)[same_user]
    mean = float(gaps.mean()) / 1000.0 if len(gaps) else None
    return mean, sessions.num_rows / len(dictionary)


def _interactions(session_events: pa.Table, session_ids: pa.ChunkedArray, n_sessions: int,
                  first: int | None) -> list[EventRate]:
    if n_sessions == 0 or session_events.num_rows == 0:
        return []
    ids = session_ids.combine_chunks().cast(pa.string())
    inside = pc.fill_null(pc.is_in(session_events.column("session_id").cast(pa.string()),
                                   value_set=ids), False)
    names, dictionary = codes(session_events.column("event_name"))
    counts = np.bincount(names[inside.to_numpy(zero_copy_only=False)],
                         minlength=len(dictionary))
    labels = dictionary.to_pylist()
    ranked = sorted((-int(c), name) for name, c in zip(labels, counts, strict=True)
                    if c and name is not None)
    return [EventRate(name, -c / n_sessions) for c, name in ranked[:first]]
