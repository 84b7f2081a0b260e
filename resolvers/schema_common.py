"""Argument handling every query shares: windows, page sizes, session filters."""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from resolvers.errors import bad_input
from resolvers.fetch import Reader, only_users, to_segment, user_level
from resolvers.types import SegmentFilter, SessionFilter, TimeWindow
from resolvers.window import Window, resolve_window
from storage.ports import SessionQuery


def window_of(ctx: Any, window: TimeWindow | None, name: str = "window") -> Window:
    if window is None:
        return resolve_window(None, None, None, ctx.now_ms(), name)
    return resolve_window(window.last, window.from_, window.to, ctx.now_ms(), name)


def page_size(ctx: Any, first: int, name: str = "first") -> int:
    if first < 0:
        raise bad_input(name, "must not be negative")
    if first > ctx.page_size_limit:
        raise bad_input(name, f"at most {ctx.page_size_limit} per page")
    return first


def session_query(
    w: Window, segment: SegmentFilter | None = None, flt: SessionFilter | None = None
) -> SessionQuery:
    """Sessions starting in ``w`` whose own (profile-first) place and device match."""
    fields: dict[str, Any] = {}
    for source in (segment, flt):
        if source is None:
            continue
        for name in ("city", "state", "country", "device_type", "os", "app_version",
                     "user_id", "device_id", "converted"):
            value = getattr(source, name, None)
            if value is not None:
                fields[name] = value
    return SessionQuery(start=w.start, end=w.end, **fields)


async def segment_sessions(ctx: Any, project: str, w: Window, flt: SegmentFilter | None,
                           path: str, columns: tuple[str, ...] | None = None,
                           ordered: bool = True) -> pa.Table:
    """Sessions starting in ``w`` whose own place and device match ``flt``, of users who
    match its user-level part (demographics, traits, behaviour in ``w``); at least
    ``columns`` (all when ``None``), by start time when ``ordered``."""
    query = dataclasses.replace(session_query(w, flt), columns=columns, ordered=ordered)
    table: pa.Table = await ctx.call(ctx.sessions.scan_sessions, project, query)
    users = await Reader(ctx, project).segment_users(user_level(to_segment(flt, path)), w)
    return only_users(table, users, "resolved_user")
