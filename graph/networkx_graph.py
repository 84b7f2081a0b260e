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
from typing import Any

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph.ports import JOURNEY_SCHEMA, GraphChanges, Step, Transition


@dataclass
class _Snapshot:
    """Every session's steps in columns, for reads of many sessions at once."""

    ids: pa.Array  # session ids
    offsets: np.ndarray[Any, np.dtype[np.int64]]  # session i: steps[offsets[i]:offsets[i+1]]
    steps: np.ndarray[Any, np.dtype[np.uint32]]  # interned step ids


@dataclass
class _Project:
    sequences: dict[str, array[int]] = field(default_factory=dict)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    snapshot: _Snapshot | None = None  # dropped by every write to the project

    def columns(self) -> _Snapshot:
        if self.snapshot is None:
            seqs = self.sequences
            lengths = np.fromiter(map(len, seqs.values()), np.int64, len(seqs))
            offsets = np.zeros(len(seqs) + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            steps = np.frombuffer(b"".join(a.tobytes() for a in seqs.values()), np.uint32)
            self.snapshot = _Snapshot(pa.array(list(seqs), pa.string()), offsets, steps)
        return self.snapshot


class NetworkxJourneyGraph:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._projects: dict[str, _Project] = {}
        self._ids: dict[Step, int] = {}
        self._steps: list[Step] = []
        # per interned step, codes of its name and url (-1: none) into these label lists
        self._names, self._urls = _Labels(), _Labels()

    # -- writing ---------------------------------------------------------------------------

    def apply(self, changes: GraphChanges) -> None:
        with self._lock:
            for project, _ in (*changes.removed, *changes.replaced, *changes.appended,
                               *changes.positioned):
                self._project(project).snapshot = None
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

    def forget(self, project: str, session_ids: Sequence[str], keys: Sequence[str]) -> None:
        """Erase sessions; the graph keeps nothing per session key beyond them."""
        self.apply(GraphChanges(removed=[(project, sid) for sid in session_ids]))

    def rebuild(self, rows: Iterable[tuple[str, str, str, str | None]]) -> None:
        """Load from ``(project, session_id, event_name, url)`` rows in step order."""
        with self._lock:
            self._projects.clear()  # snapshots included
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
            self._names.add(step[0])
            self._urls.add(step[1])
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

    def journeys(self, project: str, session_ids: Sequence[str] | pa.Array) -> pa.Table:
        with self._lock:
            snap = self._project(project).columns()
            names, urls = self._names.frozen(), self._urls.frozen()
        wanted = pa.array(session_ids, pa.string()) if not isinstance(
            session_ids, pa.Array) else session_ids
        at = pc.index_in(wanted, value_set=snap.ids)
        held = np.asarray(at.is_valid().to_numpy(zero_copy_only=False), bool)
        found = np.asarray(at.fill_null(0).to_numpy(), np.int64)
        lengths = np.zeros(len(found), np.int64)
        lengths[held] = snap.offsets[found[held] + 1] - snap.offsets[found[held]]
        offsets = np.zeros(len(found) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # the steps of each session, in order: run i starts at snap.offsets[found[i]]
        gather = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(
            snap.offsets[found] - offsets[:-1], lengths)
        flat = snap.steps[gather].astype(np.int64)
        off = pa.array(offsets.astype(np.int32))
        missing = pa.array(~held)
        return pa.Table.from_arrays(
            [wanted,
             pa.ListArray.from_arrays(off, _dictionary(names, flat), mask=missing),
             pa.ListArray.from_arrays(off, _dictionary(urls, flat), mask=missing)],
            names=JOURNEY_SCHEMA.names)


class _Labels:
    """Distinct labels (names or urls) in first-seen order, and each interned step's code."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []
        self.of_step = array("i")

    def add(self, label: str | None) -> None:
        if label is None:
            self.of_step.append(-1)
            return
        code = self.codes.get(label)
        if code is None:
            code = self.codes[label] = len(self.values)
            self.values.append(label)
        self.of_step.append(code)

    def frozen(self) -> tuple[np.ndarray[Any, Any], pa.Array]:
        return np.array(self.of_step, np.int32), pa.array(self.values, pa.string())


def _dictionary(labels: tuple[np.ndarray[Any, Any], pa.Array],
                steps: np.ndarray[Any, Any]) -> pa.DictionaryArray:
    """The labels of interned ``steps``, dictionary-encoded (no label: a null index):
    readers get codes without hashing a million strings again."""
    of_step, values = labels
    picked = of_step[steps]
    return pa.DictionaryArray.from_arrays(pa.array(picked, mask=picked < 0), values)
