"""Conversion (e.g. install → first purchase) and repeat purchasers.

Same shape as ``resolvers.retention``: a frozen query, ``validate_...`` raising ``bad_input``
naming the GraphQL argument, ``..._fetch`` saying what to scan, and a pure ``compute_...``
over events with columns ``user_id``, ``event_name``, ``time`` in row order
``(time, insert_id)``. A segment is the collection of allowed user ids (``None``: everyone).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from resolvers.errors import bad_input
from resolvers.retention import EventFetch, user_rows
from resolvers.window import Window

DEFAULT_CONVERSION_EVENTS = frozenset({"Purchase", "Charged", "Place Order"})
_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class ConversionQuery:
    from_event: str
    to_event: str
    window: Window
    within: int | None = None  # ms after the first from_event; None: any time up to now


@dataclass(frozen=True, slots=True)
class ConversionResult:
    users: int
    converted: int
    rate: float
    median_seconds: float | None


@dataclass(frozen=True, slots=True)
class RepeatPurchasersQuery:
    window: Window
    min_purchases: int = 2


@dataclass(frozen=True, slots=True)
class RepeatPurchasersResult:
    purchasers: int
    users: int
    share: float


def validate_conversion(query: ConversionQuery) -> None:
    for field, name in (("fromEvent", query.from_event), ("toEvent", query.to_event)):
        if not name.strip():
            raise bad_input(field, "must not be empty")
    if query.from_event == query.to_event:
        raise bad_input("toEvent", "must differ from fromEvent")
    if query.within is not None and query.within <= 0:
        raise bad_input("within", "must be positive")


def conversion_fetch(query: ConversionQuery, now_ms: int) -> EventFetch:
    """Both events from the beginning of time (first-ever ``from_event``) up to now, or up
    to ``within`` after the window when that comes sooner."""
    validate_conversion(query)
    end = now_ms + 1
    if query.within is not None:
        end = min(end, query.window.end + query.within)
    return EventFetch(frozenset((query.from_event, query.to_event)), 0, max(0, end))


def compute_conversion(events: pa.Table, query: ConversionQuery,
                       users: Collection[str] | None = None) -> ConversionResult:
    """``users`` = users whose first-ever ``from_event`` is in the window; ``converted`` =
    those with a ``to_event`` after it in row order (same millisecond counts when it sorts
    after), at most ``within`` ms after it when given; ``median_seconds`` = median over
    converted of (first such ``to_event`` − first ``from_event``) in seconds, ``None``
    when nobody converted; ``rate = converted / users`` (0.0 when no users). ``events``
    must hold every such event from the beginning of time (``conversion_fetch``)."""
    validate_conversion(query)
    rows = user_rows(events, users)
    row = np.arange(len(rows.user), dtype=np.int64)
    from_rows = rows.named(query.from_event)
    first_from = np.full(rows.n_users, _NEVER, dtype=np.int64)
    np.minimum.at(first_from, rows.user[from_rows], row[from_rows])
    started = first_from != _NEVER
    start_time = np.full(rows.n_users, _NEVER, dtype=np.int64)
    start_time[started] = rows.time[first_from[started]]
    cohort = (start_time >= query.window.start) & (start_time < query.window.end)

    to_rows = np.flatnonzero(rows.named(query.to_event))
    to_user = rows.user[to_rows]
    after = cohort[to_user] & (to_rows > first_from[to_user])
    first_to = np.full(rows.n_users, _NEVER, dtype=np.int64)
    np.minimum.at(first_to, to_user[after], to_rows[after])
    reached = first_to != _NEVER
    delay = rows.time[first_to[reached]] - start_time[reached]
    if query.within is not None:
        delay = delay[delay <= query.within]

    n_users, converted = int(cohort.sum()), len(delay)
    return ConversionResult(
        users=n_users, converted=converted,
        rate=converted / n_users if n_users else 0.0,
        median_seconds=float(np.median(delay)) / 1000 if converted else None)


def validate_repeat_purchasers(query: RepeatPurchasersQuery) -> None:
    if query.min_purchases < 1:
        raise bad_input("minPurchases", "must be at least 1")


def repeat_purchasers_fetch(query: RepeatPurchasersQuery,
                            conversion_events: Collection[str] = DEFAULT_CONVERSION_EVENTS
                            ) -> EventFetch:
    """The project's conversion events in the window."""
    validate_repeat_purchasers(query)
    return EventFetch(frozenset(conversion_events), query.window.start, query.window.end)


def compute_repeat_purchasers(
        events: pa.Table, query: RepeatPurchasersQuery,
        conversion_events: Collection[str] = DEFAULT_CONVERSION_EVENTS,
        users: Collection[str] | None = None) -> RepeatPurchasersResult:
    """``purchasers`` = users with at least one conversion event in the window; ``users`` =
    those with at least ``min_purchases`` of them; ``share = users / purchasers`` (0.0
    when there are no purchasers). Events outside the window are ignored."""
    validate_repeat_purchasers(query)
    rows = user_rows(events, users)
    bought = rows.named(conversion_events)
    bought &= (rows.time >= query.window.start) & (rows.time < query.window.end)
    counts = np.bincount(rows.user[bought], minlength=rows.n_users)
    purchasers = int((counts >= 1).sum())
    repeat = int((counts >= query.min_purchases).sum())
    return RepeatPurchasersResult(purchasers, repeat, repeat / purchasers if purchasers else 0.0)
