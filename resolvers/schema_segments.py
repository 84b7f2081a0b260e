"""GraphQL for segments and breakdowns: who matches, saved segments, metrics by dimension."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import strawberry
from strawberry.scalars import JSON

from resolvers.breakdown import compute_breakdown, dimension_values
from resolvers.errors import bad_input
from resolvers.fetch import Reader, only_users, to_segment, user_level
from resolvers.schema_common import page_size, session_query, window_of
from resolvers.segments import NODE_COLUMNS, encode_user_cursor, page_users
from resolvers.types import (
    BehaviourFilter,
    PageInfo,
    SegmentFilter,
    SequenceFilter,
    TimeWindow,
    TraitFilter,
)

SAVED_KEY = "saved_segments"
MAX_SAVED = 200


@strawberry.type(description="A user with their profile-first place and device, and contact "
                             "fields (visible to this project's read key only).")
class SegmentUser:
    user_id: str
    city: str | None
    state: str | None
    country: str | None
    postal_code: str | None
    lat: float | None
    long: float | None
    device_type: str | None
    os: str | None
    app_version: str | None
    gender: str | None
    age: float | None
    email: str | None
    phone: str | None


@strawberry.type
class SegmentEdge:
    cursor: str
    node: SegmentUser


def _camel(name: str) -> str:
    """A Python field name as GraphQL spells it: ``did_not`` → ``didNot``."""
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _snake(name: str) -> str:
    """A GraphQL field name as Python spells it: ``didNot`` → ``did_not``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


_CAMEL = {c: _camel(c) for c in NODE_COLUMNS}


@strawberry.type
class SegmentConnection:
    total_count: int
    page_info: PageInfo
    page: strawberry.Private[pa.Table]  # NODE_COLUMNS

    @strawberry.field
    def edges(self) -> list[SegmentEdge]:
        return [SegmentEdge(cursor=encode_user_cursor(r["user_id"]), node=SegmentUser(**r))
                for r in self.page.to_pylist()]

    @strawberry.field(description="The page's users as one JSON array of objects with the "
                                  "node's fields (userId, city, …, email, phone): the lean "
                                  "form for big pages and exports — one value instead of a "
                                  "field per user per column.")
    def rows(self) -> JSON:
        return cast(JSON, self.page.rename_columns(
            [_CAMEL[c] for c in self.page.column_names]).to_pylist())


@strawberry.type
class SavedSegment:
    name: str
    filter: JSON


@strawberry.enum
class BreakdownMetric(Enum):
    SESSIONS = "SESSIONS"
    USERS = "USERS"
    CONVERSION_RATE = "CONVERSION_RATE"
    AVG_SESSION_SECONDS = "AVG_SESSION_SECONDS"
    CRASH_RATE = "CRASH_RATE"


@strawberry.enum
class BreakdownDimension(Enum):
    CITY = "CITY"
    STATE = "STATE"
    COUNTRY = "COUNTRY"
    DEVICE_TYPE = "DEVICE_TYPE"
    OS = "OS"
    APP_VERSION = "APP_VERSION"
    GENDER = "GENDER"
    AGE_BAND = "AGE_BAND"


@strawberry.type
class BreakdownValue:
    key: str | None = strawberry.field(description="The dimension's value; null = unknown.")
    value: float
    sessions: int = strawberry.field(description="Sessions behind the value.")


def _saved(ctx: Any, project: str) -> dict[str, Any]:
    settings = ctx.project_settings(project) if ctx.project_settings else {}
    saved: dict[str, Any] = settings.get(SAVED_KEY, {})
    return saved


def _cased(value: Any, camel: bool) -> Any:
    """Keys of a filter's JSON in GraphQL's camelCase (``camel``) or Python's snake_case."""
    if isinstance(value, list):
        return [_cased(v, camel) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        out[_camel(key) if camel else _snake(key)] = _cased(item, camel)
    return out


def filter_input(saved: dict[str, Any]) -> SegmentFilter:
    """A saved filter (its GraphQL input as JSON) back into the input type."""
    data: dict[str, Any] = _cased(saved, camel=False)

    def many(kind: Any, items: Any) -> Any:
        return None if items is None else [kind(**item) for item in items]

    return SegmentFilter(**{
        **data,
        "traits": many(TraitFilter, data.get("traits")),
        "did": many(BehaviourFilter, data.get("did")),
        "did_not": many(BehaviourFilter, data.get("did_not")),
        "did_in_order": many(SequenceFilter, data.get("did_in_order")),
    })


async def resolve_filter(ctx: Any, project: str, flt: SegmentFilter | None,
                         saved: str | None, path: str) -> SegmentFilter | None:
    """The filter given, or the saved segment named ``saved``."""
    if saved is None:
        return flt
    if flt is not None:
        raise bad_input(path, "give either a filter or a saved segment name, not both")
    found = _saved(ctx, project).get(saved)
    if found is None:
        raise bad_input("savedSegment", f"no saved segment named {saved!r}")
    return filter_input(found)


@strawberry.type
class SegmentQueries:
    @strawberry.field(description="Users active in the window who match the filter (or the "
                                  "saved segment), ordered by user id.")
    async def segment(
        self, info: strawberry.Info, filter: SegmentFilter | None = None,
        window: TimeWindow | None = None, first: int = 100, after: str | None = None,
        saved_segment: str | None = None,
    ) -> SegmentConnection:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        flt = await resolve_filter(ctx, project, filter, saved_segment, "filter")
        segment = to_segment(flt, "filter")
        users = await Reader(ctx, project).segment(segment, window_of(ctx, window))
        rows, has_next = page_users(users, first, after)
        end = (encode_user_cursor(rows.column("user_id")[-1].as_py()) if rows.num_rows
               else None)
        return SegmentConnection(total_count=users.num_rows, page=rows, page_info=PageInfo(
            has_next_page=has_next, end_cursor=end))

    @strawberry.field(description="This project's saved segments, by name.")
    def segments(self, info: strawberry.Info) -> list[SavedSegment]:
        ctx = info.context
        project = ctx.require("read")
        return [SavedSegment(name=k, filter=v) for k, v in sorted(_saved(ctx, project).items())]

    @strawberry.field(description="A session metric per value of a dimension, over sessions "
                                  "starting in the window; rates are shares (0-1).")
    async def breakdown(
        self, info: strawberry.Info, metric: BreakdownMetric, by: BreakdownDimension,
        window: TimeWindow | None = None, segment: SegmentFilter | None = None,
    ) -> list[BreakdownValue]:
        ctx = info.context
        project = ctx.require("read")
        w = window_of(ctx, window)
        seg = to_segment(segment)
        sessions = await ctx.call(ctx.sessions.scan_sessions, project, session_query(w, segment))
        reader = Reader(ctx, project)
        users = await reader.segment_users(user_level(seg), w)
        sessions = only_users(sessions, users, "resolved_user")
        profiles = await reader.profiles(
            pc.unique(sessions.column("resolved_user")).to_pylist()
            if by.value in ("GENDER", "AGE_BAND") else [])
        keys = dimension_values(sessions, by.value, profiles)
        rows = compute_breakdown(sessions, metric.value, keys)
        return [BreakdownValue(key=r.key, value=r.value, sessions=r.sessions) for r in rows]


@strawberry.type
class SegmentMutations:
    @strawberry.mutation(description="Save a segment's filter under a name (admin key); "
                                     "saving a name again replaces it.")
    def save_segment(self, info: strawberry.Info, name: str, filter: SegmentFilter
                     ) -> SavedSegment:
        ctx = info.context
        project = ctx.require("admin")
        name = name.strip()
        if not name or len(name) > 200:
            raise bad_input("name", "must be 1-200 characters")
        to_segment(filter, "filter")  # refuse what a query would refuse
        saved = dict(_saved(ctx, project))
        if name not in saved and len(saved) >= MAX_SAVED:
            raise bad_input("name", f"at most {MAX_SAVED} saved segments per project")
        data = plain_filter(dataclasses.asdict(filter))
        saved[name] = data
        ctx.update_project_settings(project, {SAVED_KEY: saved})
        return SavedSegment(name=name, filter=cast(JSON, data))

    @strawberry.mutation(description="Delete a saved segment (admin key); false if absent.")
    def delete_segment(self, info: strawberry.Info, name: str) -> bool:
        ctx = info.context
        project = ctx.require("admin")
        saved = dict(_saved(ctx, project))
        if saved.pop(name, None) is None:
            return False
        ctx.update_project_settings(project, {SAVED_KEY: saved})
        return True


def plain_filter(data: dict[str, Any]) -> dict[str, Any]:
    """The filter without unset fields, as JSON-safe values with GraphQL's field names (so
    it can be passed back as a ``filter`` variable)."""
    def unset_dropped(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unset_dropped(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [unset_dropped(v) for v in value]
        return value

    out: dict[str, Any] = _cased(orjson.loads(orjson.dumps(unset_dropped(data))), camel=True)
    return out
