"""The one GraphQL schema: per-domain Query/Mutation classes composed here."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext
from strawberry.utils.logging import StrawberryLogger

from resolvers.cost import cost_rule
from resolvers.errors import api_error, bad_input, is_public, unavailable_store
from resolvers.schema_campaigns import CampaignMutations, CampaignQueries
from resolvers.schema_common import page_size, segment_sessions, window_of
from resolvers.schema_engagement import EngagementQueries
from resolvers.schema_funnels import FunnelQueries
from resolvers.schema_keys import KeyMutations, KeyQueries
from resolvers.schema_live import LiveQueries, LiveSubscriptions
from resolvers.schema_paths import PathQueries
from resolvers.schema_people import PeopleQueries
from resolvers.schema_retention import RetentionQueries
from resolvers.schema_segments import SegmentMutations, SegmentQueries
from resolvers.schema_trends import TrendQueries
from resolvers.schema_user_data import UserDataMutations, UserDataQueries
from resolvers.sessions import compute_session_metrics, encode_cursor, page_sessions
from resolvers.types import (
    About,
    Attribution,
    DayCount,
    DeadLetter,
    DeadLetterConnection,
    EventInput,
    EventSchema,
    EventSchemaInput,
    LandingPage,
    MonthCount,
    PageInfo,
    PipelineStatus,
    ProfileInput,
    Rejection,
    SegmentFilter,
    Session,
    SessionFilter,
    SessionSettings,
    SessionSettingsInput,
    TimeWindow,
    TrackResult,
    WeekCount,
)
from resolvers.window import iso


@strawberry.type
class SessionEdge:
    cursor: str
    node: Session


@strawberry.type
class SessionConnection:
    total_count: int
    edges: list[SessionEdge]
    page_info: PageInfo


@strawberry.type
class SessionMetrics:
    count: int
    average_duration_seconds: float
    average_events_per_session: float
    purchase_session_rate: float = strawberry.field(
        description="Share of sessions containing a conversion event."
    )
    bounce_rate: float = strawberry.field(description="Share of sessions with one event.")
    per_day: list[DayCount]
    per_week: list[WeekCount]
    per_month: list[MonthCount]
    landing: strawberry.Private[list[LandingPage]]

    @strawberry.field(description="Landing pages (first URL) ranked by sessions.")
    def top_landing_pages(self, first: int = 10) -> list[LandingPage]:
        if first < 0:
            raise bad_input("topLandingPages.first", "must not be negative")
        return self.landing[:first]


@strawberry.type
class SessionQueries:
    @strawberry.field(description="Accepted but not yet processed work.")
    async def pipeline_status(self, info: strawberry.Info) -> PipelineStatus:
        ctx = info.context
        ctx.require("read", "write")
        pending, processed, healthy = await ctx.pipeline()
        return PipelineStatus(pending_events=pending, processed_events=processed, healthy=healthy)

    @strawberry.field(description="Sessions starting in the window, oldest first.")
    async def sessions(
        self,
        info: strawberry.Info,
        window: TimeWindow | None = None,
        filter: SessionFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> SessionConnection:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        table = await segment_sessions(ctx, project, window_of(ctx, window), filter, "filter")
        page = page_sessions(table, first, after)
        edges = [
            SessionEdge(
                cursor=encode_cursor(int(str(r["start_time"])), str(r["session_id"])),
                node=Session.from_row(r),
            )
            for r in page.rows
        ]
        return SessionConnection(
            total_count=page.total,
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @strawberry.field(description="One session with its ordered events.")
    async def session(self, info: strawberry.Info, id: strawberry.ID) -> Session | None:
        ctx = info.context
        project = ctx.require("read")
        table = await ctx.call(ctx.sessions.session, project, str(id))
        rows = table.to_pylist()
        return Session.from_row(rows[0]) if rows else None

    @strawberry.field(description="Session metrics over sessions that start in the window.")
    async def session_metrics(
        self, info: strawberry.Info, window: TimeWindow, segment: SegmentFilter | None = None
    ) -> SessionMetrics:
        ctx = info.context
        project = ctx.require("read")
        table = await segment_sessions(ctx, project, window_of(ctx, window), segment, "segment")
        m = compute_session_metrics(table, top_pages=table.num_rows)
        return SessionMetrics(
            count=m.count,
            average_duration_seconds=m.average_duration_seconds,
            average_events_per_session=m.average_events_per_session,
            purchase_session_rate=m.purchase_session_rate,
            bounce_rate=m.bounce_rate,
            per_day=[DayCount(day=p.day, sessions=p.sessions) for p in m.per_day],
            per_week=[WeekCount(week=p.day, sessions=p.sessions) for p in m.per_week],
            per_month=[MonthCount(month=p.day, sessions=p.sessions) for p in m.per_month],
            landing=[LandingPage(url=p.url, sessions=p.sessions) for p in m.landing_pages],
        )


def _settings_type(rules: Any) -> SessionSettings:
    return SessionSettings(timeout_minutes=rules.timeout_ms // 60_000,
                           start_events=sorted(rules.start_events),
                           end_events=sorted(rules.end_events),
                           conversion_events=sorted(rules.conversion_events))


@strawberry.type
class AboutQueries:
    @strawberry.field(description="How this project's sessions are cut.")
    def session_settings(self, info: strawberry.Info) -> SessionSettings:
        ctx = info.context
        project = ctx.require("read")
        return _settings_type(ctx.session_settings(project))

    @strawberry.field(description="What this project keeps of personal data.")
    def privacy_settings(self, info: strawberry.Info) -> PrivacySettings:
        ctx = info.context
        project = ctx.require("read")
        return PrivacySettings(drop_ip=bool(ctx.session_settings(project).drop_ip))

    @strawberry.field(description="This deployment: version, profile and data credits.")
    def about(self, info: strawberry.Info) -> About:
        ctx = info.context
        ctx.require("read", "write")
        data = ctx.about()
        credit = data.get("geo_attribution")
        return About(version=data.get("version", ""), profile=data.get("profile", ""),
                     geo_source=data.get("geo_source", ""),
                     geo_attribution=Attribution(**credit) if credit else None)


@strawberry.type
class ContractQueries:
    @strawberry.field(description="Rejected records with their reasons, oldest first.")
    async def dead_letters(
        self,
        info: strawberry.Info,
        first: int = 50,
        after: str | None = None,
        status: str | None = "open",
    ) -> DeadLetterConnection:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        after_id = 0
        if after:
            if not after.isdigit():
                raise bad_input("after", "not a cursor returned by this API")
            after_id = int(after)
        table = await ctx.call(ctx.dead_letters.dead_letters, project, status, first + 1, after_id)
        rows = table.to_pylist()
        edges = [
            DeadLetter(
                id=strawberry.ID(str(r["id"])),
                kind=r["kind"],
                index=r["idx"],
                reason=r["reason"],
                payload=r["payload"],
                received_at=iso(r["received_at"]) or "",
                source=r["source"],
                status=r["status"],
            )
            for r in rows[:first]
        ]
        return DeadLetterConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > first, end_cursor=edges[-1].id if edges else None
            ),
        )

    @strawberry.field(description="Every event schema in force for this project.")
    def event_schemas(self, info: strawberry.Info) -> list[EventSchema]:
        ctx = info.context
        project = ctx.require("read")
        return [_schema_type(v) for v in ctx.registry.list(project)]


def _schema_type(v: Any) -> EventSchema:
    return EventSchema(
        event_name=v.event_name,
        version=v.version,
        category=v.category,
        schema=v.schema,
        predefined=getattr(v, "predefined", False),
    )


def _raw(obj: dict[str, Any]) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode({k: v for k, v in obj.items() if v is not None}))


def _result(res: Any) -> TrackResult:
    letters = getattr(res, "letters", None) or [None] * len(res.rejected)
    return TrackResult(accepted=res.accepted, rejected=[
        Rejection(index=i, reason=r,
                  letter_id=None if letter is None else strawberry.ID(str(letter)))
        for (i, r), letter in zip(res.rejected, letters, strict=True)])


@strawberry.type
class IngestMutations:
    @strawberry.mutation(description="Ingest events; same rules and answer as POST /v1/events.")
    async def track(self, info: strawberry.Info, events: list[EventInput]) -> TrackResult:
        ctx = info.context
        project = ctx.require("write")
        # The input's field names are the wire names: one parse path for every way in.
        records = [_raw(dataclasses.asdict(e)) for e in events]
        return _result(await ctx.ingest.events(project, records, "graphql"))

    @strawberry.mutation(description="Set profile traits; same as POST /v1/identify.")
    async def identify(self, info: strawberry.Info, profiles: list[ProfileInput]) -> TrackResult:
        ctx = info.context
        project = ctx.require("write")
        records = [_raw(dataclasses.asdict(p)) for p in profiles]
        return _result(await ctx.ingest.profiles(project, records, "graphql"))

    @strawberry.mutation(
        description="Re-judge open dead letters against the current schemas; "
        "those now valid are ingested (admin key)."
    )
    async def replay_dead_letters(
        self, info: strawberry.Info, ids: list[strawberry.ID] | None = None
    ) -> TrackResult:
        ctx = info.context
        project = ctx.require("admin")
        table = await ctx.call(ctx.dead_letters.dead_letters, project, "open", 100_000, 0)
        try:
            wanted = {int(i) for i in ids} if ids is not None else None
        except ValueError:
            raise bad_input("ids", "dead letter ids are whole numbers, as deadLetters "
                            "lists them") from None
        letters = [
            (r["id"], r["kind"], r["payload"].encode())
            for r in table.to_pylist()
            if wanted is None or r["id"] in wanted
        ]
        return _result(await ctx.ingest.replay(project, letters))

    @strawberry.mutation(
        description="Register a new version of an event's schema (admin key). "
        "It must be backward compatible unless forced."
    )
    def register_event_schema(self, info: strawberry.Info, input: EventSchemaInput) -> EventSchema:
        ctx = info.context
        project = ctx.require("admin")
        try:
            version = ctx.registry.register(
                project, input.event_name, input.schema, category=input.category, force=input.force
            )
        except ValueError as exc:
            field = getattr(exc, "field", "input")
            raise bad_input(
                f"input.{field}" if field else "input", getattr(exc, "reason", str(exc))
            ) from None
        return _schema_type(version)

    @strawberry.mutation(description="Change how sessions are cut (admin key).")
    def update_session_settings(self, info: strawberry.Info, input: SessionSettingsInput
                                ) -> SessionSettings:
        ctx = info.context
        project = ctx.require("admin")
        changes: dict[str, Any] = {}
        if input.timeout_minutes is not None:
            if not 1 <= input.timeout_minutes <= 24 * 60:
                raise bad_input("input.timeoutMinutes", "must be between 1 and 1440")
            changes["session_timeout_minutes"] = input.timeout_minutes
        for field, key in (("start_events", "session_start_events"),
                           ("end_events", "session_end_events"),
                           ("conversion_events", "conversion_events")):
            names = getattr(input, field)
            if names is not None:
                if any(not n.strip() or len(n) > 200 for n in names):
                    raise bad_input(f"input.{field}", "event names must be 1-200 characters")
                changes[key] = sorted(set(names))
        ctx.update_session_settings(project, changes)
        return _settings_type(ctx.session_settings(project))

    @strawberry.mutation(description="What this project keeps of personal data (admin "
                         "key); applies to events processed from now on.")
    def update_privacy_settings(self, info: strawberry.Info, drop_ip: bool) -> PrivacySettings:
        ctx = info.context
        project = ctx.require("admin")
        ctx.update_session_settings(project, {"drop_ip": drop_ip})
        return PrivacySettings(drop_ip=bool(ctx.session_settings(project).drop_ip))

    @strawberry.mutation(
        description="Strict mode rejects events whose name is not registered (admin key)."
    )
    def set_strict_mode(self, info: strawberry.Info, strict: bool) -> bool:
        ctx = info.context
        project = ctx.require("admin")
        ctx.registry.set_strict(project, strict)
        return strict


@strawberry.type
class PrivacySettings:
    drop_ip: bool = strawberry.field(description=(
        "The raw IP address is used to enrich events (place) and sessions, then not "
        "stored. Events already stored keep theirs."))


@strawberry.type
class Query(SessionQueries, EngagementQueries, FunnelQueries, SegmentQueries,
            RetentionQueries, PathQueries, CampaignQueries, ContractQueries, KeyQueries,
            AboutQueries, UserDataQueries, LiveQueries, PeopleQueries, TrendQueries):
    pass


@strawberry.type
class Mutation(IngestMutations, SegmentMutations, CampaignMutations, KeyMutations,
               UserDataMutations):
    pass


@strawberry.type
class Subscription(LiveSubscriptions):
    pass


def _mask(error: GraphQLError) -> bool:
    return not is_public(error)


class StoreAwareMaskErrors(MaskErrors):
    """Unexpected errors are masked, except that a store that cannot be reached is said so:
    ``UNAVAILABLE`` naming the store, so a dashboard can tell "down" from "broken"."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        store = unavailable_store(error.original_error)
        if store is None:
            return super().anonymise_error(error)
        return GraphQLError(f"{store} is unavailable; try again shortly", nodes=error.nodes,
                            source=error.source, positions=error.positions, path=error.path,
                            extensions={"code": "UNAVAILABLE", "store": store})


class _Schema(strawberry.Schema):
    """Errors a client caused or was told about (a ``CODES`` error, a validation error) are
    logged at info, a store being down or a dropped subscriber at warning; only unexpected
    errors are logged at error, with their traceback — what an operator should look at."""

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if not is_public(error):
                StrawberryLogger.error(error, execution_context)
                continue
            code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
            StrawberryLogger.logger.log(logging.WARNING if code == "UNAVAILABLE"
                                        else logging.INFO, "%s: %s", code, error.message)


def build_schema(
    max_depth: int = 12, max_tokens: int = 5_000, max_aliases: int = 30,
    max_cost: int = 250_000, page_limit: int = 10_000,
    observers: Sequence[Callable[[], SchemaExtension]] = (),
) -> strawberry.Schema:
    """The schema with its limits; ``observers`` (the gateway's metrics) come first, so
    they see the whole of each operation, the limits' refusals included."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            *observers,
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
            lambda: AddValidationRules([cost_rule(max_cost, page_limit)]),
            lambda: StoreAwareMaskErrors(should_mask_error=_mask,
                                         error_message="Internal error"),
        ],
    )


schema = build_schema()

__all__ = ["build_schema", "schema", "api_error"]
