"""The journey graph port: sessions as ordered steps, and transitions between event types.

Adapters: ``NetworkxJourneyGraph`` (embedded) and, in the distributed profile, Neo4j. Both
are fed by the stream runner as sessions progress, with ``GraphChanges``: steps appended to
sessions that grew in order, whole sequences for sessions a late event rebuilt, and
sessions that no longer exist. Steps are (event name, url) in event-time order.

``positioned`` appends carry where they start: ``(start, steps)`` makes a session's steps
``old[:start] + steps``, so applying them twice (a stream job replaying from a checkpoint)
gives the same graph. They are applied after ``removed``, ``replaced`` and ``appended``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

Step = tuple[str, str | None]  # (event name, url)
SessionRef = tuple[str, str]  # (project, session id)


@dataclass(slots=True)
class GraphChanges:
    appended: dict[SessionRef, list[Step]] = field(default_factory=dict)
    replaced: dict[SessionRef, list[Step]] = field(default_factory=dict)
    removed: list[SessionRef] = field(default_factory=list)
    keys: dict[SessionRef, str] = field(default_factory=dict)  # session key of each session
    positioned: dict[SessionRef, tuple[int, list[Step]]] = field(default_factory=dict)

    def append(self, ref: SessionRef, key: str, step: Step) -> None:
        if ref in self.replaced:
            self.replaced[ref].append(step)
        else:
            self.appended.setdefault(ref, []).append(step)
        self.keys[ref] = key

    def __bool__(self) -> bool:
        return bool(self.appended or self.replaced or self.removed or self.positioned)


@dataclass(frozen=True, slots=True)
class Transition:
    source: str
    target: str
    count: int  # times the step ``source`` was directly followed by ``target``
    sessions: int  # sessions with at least one such step


class JourneyGraph(Protocol):
    def apply(self, changes: GraphChanges) -> None: ...

    def forget(self, project: str, session_ids: Sequence[str], keys: Sequence[str]) -> None:
        """Erase these sessions (their steps leave the transition counts, as a removal
        does) and whatever the graph holds about the session ``keys`` (``"d:<device>"``…)
        that no other session still needs."""
        ...

    def session_steps(self, project: str, session_id: str) -> list[Step]: ...

    def sequences(self, project: str) -> Iterator[tuple[str, list[Step]]]: ...

    def transitions(self, project: str) -> list[Transition]: ...

    def journeys(self, project: str, session_ids: Sequence[str] | pa.Array) -> pa.Table:
        """The steps of ``session_ids``, one row per id in the order given:
        ``session_id`` (string), ``event_name`` and ``url`` (lists of strings, maybe
        dictionary-encoded, in step order; a url may be null). A session the graph does
        not hold has null lists. Path analysis (``graph.paths``) reads only this."""
        ...


JOURNEY_SCHEMA = pa.schema([("session_id", pa.string()), ("event_name", pa.list_(pa.string())),
                            ("url", pa.list_(pa.string()))])
