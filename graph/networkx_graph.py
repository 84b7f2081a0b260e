"""The embedded journey graph: compact step sequences per session plus a networkx DiGraph
of event types whose ``LEADS_TO``-style edges count transitions.

Sequences are arrays of interned step ids (4 bytes a step) so a million events cost a few
megabytes. The graph is rebuilt from the event store at start-up (``rebuild``) and kept
current by the runner through ``apply``; applying the same changes twice on a rebuilt
graph is harmless because appends only come for events not seen before.
"""

from __future__ import annotations

import threading
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pyarrow as pa

from graph.ports import JOURNEY_SCHEMA, GraphChanges, Step, Transition


@dataclass
class _Project:
    sequences: dict[str, array[int]] = field(default_factory=dict)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)


class NetworkxJourneyGraph:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._projects: dict[str, _Project] = {}
        self._ids: dict[Step, int] = {}
        self._steps: list[Step] = []

    # -- writing ---------------------------------------------------------------------------

    def apply(self, changes: GraphChanges) -> None:
        with self._lock:
            for project, sid in changes.removed:
                self._set(project, sid, None)
            for (project, sid), steps in changes.replaced.items():
                self._set(project, sid, array("I", map(self._intern, steps)))
            for (project, sid), steps in changes.appended.items():
                p = self._project(project)
                seq = p.sequences.get(sid)
                added = array("I", map(self._intern, steps))
                if seq is None:
                    p.sequences[sid] = added
                    self._count(p.graph, added, +1)
                    continue
                if seq:  # the edge from the last stored step to the first new one
                    self._count(p.graph, array("I", [seq[-1], added[0]]), +1)
                self._count(p.graph, added, +1)
                seq.extend(added)
            for (project, sid), (start, steps) in changes.positioned.items():
                old = self._project(project).sequences.get(sid, array("I"))
                self._set(project, sid, old[:start] + array("I", map(self._intern, steps)))

    def rebuild(self, rows: Iterable[tuple[str, str, str, str | None]]) -> None:
        """Load from ``(project, session_id, event_name, url)`` rows in step order."""
        with self._lock:
            self._projects.clear()
            for project, sid, name, url in rows:
                p = self._project(project)
                seq = p.sequences.get(sid)
                if seq is None:
                    seq = p.sequences[sid] = array("I")
                seq.append(self._intern((name, url)))
            for p in self._projects.values():
                for seq in p.sequences.values():
                    self._count(p.graph, seq, +1)

    def _set(self, project: str, sid: str, seq: array[int] | None) -> None:
        p = self._project(project)
        old = p.sequences.pop(sid, None)
        if old is not None:
            self._count(p.graph, old, -1)
        if seq is not None:
            p.sequences[sid] = seq
            self._count(p.graph, seq, +1)

    def _count(self, graph: nx.DiGraph, seq: array[int], sign: int) -> None:
        names = [self._steps[i][0] for i in seq]
        for a, b in zip(names, names[1:], strict=False):
            if graph.has_edge(a, b):
                data = graph[a][b]
                data["count"] += sign
                if data["count"] <= 0:
                    graph.remove_edge(a, b)
            elif sign > 0:
                graph.add_edge(a, b, count=sign)

    def _intern(self, step: Step) -> int:
        i = self._ids.get(step)
        if i is None:
            i = self._ids[step] = len(self._steps)
            self._steps.append(step)
        return i

    def _project(self, project: str) -> _Project:
        p = self._projects.get(project)
        if p is None:
            p = self._projects[project] = _Project()
        return p

    # -- reading ---------------------------------------------------------------------------

    def session_steps(self, project: str, session_id: str) -> list[Step]:
        with self._lock:
            seq = self._project(project).sequences.get(session_id, array("I"))
            return [self._steps[i] for i in seq]

    def sequences(self, project: str) -> Iterator[tuple[str, list[Step]]]:
        with self._lock:
            items = list(self._project(project).sequences.items())
            steps = self._steps
        for sid, seq in items:
            yield sid, [steps[i] for i in seq]

    def transitions(self, project: str) -> list[Transition]:
        with self._lock:
            p = self._project(project)
            sessions: Counter[tuple[str, str]] = Counter()
            for seq in p.sequences.values():
                names = [self._steps[i][0] for i in seq]
                sessions.update(set(zip(names, names[1:], strict=False)))
            edges = [Transition(a, b, int(d["count"]), sessions[(a, b)])
                     for a, b, d in p.graph.edges(data=True)]
        return sorted(edges, key=lambda t: (-t.count, t.source, t.target))

    def sessions_count(self, project: str) -> int:
        with self._lock:
            return len(self._project(project).sequences)

    def journeys(self, project: str, session_ids: Sequence[str]) -> pa.Table:
        with self._lock:
            sequences = self._project(project).sequences
            found = [(sid, seq) for sid in session_ids
                     if (seq := sequences.get(sid)) is not None]
            steps = list(self._steps)
        lengths = np.fromiter((len(seq) for _, seq in found), np.int64, len(found))
        offsets = np.zeros(len(found) + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.frombuffer(b"".join(seq.tobytes() for _, seq in found), np.uint32)
        # interned step ids → codes into the distinct names and urls
        names, name_of = np.unique(np.array([n for n, _ in steps] or [""], object),
                                   return_inverse=True)
        name_col = pa.DictionaryArray.from_arrays(
            pa.array(name_of[flat].astype(np.int32)), pa.array(names.tolist(), pa.string()))
        url_col = pa.DictionaryArray.from_arrays(pa.array(flat.astype(np.int32)),
                                                 pa.array([u for _, u in steps], pa.string()))
        off = pa.array(offsets)
        return pa.Table.from_arrays(
            [pa.array([sid for sid, _ in found], pa.string()),
             pa.ListArray.from_arrays(off, name_col.cast(pa.string())),
             pa.ListArray.from_arrays(off, url_col.cast(pa.string()))],
            schema=JOURNEY_SCHEMA)

