"""Path analysis semantics (graph.paths) on declarative journeys, and property tests
against slow, obviously correct references."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph import paths
from graph.paths import (
    DROP_OFF,
    Comparison,
    Journeys,
    Lift,
    Link,
    Node,
    PageRow,
    PathRow,
    Share,
    collapse,
    compute_compare,
    compute_journey_graph,
    compute_page_flow,
    compute_paths,
)


def build(sessions: list[list[str]], users: list[int] | None = None,
          labels: list[str] | None = None) -> Journeys:
    """Sessions as label lists; labels coded in order of appearance unless given (then
    each step takes the first code with its label); one user per session by default."""
    if labels is None:
        labels = list(dict.fromkeys(label for s in sessions for label in s))
    codes = [[labels.index(label) for label in s] for s in sessions]
    return coded(codes, labels, list(range(len(sessions))) if users is None else users)


def coded(sessions: list[list[int]], labels: list[str], users: list[int]) -> Journeys:
    offsets = np.cumsum([0] + [len(s) for s in sessions], dtype=np.int64)
    steps = np.array([c for s in sessions for c in s], dtype=np.int32)
    return Journeys(offsets, steps, labels, np.array(users, dtype=np.int64))


def journeys(*sessions: str, users: list[int] | None = None) -> Journeys:
    """Sessions as space-separated labels ("" is a session with no steps)."""
    return build([s.split() for s in sessions], users)


def sequences(j: Journeys) -> list[list[str]]:
    return [[j.labels[c] for c in j.steps[a:b]] for a, b in zip(j.offsets, j.offsets[1:],
                                                                 strict=False)]


# --- top paths --------------------------------------------------------------------------

SHOP = journeys(
    "Home Search Cart Buy",  # u1
    "Home Cart Buy",  # u2
    "Home Search Cart Buy",  # u1 again
    "Home Search",  # u3, no purchase
    "Search Cart Buy Buy",  # u4
    "",  # u5, no steps: counts nowhere
    "Home Cart Search",  # u6
    "Search Cart Home",  # u7
    users=[1, 2, 1, 3, 4, 5, 6, 7])


def test_paths_to_a_target() -> None:
    # pre-target sequences (begin .. first Buy, excluded; whole session without a Buy):
    # HSC, HC, HSC, HS, SC, HCS, SCH (7 sessions in scope)
    assert compute_paths(SHOP, "Buy", None, 4, 10) == [
        # 4 steps: maybe cut, so (H, S, C) anywhere: sessions 1 and 3
        PathRow(("Home", "Search", "Cart", "Buy"), 2, 1, 1.0),
        # not cut: (H, C) at begin: HC and HCS
        PathRow(("Home", "Cart", "Buy"), 1, 1, 0.5),
        # (S, C) at begin: SC and SCH
        PathRow(("Search", "Cart", "Buy"), 1, 1, 0.5),
    ]
    # 3 steps: every path is max_length long, so its run may be anywhere
    assert compute_paths(SHOP, "Buy", None, 3, 10) == [
        PathRow(("Search", "Cart", "Buy"), 3, 2, 0.75),  # (S, C) in HSC, HSC, SC, SCH
        PathRow(("Home", "Cart", "Buy"), 1, 1, 0.5),  # (H, C) in HC, HCS
    ]
    assert compute_paths(SHOP, "Buy", None, 3, 1) == [
        PathRow(("Search", "Cart", "Buy"), 3, 2, 0.75)]
    assert compute_paths(SHOP, "Buy", None, 1, 10) == [PathRow(("Buy",), 4, 3, 4 / 7)]


def test_paths_from_a_start() -> None:
    # in scope: the 6 sessions with a Search, from their first Search: SCB, SCB, S, SCBB, S, SCH
    assert compute_paths(SHOP, "Buy", "Search", 4, 10) == [
        PathRow(("Search", "Cart", "Buy"), 3, 2, 0.75)]
    # start == target: the begin step converts; the empty run is in every session in scope
    assert compute_paths(SHOP, "Cart", "Cart", 4, 10) == [PathRow(("Cart",), 6, 5, 1.0)]
    assert compute_paths(SHOP, None, "Cart", 2, 10) == [
        PathRow(("Cart", "Buy"), 4, 3, None),  # users 1, 2, 4
        PathRow(("Cart", "Home"), 1, 1, None),
        PathRow(("Cart", "Search"), 1, 1, None),
    ]


def test_paths_without_a_target() -> None:
    # first two steps: HS x3 (u1, u1, u3), HC x2, SC x2
    assert compute_paths(SHOP, None, None, 2, 2) == [
        PathRow(("Home", "Search"), 3, 2, None), PathRow(("Home", "Cart"), 2, 2, None)]
    assert compute_paths(SHOP, None, None, 2, 0) == []


def test_paths_with_unknown_names_and_no_sessions() -> None:
    assert compute_paths(SHOP, "Nowhere", None, 3, 10) == []
    assert compute_paths(SHOP, None, "Nowhere", 3, 10) == []
    assert compute_paths(SHOP, "Buy", "Nowhere", 3, 10) == []
    assert compute_paths(journeys(), "Buy", None, 3, 10) == []
    assert compute_paths(journeys("", ""), None, None, 3, 10) == []


def test_runs_do_not_cross_sessions() -> None:
    # (A, B) is not in "A" followed by the session "B C"
    j = journeys("A B T", "A", "B C")
    assert compute_paths(j, "T", None, 4, 10) == [PathRow(("A", "B", "T"), 1, 1, 1.0)]
    assert compute_paths(j, "T", None, 3, 10) == [PathRow(("A", "B", "T"), 1, 1, 1.0)]


def test_labels_not_codes_identify_steps() -> None:
    # codes 0 and 2 are both "A": one step, one path
    j = coded([[0, 1], [2, 1], [1, 2, 2]], ["A", "B", "A", "unused"], [1, 2, 3])
    assert compute_paths(j, None, None, 2, 10) == [
        PathRow(("A", "B"), 2, 2, None), PathRow(("B", "A"), 1, 1, None)]
    collapsed, runs = collapse(j)
    assert sequences(collapsed) == [["A", "B"], ["A", "B"], ["B", "A"]]
    assert runs.tolist() == [1, 1, 1, 1, 1, 2]


# --- journey graph ----------------------------------------------------------------------


def test_journey_graph_with_drop_off() -> None:
    j = journeys("A B C", "A B", "A C", "B", "")
    graph = compute_journey_graph(j, 3, 1)
    assert graph.nodes == [
        Node("1:A", "A", 1, 3), Node("1:B", "B", 1, 1),
        Node("2:B", "B", 2, 2), Node("2:C", "C", 2, 1), Node("2:Drop-off", DROP_OFF, 2, 1),
        Node("3:Drop-off", DROP_OFF, 3, 2), Node("3:C", "C", 3, 1),
    ]
    assert graph.links == [
        Link("1:A", "2:B", 2), Link("1:A", "2:C", 1), Link("1:B", "2:Drop-off", 1),
        Link("2:B", "3:C", 1), Link("2:B", "3:Drop-off", 1), Link("2:C", "3:Drop-off", 1),
    ]
    rare_links_gone = compute_journey_graph(j, 3, 2)
    assert rare_links_gone.nodes == [Node("1:A", "A", 1, 3), Node("2:B", "B", 2, 2)]
    assert rare_links_gone.links == [Link("1:A", "2:B", 2)]


def test_journey_graph_edges() -> None:
    one_step = journeys("A", "A", "B")
    # the drop-off node counts every session ending at depth 1, though B's link is gone
    graph = compute_journey_graph(one_step, 3, 2)
    assert graph.nodes == [Node("1:A", "A", 1, 2), Node("2:Drop-off", DROP_OFF, 2, 3)]
    assert graph.links == [Link("1:A", "2:Drop-off", 2)]
    # depth 1 only: no links, so no nodes; steps beyond max_depth are cut (no drop-off)
    assert compute_journey_graph(one_step, 1, 0).nodes == []
    cut = compute_journey_graph(journeys("A B C D"), 2, 1)
    assert cut.links == [Link("1:A", "2:B", 1)]
    assert compute_journey_graph(journeys(), 3, 1).links == []


# --- converters against the rest --------------------------------------------------------


def test_compare_converters_with_others() -> None:
    j = journeys("Home Search Cart Buy", "Home Cart Buy", "Buy Home",  # converters
                 "Home Search", "Search Cart", "Home", "")  # others
    third = 1 / 3
    result = compute_compare(j, "Buy", 2, 10)
    assert (result.converter_sessions, result.other_sessions) == (3, 3)
    assert result.converters == [Share((), third, 1), Share(("Home", "Cart"), third, 1),
                                 Share(("Search", "Cart"), third, 1)]
    assert result.others == [Share(("Home",), third, 1), Share(("Home", "Search"), third, 1),
                             Share(("Search", "Cart"), third, 1)]
    # converters' n-grams: H 2, S 1, C 2, HS 1, SC 1, HC 1, HSC 1; others': H 2, S 2, C 1,
    # HS 1, SC 1 (HC and HSC: no other session has them)
    assert result.distinctive == [
        Lift(("Cart",), 2.0, 2 * third, third), Lift(("Home",), 1.0, 2 * third, 2 * third),
        Lift(("Home", "Search"), 1.0, third, third), Lift(("Search", "Cart"), 1.0, third, third),
        Lift(("Search",), 0.5, third, 2 * third),
    ]
    assert [x.path for x in compute_compare(j, "Buy", 2, 10, min_sessions=2).distinctive] == [
        ("Cart",), ("Home",)]
    assert compute_compare(j, "Buy", 1, 1).converters == [Share(("Cart",), 2 * third, 2)]


def test_compare_without_converters() -> None:
    result = compute_compare(journeys("A B", "B", ""), "Nowhere", 3, 10)
    assert result == Comparison([], [Share(("A", "B"), 0.5, 1), Share(("B",), 0.5, 1)], [], 0, 2)


# --- page flow --------------------------------------------------------------------------


def test_collapse_and_page_flow() -> None:
    collapsed, runs = collapse(journeys("/a /a /b /a", "/b /b /b", "/a /c", ""))
    assert collapsed.offsets.tolist() == [0, 3, 4, 6, 6]
    assert sequences(collapsed) == [["/a", "/b", "/a"], ["/b"], ["/a", "/c"], []]
    assert runs.tolist() == [2, 1, 1, 3, 1, 1]
    assert compute_page_flow(collapsed, runs) == [
        PageRow("/a", 3, 2, 2, 1, 1 / 3, 1, [("/b", 1), ("/c", 1)]),
        PageRow("/b", 2, 2, 1, 1, 0.5, 2, [("/a", 1)]),
        PageRow("/c", 1, 1, 0, 1, 1.0, 0, []),
    ]
    assert compute_page_flow(*collapse(journeys())) == []


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_length must be at least 1"):
        compute_paths(SHOP, "Buy", None, 0, 10)
    with pytest.raises(ValueError, match="top must be at least 0"):
        compute_compare(SHOP, "Buy", 3, -1)
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        compute_journey_graph(SHOP, 0, 1)
    with pytest.raises(ValueError, match="one run length per collapsed step"):
        compute_page_flow(SHOP, np.ones(2, dtype=np.int64))
    with pytest.raises(ValueError, match="offsets"):
        compute_paths(Journeys(np.array([0, 1]), np.array([0, 0]), ["A"], np.array([1])),
                      None, None, 1, 1)


# --- property tests against slow, obviously correct references ------------------------

Session = tuple[list[str], int]  # (labels, user)


def contains(seq: list[str], run: tuple[str, ...], at_start: bool) -> bool:
    starts = [0] if at_start else range(len(seq) - len(run) + 1)
    return any(tuple(seq[i:i + len(run)]) == run for i in starts)


def ref_paths(sessions: list[Session], target: str | None, start: str | None,
              max_length: int, top: int) -> list[PathRow]:
    scope: list[tuple[tuple[str, ...] | None, list[str], int]] = []  # path, pre-target, user
    for seq, user in sessions:
        if not seq or (start is not None and start not in seq):
            continue
        rest = seq[seq.index(start):] if start is not None else seq
        if target is None:
            scope.append((tuple(rest[:max_length]), rest, user))
        elif target in rest:
            t = rest.index(target)
            scope.append((tuple(rest[:t + 1][-max_length:]), rest[:t], user))
        else:
            scope.append((None, rest, user))
    found: dict[tuple[str, ...], list[int]] = {}
    for path, _, user in scope:
        if path is not None:
            found.setdefault(path, []).append(user)
    ranked = sorted(found.items(), key=lambda kv: (-len(kv[1]), -len(set(kv[1])), kv[0]))
    rows = []
    for path, users in ranked[:top]:
        rate = None
        if target is not None:
            at_start = len(path) < max_length
            rate = len(users) / sum(contains(pre, path[:-1], at_start) for _, pre, _ in scope)
        rows.append(PathRow(path, len(users), len(set(users)), rate))
    return rows


def ref_graph(sessions: list[Session], max_depth: int,
              min_count: int) -> tuple[list[Node], list[Link]]:
    nodes: Counter[str] = Counter()
    links: Counter[tuple[str, str]] = Counter()
    for seq, _ in sessions:
        ids = [f"{d + 1}:{label}" for d, label in enumerate(seq[:max_depth])]
        nodes.update(ids)
        links.update(zip(ids, ids[1:], strict=False))
        if seq and len(seq) < max_depth:
            drop = f"{len(seq) + 1}:{DROP_OFF}"
            nodes[drop] += 1
            links[ids[-1], drop] += 1
    kept = {pair: n for pair, n in links.items() if n >= min_count}
    linked = {node for pair in kept for node in pair}
    node_rows = [Node(i, i.split(":", 1)[1], int(i.split(":", 1)[0]), nodes[i]) for i in linked]
    link_rows = [Link(a, b, n) for (a, b), n in kept.items()]
    return (sorted(node_rows, key=lambda n: (n.depth, -n.count, n.label)),
            sorted(link_rows, key=lambda x: (-x.count, x.source, x.target)))


def grams(seq: list[str]) -> set[tuple[str, ...]]:
    return {tuple(seq[i:i + n]) for n in (1, 2, 3) for i in range(len(seq) - n + 1)}


def ref_compare(sessions: list[Session], target: str, max_length: int, top: int,
                min_sessions: int) -> Comparison:
    converters = [seq[:seq.index(target)] for seq, _ in sessions if target in seq]
    others = [seq for seq, _ in sessions if seq and target not in seq]

    def shares(group: list[list[str]]) -> list[Share]:
        counts = Counter(tuple(seq[-max_length:]) for seq in group)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return [Share(path, n / len(group), n) for path, n in ranked]

    ahead = Counter(g for seq in converters for g in grams(seq))
    behind = Counter(g for seq in others for g in grams(seq))
    lifts = []
    for gram, n in ahead.items():
        if n >= min_sessions and behind[gram]:
            a, b = n / len(converters), behind[gram] / len(others)
            lifts.append(Lift(gram, a / b, a, b))
    lifts.sort(key=lambda x: (-x.lift, -x.converter_share, x.path))
    return Comparison(shares(converters), shares(others), lifts[:top], len(converters),
                      len(others))


def ref_page_flow(sessions: list[Session]) -> list[PageRow]:
    views: Counter[str] = Counter()
    visited: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    interactions: Counter[str] = Counter()
    following: Counter[tuple[str, str]] = Counter()
    for seq, _ in sessions:
        visits = [(page, len(list(run))) for page, run in groupby(seq)]
        if not visits:
            continue
        pages = [page for page, _ in visits]
        views.update(pages)
        visited.update(set(pages))
        entries[pages[0]] += 1
        exits[pages[-1]] += 1
        for page, events in visits:
            interactions[page] += events - 1
        following.update(zip(pages, pages[1:], strict=False))
    rows = []
    for page in sorted(views, key=lambda p: (-views[p], p)):
        after = sorted(((b, n) for (a, b), n in following.items() if a == page),
                       key=lambda bn: (-bn[1], bn[0]))
        rows.append(PageRow(page, views[page], visited[page], entries[page], exits[page],
                            exits[page] / views[page], interactions[page], after[:5]))
    return rows


@st.composite
def journeys_st(draw: st.DrawFn) -> tuple[Journeys, list[Session]]:
    """Random small journeys: labels may repeat (two codes, one label), unused labels,
    sessions with no steps, users shared and of any int64 value."""
    labels = draw(st.lists(st.sampled_from(["A", "B", "C", "D", DROP_OFF]), min_size=1,
                           max_size=6))
    codes = st.integers(0, len(labels) - 1)
    steps = draw(st.lists(st.lists(codes, max_size=8), max_size=8))
    users = draw(st.lists(st.sampled_from([-(2**62), -1, 0, 7, 2**40]),
                          min_size=len(steps), max_size=len(steps)))
    return coded(steps, labels, users), [([labels[c] for c in s], u)
                                          for s, u in zip(steps, users, strict=True)]


@contextmanager
def key_paths(tight: bool) -> Iterator[None]:
    """``tight``: sort instead of bincount, and renumber keys early, as huge inputs do."""
    if not tight:
        yield
        return
    with patch.object(paths, "_small", lambda size, n: False), \
            patch.object(paths, "_KEY_LIMIT", 16):
        yield


names_st = st.sampled_from(["A", "B", "C", "Z"])
examples = settings(max_examples=200, deadline=None)


@examples
@given(data=journeys_st(), target=st.none() | names_st, start=st.none() | names_st,
       max_length=st.integers(1, 4), top=st.integers(0, 6), tight=st.booleans())
def test_paths_match_reference(data: tuple[Journeys, list[Session]], target: str | None,
                               start: str | None, max_length: int, top: int,
                               tight: bool) -> None:
    j, sessions = data
    with key_paths(tight):
        got = compute_paths(j, target, start, max_length, top)
    assert got == ref_paths(sessions, target, start, max_length, top)
    if target is not None and start == target:
        assert [row.path for row in got] in ([], [(target,)])


@examples
@given(data=journeys_st(), target=names_st, max_length=st.integers(1, 4), tight=st.booleans())
def test_paths_same_start_and_target(data: tuple[Journeys, list[Session]], target: str,
                                     max_length: int, tight: bool) -> None:
    j, sessions = data
    with key_paths(tight):
        got = compute_paths(j, target, target, max_length, 3)
    assert got == ref_paths(sessions, target, target, max_length, 3)
    assert all(row.path == (target,) and row.conversion_rate == 1.0 for row in got)


@examples
@given(data=journeys_st(), max_depth=st.integers(1, 5), min_count=st.integers(0, 3),
       tight=st.booleans())
def test_journey_graph_matches_reference(data: tuple[Journeys, list[Session]], max_depth: int,
                                         min_count: int, tight: bool) -> None:
    j, sessions = data
    with key_paths(tight):
        got = compute_journey_graph(j, max_depth, min_count)
    assert (got.nodes, got.links) == ref_graph(sessions, max_depth, min_count)


@examples
@given(data=journeys_st(), target=names_st, max_length=st.integers(1, 4),
       top=st.integers(0, 8), min_sessions=st.integers(0, 3), tight=st.booleans())
def test_compare_matches_reference(data: tuple[Journeys, list[Session]], target: str,
                                   max_length: int, top: int, min_sessions: int,
                                   tight: bool) -> None:
    j, sessions = data
    with key_paths(tight):
        got = compute_compare(j, target, max_length, top, min_sessions)
    assert got == ref_compare(sessions, target, max_length, top, max(min_sessions, 1))


@examples
@given(data=journeys_st(), tight=st.booleans())
def test_collapse_and_page_flow_match_reference(data: tuple[Journeys, list[Session]],
                                                tight: bool) -> None:
    j, sessions = data
    with key_paths(tight):
        collapsed, runs = collapse(j)
        got = compute_page_flow(collapsed, runs)
    expected = [[(page, len(list(run))) for page, run in groupby(seq)] for seq, _ in sessions]
    assert sequences(collapsed) == [[page for page, _ in visits] for visits in expected]
    assert runs.tolist() == [n for visits in expected for _, n in visits]
    assert collapsed.users.tolist() == [user for _, user in sessions]
    assert got == ref_page_flow(sessions)
