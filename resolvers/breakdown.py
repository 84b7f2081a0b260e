"""Breakdowns: one session metric per value of a place, device or demographic dimension.

Computed over the sessions that start in the window (as ``sessionMetrics``), each carrying
its resolved user's profile-first place and device; gender and age band come from the
user's profile. A session whose dimension is unknown counts under ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from resolvers.frames import codes, sorted_codes

METRICS = ("SESSIONS", "USERS", "CONVERSION_RATE", "AVG_SESSION_SECONDS", "CRASH_RATE")
# Dimension → the session column holding it; GENDER and AGE_BAND come from profiles.
SESSION_DIMENSIONS = {"CITY": "r_city", "STATE": "r_state", "COUNTRY": "r_country",
                      "DEVICE_TYPE": "r_device_type", "OS": "r_os",
                      "APP_VERSION": "app_version"}
PROFILE_DIMENSIONS = ("GENDER", "AGE_BAND")
AGE_BANDS = ((0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
             (45, 55, "45-54"), (55, 65, "55-64"), (65, 1_000, "65+"))


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    key: str | None
    value: float
    sessions: int


def age_band(age: float | None) -> str | None:
    if age is None or age < 0:
        return None
    for lo, hi, label in AGE_BANDS:
        if lo <= age < hi:
            return label
    return None


def dimension_values(sessions: pa.Table, by: str, profiles: pa.Table) -> list[Any]:
    """Each session's value of the dimension ``by``."""
    if by in SESSION_DIMENSIONS:
        values: list[Any] = sessions.column(SESSION_DIMENSIONS[by]).to_pylist()
        return values
    people = {r["user_id"]: r for r in profiles.to_pylist()}
    users = sessions.column("resolved_user").to_pylist()
    if by == "GENDER":
        return [people.get(u, {}).get("gender") for u in users]
    return [age_band(people.get(u, {}).get("age")) for u in users]


def compute_breakdown(sessions: pa.Table, metric: str, keys: list[Any]) -> list[BreakdownRow]:
    """``metric`` per key (``keys[i]`` is session i's), ranked by value desc, then key
    (``null`` last). Rates are shares 0..1; AVG_SESSION_SECONDS is last − first event."""
    if sessions.num_rows == 0:
        return []
    values_of, raw = sorted_codes(pa.array([None if k is None else str(k) for k in keys],
                                    pa.string()))
    # null (unknown) is one more group, after the values
    inverse = np.where(raw < 0, len(values_of), raw)
    uniq = [*values_of.to_pylist(), None]
    n = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    if metric == "SESSIONS":
        values = n
    elif metric == "USERS":
        users, _names = codes(sessions.column("resolved_user"))
        pairs = np.unique(inverse * (int(users.max()) + 1) + users)
        values = np.bincount(pairs // (int(users.max()) + 1),
                             minlength=len(uniq)).astype(np.float64)
    elif metric == "CONVERSION_RATE":
        flags = sessions.column("converted").fill_null(False).to_numpy(zero_copy_only=False)
        values = np.bincount(inverse, weights=flags.astype(np.float64), minlength=len(uniq)) / n
    elif metric == "CRASH_RATE":
        flags = sessions.column("crashed").fill_null(False).to_numpy(zero_copy_only=False)
        values = np.bincount(inverse, weights=flags.astype(np.float64), minlength=len(uniq)) / n
    elif metric == "AVG_SESSION_SECONDS":
        seconds = (sessions.column("end_time").to_numpy()
                   - sessions.column("start_time").to_numpy()) / 1000.0
        values = np.bincount(inverse, weights=seconds, minlength=len(uniq)) / n
    else:
        raise ValueError(f"unknown metric {metric!r}")
    rows = [BreakdownRow(k, float(v), int(c))
            for k, v, c in zip(uniq, values.tolist(), n.tolist(), strict=True) if c]
    return sorted(rows, key=lambda r: (-r.value, r.key is None, r.key or ""))
