"""The PyFlink job's batches as store writes (``stream.flink.translate``), without Flink.

The per-key logic runs over the fixed event set of the job's integration test (duplicates,
late events that merge and split sessions, ties); its outputs are cut into batches, as
the sink buffers cut them, translated, and applied to a networkx graph — with a replay of
some batches, as after a restore from a checkpoint. The graph and the folded rows must be
what ``Sessionizer.assign`` gives for each key's events.
"""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from graph.networkx_graph import NetworkxJourneyGraph
from graph.ports import GraphChanges, Step
from storage.cassandra_store import STREAM_DEAD_IDS, dead_bucket
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter
from stream.flink.records import DeadSettled, DeviceTie, Output, SessionDeleted
from stream.flink.translate import stream_dead_id, translate
from stream.operators.sessionize import Sessionizer, SessionRow, order_of, session_key
from tests.integration.test_flink_local import HOUR, _simulate, arrivals

PROJECT = "flink-it"


def _expected(outputs: list[Output]) -> tuple[dict[str, list[Step]], dict[str, str]]:
    """Each session's steps and each event's session, as the fold defines them, over the
    events the outputs placed (too-late ones excluded)."""
    placed: dict[str, Event] = {}
    for o in outputs:
        event = getattr(o, "event", None)
        if event is not None and type(o).__name__ == "EnrichedEvent":
            placed[event.insert_id] = event
    by_key: dict[str, list[Event]] = defaultdict(list)
    for e in placed.values():
        by_key[session_key(e)].append(e)
    steps: dict[str, list[Step]] = {}
    assigned: dict[str, str] = {}
    for key, evs in by_key.items():
        _rows, ids = Sessionizer().assign(key, evs)
        assigned.update(ids)
        for e in sorted(evs, key=order_of):
            steps.setdefault(ids[e.insert_id], []).append((e.event_name, e.url))
    return steps, assigned


def _cut(outputs: list[Output], rng: random.Random) -> list[list[Output]]:
    cuts = sorted(rng.sample(range(1, len(outputs)), 25))
    return [outputs[a:b] for a, b in zip([0, *cuts], [*cuts, len(outputs)], strict=True)]


@pytest.mark.parametrize("seed", range(6))
def test_batches_replayed_give_the_fold(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data
    events = arrivals()
    for i in range(len(events) - 1):
        j = min(len(events) - 1, i + rng.randrange(0, 9))
        events[i], events[j] = events[j], events[i]
    outputs, _states = _simulate(events, 6 * HOUR)
    steps, assigned = _expected(outputs)
    batches = _cut(outputs, rng)

    graph = NetworkxJourneyGraph()
    sessions: dict[str, SessionRow] = {}
    placed: dict[str, str] = {}
    replay_from = rng.randrange(len(batches) // 2, len(batches))
    order = [*range(len(batches)), *range(replay_from, len(batches))]  # crash, restore
    for n in order:
        out = translate(batches[n])
        graph.apply(out.graph)
        for _project, sid in out.batch.deleted_sessions:
            sessions.pop(sid, None)
        sessions.update((r.session_id, r) for r, _x in out.batch.sessions)
        placed.update((e.insert_id, sid) for e, sid in zip(out.batch.events.events,
                                                          out.batch.events.session_ids,
                                                          strict=True))
        ids = [e.insert_id for e in out.batch.events.events]
        assert len(set(ids)) == len(ids), "each event once per batch"

    assert placed == assigned
    assert set(sessions) == set(steps)
    assert {sid: r.events for sid, r in sessions.items()} == {
        sid: len(s) for sid, s in steps.items()}
    assert dict(graph.sequences(PROJECT)) == steps
    fresh = NetworkxJourneyGraph()
    fresh.rebuild((PROJECT, sid, n, u) for sid, s in steps.items() for n, u in s)
    assert graph.transitions(PROJECT) == fresh.transitions(PROJECT)


def test_positioned_appends_are_idempotent() -> None:
    graph = NetworkxJourneyGraph()
    ref = ("p", "s1")
    first = GraphChanges(positioned={ref: (0, [("A", None), ("B", "/b")])}, keys={ref: "d:1"})
    more = GraphChanges(positioned={ref: (2, [("C", None)])}, keys={ref: "d:1"})
    rewind = GraphChanges(positioned={ref: (1, [("C", None)])}, keys={ref: "d:1"})
    for changes in (first, more, first, more, more):
        graph.apply(changes)
    assert graph.session_steps("p", "s1") == [("A", None), ("B", "/b"), ("C", None)]
    graph.apply(rewind)
    assert graph.session_steps("p", "s1") == [("A", None), ("C", None)]
    assert [(t.source, t.target, t.count) for t in graph.transitions("p")] == [("A", "C", 1)]


def test_deleted_then_rebuilt_in_one_batch() -> None:
    """A late event deletes a session that a later one re-creates: the batch ends with it."""
    row_events = arrivals()[:3]
    outputs, _ = _simulate(row_events, HOUR)
    upsert = next(o for o in reversed(outputs) if type(o).__name__ == "SessionUpsert")
    sid = upsert.row.session_id  # type: ignore[union-attr]
    deleted = SessionDeleted(PROJECT, sid, upsert.row.session_key,  # type: ignore[union-attr]
                             upsert.row.start_time)  # type: ignore[union-attr]
    out = translate([*outputs, deleted, upsert])
    assert [r.session_id for r, _x in out.batch.sessions] == [sid]
    assert out.batch.deleted_sessions == []
    assert out.stale_sessions == []  # its by-start rows are the ones being written


def test_profiles_ties_and_dead_letters() -> None:
    profile = Profile("p", "u1", 1_000, {"city": "Paris", "age": 3}, device_id="d1")
    letter = DeadLetter("p", "event", 2, "bad", b"{}", 1_767_607_200_000)
    out = translate([DeviceTie("p", "d2", "u2", 5), profile, letter, DeadSettled("p", 7)])
    assert out.batch.ties == [("p", "d2", "u2", 5), ("p", "d1", "u1", 1_000)]
    assert out.batch.traits == [("p", "u1", "city", "Paris", 1_000),
                                ("p", "u1", "age", 3, 1_000)]
    assert out.batch.settled_dead == [("p", 7)]
    assert out.dead_ids == [stream_dead_id(letter)]
    letter_id = out.dead_ids[0]
    assert letter_id >> 20 == letter.received_at
    assert letter_id >= STREAM_DEAD_IDS
    assert stream_dead_id(DeadLetter("p", "event", 3, "bad", b"{}", letter.received_at)) \
        != letter_id
    assert dead_bucket(letter_id) == dead_bucket(letter_id + 1) > dead_bucket(10**9)
    assert dead_bucket(25_000) == 2
