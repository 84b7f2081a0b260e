"""What every analytics query does before computing: read columns through the ports, and
narrow them to a segment. Runners stay pure; this is the one place that talks to stores
for them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from resolvers.segments import Behaviour, Segment, Sequence, compute_segment, validate
from resolvers.types import SegmentFilter
from resolvers.window import Window, parse_duration
from storage.ports import EVENT_SCAN_COLUMNS, EventQuery

# Columns compute_segment reads.
SEGMENT_COLUMNS = ("insert_id", "event_name", "time", "user_id", "city", "state",
                   "country", "device_type", "os", "app_version")


def to_segment(flt: SegmentFilter | None, path: str = "segment") -> Segment:
    if flt is None:
        return Segment()

    def ms(text: str | None, field: str) -> int | None:
        return None if text is None else parse_duration(text, field)

    segment = Segment(
        city=flt.city, state=flt.state, country=flt.country, device_type=flt.device_type,
        os=flt.os, app_version=flt.app_version, gender=flt.gender, age_min=flt.age_min,
        age_max=flt.age_max,
        traits=tuple((t.key, t.value) for t in flt.traits or ()),
        did=tuple(Behaviour(b.event, b.at_least, ms(b.within, f"{path}.did[{i}].within"))
                  for i, b in enumerate(flt.did or ())),
        did_not=tuple(Behaviour(b.event, b.at_least, ms(b.within, f"{path}.didNot[{i}].within"))
                      for i, b in enumerate(flt.did_not or ())),
        did_in_order=tuple(Sequence(tuple(s.events), ms(s.within,
                                                        f"{path}.didInOrder[{i}].within"))
                           for i, s in enumerate(flt.did_in_order or ())),
    )
    return validate(segment, path)


def user_level(segment: Segment) -> Segment:
    """The part of a segment that needs users, not sessions (place and device dropped)."""
    return Segment(gender=segment.gender, age_min=segment.age_min, age_max=segment.age_max,
                   traits=segment.traits, did=segment.did, did_not=segment.did_not,
                   did_in_order=segment.did_in_order)


class Reader:
    """One request's reads for one project."""

    def __init__(self, ctx: Any, project: str) -> None:
        self._ctx = ctx
        self.project = project

    async def events(self, start: int, end: int, names: Collection[str] | None = None,
                     columns: tuple[str, ...] = EVENT_SCAN_COLUMNS, ordered: bool = True,
                     user_id: str | None = None) -> pa.Table:
        query = EventQuery(start, end, None if names is None else tuple(sorted(names)),
                           tuple(columns), ordered, user_id)
        table: pa.Table = await self._ctx.call(self._ctx.events.scan_events, self.project, query)
        return table

    async def profiles(self, users: list[str]) -> pa.Table:
        table: pa.Table = await self._ctx.call(self._ctx.profiles.scan_profiles, self.project,
                                               users)
        return table

    async def segment(self, segment: Segment, window: Window) -> pa.Table:
        """The users matching ``segment`` among those active in ``window``."""
        events = await self.events(window.start, window.end, columns=SEGMENT_COLUMNS,
                                   ordered=False)
        users = pc.unique(events.column("user_id")).to_pylist()
        profiles = await self.profiles(users)
        return compute_segment(events, profiles, segment, window.end)

    async def segment_users(self, segment: Segment, window: Window) -> set[str] | None:
        """The ids of ``segment``'s users in ``window``; ``None`` when it is empty (all)."""
        if segment.is_empty():
            return None
        table = await self.segment(segment, window)
        return set(table.column("user_id").to_pylist())


def only_users(table: pa.Table, users: set[str] | None, column: str = "user_id") -> pa.Table:
    """Rows of ``table`` whose ``column`` is one of ``users`` (all rows when ``None``)."""
    if users is None:
        return table
    mask = pc.is_in(table.column(column), value_set=pa.array(sorted(users), pa.string()))
    return table.filter(mask)

