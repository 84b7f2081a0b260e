"""GraphQL for conversion and retention: retention cohorts, churn, lifecycle, conversion
between two events, repeat purchasers."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import strawberry

from resolvers.conversion import (
    ConversionQuery,
    RepeatPurchasersQuery,
    compute_conversion,
    compute_repeat_purchasers,
    conversion_fetch,
    repeat_purchasers_fetch,
)
from resolvers.fetch import Reader, to_segment
from resolvers.retention import (
    EventFetch,
    PeriodQuery,
    RetentionQuery,
    churn_fetch,
    compute_churn,
    compute_lifecycle,
    compute_retention,
    lifecycle_fetch,
    retention_fetch,
)
from resolvers.schema_common import window_of
from resolvers.types import SegmentFilter, TimeWindow
from resolvers.window import parse_duration


@strawberry.enum
class Period(Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@strawberry.enum(description="ON: returned in period k. ON_OR_AFTER: in period k or later "
                             "(unbounded retention).")
class RetentionMode(Enum):
    ON = "ON"
    ON_OR_AFTER = "ON_OR_AFTER"


@strawberry.type
class RetentionCohort:
    start: str = strawberry.field(description="First day of the cohort's period.")
    size: int
    retained: list[int] = strawberry.field(
        description="retained[k]: members active (returnEvent) in period k; k = 0 is the "
                    "cohort's own period. Periods not yet started are left out.")


@strawberry.type
class Retention:
    cohorts: list[RetentionCohort]


@strawberry.type
class ChurnPeriod:
    period: str
    active: int = strawberry.field(description="Users with any event in the period.")
    previous_active: int = strawberry.field(description="Users active in the period before.")
    churned: int = strawberry.field(description="Active before, not in this period.")
    rate: float = strawberry.field(description="churned / previousActive (0-1).")


@strawberry.type
class LifecyclePeriod:
    period: str
    new: int = strawberry.field(description="First event ever in this period.")
    returning: int = strawberry.field(description="Active in this and the previous period.")
    resurrecting: int = strawberry.field(description="Back after a gap of a period or more.")
    dormant: int = strawberry.field(description="Active in the previous period, not this one.")


@strawberry.type
class Conversion:
    users: int = strawberry.field(description="Users whose first fromEvent is in the window.")
    converted: int
    rate: float
    median_seconds: float | None


@strawberry.type
class RepeatPurchasers:
    purchasers: int = strawberry.field(description="Users with a conversion event.")
    users: int = strawberry.field(description="Users with at least minPurchases of them.")
    share: float


async def _events(reader: Reader, fetch: EventFetch, users: set[str] | None,
                  ordered: bool = False) -> Any:
    """Retention, churn, lifecycle and repeat purchasers only count, so need no order;
    conversion breaks ties in time by row order."""
    return await reader.events(fetch.start, fetch.end, fetch.event_names,
                               fetch.narrowed(users), ordered)


async def _per_period(info: strawberry.Info, period: Period, window: TimeWindow | None,
                      timezone: str | None, segment: SegmentFilter | None,
                      fetch: Callable[[PeriodQuery, int], EventFetch],
                      compute: Callable[..., list[Any]]) -> list[Any]:
    """Churn and lifecycle: the same reads, a different count."""
    ctx = info.context
    project = ctx.require("read")
    now = ctx.now_ms()
    query = PeriodQuery(window_of(ctx, window), period.value, timezone)
    reader = Reader(ctx, project)
    users = await reader.segment_users(to_segment(segment), query.window)
    events = await _events(reader, fetch(query, now), users)
    return compute(events, query, now, users)


@strawberry.type
class RetentionQueries:
    @strawberry.field(description="Retention cohorts: users whose first startEvent falls in "
                                  "each period of the window, and how many returned.")
    async def retention(
        self, info: strawberry.Info, window: TimeWindow | None = None,
        start_event: str | None = None, return_event: str | None = None,
        period: Period = Period.WEEK, periods: int = 8,
        mode: RetentionMode = RetentionMode.ON, timezone: str | None = None,
        segment: SegmentFilter | None = None,
    ) -> Retention:
        ctx = info.context
        project = ctx.require("read")
        now = ctx.now_ms()
        query = RetentionQuery(window_of(ctx, window), period.value, periods, start_event,
                               return_event, mode.value, timezone)
        reader = Reader(ctx, project)
        users = await reader.segment_users(to_segment(segment), query.window)
        events = await _events(reader, retention_fetch(query, now), users)
        result = compute_retention(events, query, now, users)
        return Retention(cohorts=[RetentionCohort(start=c.start, size=c.size,
                                                  retained=c.retained)
                                  for c in result.cohorts])

    @strawberry.field(description="Per period: users active, active the period before, and "
                                  "the share of those who did not come back.")
    async def churn(self, info: strawberry.Info, period: Period = Period.WEEK,
                    window: TimeWindow | None = None, timezone: str | None = None,
                    segment: SegmentFilter | None = None) -> list[ChurnPeriod]:
        rows = await _per_period(info, period, window, timezone, segment, churn_fetch,
                                 compute_churn)
        return [ChurnPeriod(period=c.period, active=c.active, previous_active=c.previous_active,
                            churned=c.churned, rate=c.rate) for c in rows]

    @strawberry.field(description="Per period: new, returning, resurrecting and dormant users.")
    async def lifecycle(self, info: strawberry.Info, period: Period = Period.WEEK,
                        window: TimeWindow | None = None, timezone: str | None = None,
                        segment: SegmentFilter | None = None) -> list[LifecyclePeriod]:
        rows = await _per_period(info, period, window, timezone, segment, lifecycle_fetch,
                                 compute_lifecycle)
        return [LifecyclePeriod(period=c.period, new=c.new, returning=c.returning,
                                resurrecting=c.resurrecting, dormant=c.dormant) for c in rows]

    @strawberry.field(description="Users whose first fromEvent is in the window, and how many "
                                  "did toEvent after it (within `within`, e.g. \"7d\").")
    async def conversion(self, info: strawberry.Info, from_event: str, to_event: str,
                         window: TimeWindow | None = None, within: str | None = None,
                         segment: SegmentFilter | None = None) -> Conversion:
        ctx = info.context
        project = ctx.require("read")
        w = window_of(ctx, window)
        query = ConversionQuery(from_event, to_event, w,
                                None if within is None else parse_duration(within, "within"))
        reader = Reader(ctx, project)
        users = await reader.segment_users(to_segment(segment), w)
        events = await _events(reader, conversion_fetch(query, ctx.now_ms()), users,
                               ordered=True)
        r = compute_conversion(events, query, users)
        return Conversion(users=r.users, converted=r.converted, rate=r.rate,
                          median_seconds=r.median_seconds)

    @strawberry.field(description="Users with at least minPurchases conversion events (the "
                                  "project's conversionEvents) in the window.")
    async def repeat_purchasers(self, info: strawberry.Info, window: TimeWindow | None = None,
                                min_purchases: int = 2) -> RepeatPurchasers:
        ctx = info.context
        project = ctx.require("read")
        query = RepeatPurchasersQuery(window_of(ctx, window), min_purchases)
        names = frozenset(ctx.session_settings(project).conversion_events)
        events = await _events(Reader(ctx, project), repeat_purchasers_fetch(query, names),
                               None)
        r = compute_repeat_purchasers(events, query, names)
        return RepeatPurchasers(purchasers=r.purchasers, users=r.users, share=r.share)
