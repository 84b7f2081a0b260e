"""Late events against stored sessions: the re-fold both runners share.

A late event can merge, split or extend sessions already written. The embedded runner
places every late event this way; the PyFlink job places most late events against the
sessions it holds in keyed state and hands this module only the ones older than that state
reaches (``stream.flink.keyed``'s ``TooLate``), so both give ``Sessionizer.fold`` over all
of a key's events.

Two store reads per call, whatever the number of keys: the sessions near the late events,
then the events in the ranges they can change (``Sessionizer.affected_range``). Everything
in those ranges is folded again; the caller writes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stream.contract.event import Event
from stream.operators.sessionize import Sessionizer, SessionRow, order_of, session_key

GroupKey = tuple[str, str]  # (project, session key)
KeyRange = tuple[str, str, int, int]  # (project, session key, lo, hi)
_EVERYTHING = 1 << 62


class StoredSessions(Protocol):
    """What the re-fold reads (``storage.ports.ProcessingStore`` has both)."""

    def sessions_overlapping(self, ranges: list[KeyRange]) -> list[SessionRow]: ...

    def events_in_ranges(self, ranges: list[KeyRange]) -> list[tuple[Event, str]]: ...


@dataclass(slots=True)
class Refolded:
    """One key's re-folded range.

    ``rows``: every session of the range after the late events (new, changed or unchanged);
    ``assigned``: each event's session id by insert id, the late ones included;
    ``previous``: the stored events of the range with the session they were stored under;
    ``stored``: the stored sessions of the range as they were (``gone`` = those no longer
    in ``rows``).
    """

    project: str
    key: str
    late: list[Event]
    rows: list[SessionRow]
    assigned: dict[str, str]
    previous: list[tuple[Event, str]]
    stored: list[SessionRow] = field(default_factory=list)

    @property
    def gone(self) -> list[SessionRow]:
        ids = {r.session_id for r in self.rows}
        return [r for r in self.stored if r.session_id not in ids]

    def moved(self) -> list[tuple[Event, str]]:
        """Stored events now in another session, with the new session id."""
        return [(e, self.assigned[e.insert_id]) for e, sid in self.previous
                if self.assigned[e.insert_id] != sid]

    def steps(self) -> dict[str, list[tuple[str, str | None]]]:
        """Each row's ordered (event name, url) steps."""
        out: dict[str, list[tuple[str, str | None]]] = {r.session_id: [] for r in self.rows}
        for e in sorted([e for e, _ in self.previous] + self.late, key=order_of):
            out[self.assigned[e.insert_id]].append((e.event_name, e.url))
        return out


def refold(store: StoredSessions, late: Sequence[tuple[GroupKey, Sequence[Event]]],
           sessionizer: Callable[[str], Sessionizer],
           horizons: Mapping[GroupKey, int] | None = None) -> list[Refolded]:
    """Re-fold what ``late`` events (per key, any order) change among stored sessions.

    ``horizons`` (optional, per key): only stored sessions starting at or before it take
    part — the later ones are still held by a stream job's state, which stays their owner;
    the late events are then placed as if those sessions were not there. A late event that
    is already stored (a replay) is re-folded once, not twice.
    """
    groups = [(gk, sorted(evs, key=order_of)) for gk, evs in late if evs]
    near: list[KeyRange] = []
    for (project, key), evs in groups:
        if key.startswith("p:"):  # a producer session is never split: all of it is in reach
            near.append((project, key, 0, _EVERYTHING))
        else:
            timeout = sessionizer(project).rules.timeout_ms
            near.append((project, key, evs[0].time - timeout, evs[-1].time + timeout))
    stored: dict[GroupKey, list[SessionRow]] = {}
    for row in store.sessions_overlapping(near):
        gk = (row.project, row.session_key)
        bound = horizons.get(gk) if horizons is not None else None
        if bound is None or row.start_time <= bound:
            stored.setdefault(gk, []).append(row)
    ranges: list[KeyRange] = []
    for gk, evs in groups:
        lo, hi = sessionizer(gk[0]).affected_range(
            evs, [(r.start_time, r.end_time) for r in stored.get(gk, [])])
        ranges.append((gk[0], gk[1], lo, hi))
    found: dict[GroupKey, list[tuple[Event, str]]] = {}
    for event, sid in store.events_in_ranges(ranges):
        found.setdefault((event.project, session_key(event)), []).append((event, sid))
    out = []
    for gk, evs in groups:
        project, key = gk
        mine = stored.get(gk, [])
        ids = {r.session_id for r in mine}
        fresh = {e.insert_id for e in evs}
        # Stored events of sessions left out (held by the job) stay where they are.
        previous = [(e, sid) for e, sid in found.get(gk, [])
                    if (horizons is None or sid in ids) and e.insert_id not in fresh]
        rows, assigned = sessionizer(project).assign(key, [e for e, _ in previous] + evs)
        out.append(Refolded(project, key, evs, rows, assigned, previous, mine))
    return out
