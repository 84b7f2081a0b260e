"""GraphQL for path analysis (DESIGN.md "Paths"): top paths to a target, the journey graph
as a Sankey, converters against everyone else, and how users move between pages.

Every query reads the same way: the sessions starting in the window that match the
segment (the session store, as ``sessions`` reads them), then those sessions' journeys
from the journey graph (networkx embedded, Neo4j distributed), then a pure
``graph.paths`` computation. By ``URL``, a step is a page: consecutive events on one page
are one visit, and events without a url are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import strawberry

from graph.paths import (
    Journeys,
    collapse,
    compute_compare,
    compute_journey_graph,
    compute_page_flow,
    compute_paths,
)
from resolvers.errors import api_error, bad_input
from resolvers.frames import encode
from resolvers.schema_common import segment_sessions, window_of
from resolvers.types import SegmentFilter, TimeWindow

MAX_LENGTH = 50
MAX_TOP = 1000
MAX_DEPTH = 20
MAX_LINKS = 10_000


@strawberry.enum(description="What a path's steps are: event names, or pages (urls).")
class PathBy(Enum):
    EVENT = "EVENT"
    URL = "URL"


@strawberry.type
class PathRow:
    path: list[str]
    sessions: int = strawberry.field(description="Sessions that took this path.")
    users: int = strawberry.field(description="Distinct users among them.")
    conversion_rate: float | None = strawberry.field(description=(
        "With a target: sessions that took this path ÷ sessions that did its steps before "
        "the target (from the start when the path is shorter than maxLength, anywhere "
        "otherwise). Null without a target."))


@strawberry.type
class JourneyNode:
    id: str = strawberry.field(description="\"depth:label\", e.g. \"2:Search\".")
    label: str
    depth: int = strawberry.field(description="Step number in the session, from 1.")
    count: int = strawberry.field(description="Sessions whose step at this depth is this.")


@strawberry.type
class JourneyLink:
    source: str
    target: str
    count: int = strawberry.field(description="Sessions that went from source to target.")


@strawberry.type(description="Sessions' first maxDepth steps as a Sankey-ready DAG; a session "
                             "that ends early links to the next depth's \"Drop-off\" node.")
class JourneyGraph:
    sessions: int
    nodes: list[JourneyNode]
    links: list[JourneyLink]


@strawberry.type
class PathShare:
    path: list[str]
    share: float = strawberry.field(description="Share (0-1) of the group's sessions.")
    sessions: int


@strawberry.type
class PathLift:
    path: list[str] = strawberry.field(description="A run of 1-3 consecutive steps.")
    lift: float = strawberry.field(description="converterShare ÷ otherShare.")
    converter_share: float
    other_share: float


@strawberry.type
class JourneyComparison:
    converter_sessions: int = strawberry.field(description="Sessions that reached target.")
    other_sessions: int
    converters: list[PathShare] = strawberry.field(
        description="Converters' last maxLength steps before the target.")
    others: list[PathShare] = strawberry.field(
        description="Other sessions' last maxLength steps.")
    distinctive: list[PathLift] = strawberry.field(
        description="Step runs done more often on the way to the target than elsewhere.")


@strawberry.type
class NextPage:
    page: str
    count: int


@strawberry.type
class PageFlow:
    page: str
    views: int = strawberry.field(description="Visits: arrivals on the page.")
    sessions: int
    entries: int = strawberry.field(description="Sessions that landed on the page.")
    exits: int = strawberry.field(description="Sessions that ended on the page.")
    drop_off_rate: float = strawberry.field(description="exits ÷ views.")
    interactions: int = strawberry.field(
        description="Events on the page after the one that opened each visit.")
    next: list[NextPage] = strawberry.field(description="Pages visited right after, top 5.")


@strawberry.enum
class PageOrder(Enum):
    VIEWS = "VIEWS"
    DROP_OFF = "DROP_OFF"
    INTERACTIONS = "INTERACTIONS"
    ENTRIES = "ENTRIES"
    EXITS = "EXITS"


_PAGE_ORDER = {PageOrder.VIEWS: "views", PageOrder.DROP_OFF: "drop_off_rate",
               PageOrder.INTERACTIONS: "interactions", PageOrder.ENTRIES: "entries",
               PageOrder.EXITS: "exits"}


def _check(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise bad_input(name, f"must be between {low} and {high}")
    return value


def _named(name: str, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise bad_input(name, "must not be empty (leave it out instead)")
    return value


@dataclass(frozen=True, slots=True)
class SessionJourneys:
    journeys: Journeys
    visits: np.ndarray[Any, Any] | None  # by URL: events per page visit


def session_journeys(graph: Any, project: str, sessions: pa.Table,
                     by: PathBy) -> SessionJourneys:
    """The journeys of ``sessions`` (``session_id``, ``resolved_user``) that ``graph`` holds,
    as event names or as pages."""
    ids = sessions.column("session_id").combine_chunks()
    table: pa.Table = graph.journeys(project, ids)
    users = sessions.column("resolved_user")
    held = pc.is_valid(table.column("event_name"))
    if not pc.all(held).as_py():  # sessions the graph does not hold (yet): no journey
        table, users = table.filter(held), users.filter(held)
    column = table.column("event_name" if by is PathBy.EVENT else "url").combine_chunks()
    lists = column if isinstance(column, pa.ListArray) else pa.array([], column.type)
    offsets = np.asarray(lists.offsets.to_numpy(), np.int64)
    offsets -= offsets[0]
    values = lists.flatten()
    if isinstance(values, pa.DictionaryArray):  # codes as the graph keeps them
        codes = np.asarray(values.indices.fill_null(-1).to_numpy(), np.int64)
        labels = values.dictionary
    else:
        codes, labels = encode(values)
    valid = codes >= 0
    if not valid.all():  # by URL, events without one are no step
        kept = np.concatenate([[0], np.cumsum(valid)])
        offsets = kept[offsets]
        codes = codes[valid]
    user_codes, _ = encode(users)
    journeys = Journeys(offsets=offsets, steps=codes.astype(np.int32),
                        labels=labels.to_pylist(), users=user_codes)
    if by is PathBy.URL:
        journeys, visits = collapse(journeys)
        return SessionJourneys(journeys, visits)
    return SessionJourneys(journeys, None)


async def _journeys(info: strawberry.Info, window: TimeWindow | None,
                    segment: SegmentFilter | None, by: PathBy) -> SessionJourneys:
    """The window's sessions (matching ``segment``) as journeys of event names or pages."""
    ctx = info.context
    project = ctx.require("read")
    if ctx.graph is None:
        raise api_error("UNAVAILABLE", "no journey graph is configured")
    w = window_of(ctx, window)
    sessions = await segment_sessions(ctx, project, w, segment, "segment",
                                      ("session_id", "resolved_user"), ordered=False)
    result: SessionJourneys = await ctx.call(session_journeys, ctx.graph, project, sessions,
                                             by)
    return result


@strawberry.type
class PathQueries:
    @strawberry.field(description="Top paths from session start (or the first `start`) to "
                                  "the first `target`, ranked by sessions; longer than "
                                  "maxLength keeps the last maxLength steps. Without a "
                                  "target: sessions' first maxLength steps.")
    async def paths(self, info: strawberry.Info, target: str | None = None,
                    start: str | None = None, window: TimeWindow | None = None,
                    max_length: int = 10, top: int = 10,
                    segment: SegmentFilter | None = None,
                    by: PathBy = PathBy.EVENT) -> list[PathRow]:
        _named("target", target)
        _named("start", start)
        _check("maxLength", max_length, 1, MAX_LENGTH)
        _check("top", top, 1, MAX_TOP)
        read = await _journeys(info, window, segment, by)
        rows = compute_paths(read.journeys, target, start, max_length, top)
        return [PathRow(path=list(r.path), sessions=r.sessions, users=r.users,
                        conversion_rate=r.conversion_rate) for r in rows]

    @strawberry.field(description="Sessions' first maxDepth steps as nodes (depth:label) and "
                                  "links counted in sessions, with drop-off as a node; links "
                                  "under minCount sessions are left out, and only the "
                                  "maxLinks strongest are kept (then nodes left without a "
                                  "link go too).")
    async def journey_graph(self, info: strawberry.Info, window: TimeWindow | None = None,
                            min_count: int = 1, by: PathBy = PathBy.EVENT,
                            segment: SegmentFilter | None = None,
                            max_depth: int = 5, max_links: int = 500) -> JourneyGraph:
        _check("minCount", min_count, 1, 1 << 31)
        _check("maxDepth", max_depth, 1, MAX_DEPTH)
        _check("maxLinks", max_links, 1, MAX_LINKS)
        read = await _journeys(info, window, segment, by)
        g = compute_journey_graph(read.journeys, max_depth, min_count)
        links = g.links[:max_links]  # strongest first
        linked = {x.source for x in links} | {x.target for x in links}
        return JourneyGraph(
            sessions=int(np.count_nonzero(np.diff(read.journeys.offsets))),
            nodes=[JourneyNode(id=n.id, label=n.label, depth=n.depth, count=n.count)
                   for n in g.nodes if n.id in linked],
            links=[JourneyLink(source=x.source, target=x.target, count=x.count)
                   for x in links])

    @strawberry.field(description="Sessions that reached `target` against the rest: their "
                                  "commonest paths and the step runs that set them apart.")
    async def compare_journeys(self, info: strawberry.Info, target: str,
                               window: TimeWindow | None = None, max_length: int = 5,
                               top: int = 10, segment: SegmentFilter | None = None,
                               by: PathBy = PathBy.EVENT,
                               min_sessions: int = 1) -> JourneyComparison:
        _named("target", target)
        _check("maxLength", max_length, 1, MAX_LENGTH)
        _check("top", top, 1, MAX_TOP)
        _check("minSessions", min_sessions, 1, 1 << 31)
        read = await _journeys(info, window, segment, by)
        c = compute_compare(read.journeys, target, max_length, top, min_sessions)
        return JourneyComparison(
            converter_sessions=c.converter_sessions, other_sessions=c.other_sessions,
            converters=[PathShare(path=list(s.path), share=s.share, sessions=s.sessions)
                        for s in c.converters],
            others=[PathShare(path=list(s.path), share=s.share, sessions=s.sessions)
                    for s in c.others],
            distinctive=[PathLift(path=list(x.path), lift=x.lift,
                                  converter_share=x.converter_share,
                                  other_share=x.other_share) for x in c.distinctive])

    @strawberry.field(description="Per page: visits, landings, exits, drop-off rate, "
                                  "interactions and the pages visited next.")
    async def page_flow(self, info: strawberry.Info, window: TimeWindow | None = None,
                        segment: SegmentFilter | None = None, first: int = 20,
                        order_by: PageOrder = PageOrder.VIEWS) -> list[PageFlow]:
        _check("first", first, 1, MAX_TOP)
        read = await _journeys(info, window, segment, PathBy.URL)
        assert read.visits is not None
        rows = compute_page_flow(read.journeys, read.visits)
        attr = _PAGE_ORDER[order_by]
        rows = sorted(rows, key=lambda r: (-getattr(r, attr), r.page))[:first]
        return [PageFlow(page=r.page, views=r.views, sessions=r.sessions, entries=r.entries,
                         exits=r.exits, drop_off_rate=r.drop_off_rate,
                         interactions=r.interactions,
                         next=[NextPage(page=p, count=n) for p, n in r.next]) for r in rows]
