"""GraphQL for people and the event catalogue: ``user`` (a person page) and
``eventDefinitions`` (Mixpanel's Lexicon, PostHog's event definitions). Read key."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any, cast

import pyarrow as pa
import strawberry
from strawberry.scalars import JSON

from resolvers.fetch import Reader
from resolvers.people import (
    CATALOGUE_COLUMNS,
    DEFAULT_WINDOW,
    PERSON_EVENT_COLUMNS,
    PROPERTY_SAMPLE,
    SAMPLE_COLUMNS,
    EventCount,
    compute_event_definitions,
    compute_person,
    encode_event_cursor,
    name_stats,
    newest_sessions,
    only_user,
    page_events,
    sample_scans,
    sample_starts,
    validate_first,
    validate_user_id,
)
from resolvers.schema_common import page_size, window_of
from resolvers.types import Event, PageInfo, Session, TimeWindow
from resolvers.window import Window, iso
from storage.ports import SessionQuery


@strawberry.type
class UserEventCount:
    event: str
    count: int


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type
class EventConnection:
    total_count: int = strawberry.field(description="Events matching, over every page.")
    edges: list[EventEdge]
    page_info: PageInfo


def _event(row: dict[str, Any]) -> Event:
    return Event.from_row({**row, "resolved_user": row["user_id"]})


@strawberry.type(description="One person over a window: their profile, devices, activity, "
                             "events and sessions. A device's events count for the user it "
                             "is tied to (DESIGN.md \"Identity\"). Place, device and contact "
                             "fields follow the `segment` node rules: the profile's traits "
                             "where identify set them, else the latest event that has one.")
class UserProfile:
    user_id: str
    traits: JSON = strawberry.field(description="The profile's traits ({} without one).")
    city: str | None
    state: str | None
    country: str | None
    postal_code: str | None
    lat: float | None
    long: float | None
    device_type: str | None
    os: str | None
    email: str | None
    phone: str | None
    device_ids: list[str] = strawberry.field(
        description="Devices on the user's events in the window, sorted.")
    first_seen: str | None = strawberry.field(
        description="Their first event in the window, ISO-8601; null without events.")
    last_seen: str | None = strawberry.field(
        description="Their last event in the window, ISO-8601; null without events.")
    event_count: int = strawberry.field(description="Their events in the window.")
    session_count: int = strawberry.field(description="Their sessions starting in the window.")
    ranked: strawberry.Private[list[EventCount]]
    all_events: strawberry.Private[pa.Table]
    all_sessions: strawberry.Private[pa.Table]

    @strawberry.field(description="The event names they did most in the window (then by "
                                  "name).")
    def top_events(self, first: int = 5) -> list[UserEventCount]:
        validate_first(first, "topEvents.first")
        return [UserEventCount(event=e.event, count=e.count) for e in self.ranked[:first]]

    @strawberry.field(description="Their events in the window, newest first; `eventName` "
                                  "keeps one name.")
    def events(self, info: strawberry.Info, first: int = 50, after: str | None = None,
               event_name: str | None = None) -> EventConnection:
        first = page_size(info.context, first, "events.first")
        page = page_events(self.all_events, first, after, event_name, "events.after")
        edges = [EventEdge(cursor=encode_event_cursor(r["time"], r["insert_id"]),
                           node=_event(r)) for r in page.rows.to_pylist()]
        return EventConnection(total_count=page.total, edges=edges, page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None))

    @strawberry.field(description="Their sessions starting in the window, latest first.")
    def sessions(self, info: strawberry.Info, first: int = 20) -> list[Session]:
        first = page_size(info.context, first, "sessions.first")
        return [Session.from_row(r)
                for r in newest_sessions(self.all_sessions, first).to_pylist()]


@strawberry.enum
class PropertyType(Enum):
    STRING = "STRING"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    OBJECT = "OBJECT"
    LIST = "LIST"
    MIXED = "MIXED"


@strawberry.type
class PropertyDefinition:
    key: str
    type: PropertyType = strawberry.field(description="The JSON type seen; MIXED when more "
                                                      "than one (nulls are not counted).")
    count: int = strawberry.field(description="Sampled events carrying a non-null value.")
    examples: list[str] = strawberry.field(
        description="Up to 3 distinct values, newest first, cut at 100 characters; "
                    "non-strings as JSON.")


@strawberry.type
class EventDefinition:
    name: str
    category: str | None = strawberry.field(description="Of the name's latest event.")
    count: int = strawberry.field(description="Events in the window.")
    users: int = strawberry.field(description="Distinct users with the event in the window.")
    last_seen: str = strawberry.field(description="Its latest event, ISO-8601.")
    sampled: int = strawberry.field(
        description=f"Events whose properties were read: the name's {PROPERTY_SAMPLE} most "
                    "recent in the window, or all of them when fewer.")
    properties: list[PropertyDefinition] = strawberry.field(
        description="Custom properties seen on the sampled events, most carried first.")


def _window(ctx: Any, window: TimeWindow | None) -> Window:
    return window_of(ctx, window if window is not None else TimeWindow(last=DEFAULT_WINDOW))


async def _samples(reader: Reader, events: pa.Table, w: Window, first: int) -> pa.Table:
    """The property samples of the names ``eventDefinitions`` lists (``sample_scans``)."""
    stats = name_stats(events, first)
    scans = [reader.events(start, w.end, names, SAMPLE_COLUMNS, ordered=False)
             for start, names in sample_scans(stats, sample_starts(events, stats, w.start),
                                              w.start)]
    tables = await asyncio.gather(*scans)
    if not tables:
        return pa.table({c: pa.array([], pa.int64() if c == "time" else pa.string())
                         for c in SAMPLE_COLUMNS})
    return pa.concat_tables([t.select(list(SAMPLE_COLUMNS)) for t in tables])


@strawberry.type
class PeopleQueries:
    @strawberry.field(description="One person's page over the window (default: the last "
                                  "30 days); null when they have neither a profile nor an "
                                  "event in it.")
    async def user(self, info: strawberry.Info, user_id: str,
                   window: TimeWindow | None = None) -> UserProfile | None:
        ctx = info.context
        project = ctx.require("read")
        user_id = validate_user_id(user_id)
        w = _window(ctx, window)
        reader = Reader(ctx, project)
        events, profiles, sessions = await asyncio.gather(
            reader.events(w.start, w.end, columns=PERSON_EVENT_COLUMNS, ordered=False,
                          user_id=user_id),
            reader.profiles([user_id]),
            ctx.call(ctx.sessions.scan_sessions, project,
                     SessionQuery(w.start, w.end, user_id=user_id)))
        events = only_user(events, user_id)
        sessions = only_user(sessions, user_id, "resolved_user")
        person = compute_person(user_id, events, profiles, sessions)
        if person is None:
            return None
        a = person.attributes
        return UserProfile(
            user_id=person.user_id, traits=cast(JSON, person.traits), city=a["city"],
            state=a["state"], country=a["country"], postal_code=a["postal_code"],
            lat=a["lat"], long=a["long"], device_type=a["device_type"], os=a["os"],
            email=a["email"], phone=a["phone"], device_ids=person.device_ids,
            first_seen=iso(person.first_seen), last_seen=iso(person.last_seen),
            event_count=person.event_count, session_count=person.session_count,
            ranked=person.top_events, all_events=events, all_sessions=sessions)

    @strawberry.field(description="The event catalogue over the window (default: the last "
                                  "30 days): each event name with its volume, users, last "
                                  "time seen and the custom properties its most recent "
                                  "events carry; by count desc, then name.")
    async def event_definitions(self, info: strawberry.Info,
                                window: TimeWindow | None = None,
                                first: int = 100) -> list[EventDefinition]:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        w = _window(ctx, window)
        reader = Reader(ctx, project)
        events = await reader.events(w.start, w.end, columns=CATALOGUE_COLUMNS,
                                     ordered=False)
        samples = await _samples(reader, events, w, first)
        return [EventDefinition(
            name=d.name, category=d.category, count=d.count, users=d.users,
            last_seen=iso(d.last_seen) or "", sampled=d.sampled,
            properties=[PropertyDefinition(key=p.key, type=PropertyType(p.type),
                                           count=p.count, examples=p.examples)
                        for p in d.properties])
            for d in compute_event_definitions(events, samples, first)]
