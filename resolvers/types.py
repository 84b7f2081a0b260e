"""Strawberry types and inputs, kept apart from the runners that compute their values."""

from __future__ import annotations

from typing import Any

import orjson
import strawberry
from strawberry.scalars import JSON

from resolvers.window import iso


@strawberry.input(description="Either `last` (e.g. \"5m\", \"24h\", \"30d\") or `from`/`to` "
                              "(ISO-8601; a bare `to` date includes that whole day).")
class TimeWindow:
    last: str | None = None
    from_: str | None = strawberry.field(name="from", default=None)
    to: str | None = None


@strawberry.input(description="A profile trait that must equal `value` (case-insensitive).")
class TraitFilter:
    key: str
    value: str


@strawberry.input(description="Did (or did not) do `event` at least `atLeast` times in the "
                              "window, or in its last `within` (e.g. \"5m\") when given.")
class BehaviourFilter:
    event: str
    at_least: int = 1
    within: str | None = None


@strawberry.input(description="Did `events` in this order, the last within `within` of the "
                              "first when given.")
class SequenceFilter:
    events: list[str]
    within: str | None = None


@strawberry.input(description="Who to count: users (and their sessions) matching every "
                              "given field. Profile traits win over IP/user-agent inference; "
                              "text compares case-insensitively.")
class SegmentFilter:
    city: str | None = None
    state: str | None = None
    country: str | None = None
    device_type: str | None = None
    os: str | None = None
    app_version: str | None = None
    gender: str | None = None
    age_min: float | None = None
    age_max: float | None = None
    traits: list[TraitFilter] | None = None
    did: list[BehaviourFilter] | None = None
    did_not: list[BehaviourFilter] | None = None
    did_in_order: list[SequenceFilter] | None = None


@strawberry.input(description="A segment, narrowed to one user or device, or to sessions that "
                              "did (or did not) convert.")
class SessionFilter(SegmentFilter):
    user_id: str | None = None
    device_id: str | None = None
    converted: bool | None = None


@strawberry.type
class Event:
    insert_id: str
    event_name: str
    category: str
    time: str = strawberry.field(description="Event time, ISO-8601 UTC.")
    ingest_time: str = strawberry.field(description="When CEP accepted it, ISO-8601 UTC.")
    user_id: str | None = strawberry.field(description="Resolved identity (user, else device).")
    device_id: str | None
    session_id: str | None
    source_id: str | None
    url: str | None
    properties: JSON
    city: str | None
    state: str | None
    country: str | None
    device_type: str | None
    os: str | None
    browser: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Event:
        return cls(
            insert_id=r["insert_id"], event_name=r["event_name"], category=r["category"],
            time=iso(r["time"]) or "", ingest_time=iso(r["ingest_time"]) or "",
            user_id=r.get("resolved_user"), device_id=r["device_id"],
            session_id=r["session_id"], source_id=r["source_id"], url=r["url"],
            properties=orjson.loads(r["properties"] or "{}"), city=r["city"] or None,
            state=r["state"] or None, country=r["country"] or None,
            device_type=r["device_type"] or None, os=r["os"] or None,
            browser=r["browser"] or None,
        )


@strawberry.type
class Session:
    id: strawberry.ID
    user_id: str | None
    device_id: str | None
    start_time: str
    end_time: str
    duration_seconds: float
    event_count: int
    landing_page: str | None
    exit_page: str | None
    first_event: str
    last_event: str
    converted: bool = strawberry.field(description="Contains a conversion event.")
    bounced: bool = strawberry.field(description="Exactly one event.")
    crashed: bool
    closed: bool = strawberry.field(description="Ended by an end event (else by timeout).")
    city: str | None
    state: str | None
    country: str | None
    device_type: str | None
    os: str | None
    app_version: str | None
    start_ms: strawberry.Private[int]

    @strawberry.field(description="The session's events in event-time order.")
    async def events(self, info: strawberry.Info) -> list[Event]:
        ctx = info.context
        table = await ctx.call(ctx.sessions.session_events, ctx.project, str(self.id))
        return [Event.from_row(r) for r in table.to_pylist()]

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Session:
        return cls(
            id=strawberry.ID(r["session_id"]), user_id=r["resolved_user"],
            device_id=r["device_id"], start_time=iso(r["start_time"]) or "",
            end_time=iso(r["end_time"]) or "",
            duration_seconds=(r["end_time"] - r["start_time"]) / 1000.0,
            event_count=r["events"], landing_page=r["landing_url"], exit_page=r["exit_url"],
            first_event=r["first_event"], last_event=r["last_event"],
            converted=r["converted"], bounced=r["events"] == 1, crashed=r["crashed"],
            closed=r["closed"], city=r["r_city"] or None, state=r["r_state"] or None,
            country=r["r_country"] or None, device_type=r["r_device_type"] or None,
            os=r["r_os"] or None, app_version=r["app_version"], start_ms=r["start_time"],
        )


@strawberry.type(description="A credit a data licence requires wherever results are shown.")
class Attribution:
    text: str
    url: str
    licence: str


@strawberry.type
class About:
    version: str
    profile: str
    geo_source: str = strawberry.field(description="Where geo-IP enrichment comes from.")
    geo_attribution: Attribution | None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class LandingPage:
    url: str
    sessions: int


@strawberry.type
class DayCount:
    day: str
    sessions: int


@strawberry.type
class WeekCount:
    week: str = strawberry.field(description="The Monday that starts the week.")
    sessions: int


@strawberry.type
class MonthCount:
    month: str = strawberry.field(description="The first day of the month.")
    sessions: int


@strawberry.type
class Rejection:
    index: int
    reason: str
    letter_id: strawberry.ID | None = strawberry.field(
        default=None, description="replayDeadLetters: the dead letter still rejected")


@strawberry.type
class TrackResult:
    accepted: int
    rejected: list[Rejection]


@strawberry.type
class PipelineStatus:
    pending_events: int = strawberry.field(
        description="Accepted (events, profiles, dead letters) but not yet processed.")
    processed_events: int = strawberry.field(
        description="Events processed by this process since it started.")
    healthy: bool


@strawberry.type
class DeadLetter:
    id: strawberry.ID
    kind: str
    index: int
    reason: str
    payload: str
    received_at: str
    source: str
    status: str


@strawberry.type
class DeadLetterConnection:
    edges: list[DeadLetter]
    page_info: PageInfo


@strawberry.type
class EventSchema:
    event_name: str
    version: int
    category: str
    schema: JSON
    predefined: bool


@strawberry.input
class EventInput:
    event_name: str
    time: float = strawberry.field(description="Unix milliseconds.")
    insert_id: str
    event_category: str | None = None
    distinct_user_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    source_id: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    custom_properties: JSON | None = None


@strawberry.input
class ProfileInput:
    distinct_user_id: str
    traits: JSON
    device_id: str | None = None


@strawberry.type(description="How sessions are cut. Changes apply to events processed "
                             "from then on; stored sessions keep the rules they were cut with.")
class SessionSettings:
    timeout_minutes: int
    start_events: list[str]
    end_events: list[str]
    conversion_events: list[str]


@strawberry.input
class SessionSettingsInput:
    timeout_minutes: int | None = None
    start_events: list[str] | None = None
    end_events: list[str] | None = None
    conversion_events: list[str] | None = None


@strawberry.input
class EventSchemaInput:
    event_name: str
    schema: JSON = strawberry.field(description="A JSON Schema for `custom_properties`.")
    category: str | None = None
    force: bool = False
