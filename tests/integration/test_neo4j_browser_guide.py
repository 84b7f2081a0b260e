"""The Neo4j Browser guide (graph/browser/README.md): every query in it, run against a real
Neo4j with the parameters the guide tells readers to set, gives the answers worked out by
hand from known journeys.

The journeys go in through ``Neo4jJourneyGraph.apply`` — appends split over batches, a
positioned rewrite, a replaced and a removed session, as the stream job sends them — for a
random project, beside a second project with the same user and session ids (and one extra
session) that no answer may include. Neo4j comes from the dev stack on free ports with a
temporary data dir and the shared artifact cache; missing prerequisites skip here and fail
under CI.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from neo4j import Driver, GraphDatabase, Record
from neo4j.graph import Node, Relationship
from neo4j.graph import Path as GraphPath

from clients.devstack import Ports
from graph.neo4j_graph import Neo4jJourneyGraph
from graph.ports import GraphChanges, Step
from tests.integration.services import free_ports, running

pytestmark = pytest.mark.slow

GUIDE = Path(__file__).resolve().parents[2] / "graph" / "browser" / "README.md"

L, S, V, C, B, P, X = ("App Launch", "Search", "Product View", "Add to Cart",
                       "Begin Checkout", "Purchase", "App Close")
USER_B, USER_GONE = "u-2002", "u-3003"
# The user the guide's ``:param user`` names; the test checks the guide still names it.
USER_A = "u-1001"

# The final journeys of the main project: user -> session -> event names.
JOURNEYS: dict[str, dict[str, list[str]]] = {
    USER_A: {
        "a1": [L, S, V, C, B, P, X],  # bought
        "a2": [L, V, C, V, X],  # cart abandoned
        "a3": [L, V, C, P, V, C, P],  # bought twice
    },
    USER_B: {
        "b1": [L, S, V, C, B, P],  # bought
        "b2": [V, C],  # ended on the add to cart
        "b3": [L, S, V, C, P, C, X],  # bought, then abandoned a second cart
        "b4": [L, S, V],  # ended on a product view
        "b5": [L, C, S, C, V, X],  # two carts, the last abandoned
    },
}
GONE = [L, V, C, B, P, X]  # USER_GONE's only session, removed by a later batch


def url(name: str) -> str | None:
    return None if name == L else "/" + name.lower().replace(" ", "-")


def steps(names: list[str]) -> list[Step]:
    return [(n, url(n)) for n in names]


# -- the guide -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuideQuery:
    title: str
    sentence: str  # the text between the heading and the query
    cypher: str


def parse_queries(text: str) -> list[GuideQuery]:
    """Every ```cypher block with the ``###`` heading and the prose before it."""
    queries: list[GuideQuery] = []
    title: str | None = None
    prose: list[str] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None:
            if line.strip() == "```":
                assert title, f"a cypher block without a ### heading:\n{block}"
                queries.append(GuideQuery(title, " ".join(prose).strip(), "\n".join(block)))
                title, prose, block = None, [], None
            else:
                block.append(line)
        elif line.startswith("```cypher"):
            block = []
        elif line.startswith("#"):
            title, prose = (line[4:].strip(), []) if line.startswith("### ") else (None, [])
        elif title is not None:
            prose.append(line.strip())
    assert block is None, "an unclosed cypher block"
    return queries


def parse_params(text: str) -> dict[str, str]:
    """``:param name => expression`` lines: name -> the Cypher expression Browser evaluates."""
    return dict(re.findall(r"^:param\s+(\w+)\s*=>\s*(.+?)\s*$", text, re.MULTILINE))


def referenced_params(cypher: str) -> set[str]:
    return set(re.findall(r"\$(\w+)", cypher))


GUIDE_TEXT = GUIDE.read_text()
QUERIES = parse_queries(GUIDE_TEXT)
DOCUMENTED = parse_params(GUIDE_TEXT)


# -- Neo4j and the journeys ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Neo4jUnderTest:
    bolt: str
    http: int


@pytest.fixture(scope="module")
def neo4j(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jUnderTest]:
    bolt, http = free_ports(2)
    with running(tmp_path_factory.mktemp("neo4j"), Ports(neo4j_bolt=bolt, neo4j_http=http),
                 ("neo4j",)):
        yield Neo4jUnderTest(f"bolt://127.0.0.1:{bolt}", http)


@pytest.fixture(scope="module")
def driver(neo4j: Neo4jUnderTest) -> Iterator[Driver]:
    with GraphDatabase.driver(neo4j.bolt, auth=None) as d:
        yield d


@dataclass(frozen=True, slots=True)
class Projects:
    main: str
    other: str  # same user and session ids as main, plus one session with a "Leak" step


@pytest.fixture(scope="module")
def projects(neo4j: Neo4jUnderTest) -> Projects:
    """Both projects' journeys, written batch by batch the way the stream job writes them."""
    main, other = (f"p{uuid.uuid4().hex[:10]}" for _ in range(2))
    graph = Neo4jJourneyGraph(neo4j.bolt)
    try:
        for offset, changes in enumerate(_batches(main) + _batches(other, leak=True)):
            graph.apply(changes, offset=offset)
        # The writes themselves are Neo4jJourneyGraph's to test; this only guards the setup.
        assert {sid: [n for n, _ in s] for sid, s in graph.sequences(main)} == {
            sid: names for sessions in JOURNEYS.values() for sid, names in sessions.items()}
    finally:
        graph.close()
    return Projects(main, other)


def _batches(project: str, leak: bool = False) -> list[GraphChanges]:
    first, second, third = GraphChanges(), GraphChanges(), GraphChanges()
    for user, sessions in JOURNEYS.items():
        for sid, names in sessions.items():
            if sid == "a3":  # first written wrong, then rebuilt by a late event
                for step in steps([L, V, P]):
                    first.append((project, sid), user, step)
                second.replaced[(project, sid)] = steps(names)
                second.keys[(project, sid)] = user
            elif sid == "b2":  # a positioned rewrite: [V, X] becomes [V, C]
                first.positioned[(project, sid)] = (0, steps([V, X]))
                first.keys[(project, sid)] = user
                second.positioned[(project, sid)] = (1, steps([C]))
                second.keys[(project, sid)] = user
            else:  # grew over two batches
                half = len(names) // 2
                for step in steps(names[:half]):
                    first.append((project, sid), user, step)
                for step in steps(names[half:]):
                    second.append((project, sid), user, step)
    for step in steps(GONE):
        first.append((project, "gone"), USER_GONE, step)
    third.removed.append((project, "gone"))
    if leak:
        for step in steps([L, "Leak", P]):
            third.append((project, "leak"), USER_A, step)
    return [first, second, third]


Run = Callable[..., list[Record]]


@pytest.fixture(scope="module")
def documented_values(driver: Driver) -> dict[str, Any]:
    """The ``:param`` values, evaluated as Browser evaluates ``:param name => expression``."""
    values = {}
    for name, expression in DOCUMENTED.items():
        records, _, _ = driver.execute_query(f"RETURN {expression} AS value")
        values[name] = records[0]["value"]
    return values


@pytest.fixture(scope="module")
def run(driver: Driver, projects: Projects, documented_values: dict[str, Any]) -> Run:
    """``run(title, **overrides)``: the guide's query with the guide's parameters, for the
    main project unless overridden. Only documented parameters are sent, so a query using
    another fails in Neo4j too."""
    params = {**documented_values, "project": projects.main}
    by_title = {q.title: q.cypher for q in QUERIES}

    def run_query(title: str, **overrides: Any) -> list[Record]:
        records, _, _ = driver.execute_query(by_title[title], {**params, **overrides})
        return list(records)

    return run_query


# -- what each query must answer for the main project ----------------------------------------


def busiest_users(run: Run) -> None:
    assert [tuple(r.values()) for r in run("Busiest users")] == [(USER_B, 5), (USER_A, 3)]
    assert [r["user"] for r in run("Busiest users", top=1)] == [USER_B]


def journey_graph(run: Run) -> None:
    records = run("A user's journey as a graph")
    journeys = {}
    for record in records:
        path: GraphPath = record["p"]
        user, session, *rest = path.nodes
        assert (set(user.labels), user["id"]) == ({"User"}, USER_A)
        assert set(session.labels) == {"Session"}
        assert all(set(n.labels) == {"Step"} for n in rest)
        assert [r.type for r in path.relationships] == ["HAD", "FIRST"] + ["NEXT"] * (
            len(rest) - 1)
        journeys[session["id"]] = [n["name"] for n in rest]
    assert len(records) == len(journeys)
    assert journeys == JOURNEYS[USER_A]


def journey_table(run: Run) -> None:
    expected = [(sid, i, name, url(name))
                for sid, names in sorted(JOURNEYS[USER_A].items())
                for i, name in enumerate(names)]
    assert len(expected) == 19
    assert [tuple(r.values()) for r in run("A user's journey as a table")] == expected
    assert run("A user's journey as a table", user=USER_GONE) == []


def top_paths(run: Run) -> None:
    assert [tuple(r.values()) for r in run("Top paths to the target event")] == [
        ([L, S, V, C, B, P], 2),  # a1, b1
        ([L, V, C, P], 1),  # a3: only its first purchase counts
        ([L, S, V, C, P], 1),  # b3
    ]
    assert [tuple(r.values()) for r in run("Top paths to the target event", target=B)] == [
        ([L, S, V, C, B], 2)]


def abandoned_carts(run: Run) -> None:
    assert [tuple(r.values()) for r in run("Where carts are abandoned")] == [
        (V, X, 2),  # a2; b5 from its second cart (its first was followed by Search)
        (X, X, 1),  # b3: the cart after its purchase
        ("session ended", C, 1),  # b2
    ]


def transition_map(run: Run) -> None:
    def edges(**overrides: Any) -> list[tuple[str, str, int, int]]:
        out = []
        for record in run("Transition map", **overrides):
            a, r, b = record["a"], record["r"], record["b"]
            assert isinstance(a, Node)  # nodes and relationships: Browser draws a graph
            assert isinstance(b, Node)
            assert isinstance(r, Relationship)
            assert r.type == "LEADS_TO"
            out.append((a["name"], b["name"], r["count"], r["sessions"]))
        return out

    assert edges() == [
        (V, C, 7, 6),  # twice in a3
        (L, S, 4, 4), (S, V, 4, 4),
        (C, P, 3, 2),  # twice in a3
        (C, B, 2, 2), (C, V, 2, 2), (L, V, 2, 2), (B, P, 2, 2), (V, X, 2, 2),
        (C, X, 1, 1), (C, S, 1, 1), (L, C, 1, 1), (P, C, 1, 1), (P, X, 1, 1), (P, V, 1, 1),
        (S, C, 1, 1),
    ]
    assert edges(top=3) == [(V, C, 7, 6), (L, S, 4, 4), (S, V, 4, 4)]


def what_follows(run: Run) -> None:
    assert [tuple(r.values()) for r in run("What follows an event")] == [
        (C, 7, 70.0), (X, 2, 20.0), ("session ended", 1, 10.0)]  # b4 ends on it
    # Purchases: a1 then App Close, a3 then Product View and last, b1 last, b3 then a cart.
    assert [tuple(r.values()) for r in run("What follows an event", event=P)] == [
        ("session ended", 2, 40.0), (C, 1, 20.0), (X, 1, 20.0), (V, 1, 20.0)]


CHECKS: dict[str, Callable[[Run], None]] = {
    "Busiest users": busiest_users,
    "A user's journey as a graph": journey_graph,
    "A user's journey as a table": journey_table,
    "Top paths to the target event": top_paths,
    "Where carts are abandoned": abandoned_carts,
    "Transition map": transition_map,
    "What follows an event": what_follows,
}


# -- tests ------------------------------------------------------------------------------------


def test_guide_has_titled_explained_parameterized_queries() -> None:
    assert len(QUERIES) >= 6, f"only {len(QUERIES)} cypher blocks in {GUIDE}"
    titles = [q.title for q in QUERIES]
    assert len(set(titles)) == len(titles), titles
    for q in QUERIES:
        assert q.sentence, f"{q.title!r} needs a sentence on what it shows"
        undocumented = referenced_params(q.cypher) - DOCUMENTED.keys()
        assert not undocumented, f"{q.title!r} uses parameters no :param line sets: " \
                                 f"{sorted(undocumented)}"
        assert "$project" in q.cypher, f"{q.title!r} is not scoped to a project"
    unused = DOCUMENTED.keys() - set().union(*(referenced_params(q.cypher) for q in QUERIES))
    assert not unused, f"documented parameters no query uses: {sorted(unused)}"


def test_every_query_has_hand_computed_answers() -> None:
    assert set(CHECKS) == {q.title for q in QUERIES}


def test_documented_values_are_the_ones_the_answers_assume(
        documented_values: dict[str, Any]) -> None:
    assert {k: v for k, v in documented_values.items() if k != "project"} == {
        "user": USER_A, "target": P, "cart": C, "event": V, "top": 25}
    assert isinstance(documented_values["top"], int)  # LIMIT refuses a float


@pytest.mark.parametrize("title", [q.title for q in QUERIES])
def test_query_answers(run: Run, title: str) -> None:
    CHECKS[title](run)


@pytest.mark.parametrize("title", [q.title for q in QUERIES])
def test_query_sees_only_its_project(run: Run, projects: Projects, title: str) -> None:
    for project in (projects.main, projects.other):
        records = run(title, project=project)
        assert records, f"{title!r} found nothing in {project}"
        for record in records:
            for value in record.values():
                _assert_in_project(value, project, leak_allowed=project == projects.other)
    if title == "Transition map":  # the other project's own data is really there
        assert "Leak" in {r["a"]["name"] for r in run(title, project=projects.other)}


def _assert_in_project(value: Any, project: str, leak_allowed: bool) -> None:
    if isinstance(value, GraphPath):
        for node in value.nodes:
            _assert_in_project(node, project, leak_allowed)
    elif isinstance(value, Node):
        assert value["project"] == project, value
    elif isinstance(value, Relationship):  # only LEADS_TO carries its project
        assert value.get("project", project) == project, value
    elif isinstance(value, list):
        for item in value:
            _assert_in_project(item, project, leak_allowed)
    elif isinstance(value, str):
        assert leak_allowed or value != "Leak"


def test_browser_is_where_the_guide_says(neo4j: Neo4jUnderTest) -> None:
    default = Ports()
    assert f"http://127.0.0.1:{default.neo4j_http}/browser/" in GUIDE_TEXT
    assert f"bolt://127.0.0.1:{default.neo4j_bolt}" in GUIDE_TEXT
    response = httpx.get(f"http://127.0.0.1:{neo4j.http}/browser/", timeout=30)
    assert response.status_code == 200
    assert "Neo4j" in response.text
