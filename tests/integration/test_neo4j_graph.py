"""Neo4jJourneyGraph against a real Neo4j: the same sequences and transitions as networkx.

A random run of appends, replacements and removals goes into both graphs, batch by batch,
and every read must agree; replaying batches changes nothing; projects never see each other;
the constraints exist. Neo4j comes from the dev stack on free ports with a temporary data
dir and the shared artifact cache; missing prerequisites skip here and fail under CI.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients.devstack import Ports
from graph.neo4j_graph import CONSTRAINTS, Neo4jJourneyGraph
from graph.networkx_graph import NetworkxJourneyGraph
from graph.ports import GraphChanges, Step
from tests.integration.services import free_ports, running

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAMES = ["App Launch", "Search", "Add to Cart", "Purchase", "App Close", "Product View"]


@pytest.fixture(scope="module")
def neo4j_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bolt, http = free_ports(2)
    started = time.monotonic()
    with running(tmp_path_factory.mktemp("neo4j"), Ports(neo4j_bolt=bolt, neo4j_http=http),
                 ("neo4j",)):
        print(f"neo4j up in {time.monotonic() - started:.1f} s")  # noqa: T201 — timing note
        yield f"bolt://127.0.0.1:{bolt}"


@pytest.fixture
def graph(neo4j_uri: str) -> Iterator[Neo4jJourneyGraph]:
    g = Neo4jJourneyGraph(neo4j_uri)
    yield g
    g.close()


@pytest.fixture
def project() -> str:
    """A random project per test instead of clearing the database."""
    return f"p{uuid.uuid4().hex[:10]}"


def _step(rng: random.Random) -> Step:
    return rng.choice(NAMES), rng.choice([None, "/home", "/cart", "/p/1"])


def random_changes(rng: random.Random, projects: list[str], batches: int
                   ) -> list[GraphChanges]:
    """Batches as the runner builds them: mostly appends, some rebuilt and vanished sessions
    (a removed session may come back in the same batch)."""
    alive: dict[tuple[str, str], bool] = {}
    out = []
    for _ in range(batches):
        changes = GraphChanges()
        for _ in range(rng.randint(1, 12)):
            ref = (rng.choice(projects), f"s{rng.randrange(25)}")
            roll = rng.random()
            if roll < 0.1 and alive.get(ref):
                if ref not in changes.removed:
                    changes.removed.append(ref)
                changes.replaced.pop(ref, None)
                changes.appended.pop(ref, None)
                alive[ref] = False
            elif roll < 0.25:
                changes.appended.pop(ref, None)
                changes.replaced[ref] = [_step(rng) for _ in range(rng.randint(0, 6))]
                changes.keys[ref] = f"u{ref[1][1:]}"
                alive[ref] = True
            else:
                for _ in range(rng.randint(1, 4)):
                    changes.append(ref, f"u{ref[1][1:]}", _step(rng))
                alive[ref] = True
        out.append(changes)
    return out


def assert_same(neo: Neo4jJourneyGraph, nx: NetworkxJourneyGraph, project: str) -> None:
    assert dict(neo.sequences(project)) == dict(nx.sequences(project))
    assert neo.transitions(project) == nx.transitions(project)
    for sid, steps in nx.sequences(project):
        assert neo.session_steps(project, sid) == steps
    # the journeys path analysis reads: the same lists in the order asked, null lists for
    # sessions the graph lacks
    ids = ["nowhere", *sorted(sid for sid, _ in nx.sequences(project))]
    rows = neo.journeys(project, ids).to_pylist()
    assert rows == nx.journeys(project, ids).to_pylist()
    assert [r["session_id"] for r in rows] == ids
    steps = dict(nx.sequences(project))
    assert [(r["event_name"], r["url"]) for r in rows] == [(None, None)] + [
        ([n for n, _ in steps[sid]], [u for _, u in steps[sid]]) for sid in ids[1:]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_changes_match_networkx(graph: Neo4jJourneyGraph,
                                       new_projects: Callable[[int], list[str]],
                                       seed: int) -> None:
    rng = random.Random(seed)
    projects = new_projects(2)
    nx = NetworkxJourneyGraph()
    for i, changes in enumerate(random_changes(rng, projects, 60)):
        nx.apply(changes)
        graph.apply(changes, offset=i)
        if i % 15 == 0:
            assert_same(graph, nx, projects[0])
    for p in projects:
        assert_same(graph, nx, p)
    assert graph.transitions(projects[0])  # the run really produced transitions
    assert graph.sessions_count(projects[0]) == nx.sessions_count(projects[0])


@pytest.fixture
def new_projects() -> Callable[[int], list[str]]:
    return lambda n: [f"p{uuid.uuid4().hex[:10]}" for _ in range(n)]


def test_replaying_batches_leaves_the_same_graph(graph: Neo4jJourneyGraph,
                                                 project: str) -> None:
    rng = random.Random(7)
    nx = NetworkxJourneyGraph()
    batches = random_changes(rng, [project], 40)
    for i, changes in enumerate(batches):
        nx.apply(changes)
        graph.apply(changes, offset=i)
        graph.apply(changes, offset=i)  # a crash after the write, before the checkpoint
    assert_same(graph, nx, project)
    before = (dict(graph.sequences(project)), graph.transitions(project))
    for i, changes in enumerate(batches[-5:], start=len(batches) - 5):
        graph.apply(changes, offset=i)
    assert (dict(graph.sequences(project)), graph.transitions(project)) == before


def test_replacements_and_removals_are_idempotent_without_offsets(
        graph: Neo4jJourneyGraph, project: str) -> None:
    changes = GraphChanges(
        replaced={(project, "a"): [("Search", "/"), ("Add to Cart", "/c"), ("Purchase", None)],
                  (project, "b"): [("Search", None), ("Search", None)]},
        keys={(project, "a"): "u1", (project, "b"): "u2"})
    graph.apply(changes)
    graph.apply(changes)
    graph.apply(GraphChanges(removed=[(project, "b")]))
    graph.apply(GraphChanges(removed=[(project, "b")]))
    assert dict(graph.sequences(project)) == {
        "a": [("Search", "/"), ("Add to Cart", "/c"), ("Purchase", None)]}
    assert [(t.source, t.target, t.count, t.sessions) for t in graph.transitions(project)] == [
        ("Add to Cart", "Purchase", 1, 1), ("Search", "Add to Cart", 1, 1)]


def test_projects_are_isolated(graph: Neo4jJourneyGraph,
                               new_projects: Callable[[int], list[str]]) -> None:
    a, b = new_projects(2)
    changes = GraphChanges()
    changes.append((a, "s1"), "u1", ("Search", None))
    changes.append((a, "s1"), "u1", ("Purchase", None))
    changes.append((b, "s1"), "u1", ("App Launch", None))
    graph.apply(changes)
    assert dict(graph.sequences(a)) == {"s1": [("Search", None), ("Purchase", None)]}
    assert dict(graph.sequences(b)) == {"s1": [("App Launch", None)]}
    assert [(t.source, t.target) for t in graph.transitions(a)] == [("Search", "Purchase")]
    assert graph.transitions(b) == []
    graph.apply(GraphChanges(removed=[(b, "s1")]))
    assert dict(graph.sequences(a)) == {"s1": [("Search", None), ("Purchase", None)]}


def test_model_is_linked_for_browser_queries(graph: Neo4jJourneyGraph, project: str) -> None:
    changes = GraphChanges()
    for name in ("App Launch", "Search", "Purchase"):
        changes.append((project, "s1"), "u1", (name, None))
    graph.apply(changes)
    more = GraphChanges()
    more.append((project, "s1"), "u1", ("App Close", None))
    graph.apply(more)
    records, _, _ = graph._driver.execute_query(
        "MATCH (:User {project: $p, id: 'u1'})-[:HAD]->(:Session {project: $p, id: 's1'})"
        "-[:FIRST]->(first:Step) MATCH path = (first)-[:NEXT*0..]->(last:Step) "
        "WHERE NOT (last)-[:NEXT]->() "
        "RETURN [s IN nodes(path) | [(s)-[:IS]->(t:EventType) | t.name][0]] AS names",
        p=project)
    assert [r["names"] for r in records] == [["App Launch", "Search", "Purchase", "App Close"]]


def test_sessions_written_before_journeys_get_them_at_start(neo4j_uri: str,
                                                           graph: Neo4jJourneyGraph,
                                                           project: str) -> None:
    changes = GraphChanges()
    for name, url in (("App Launch", "/"), ("Search", None)):
        changes.append((project, "s1"), "u1", (name, url))
    graph.apply(changes)
    graph._driver.execute_query(  # as an older release left it
        "MATCH (s:Session {project: $p}) REMOVE s.journey", p=project)
    Neo4jJourneyGraph(neo4j_uri).close()
    assert graph.journeys(project, ["s1"]).to_pylist() == [  # backfilled
        {"session_id": "s1", "event_name": ["App Launch", "Search"], "url": ["/", None]}]


def test_constraints_exist_and_creation_is_idempotent(neo4j_uri: str) -> None:
    Neo4jJourneyGraph(neo4j_uri).close()  # second start: IF NOT EXISTS everywhere
    with Neo4jJourneyGraph(neo4j_uri)._driver as driver:
        records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name RETURN name")
        names = {r["name"] for r in records}
        records, _, _ = driver.execute_query("SHOW INDEXES YIELD name RETURN name")
        indexes = {r["name"] for r in records}
    assert set(CONSTRAINTS) <= names
    assert {"cep_step_session", "cep_step_name"} <= indexes


def test_write_rate(graph: Neo4jJourneyGraph, project: str) -> None:
    """Not a timed test: prints steps written per second for the closing note."""
    rng = random.Random(11)
    batches = []
    for b in range(20):
        changes = GraphChanges()
        for s in range(50):
            for _ in range(5):
                changes.append((project, f"s{b % 4}-{s}"), f"u{s}", _step(rng))
        batches.append(changes)
    started = time.monotonic()
    for i, changes in enumerate(batches):
        graph.apply(changes, offset=i)
    elapsed = time.monotonic() - started
    print(f"neo4j: {20 * 250 / elapsed:.0f} steps/s in batches of 250")  # noqa: T201
    assert graph.sessions_count(project) == 200


def test_positioned_appends_match_networkx_and_replay(graph: Neo4jJourneyGraph,
                                                     project: str) -> None:
    """The stream job's appends carry their start: ``old[:start] + steps``. Replaying a
    suffix of batches (a restore from a checkpoint) leaves the same graph, in both."""
    rng = random.Random(5)
    lengths: dict[tuple[str, str], int] = {}
    batches = []
    for _ in range(30):
        changes = GraphChanges()
        for _ in range(rng.randint(1, 6)):
            ref = (project, f"s{rng.randrange(8)}")
            if ref in changes.positioned:
                continue  # one positioned append per session and batch, as translate makes
            start = lengths.get(ref, 0)
            if start and rng.random() < 0.2:
                start = rng.randrange(start)  # a late event rewound the session
            steps = [_step(rng) for _ in range(rng.randint(1, 4))]
            changes.positioned[ref] = (start, steps)
            changes.keys[ref] = f"u{ref[1]}"
            lengths[ref] = start + len(steps)
        batches.append(changes)
    nx = NetworkxJourneyGraph()
    for changes in [*batches, *batches[-7:]]:
        nx.apply(changes)
        graph.apply(changes)
    for changes in batches[-7:]:
        graph.apply(changes)
    assert_same(graph, nx, project)
    assert {sid: len(s) for sid, s in nx.sequences(project)} == {
        sid: n for (_p, sid), n in lengths.items()}
