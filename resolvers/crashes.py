"""Crashes: crash rate per 1,000 sessions, crash-free users, top causes, per-group figures.

``compute_crashes`` *is* the semantics of ``crashes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from resolvers.frames import codes, distinct, property_values
from resolvers.window import Window

DEFAULT_CRASH_EVENTS = ("App Crash",)
# by -> (the crash events' column, the sessions' column)
CRASH_GROUPS = {
    "OS": ("os", "r_os"),
    "APP_VERSION": ("app_version", "app_version"),
    "DEVICE_TYPE": ("device_type", "r_device_type"),
    "COUNTRY": ("country", "r_country"),
}
CAUSE_PROPERTIES = ("reason", "exception")
UNKNOWN_CAUSE = "unknown"


@dataclass(frozen=True, slots=True)
class CrashCause:
    cause: str
    count: int


@dataclass(frozen=True, slots=True)
class CrashGroup:
    key: str | None
    crashes: int
    sessions: int
    crashes_per_1000_sessions: float
    crash_free_users: float


@dataclass(frozen=True, slots=True)
class CrashReport:
    crashes: int
    sessions: int
    crashes_per_1000_sessions: float
    crash_free_users: float
    top_causes: list[CrashCause]
    groups: list[CrashGroup]


def validate_crashes(by: str | None, first: int | None) -> None:
    if by is not None and by not in CRASH_GROUPS:
        raise bad_input("by", f"{by!r} is not one of {', '.join(CRASH_GROUPS)}")
    if first is not None and first < 0:
        raise bad_input("first", "must be >= 0")


def _rate(crashes: int, sessions: int) -> float:
    return 1000.0 * crashes / sessions if sessions else 0.0


def _crash_free(users: int, crashed: int) -> float:
    return (users - crashed) / users if users else 1.0


def compute_crashes(events: pa.Table, sessions: pa.Table, window: Window, by: str | None = None,
                    first: int | None = None,
                    crash_events: Sequence[str] = DEFAULT_CRASH_EVENTS) -> CrashReport:
    """Crash figures over ``window`` (half-open ``[start, end)``, ms).

    ``events`` (``time``, ``user_id``, ``event_name``, ``properties`` and, with ``by``, the
    group column) and ``sessions`` (``start_time`` and, with ``by``, the group column): rows
    outside the window are ignored. ``crashes`` = events named in ``crash_events``;
    ``sessions`` = sessions starting in the window; ``crashes_per_1000_sessions`` =
    ``1000 * crashes / sessions`` (0.0 without sessions); ``crash_free_users`` = share of
    the window's active users (any event) with no crash event — 1.0 when there are no
    active users (nobody crashed). ``top_causes``: the crash's ``reason`` property, else
    ``exception`` (each only when a non-empty string), else ``"unknown"``; ranked by count
    desc then cause, ``first`` of them (all if ``None``). ``groups`` (empty without ``by``):
    one per value (``None`` for missing) of the crash events' / sessions' column (see
    ``CRASH_GROUPS``); a group's users are the active users with an event carrying that
    value (a user may be in several), crash-free unless they have a crash event carrying
    it. Ranked by crashes desc, then key (``None`` last); every group is returned.
    """
    validate_crashes(by, first)
    times = np.asarray(events.column("time").to_numpy(), dtype=np.int64)
    users, user_values = codes(events.column("user_id"))
    n_users = len(user_values)
    in_window = (times >= window.start) & (times < window.end)
    named = pc.is_in(events.column("event_name"), value_set=pa.array(list(crash_events),
                                                                      pa.string()))
    crash = in_window & np.asarray(pc.fill_null(named, False).to_numpy(), dtype=bool)
    starts = np.asarray(sessions.column("start_time").to_numpy(), dtype=np.int64)
    session_in_window = (starts >= window.start) & (starts < window.end)

    n_crashes, n_sessions = int(np.count_nonzero(crash)), int(np.count_nonzero(
        session_in_window))
    active = int(np.count_nonzero(np.bincount(users[in_window], minlength=n_users)))
    crashed = int(np.count_nonzero(np.bincount(users[crash], minlength=n_users)))
    groups: list[CrashGroup] = []
    if by is not None:
        groups = _groups(events, sessions, by, users, n_users, in_window, crash,
                         session_in_window)
    return CrashReport(
        crashes=n_crashes, sessions=n_sessions,
        crashes_per_1000_sessions=_rate(n_crashes, n_sessions),
        crash_free_users=_crash_free(active, crashed),
        top_causes=_causes(events.select(["properties"]).take(np.flatnonzero(crash)), first),
        groups=groups,
    )


def _causes(crash_events: pa.Table, first: int | None) -> list[CrashCause]:
    found: list[Any] = [None] * crash_events.num_rows
    for name in CAUSE_PROPERTIES:
        values = property_values(crash_events, name)
        found = [f if f is not None else (v if isinstance(v, str) and v else None)
                 for f, v in zip(found, values, strict=True)]
    counts = Counter(UNKNOWN_CAUSE if f is None else f for f in found)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [CrashCause(cause, count) for cause, count in ranked[:first]]


def _pair_counts(groups: np.ndarray[Any, Any], users: np.ndarray[Any, Any], n_users: int,
                 n_groups: int) -> np.ndarray[Any, Any]:
    """Distinct users per group."""
    pairs = distinct(groups * max(n_users, 1) + users)
    return np.bincount(pairs // max(n_users, 1), minlength=n_groups)


def _groups(events: pa.Table, sessions: pa.Table, by: str, users: np.ndarray[Any, Any],
            n_users: int, in_window: np.ndarray[Any, Any], crash: np.ndarray[Any, Any],
            session_in_window: np.ndarray[Any, Any]) -> list[CrashGroup]:
    event_column, session_column = CRASH_GROUPS[by]
    # One dictionary for both tables, so a value means the same code in each.
    both = pa.chunked_array([
        events.column(event_column).combine_chunks().cast(pa.string()),
        sessions.column(session_column).combine_chunks().cast(pa.string())], pa.string())
    values, dictionary = codes(both)
    n_groups = len(dictionary)
    event_groups, session_groups = values[:events.num_rows], values[events.num_rows:]
    crashes = np.bincount(event_groups[crash], minlength=n_groups)
    sessions_per = np.bincount(session_groups[session_in_window], minlength=n_groups)
    users_per = _pair_counts(event_groups[in_window], users[in_window], n_users, n_groups)
    crashed_per = _pair_counts(event_groups[crash], users[crash], n_users, n_groups)
    keys = dictionary.to_pylist()
    present = [g for g in range(n_groups) if crashes[g] or sessions_per[g]]
    present.sort(key=lambda g: (-crashes[g], keys[g] is None, keys[g] or ""))
    return [CrashGroup(
        key=keys[g], crashes=int(crashes[g]), sessions=int(sessions_per[g]),
        crashes_per_1000_sessions=_rate(int(crashes[g]), int(sessions_per[g])),
        crash_free_users=_crash_free(int(users_per[g]), int(crashed_per[g])),
    ) for g in present]
