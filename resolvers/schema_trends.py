"""GraphQL for trends: event volume, users or sessions per hour, day, week or month."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
import strawberry

from resolvers.fetch import Reader, only_users, to_segment
from resolvers.schema_common import window_of
from resolvers.schema_funnels import PropertyFilterInput, property_filters
from resolvers.trends import (
    ALL_EVENTS,
    MAX_BREAKDOWN_LIMIT,
    MAX_BUCKETS,
    MAX_SERIES,
    TrendSeriesQuery,
    TrendsQuery,
    compute_trends,
    trends_fetch,
    validate_trends,
)
from resolvers.types import SegmentFilter, TimeWindow
from resolvers.window import Window


@strawberry.enum(description="Bucket size: local wall-clock hours, days, weeks starting "
                             "Monday, or calendar months (UTC unless `timezone` is given).")
class TrendInterval(Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@strawberry.enum(description="TOTAL: matching events. UNIQUE_USERS: their distinct users. "
                             "PER_USER_AVERAGE: events / distinct users (0 with none). "
                             "SESSIONS: distinct session ids of matching events.")
class TrendMath(Enum):
    TOTAL = "TOTAL"
    UNIQUE_USERS = "UNIQUE_USERS"
    PER_USER_AVERAGE = "PER_USER_AVERAGE"
    SESSIONS = "SESSIONS"


@strawberry.input
class TrendSeriesInput:
    event: str | None = strawberry.field(default=None, description="Null: any event.")
    where: list[PropertyFilterInput] | None = None
    math: TrendMath = TrendMath.TOTAL
    name: str | None = strawberry.field(default=None, description=(
        f"The series' label; by default the event name, or \"{ALL_EVENTS}\"."))


@strawberry.type
class TrendSeries:
    name: str
    event: str | None
    math: TrendMath
    breakdown_value: str | None = strawberry.field(description=(
        "The events' value of `breakdown` (non-strings as JSON). Null without a breakdown, "
        "and for the events where the property is unset."))
    total: float = strawberry.field(description=(
        "Over the whole window: for UNIQUE_USERS and SESSIONS the distinct users or "
        "sessions of the window (not the sum of the buckets); for PER_USER_AVERAGE events "
        "/ distinct users of the window."))
    values: list[float] = strawberry.field(description="One per bucket, aligned with "
                                                       "`buckets`.")


@strawberry.type
class Trends:
    interval: TrendInterval
    buckets: list[str] = strawberry.field(description=(
        "The start of every bucket meeting the window, empty ones included: ISO-8601 with "
        "the zone's offset (Z in UTC). Without a window start, from the earliest event "
        "read."))
    series: list[TrendSeries] = strawberry.field(description=(
        "In the order asked; with a breakdown, each series' top `breakdownLimit` values by "
        "total (ties by value, unset last), the rest left out."))


Breakdown = Annotated[str | None, strawberry.argument(description=(
    "An event field (url, category, city, state, country, device_type, os, app_version…) "
    "or a custom property, as in funnel breakdowns."))]
BreakdownLimit = Annotated[int, strawberry.argument(description=(
    f"Values kept per series with a breakdown, 1 to {MAX_BREAKDOWN_LIMIT}."))]


def _open_start(window: TimeWindow | None) -> bool:
    """No lower bound given: the window would reach back to 1970."""
    return window is None or (window.last is None and window.from_ is None)


def _from_first_event(events: pa.Table, w: Window) -> Window:
    """The window from its earliest event (just its last millisecond when it has none)."""
    if not events.num_rows:
        return Window(w.end - 1, w.end)
    oldest = pc.min(events.column("time")).as_py()
    return Window(max(w.start, int(oldest)), w.end)


@strawberry.type
class TrendQueries:
    @strawberry.field(description=(
        f"Events, users or sessions per bucket over the window, for 1 to {MAX_SERIES} "
        f"series, optionally per value of a property (at most {MAX_BUCKETS:,} buckets)."))
    async def trends(
        self, info: strawberry.Info, series: list[TrendSeriesInput],
        interval: TrendInterval = TrendInterval.DAY, window: TimeWindow | None = None,
        breakdown: Breakdown = None, segment: SegmentFilter | None = None,
        timezone: str | None = None, breakdown_limit: BreakdownLimit = 10,
    ) -> Trends:
        ctx = info.context
        project = ctx.require("read")
        w = window_of(ctx, window)
        query = TrendsQuery(
            series=tuple(TrendSeriesQuery(s.event, property_filters(s.where), s.math.value,
                                          s.name) for s in series),
            window=w, interval=interval.value, breakdown=breakdown, timezone=timezone,
            breakdown_limit=breakdown_limit)
        open_start = _open_start(window)
        validate_trends(query, buckets=not open_start)
        fetch = trends_fetch(query)
        reader = Reader(ctx, project)
        users = await reader.segment_users(to_segment(segment), w)
        columns = fetch.columns
        if users is not None and "user_id" not in columns:
            columns += ("user_id",)
        events = only_users(await reader.events(fetch.start, fetch.end, fetch.event_names,
                                                columns, ordered=False), users)
        if open_start:
            query = dataclasses.replace(query, window=_from_first_event(events, w))
        result = compute_trends(events, query)
        return Trends(
            interval=TrendInterval(result.interval), buckets=result.buckets,
            series=[TrendSeries(name=s.name, event=s.event, math=TrendMath(s.math),
                                breakdown_value=s.breakdown_value, total=s.total,
                                values=s.values) for s in result.series])
