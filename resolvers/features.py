"""Feature usage: the most used events, pages or content categories, and whether their users
come back more often than everyone else.

``compute_feature_usage`` *is* the semantics of ``featureUsage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from resolvers.frames import DAY_MS, codes, distinct
from resolvers.window import Window

FEATURE_KEYS = {"EVENT": "event_name", "URL": "url", "CATEGORY": "category"}
MAX_RETENTION_DAYS = 365
# The text the GraphQL field should carry as its description.
RETENTION_LIFT_DESCRIPTION = (
    "Retention rate of the key's users divided by that of the window's other active users. "
    "A user is retained if they have any event (up to now) at least retentionDays days after "
    "their first event in the window. Null when either group is empty or the other users' "
    "rate is 0."
)


@dataclass(frozen=True, slots=True)
class FeatureUsage:
    key: str
    events: int
    users: int
    retention_lift: float | None


def validate_feature_usage(by: str, first: int | None, retention_days: int) -> None:
    if by not in FEATURE_KEYS:
        raise bad_input("by", f"{by!r} is not one of {', '.join(FEATURE_KEYS)}")
    if first is not None and first < 0:
        raise bad_input("first", "must be >= 0")
    if not 1 <= retention_days <= MAX_RETENTION_DAYS:
        raise bad_input("retentionDays", f"must be between 1 and {MAX_RETENTION_DAYS}")


def compute_feature_usage(events: pa.Table, window: Window, by: str, first: int | None = None,
                          retention_days: int = 7) -> list[FeatureUsage]:
    """Usage per key over ``window`` (half-open ``[start, end)``, ms).

    ``events`` (``time``, ``user_id`` and the key column: ``event_name`` / ``url`` /
    ``category`` for ``by`` EVENT / URL / CATEGORY) covers ``[window.start, now]``; earlier
    rows are ignored. Per key with an event in the window (null keys skipped): ``events`` =
    its events in the window, ``users`` = their distinct users. ``retention_lift`` =
    ``rate(users of the key) / rate(window's active users who did not use it)``, where a
    user is retained if any passed event of theirs is at least ``retention_days`` days after
    their first event in the window; ``None`` when either group is empty or the second rate
    is 0. Ranked by ``users`` desc, ``events`` desc, key; ``first`` of them (all if ``None``).
    """
    validate_feature_usage(by, first, retention_days)
    times = np.asarray(events.column("time").to_numpy(), dtype=np.int64)
    users, user_values = codes(events.column("user_id"))
    keys, key_values = codes(events.column(FEATURE_KEYS[by]))
    n_users, n_keys = len(user_values), len(key_values)
    in_window = (times >= window.start) & (times < window.end)
    retained = _retained(times, users, in_window, n_users, retention_days * DAY_MS)
    active = int(np.count_nonzero(retained >= 0))
    retained_total = int(np.count_nonzero(retained > 0))

    counted = in_window & pc.is_valid(key_values).to_numpy(zero_copy_only=False)[keys]
    keys, users = keys[counted], users[counted]
    event_counts = np.bincount(keys, minlength=n_keys)
    pairs = distinct(keys * n_users + users)
    pair_keys, pair_users = pairs // n_users, pairs % n_users
    user_counts = np.bincount(pair_keys, minlength=n_keys)
    retained_counts = np.bincount(pair_keys, weights=retained[pair_users] > 0,
                                  minlength=n_keys).astype(np.int64)

    rank = np.empty(n_keys, dtype=np.int64)
    rank[pc.array_sort_indices(key_values).to_numpy()] = np.arange(n_keys)
    present = np.flatnonzero(event_counts)
    order = present[np.lexsort((rank[present], -event_counts[present],
                                -user_counts[present]))][:first]
    labels = key_values.take(pa.array(order, pa.int64())).to_pylist()
    out: list[FeatureUsage] = []
    for label, k in zip(labels, order.tolist(), strict=True):
        users_k, retained_k = int(user_counts[k]), int(retained_counts[k])
        others, retained_others = active - users_k, retained_total - retained_k
        lift = None
        if others and retained_others:
            lift = (retained_k / users_k) / (retained_others / others)
        out.append(FeatureUsage(label, int(event_counts[k]), users_k, lift))
    return out


def _retained(times: np.ndarray[Any, Any], users: np.ndarray[Any, Any],
              in_window: np.ndarray[Any, Any], n_users: int,
              after_ms: int) -> np.ndarray[Any, Any]:
    """Per user: -1 if not active in the window, else 1 if retained, else 0."""
    never = np.iinfo(np.int64).max
    first_seen = np.full(n_users, never, dtype=np.int64)
    np.minimum.at(first_seen, users[in_window], times[in_window])
    last_seen = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_seen, users, times)
    active = first_seen != never
    late = last_seen >= np.where(active, first_seen, 0) + after_ms
    return np.where(active, late.astype(np.int64), -1)
