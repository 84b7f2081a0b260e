"""The networkx journey graph: sequences, transition counts, replacement and removal."""

from __future__ import annotations

from graph.networkx_graph import NetworkxJourneyGraph
from graph.ports import GraphChanges


def steps(*names: str) -> list[tuple[str, str | None]]:
    return [(n, None) for n in names]


def test_appends_extend_sessions_and_count_transitions() -> None:
    g = NetworkxJourneyGraph()
    c = GraphChanges()
    c.appended[("p", "s1")] = steps("Launch", "Search", "Cart")
    c.appended[("p", "s2")] = steps("Launch", "Search", "Search")
    g.apply(c)
    c = GraphChanges()
    c.appended[("p", "s1")] = steps("Purchase")
    g.apply(c)
    assert [n for n, _ in g.session_steps("p", "s1")] == ["Launch", "Search", "Cart", "Purchase"]
    got = {(t.source, t.target): (t.count, t.sessions) for t in g.transitions("p")}
    assert got == {("Launch", "Search"): (2, 2), ("Search", "Cart"): (1, 1),
                   ("Cart", "Purchase"): (1, 1), ("Search", "Search"): (1, 1)}


def test_replace_and_remove_undo_their_transitions() -> None:
    g = NetworkxJourneyGraph()
    c = GraphChanges()
    c.appended[("p", "s1")] = steps("A", "B")
    c.appended[("p", "s2")] = steps("A", "B", "C")
    g.apply(c)
    c = GraphChanges(replaced={("p", "s1"): steps("A", "C")}, removed=[("p", "s2")])
    g.apply(c)
    assert {(t.source, t.target, t.count) for t in g.transitions("p")} == {("A", "C", 1)}
    assert g.sessions_count("p") == 1


def test_projects_are_isolated() -> None:
    g = NetworkxJourneyGraph()
    g.apply(GraphChanges(appended={("a", "s"): steps("X", "Y")}))
    assert g.transitions("b") == []
    assert g.session_steps("b", "s") == []


def test_journeys_hand_back_the_asked_sessions_as_lists() -> None:
    g = NetworkxJourneyGraph()
    changes = GraphChanges()
    for sid, steps in (("s1", [("App Launch", "/"), ("Search", None), ("App Launch", "/")]),
                       ("s2", [("Purchase", "/done")]), ("s3", [("Search", "/s")])):
        for step in steps:
            changes.append(("p", sid), "u", step)
    changes.append(("q", "s4"), "u", ("Search", "/q"))
    g.apply(changes)
    table = g.journeys("p", ["s2", "gone", "s1", "s4"])
    assert table.to_pylist() == [  # in the order asked; unknown here: null lists
        {"session_id": "s2", "event_name": ["Purchase"], "url": ["/done"]},
        {"session_id": "gone", "event_name": None, "url": None},
        {"session_id": "s1", "event_name": ["App Launch", "Search", "App Launch"],
         "url": ["/", None, "/"]},
        {"session_id": "s4", "event_name": None, "url": None}]
    assert g.journeys("p", []).num_rows == 0
    assert NetworkxJourneyGraph().journeys("p", ["s1"]).to_pylist() == [
        {"session_id": "s1", "event_name": None, "url": None}]
