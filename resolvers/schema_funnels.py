"""GraphQL for funnels: the steps, who dropped off where, and conversion over time."""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from enum import Enum
from typing import Any

import pyarrow.compute as pc
import strawberry
from strawberry.scalars import JSON

from resolvers.fetch import Reader, only_users, to_segment
from resolvers.funnels import (
    FunnelExclusion,
    FunnelQuery,
    FunnelStep,
    PropertyFilter,
    compute_funnel,
    compute_funnel_trend,
    compute_funnel_users,
    funnel_fetch,
    validate_funnel,
    validate_funnel_users,
    validate_interval,
)
from resolvers.schema_common import page_size, window_of
from resolvers.schema_retention import Period
from resolvers.segments import decode_user_cursor, encode_user_cursor
from resolvers.types import PageInfo, SegmentFilter, TimeWindow
from resolvers.window import Window, parse_duration


@strawberry.input(description="`key` is an event field (url, category, city, country, "
                              "device_type, os, app_version…) or a custom property; `op` one "
                              "of eq, neq, gt, gte, lt, lte, contains, in, is_set, is_not_set.")
class PropertyFilterInput:
    key: str
    op: str = "eq"
    value: JSON | None = None


@strawberry.input
class FunnelStepInput:
    event: str
    where: list[PropertyFilterInput] | None = None
    optional: bool = strawberry.field(default=False, description=(
        "May be skipped: later steps do not need it."))
    max_seconds_from_previous: float | None = strawberry.field(default=None, description=(
        "This step must follow the previous one within this many seconds."))


@strawberry.input(description="An event between steps fromStep and toStep (1-based) that "
                              "disqualifies reaching toStep.")
class FunnelExclusionInput:
    event: str
    from_step: int
    to_step: int
    where: list[PropertyFilterInput] | None = None


@strawberry.enum(description="ORDERED: steps in order, other events between allowed. "
                             "STRICT: each step the user's very next event. ANY: any order.")
class FunnelOrder(Enum):
    ORDERED = "ORDERED"
    STRICT = "STRICT"
    ANY = "ANY"


@strawberry.enum
class FunnelCountBy(Enum):
    USERS = "USERS"
    SESSIONS = "SESSIONS"


@strawberry.type
class FunnelStepResult:
    event: str
    users: int = strawberry.field(description="Units (users or sessions) that reached it.")
    conversion_from_previous: float
    conversion_from_first: float
    drop_off: int
    median_seconds_from_previous: float | None


@strawberry.type
class FunnelBreakdown:
    key: str | None = strawberry.field(description="The step-1 event's value; null: unset.")
    steps: list[FunnelStepResult]


@strawberry.type
class Funnel:
    steps: list[FunnelStepResult]
    breakdowns: list[FunnelBreakdown] = strawberry.field(
        description="Per value of `breakdown`, most entrants first (empty without one).")


@strawberry.type
class FunnelUsers:
    total_count: int
    users: list[str] = strawberry.field(description="User ids, ordered; page with first/after.")
    page_info: PageInfo


@strawberry.type
class FunnelTrendPoint:
    period: str
    entered: int
    converted: int = strawberry.field(description="Reached the last step.")
    rate: float


def property_filters(items: list[PropertyFilterInput] | None
                     ) -> tuple[PropertyFilter, ...]:
    return tuple(PropertyFilter(f.key, f.op.lower(), f.value) for f in items or ())


def _query(ctx: Any, steps: list[FunnelStepInput], window: TimeWindow | None,
           conversion_window: str, order: FunnelOrder, exclusions: list[FunnelExclusionInput]
           | None, hold_constant: list[str] | None, count_by: FunnelCountBy,
           breakdown: str | None) -> FunnelQuery:
    w = window_of(ctx, window)
    query = FunnelQuery(
        steps=tuple(FunnelStep(s.event, property_filters(s.where), s.optional,
                               s.max_seconds_from_previous) for s in steps),
        start=w.start, end=w.end,
        conversion_window_ms=parse_duration(conversion_window, "conversionWindow"),
        order=order.value,
        exclusions=tuple(FunnelExclusion(x.event, x.from_step, x.to_step,
                                         property_filters(x.where))
                         for x in exclusions or ()),
        hold_constant=tuple(hold_constant or ()), count_by=count_by.value,
        breakdown=breakdown)
    validate_funnel(query)
    return query


async def _events(ctx: Any, project: str, query: FunnelQuery, segment: SegmentFilter | None,
                  ids: bool = False) -> Any:
    """The funnel's events; with their users' ids when ``ids`` or a segment needs them."""
    fetch = funnel_fetch(query)
    reader = Reader(ctx, project)
    users = await reader.segment_users(to_segment(segment), Window(query.start, query.end))
    columns = fetch.columns + (("user_id",) if ids or users is not None else ())
    events = await reader.events(fetch.start, fetch.end,
                                 None if fetch.all_events else fetch.event_names,
                                 columns, ordered=False)
    # the segment's behaviour filters count in the funnel's window
    return only_users(events, users)


def _steps(rows: Any) -> list[FunnelStepResult]:
    return [FunnelStepResult(
        event=r.event, users=r.users, conversion_from_previous=r.conversion_from_previous,
        conversion_from_first=r.conversion_from_first, drop_off=r.drop_off,
        median_seconds_from_previous=r.median_seconds_from_previous) for r in rows]


@strawberry.type
class FunnelQueries:
    @strawberry.field(description="How many users (or sessions) reach each step, within "
                                  "conversionWindow of their step-1 event in the window.")
    async def funnel(
        self, info: strawberry.Info, steps: list[FunnelStepInput],
        window: TimeWindow | None = None, conversion_window: str = "1d",
        segment: SegmentFilter | None = None, breakdown: str | None = None,
        order: FunnelOrder = FunnelOrder.ORDERED,
        exclusions: list[FunnelExclusionInput] | None = None,
        hold_constant: list[str] | None = None,
        count_by: FunnelCountBy = FunnelCountBy.USERS,
    ) -> Funnel:
        ctx = info.context
        project = ctx.require("read")
        query = _query(ctx, steps, window, conversion_window, order, exclusions,
                       hold_constant, count_by, breakdown)
        result = compute_funnel(await _events(ctx, project, query, segment), query)
        return Funnel(steps=_steps(result.steps),
                      breakdowns=[FunnelBreakdown(key=b.key, steps=_steps(b.steps))
                                  for b in result.breakdowns])

    @strawberry.field(description="Users who reached `step` (1-based), or with dropped: "
                                  "those who reached the step before it but not it.")
    async def funnel_users(
        self, info: strawberry.Info, steps: list[FunnelStepInput], step: int,
        dropped: bool = False, window: TimeWindow | None = None,
        conversion_window: str = "1d", segment: SegmentFilter | None = None,
        order: FunnelOrder = FunnelOrder.ORDERED,
        exclusions: list[FunnelExclusionInput] | None = None,
        hold_constant: list[str] | None = None,
        count_by: FunnelCountBy = FunnelCountBy.USERS,
        first: int = 100, after: str | None = None,
    ) -> FunnelUsers:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        query = _query(ctx, steps, window, conversion_window, order, exclusions,
                       hold_constant, count_by, None)
        validate_funnel_users(query, step, dropped)
        users = compute_funnel_users(await _events(ctx, project, query, segment, ids=True),
                                     query,
                                     step, dropped)
        start = 0
        if after:
            last = decode_user_cursor(after)
            start = bisect_right(users, last)  # users come sorted by id
        page = users[start:start + first]
        return FunnelUsers(total_count=len(users), users=page, page_info=PageInfo(
            has_next_page=start + first < len(users),
            end_cursor=encode_user_cursor(page[-1]) if page else None))

    @strawberry.field(description="Per period of the step-1 event: units entering, units "
                                  "reaching the last step, and the rate.")
    async def funnel_trend(
        self, info: strawberry.Info, steps: list[FunnelStepInput],
        interval: Period = Period.DAY, window: TimeWindow | None = None,
        conversion_window: str = "1d", segment: SegmentFilter | None = None,
        order: FunnelOrder = FunnelOrder.ORDERED,
        exclusions: list[FunnelExclusionInput] | None = None,
        hold_constant: list[str] | None = None,
        count_by: FunnelCountBy = FunnelCountBy.USERS,
    ) -> list[FunnelTrendPoint]:
        ctx = info.context
        project = ctx.require("read")
        query = _query(ctx, steps, window, conversion_window, order, exclusions,
                       hold_constant, count_by, None)
        validate_interval(interval.value)
        events = await _events(ctx, project, query, segment)
        if events.num_rows:
            # no step-1 event is older than the oldest event: periods before it are empty
            # (and a window without `from` would otherwise list every day since 1970)
            oldest = pc.min(events.column("time")).as_py()
            query = dataclasses.replace(query, start=max(query.start, oldest))
        points = compute_funnel_trend(events, query, interval.value)
        return [FunnelTrendPoint(period=p.period, entered=p.entered, converted=p.converted,
                                 rate=p.rate) for p in points]
