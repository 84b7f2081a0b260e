"""Paths, the journey graph, converters against the rest, and page flow (issue 5), on every
backend: the embedded networkx graph and the Neo4j graph the PyFlink job writes must give
the same answers, computed here by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.conftest import Project, ev

AL, SEARCH, PV, CART, BUY, CLOSE = ("App Launch", "Search", "Product View", "Add to Cart",
                                    "Purchase", "App Close")


@pytest.fixture
def shop(project: Project) -> Project:
    """Five sessions: ann buys twice the long way, bob abandons his cart, cy buys the short
    way, and an anonymous device bounces."""

    def session(device: str, user: str | None, start: float,
                *steps: tuple[str, str]) -> list[dict[str, Any]]:
        return [ev(name, start + i, device=device, user=user, url=f"shop/{page}")
                for i, (name, page) in enumerate(steps)]

    long_way = ((AL, "home"), (SEARCH, "search"), (PV, "p1"), (CART, "p1"), (BUY, "checkout"))
    project.send([
        *session("d1", "ann", 0, *long_way),
        *session("d2", "bob", 10, (AL, "home"), (SEARCH, "search"), (PV, "p1"), (CART, "p1"),
                 (CLOSE, "p1")),
        *session("d3", "cy", 20, (AL, "home"), (PV, "p2"), (CART, "p2"), (BUY, "checkout")),
        *session("d1", "ann", 100, *long_way),
        *session("d5", None, 200, (AL, "home")),
    ])
    return project


def test_paths_to_a_target(shop: Project) -> None:
    data = shop.query("""{
        full: paths(target: "Purchase", window: {last: "1d"}) {
            path sessions users conversionRate }
        short: paths(target: "Purchase", window: {last: "1d"}, maxLength: 3) {
            path sessions users conversionRate }
        fromSearch: paths(target: "Purchase", start: "Search", window: {last: "1d"}) {
            path sessions users }
        buyers: paths(target: "Purchase", window: {last: "1d"},
                      segment: {did: [{event: "Purchase", atLeast: 2}]}) {
            path sessions users conversionRate }
        pages: paths(target: "shop/checkout", by: URL, window: {last: "1d"}) {
            path sessions } }""")
    assert data["full"] == [
        # bob went the same way but closed the app: 2 of 3 converted
        {"path": [AL, SEARCH, PV, CART, BUY], "sessions": 2, "users": 1,
         "conversionRate": 2 / 3},
        {"path": [AL, PV, CART, BUY], "sessions": 1, "users": 1, "conversionRate": 1.0}]
    # cut to the last three steps both ways meet; PV → cart happened in 4 sessions
    assert data["short"] == [
        {"path": [PV, CART, BUY], "sessions": 3, "users": 2, "conversionRate": 0.75}]
    assert data["fromSearch"] == [{"path": [SEARCH, PV, CART, BUY], "sessions": 2, "users": 1}]
    assert data["buyers"] == [
        {"path": [AL, SEARCH, PV, CART, BUY], "sessions": 2, "users": 1, "conversionRate": 1.0}]
    assert data["pages"] == [
        {"path": ["shop/home", "shop/search", "shop/p1", "shop/checkout"], "sessions": 2},
        {"path": ["shop/home", "shop/p2", "shop/checkout"], "sessions": 1}]


def test_paths_without_a_target_are_sessions_first_steps(shop: Project) -> None:
    rows = shop.query("""{ paths(window: {last: "1d"}, maxLength: 2) {
        path sessions users conversionRate } }""")["paths"]
    assert rows == [
        {"path": [AL, SEARCH], "sessions": 3, "users": 2, "conversionRate": None},
        {"path": [AL], "sessions": 1, "users": 1, "conversionRate": None},
        {"path": [AL, PV], "sessions": 1, "users": 1, "conversionRate": None}]


def test_journey_graph_is_a_sankey_with_drop_off(shop: Project) -> None:
    data = shop.query("""{
        all: journeyGraph(window: {last: "1d"}, maxDepth: 3) {
            sessions nodes { id label depth count } links { source target count } }
        busy: journeyGraph(window: {last: "1d"}, maxDepth: 3, minCount: 2) {
            nodes { id count } links { source target count } }
        strongest: journeyGraph(window: {last: "1d"}, maxDepth: 3, maxLinks: 1) {
            nodes { id } links { source target } } }""")
    assert data["all"] == {
        "sessions": 5,
        "nodes": [
            {"id": "1:App Launch", "label": AL, "depth": 1, "count": 5},
            {"id": "2:Search", "label": SEARCH, "depth": 2, "count": 3},
            {"id": "2:Drop-off", "label": "Drop-off", "depth": 2, "count": 1},
            {"id": "2:Product View", "label": PV, "depth": 2, "count": 1},
            {"id": "3:Product View", "label": PV, "depth": 3, "count": 3},
            {"id": "3:Add to Cart", "label": CART, "depth": 3, "count": 1}],
        "links": [
            {"source": "1:App Launch", "target": "2:Search", "count": 3},
            {"source": "2:Search", "target": "3:Product View", "count": 3},
            {"source": "1:App Launch", "target": "2:Drop-off", "count": 1},
            {"source": "1:App Launch", "target": "2:Product View", "count": 1},
            {"source": "2:Product View", "target": "3:Add to Cart", "count": 1}]}
    assert data["busy"] == {
        "nodes": [{"id": "1:App Launch", "count": 5}, {"id": "2:Search", "count": 3},
                  {"id": "3:Product View", "count": 3}],
        "links": [{"source": "1:App Launch", "target": "2:Search", "count": 3},
                  {"source": "2:Search", "target": "3:Product View", "count": 3}]}
    assert data["strongest"] == {
        "nodes": [{"id": "1:App Launch"}, {"id": "2:Search"}],
        "links": [{"source": "1:App Launch", "target": "2:Search"}]}


def test_compare_converters_with_the_rest(shop: Project) -> None:
    c = shop.query("""{ compareJourneys(target: "Purchase", window: {last: "1d"}, top: 4) {
        converterSessions otherSessions converters { path share sessions }
        others { path share } distinctive { path lift converterShare otherShare } } }""")
    assert c["compareJourneys"] == {
        "converterSessions": 3, "otherSessions": 2,
        "converters": [{"path": [AL, SEARCH, PV, CART], "share": 2 / 3, "sessions": 2},
                       {"path": [AL, PV, CART], "share": 1 / 3, "sessions": 1}],
        "others": [{"path": [AL], "share": 0.5},
                   {"path": [AL, SEARCH, PV, CART, CLOSE], "share": 0.5}],
        "distinctive": [
            {"path": [CART], "lift": 2.0, "converterShare": 1.0, "otherShare": 0.5},
            {"path": [PV], "lift": 2.0, "converterShare": 1.0, "otherShare": 0.5},
            {"path": [PV, CART], "lift": 2.0, "converterShare": 1.0, "otherShare": 0.5},
            {"path": [AL, SEARCH], "lift": (2 / 3) / 0.5, "converterShare": 2 / 3,
             "otherShare": 0.5}]}


def test_page_flow(shop: Project) -> None:
    data = shop.query("""{
        pages: pageFlow(window: {last: "1d"}) { page views sessions entries exits
            dropOffRate interactions next { page count } }
        leaky: pageFlow(window: {last: "1d"}, orderBy: DROP_OFF, first: 1) { page } }""")
    assert data["pages"] == [
        {"page": "shop/home", "views": 5, "sessions": 5, "entries": 5, "exits": 1,
         "dropOffRate": 0.2, "interactions": 0,
         "next": [{"page": "shop/search", "count": 3}, {"page": "shop/p2", "count": 1}]},
        {"page": "shop/checkout", "views": 3, "sessions": 3, "entries": 0, "exits": 3,
         "dropOffRate": 1.0, "interactions": 0, "next": []},
        {"page": "shop/p1", "views": 3, "sessions": 3, "entries": 0, "exits": 1,
         "dropOffRate": 1 / 3, "interactions": 4,  # cart on p1 (x3), close on p1 (bob)
         "next": [{"page": "shop/checkout", "count": 2}]},
        {"page": "shop/search", "views": 3, "sessions": 3, "entries": 0, "exits": 0,
         "dropOffRate": 0.0, "interactions": 0, "next": [{"page": "shop/p1", "count": 3}]},
        {"page": "shop/p2", "views": 1, "sessions": 1, "entries": 0, "exits": 0,
         "dropOffRate": 0.0, "interactions": 1,
         "next": [{"page": "shop/checkout", "count": 1}]}]
    assert data["leaky"] == [{"page": "shop/checkout"}]


def test_bad_path_arguments_name_the_field(shop: Project) -> None:
    body = shop.gateway.gql(shop.keys["read_key"],
                            '{ paths(target: "Purchase", maxLength: 0) { path } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "maxLength" in body["errors"][0]["message"]
    body = shop.gateway.gql(shop.keys["read_key"],
                            '{ journeyGraph(maxDepth: 99) { sessions } }')
    assert "maxDepth" in body["errors"][0]["message"]
