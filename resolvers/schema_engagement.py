"""GraphQL for engagement, feature usage and crashes."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import strawberry

from resolvers.crashes import (
    CRASH_GROUPS,
    DEFAULT_CRASH_EVENTS,
    compute_crashes,
    validate_crashes,
)
from resolvers.engagement import compute_engagement, events_window, validate_first
from resolvers.features import (
    FEATURE_KEYS,
    RETENTION_LIFT_DESCRIPTION,
    compute_feature_usage,
    validate_feature_usage,
)
from resolvers.fetch import Reader, only_users, to_segment
from resolvers.schema_common import session_query, window_of
from resolvers.segments import Segment
from resolvers.types import SegmentFilter, TimeWindow
from resolvers.window import Window

CRASH_COLUMNS = ("time", "user_id", "event_name", "properties", "os", "app_version",
                 "device_type", "country")


@strawberry.type
class EventRate:
    event: str
    per_session: float


@strawberry.type
class Engagement:
    active_users: int = strawberry.field(description="Distinct users with any event in the "
                                                     "window.")
    dau: int = strawberry.field(description="Active users in the window's last day.")
    wau: int = strawberry.field(description="Active users in its last 7 days.")
    mau: int = strawberry.field(description="Active users in its last 30 days.")
    stickiness: float = strawberry.field(description="dau / mau.")
    average_seconds_between_sessions: float | None = strawberry.field(
        description="Mean gap from a user's session end to their next session start.")
    sessions_per_user: float
    rates: strawberry.Private[list[EventRate]]

    @strawberry.field(description="Events of each name per session starting in the window, "
                                  "most frequent first.")
    def interactions_per_session(self, first: int | None = None) -> list[EventRate]:
        validate_first(first)
        return self.rates if first is None else self.rates[:first]


@strawberry.enum
class FeatureKey(Enum):
    EVENT = "EVENT"
    URL = "URL"
    CATEGORY = "CATEGORY"


@strawberry.type
class Feature:
    key: str
    events: int
    users: int
    retention_lift: float | None = strawberry.field(description=RETENTION_LIFT_DESCRIPTION)


@strawberry.enum
class CrashDimension(Enum):
    OS = "OS"
    APP_VERSION = "APP_VERSION"
    DEVICE_TYPE = "DEVICE_TYPE"
    COUNTRY = "COUNTRY"


@strawberry.type
class CrashCause:
    cause: str
    count: int


@strawberry.type
class CrashGroup:
    key: str | None
    crashes: int
    sessions: int
    crashes_per_1000_sessions: float
    crash_free_users: float


@strawberry.type
class Crashes:
    crashes: int = strawberry.field(description="App Crash events in the window.")
    sessions: int = strawberry.field(description="Sessions starting in the window.")
    crashes_per_1000_sessions: float
    crash_free_users: float = strawberry.field(
        description="Share (0-1) of active users with no crash in the window.")
    top_causes: list[CrashCause] = strawberry.field(
        description="By the crash's `reason`, else `exception` property.")
    groups: list[CrashGroup] = strawberry.field(description="Per value of `by`.")


async def _scoped(ctx: Any, project: str, w: Window, segment: Segment
                  ) -> tuple[Reader, set[str] | None, pa.Table]:
    """The reader, the segment's users, and the sessions starting in ``w`` of them."""
    reader = Reader(ctx, project)
    users = await reader.segment_users(segment, w)
    sessions = await ctx.call(ctx.sessions.scan_sessions, project, session_query(w))
    return reader, users, only_users(sessions, users, "resolved_user")


async def _crash_events(reader: Reader, w: Window, by: str | None) -> pa.Table:
    """The window's events without properties, and its crash events with them: only crash
    causes read properties, and a million JSON strings cost more than the rest. Of the
    group columns, only ``by``'s."""
    columns = ["time", "user_id", "event_name", "properties"]
    if by is not None:
        columns.append(CRASH_GROUPS[by][0])
    lean = tuple(c for c in columns if c != "properties")
    others = await reader.events(w.start, w.end, columns=lean, ordered=False)
    crashes = await reader.events(w.start, w.end, DEFAULT_CRASH_EVENTS, tuple(columns),
                                  ordered=False)
    names = pa.array(DEFAULT_CRASH_EVENTS, pa.string())
    others = others.filter(pc.invert(pc.is_in(others.column("event_name"), value_set=names)))
    others = others.append_column("properties", pa.nulls(others.num_rows, pa.string()))
    return pa.concat_tables([others.select(columns), crashes.select(columns)])


@strawberry.type
class EngagementQueries:
    @strawberry.field(description="Active users, DAU / WAU / MAU, stickiness, session "
                                  "cadence and interactions per session.")
    async def engagement(self, info: strawberry.Info, window: TimeWindow | None = None,
                         segment: SegmentFilter | None = None) -> Engagement:
        ctx = info.context
        project = ctx.require("read")
        w = window_of(ctx, window)
        reader, users, sessions = await _scoped(ctx, project, w, to_segment(segment))
        span = events_window(w)
        events = only_users(await reader.events(span.start, span.end, columns=(
            "user_id", "time"), ordered=False), users)
        # a session starting in the window may go on after it
        in_sessions = await reader.events(w.start, ctx.now_ms() + 1, columns=(
            "session_id", "event_name", "time"), ordered=False)
        r = compute_engagement(events, sessions, w, in_sessions)
        return Engagement(
            active_users=r.active_users, dau=r.dau, wau=r.wau, mau=r.mau,
            stickiness=r.stickiness,
            average_seconds_between_sessions=r.average_seconds_between_sessions,
            sessions_per_user=r.sessions_per_user,
            rates=[EventRate(event=x.event, per_session=x.per_session)
                   for x in r.interactions_per_session])

    @strawberry.field(description="Most used events, pages or categories, and whether their "
                                  "users retain better than the window's other users.")
    async def feature_usage(self, info: strawberry.Info, window: TimeWindow | None = None,
                            by: FeatureKey = FeatureKey.EVENT, first: int | None = 20,
                            retention_days: int = 7, segment: SegmentFilter | None = None
                            ) -> list[Feature]:
        ctx = info.context
        project = ctx.require("read")
        validate_feature_usage(by.value, first, retention_days)
        w = window_of(ctx, window)
        reader = Reader(ctx, project)
        users = await reader.segment_users(to_segment(segment), w)
        events = only_users(await reader.events(
            w.start, ctx.now_ms() + 1,
            columns=("time", "user_id", FEATURE_KEYS[by.value]), ordered=False), users)
        rows = compute_feature_usage(events, w, by.value, first, retention_days)
        return [Feature(key=f.key, events=f.events, users=f.users,
                        retention_lift=f.retention_lift) for f in rows]

    @strawberry.field(description="Crash rate per 1,000 sessions, crash-free users and top "
                                  "causes, optionally per OS, app version, device or country.")
    async def crashes(self, info: strawberry.Info, window: TimeWindow | None = None,
                      by: CrashDimension | None = None, first: int | None = 10,
                      segment: SegmentFilter | None = None) -> Crashes:
        ctx = info.context
        project = ctx.require("read")
        dimension = by.value if by is not None else None
        validate_crashes(dimension, first)
        w = window_of(ctx, window)
        reader, users, sessions = await _scoped(ctx, project, w, to_segment(segment))
        events = only_users(await _crash_events(reader, w, dimension), users)
        r = compute_crashes(events, sessions, w, dimension, first)
        return Crashes(
            crashes=r.crashes, sessions=r.sessions,
            crashes_per_1000_sessions=r.crashes_per_1000_sessions,
            crash_free_users=r.crash_free_users,
            top_causes=[CrashCause(cause=c.cause, count=c.count) for c in r.top_causes],
            groups=[CrashGroup(key=g.key, crashes=g.crashes, sessions=g.sessions,
                               crashes_per_1000_sessions=g.crashes_per_1000_sessions,
                               crash_free_users=g.crash_free_users) for g in r.groups])
