"""Path analysis over sessions' step sequences: top paths, a journey Sankey, converters
against the rest, and page flow. Pure and vectorised (numpy, no loop over steps).

Input is ``Journeys``: n sessions' steps flattened (CSR). Steps are compared by *label*
(two codes with the same label are the same step) and paths are ordered by their labels
as tuples of strings. Sessions with no steps count nowhere (not in a scope, a group, a
denominator or a count).

``compute_paths``: a session's *begin* is its first step or, with ``start``, its first
``start`` (sessions without one are out of scope). With ``target``, a session in scope
*converts* when ``target`` is at or after begin (begin itself when ``start == target``);
its path is begin .. its first such target inclusive, the last ``max_length`` steps of it
(the target stays last). Only converters have paths. ``conversion_rate`` = sessions with
the path / sessions in scope whose *pre-target sequence* (begin up to, excluding, the first
target; all of it from begin for non-converters) holds ``path[:-1]`` as a contiguous run,
starting at begin when the path is shorter than ``max_length`` (not cut), anywhere when it
is ``max_length`` long (maybe cut). The empty run ``path == (target,)`` is in every session
in scope. Every session with the path is in its denominator, so the rate is in (0, 1].
Without ``target`` every session in scope has a path: its first ``max_length`` steps from
begin, and ``conversion_rate`` is None. Rows rank by sessions desc, distinct users desc,
path asc; the first ``top`` are returned. A target or start in no step means no converters
or nothing in scope.

``compute_journey_graph``: a Sankey DAG by position. Node ``f"{depth}:{label}"`` (depth
1-based, at most ``max_depth``; later steps are cut) counts sessions whose step at that
depth has that label; a link ``(d, a) -> (d + 1, b)`` counts sessions stepping from one to
the other. A session whose last step is at depth ``d < max_depth`` links its depth-``d``
node to ``f"{d + 1}:Drop-off"``, which counts the sessions ending at ``d`` (a real step
labelled ``DROP_OFF`` is the same node: ids are unique). Links counting fewer than
``min_count`` sessions are dropped, then nodes left without links (so ``max_depth == 1``
gives an empty graph). Nodes are ordered by (depth, -count, label); a node's count does
not shrink when some of its links are dropped. Links by (-count, source id, target id).

``compute_compare``: *converters* are the sessions with ``target``; their sequence is the
steps before their first target (maybe none: path ``()``). *Others* are the rest; their
sequence is the whole session. ``converters``/``others``: each group's paths (last
``max_length`` steps of the sequence) by share (sessions / group size) desc, path asc.
``distinctive``: contiguous 1- to 3-grams of the whole (uncut) sequences; a group's share
of an n-gram = sessions holding it at least once / group size. Kept when at least
``min_sessions`` (and at least one) converters hold it and some other does; ``lift =
converter_share / other_share``; ranked by lift desc, converter share desc, path asc.

``collapse`` and ``compute_page_flow``: see their docstrings. Every ``top`` lists at most
that many rows. Bad sizes (``max_length`` or ``max_depth`` below 1, a negative ``top``)
raise ``ValueError``: runners validate user input before calling these.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Arr = NDArray[Any]

DROP_OFF = "Drop-off"
NEXT_PAGES = 5
_KEY_LIMIT = 1 << 62  # combined integer keys stay below this (int64, with room to add)
_DENSE = 1 << 22  # key spaces up to this size (or 8x the keys) use bincount instead of sort


@dataclass(frozen=True, slots=True, eq=False)  # arrays: no value equality or hashing
class Journeys:
    """n sessions' step sequences, flattened (CSR layout)."""

    offsets: Arr  # int64, length n+1, offsets[0] == 0; session i = steps[offsets[i]:offsets[i+1]]
    steps: Arr  # int32 codes into labels
    labels: list[str]  # code -> label (an event name, or a page url)
    users: Arr  # int64, length n: a code for each session's user (to count distinct users)


@dataclass(frozen=True, slots=True)
class PathRow:
    path: tuple[str, ...]
    sessions: int
    users: int
    conversion_rate: float | None


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    depth: int
    count: int


@dataclass(frozen=True, slots=True)
class Link:
    source: str
    target: str
    count: int


@dataclass(frozen=True, slots=True)
class JourneyGraphResult:
    nodes: list[Node]
    links: list[Link]


@dataclass(frozen=True, slots=True)
class Share:
    path: tuple[str, ...]
    share: float
    sessions: int


@dataclass(frozen=True, slots=True)
class Lift:
    path: tuple[str, ...]
    lift: float
    converter_share: float
    other_share: float


@dataclass(frozen=True, slots=True)
class Comparison:
    converters: list[Share]
    others: list[Share]
    distinctive: list[Lift]
    converter_sessions: int
    other_sessions: int


@dataclass(frozen=True, slots=True)
class PageRow:
    page: str
    views: int
    sessions: int
    entries: int
    exits: int
    drop_off_rate: float
    interactions: int
    next: list[tuple[str, int]]
# --- integer keys ---------------------------------------------------------------------


def _run_starts(ordered: Arr) -> IntArray:
    """Where each run of equal values starts in a sorted array."""
    change = np.ones(len(ordered), dtype=bool)
    change[1:] = ordered[1:] != ordered[:-1]
    return np.flatnonzero(change)


def _small(size: int, n_keys: int) -> bool:
    return size <= max(_DENSE, 8 * n_keys)


def _distinct(keys: IntArray, size: int) -> IntArray:
    """The distinct keys (each in ``[0, size)``), ascending."""
    if _small(size, len(keys)):
        seen = np.zeros(size, dtype=bool)
        seen[keys] = True
        return np.flatnonzero(seen)
    ordered = np.sort(keys)  # not np.unique: it hashes first, ~20x slower on 1M int64
    return ordered[_run_starts(ordered)]


def _counts(keys: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """The distinct keys (each in ``[0, size)``), ascending, and how often each occurs."""
    if _small(size, len(keys)):
        counts = np.bincount(keys, minlength=size)
        values = np.flatnonzero(counts)
        return values, counts[values]
    ordered = np.sort(keys)
    starts = _run_starts(ordered)
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def _index(values: IntArray, keys: IntArray, size: int) -> IntArray:
    """Where each key is in ``values`` (ascending, in ``[0, size)``, holding every key)."""
    if not _small(size, len(keys)):
        return np.searchsorted(values, keys)
    table = np.zeros(size, dtype=np.int64)
    table[values] = np.arange(len(values))
    return table[keys]


def _renumber(keys: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """Dense ids of the keys (each in ``[0, size)``), in key order, and the key of each."""
    if _small(size, len(keys)):
        distinct = _distinct(keys, size)
        return _index(distinct, keys, size), distinct
    return _ranks(keys)


def _ranks(keys: IntArray) -> tuple[IntArray, IntArray]:
    """``_renumber`` for keys of any value."""
    order = np.argsort(keys)  # an inverse permutation beats searchsorted on many keys
    ordered = keys[order]
    starts = _run_starts(ordered)
    change = np.zeros(len(keys), dtype=np.int64)
    change[starts[1:]] = 1
    ids = np.empty(len(keys), dtype=np.int64)
    ids[order] = np.cumsum(change)
    return ids, ordered[starts]


@dataclass(frozen=True, slots=True)
class _Keys:
    """Integer keys ordered as pairs ``(high, low)``: ``high' * low_size + low`` where
    ``high'`` is ``high``, or its rank among ``highs`` when the product would not fit."""

    keys: IntArray
    size: int
    low_size: int
    highs: IntArray | None

    def split(self, keys: IntArray) -> tuple[IntArray, IntArray]:
        """``(high, low)`` of some of the keys."""
        high = keys // self.low_size
        return (high if self.highs is None else self.highs[high]), keys % self.low_size


def _pair(high: IntArray, high_size: int, low: IntArray, low_size: int) -> _Keys:
    highs = None
    if high_size * low_size > _KEY_LIMIT:
        high, highs = _renumber(high, high_size)
        high_size = len(highs)
    return _Keys(high * low_size + low, high_size * low_size, low_size, highs)


def _distinct_pairs(high: IntArray, high_size: int, low: IntArray,
                    low_size: int) -> tuple[IntArray, IntArray]:
    """The distinct ``(high, low)`` pairs, ordered by ``(high, low)``, as two arrays."""
    paired = _pair(high, high_size, low, low_size)
    return paired.split(_distinct(paired.keys, paired.size))


def _row_ids(rows: IntArray, base: int) -> tuple[IntArray, int]:
    """Dense ids of a matrix's rows (values in ``[0, base)``), numbered in the rows'
    lexicographic order, and how many distinct rows there are."""
    keys, size = np.zeros(len(rows), dtype=np.int64), 1
    for column in rows.T:
        paired = _pair(keys, size, column, base)
        keys, size = paired.keys, paired.size
    ids, distinct = _renumber(keys, size)
    return ids, len(distinct)


def _spans(lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
    """Every position in ``[lo[i], hi[i])`` (none when ``hi <= lo``), and its ``i``."""
    length = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), length)
    shift = np.repeat(lo - (np.cumsum(length) - length), length)
    return np.arange(len(owner)) + shift, owner


# --- coded journeys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Coded:
    """Journeys with every step's code replaced by its label's rank among ``names`` (the
    distinct labels in use, plus any extra, ascending): equal labels are one code, and
    codes compare as their labels do."""

    codes: IntArray  # per step
    names: list[str]
    offsets: IntArray
    start: IntArray  # per session: its first position, -1 when it has no steps
    session: IntArray  # per step: its session

    @property
    def end(self) -> IntArray:
        return self.offsets[1:]

    def code(self, label: str) -> int:
        """The code of ``label``, -1 when no step (nor extra) has it."""
        at = bisect_left(self.names, label)
        return at if at < len(self.names) and self.names[at] == label else -1

    def path(self, row: IntArray) -> tuple[str, ...]:
        """The labels of a ``_window_rows`` row."""
        return tuple(self.names[k - 1] for k in row.tolist() if k)


def _coded(j: Journeys, extra: tuple[str, ...] = ()) -> _Coded:
    offsets = np.asarray(j.offsets, dtype=np.int64)
    steps = np.asarray(j.steps, dtype=np.int64)
    if len(offsets) != len(j.users) + 1 or offsets[0] != 0 or offsets[-1] != len(steps):
        raise ValueError("offsets must run from 0 to len(steps), one more than users")
    used = np.flatnonzero(np.bincount(steps, minlength=len(j.labels))).tolist()
    names = sorted({j.labels[i] for i in used} | set(extra))
    rank = {name: r for r, name in enumerate(names)}
    remap = np.full(len(j.labels), -1, dtype=np.int64)
    remap[used] = [rank[j.labels[i]] for i in used]
    length = np.diff(offsets)
    start = np.where(length > 0, offsets[:-1], -1)
    session = np.repeat(np.arange(len(length)), length)
    return _Coded(remap[steps], names, offsets, start, session)


def _first(c: _Coded, code: int, lo: IntArray) -> IntArray:
    """Per session: its first position ``>= lo[s]`` holding ``code``; -1 when there is
    none or ``lo[s] < 0``."""
    first = np.full(len(lo), -1, dtype=np.int64)
    if code < 0:
        return first
    at = np.flatnonzero(c.codes == code)
    owner = c.session[at]
    ok = (lo[owner] >= 0) & (at >= lo[owner])
    at, owner = at[ok], owner[ok]
    lead = _run_starts(owner)
    first[owner[lead]] = at[lead]
    return first


def _window_rows(c: _Coded, lo: IntArray, hi: IntArray) -> IntArray:
    """Row i: ``codes[lo[i]:hi[i]] + 1``, padded with 0 to the longest — so rows compare
    as the label tuples do."""
    at, owner = _spans(lo, hi)
    rows = np.zeros((len(lo), int(np.max(hi - lo, initial=0))), dtype=np.int64)
    rows[owner, at - lo[owner]] = c.codes[at] + 1
    return rows


@dataclass(frozen=True, slots=True)
class _Groups:
    """The distinct rows of a ``_window_rows`` matrix: row ``example[g]`` is group g's,
    ``sessions[g]`` counts its rows; groups are numbered in row (label tuple) order."""

    group: IntArray  # per row
    sessions: IntArray
    example: IntArray


def _groups(c: _Coded, rows: IntArray) -> _Groups:
    group, n_groups = _row_ids(rows, len(c.names) + 1)
    example = np.zeros(n_groups, dtype=np.int64)
    example[group] = np.arange(len(group))
    return _Groups(group, np.bincount(group, minlength=n_groups), example)


def _at_least(least: int, **sizes: int) -> None:
    for name, value in sizes.items():
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")


# --- top paths ------------------------------------------------------------------------


def compute_paths(j: Journeys, target: str | None, start: str | None, max_length: int,
                  top: int) -> list[PathRow]:
    """The most common paths (see the module docstring for the exact semantics)."""
    _at_least(1, max_length=max_length)
    _at_least(0, top=top)
    c = _coded(j)
    begin = c.start if start is None else _first(c, c.code(start), c.start)
    members = np.flatnonzero(begin >= 0)
    lo, end = begin[members], c.end[members]
    if target is None:
        hit = np.full(len(members), -1, dtype=np.int64)
        owners, path_lo, path_hi = members, lo, np.minimum(lo + max_length, end)
    else:
        hit = _first(c, c.code(target), begin)[members]
        converted = hit >= 0
        owners, path_hi = members[converted], hit[converted] + 1
        path_lo = np.maximum(lo[converted], path_hi - max_length)
    rows = _window_rows(c, path_lo, path_hi)
    g = _groups(c, rows)
    user_ids, user_values = _ranks(np.asarray(j.users, dtype=np.int64)[owners])
    with_user, _ = _distinct_pairs(g.group, len(g.sessions), user_ids, max(len(user_values), 1))
    users = np.bincount(with_user, minlength=len(g.sessions))
    chosen = np.lexsort((np.arange(len(g.sessions)), -users, -g.sessions))[:top].tolist()
    paths = [rows[g.example[i]] for i in chosen]
    rates: list[float | None] = [None] * len(paths)
    if target is not None:
        pre_hi = np.where(hit >= 0, hit, end)
        rates = _rates(c, lo, pre_hi, paths, g.sessions[chosen], max_length)
    return [PathRow(c.path(row), int(g.sessions[i]), int(users[i]), rate)
            for row, i, rate in zip(paths, chosen, rates, strict=True)]


def _rates(c: _Coded, lo: IntArray, pre_hi: IntArray, paths: list[IntArray],
           sessions: IntArray, max_length: int) -> list[float | None]:
    """Each path's sessions over the sessions in scope whose pre-target span
    ``[lo, pre_hi)`` holds ``path[:-1]`` (at ``lo`` unless ``max_length`` long)."""
    runs = [tuple(k - 1 for k in row.tolist() if k)[:-1] for row in paths]
    cut = [len(run) + 1 == max_length for run in runs]
    anchored = _runs_found(c, lo, pre_hi, [r for r, x in zip(runs, cut, strict=True) if not x],
                           anchored=True)
    anywhere = _runs_found(c, lo, pre_hi, [r for r, x in zip(runs, cut, strict=True) if x],
                           anchored=False)
    found = iter(anchored), iter(anywhere)
    return [n / next(found[x]) for n, x in zip(sessions.tolist(), cut, strict=True)]


def _runs_found(c: _Coded, lo: IntArray, hi: IntArray, runs: list[tuple[int, ...]],
                anchored: bool) -> list[int]:
    """Per run of codes: how many spans ``codes[lo[i]:hi[i]]`` hold it contiguously (as
    a prefix when ``anchored``); the empty run is in every span. Builds a trie of the
    runs and walks it from every candidate start at once, one step per round."""
    child: dict[tuple[int, int], int] = {}
    node_of = []
    for run in runs:
        node = 0
        for code in run:
            node = child.setdefault((node, code), len(child) + 1)
        node_of.append(node)
    found = np.zeros(len(child) + 1, dtype=np.int64)
    if child:
        if anchored:
            owner = np.flatnonzero(lo < hi)
            at = lo[owner]
        else:  # runs found anywhere all have the same length: no start closer to the end
            at, owner = _spans(lo, hi - min(len(r) for r in runs if r) + 1)
        found = _walk(c, at, owner, hi[owner], child, node_of, len(lo))
    found[0] = len(lo)
    return [int(found[node]) for node in node_of]


def _walk(c: _Coded, at: IntArray, owner: IntArray, limit: IntArray,
          child: dict[tuple[int, int], int], ends: list[int], n_spans: int) -> IntArray:
    """Per trie node: in how many spans a walk from some ``at`` (staying before its
    ``limit``) reaches it (counted for the nodes in ``ends`` only)."""
    base, n_nodes = len(c.names), len(child) + 1
    edges = np.array([(p * base + code, n) for (p, code), n in child.items()], dtype=np.int64)
    edges = edges[np.argsort(edges[:, 0])]
    is_end = np.zeros(n_nodes, dtype=bool)
    is_end[ends] = True
    first = _children(edges[edges[:, 0] < base], base, len(at))  # children of the root
    then = _children(edges, n_nodes * base, len(at))
    node = first(c.codes[at])
    reached_node, reached_owner = [node[:0]], [owner[:0]]
    while len(at):
        ok = node >= 0
        at, owner, limit, node = at[ok] + 1, owner[ok], limit[ok], node[ok]
        mark = is_end[node]
        reached_node.append(node[mark])
        reached_owner.append(owner[mark])
        more = at < limit
        at, owner, limit, node = at[more], owner[more], limit[more], node[more]
        node = then(node * base + c.codes[at])
    nodes, _ = _distinct_pairs(np.concatenate(reached_node), n_nodes,
                               np.concatenate(reached_owner), max(n_spans, 1))
    return np.bincount(nodes, minlength=n_nodes)


def _children(edges: IntArray, size: int, n_lookups: int) -> Callable[[IntArray], IntArray]:
    """Child lookup for keys ``node * base + code`` in ``[0, size)`` (-1: no such child),
    from ``edges`` (key, child) sorted by key."""
    if _small(size, n_lookups):
        table = np.full(size, -1, dtype=np.int64)
        table[edges[:, 0]] = edges[:, 1]
        return lambda keys: table[keys]

    def search(keys: IntArray) -> IntArray:  # edges is not empty: the trie has a run
        slot = np.minimum(np.searchsorted(edges[:, 0], keys), len(edges) - 1)
        return np.where(edges[slot, 0] == keys, edges[slot, 1], -1)

    return search


# --- journey graph --------------------------------------------------------------------


def compute_journey_graph(j: Journeys, max_depth: int, min_count: int) -> JourneyGraphResult:
    """A Sankey DAG of steps by depth (see the module docstring)."""
    _at_least(1, max_depth=max_depth)
    c = _coded(j, extra=(DROP_OFF,))
    base, drop = len(c.names), c.code(DROP_OFF)
    depth = np.arange(len(c.codes)) - c.offsets[c.session]
    key = depth * base + c.codes  # node key (depth 0-based)
    length = np.diff(c.offsets)
    ending = np.flatnonzero((length > 0) & (length < max_depth))
    drop_key = length[ending] * base + drop
    size = max_depth * base
    node_keys, node_counts = _counts(np.concatenate([key[depth < max_depth], drop_key]), size)
    moves = np.flatnonzero((depth[1:] == depth[:-1] + 1) & (depth[1:] < max_depth))
    source = _index(node_keys, np.concatenate([key[moves], key[c.end[ending] - 1]]), size)
    target = _index(node_keys, np.concatenate([key[moves + 1], drop_key]), size)
    n_nodes = len(node_keys)
    pairs, counts = _counts(source * n_nodes + target, n_nodes * n_nodes)
    pairs, counts = pairs[counts >= min_count], counts[counts >= min_count]
    linked = np.zeros(n_nodes, dtype=bool)
    linked[pairs // n_nodes] = linked[pairs % n_nodes] = True
    ids = [f"{k // base + 1}:{c.names[k % base]}" for k in node_keys.tolist()]
    nodes = [Node(ids[i], c.names[k % base], k // base + 1, int(node_counts[i]))
             for i, k in enumerate(node_keys.tolist()) if linked[i]]
    links = [Link(ids[p // n_nodes], ids[p % n_nodes], n)
             for p, n in zip(pairs.tolist(), counts.tolist(), strict=True)]
    nodes.sort(key=lambda n: (n.depth, -n.count, n.label))
    links.sort(key=lambda link: (-link.count, link.source, link.target))
    return JourneyGraphResult(nodes, links)


# --- converters against the rest ------------------------------------------------------


def compute_compare(j: Journeys, target: str, max_length: int, top: int,
                    min_sessions: int = 1) -> Comparison:
    """What converters did before converting, against what the others did (see the
    module docstring)."""
    _at_least(1, max_length=max_length)
    _at_least(0, top=top)
    c = _coded(j)
    hit = _first(c, c.code(target), c.start)
    converted = hit >= 0
    stop = np.where(converted, hit, c.end)  # the compared sequence is [start, stop)
    groups = np.flatnonzero(converted), np.flatnonzero((c.start >= 0) & ~converted)
    converters, others = (_shares(c, c.start[g], stop[g], max_length, top) for g in groups)
    sizes = len(groups[0]), len(groups[1])
    distinctive = _distinctive(c, stop, converted, sizes, max(min_sessions, 1), top)
    return Comparison(converters, others, distinctive, *sizes)


def _shares(c: _Coded, lo: IntArray, hi: IntArray, max_length: int, top: int) -> list[Share]:
    rows = _window_rows(c, np.maximum(lo, hi - max_length), hi)
    g = _groups(c, rows)
    chosen = np.lexsort((np.arange(len(g.sessions)), -g.sessions))[:top].tolist()
    return [Share(c.path(rows[g.example[i]]), int(g.sessions[i]) / len(lo), int(g.sessions[i]))
            for i in chosen]


def _distinctive(c: _Coded, stop: IntArray, converted: BoolArray, sizes: tuple[int, int],
                 min_sessions: int, top: int) -> list[Lift]:
    """1- to 3-grams of ``codes[start:stop]`` per session, by lift of converters' share
    over the others'. An n-gram is keyed by ``(c1 * w + c2, c3)`` (codes + 1, 0 padding),
    which orders n-grams of any length as their label tuples."""
    if not all(sizes):
        return []
    w = len(c.names) + 1
    limit, shifted = stop[c.session], c.codes + 1
    highs, lows, aheads, behinds = [], [], [], []
    for n in (1, 2, 3):
        at = np.flatnonzero(np.arange(len(c.codes)) + n <= limit)
        high = shifted[at] * w + (shifted[at + 1] if n > 1 else 0)
        keys = _pair(high, w * w, shifted[at + 2] if n > 2 else np.zeros_like(at), w)
        gram, session = _distinct_pairs(keys.keys, keys.size, c.session[at], len(stop))
        starts = _run_starts(gram)
        ends = np.append(starts[1:], len(gram))
        converters_before = np.concatenate([[0], np.cumsum(converted[session])])
        ahead = converters_before[ends] - converters_before[starts]
        behind = ends - starts - ahead
        keep = (ahead >= min_sessions) & (behind > 0)
        high, low = keys.split(gram[starts[keep]])
        highs.append(high)
        lows.append(low)
        aheads.append(ahead[keep])
        behinds.append(behind[keep])
    high, low = np.concatenate(highs), np.concatenate(lows)
    ahead_share = np.concatenate(aheads) / sizes[0]
    other_share = np.concatenate(behinds) / sizes[1]
    lift = ahead_share / other_share
    chosen = np.lexsort((low, high, -ahead_share, -lift))[:top].tolist()
    return [Lift(c.path(np.array([high[i] // w, high[i] % w, low[i]])), float(lift[i]),
                 float(ahead_share[i]), float(other_share[i])) for i in chosen]


# --- page flow ------------------------------------------------------------------------


def collapse(j: Journeys) -> tuple[Journeys, IntArray]:
    """Merge consecutive steps with the same label within a session (A A B A -> A B A):
    the collapsed journeys (same labels and users; each step keeps its run's first code),
    and per collapsed step the number of original steps it stands for."""
    c = _coded(j)
    keep = np.ones(len(c.codes), dtype=bool)
    keep[1:] = (c.codes[1:] != c.codes[:-1]) | (c.session[1:] != c.session[:-1])
    at = np.flatnonzero(keep)
    runs = np.diff(np.append(at, len(c.codes)))
    per_session = np.bincount(c.session[at], minlength=len(c.start))
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(per_session)])
    return Journeys(offsets, np.asarray(j.steps)[at], j.labels, j.users), runs


def compute_page_flow(j_collapsed: Journeys, visits_events: Arr) -> list[PageRow]:
    """Per page of collapsed URL journeys (``visits_events``: ``collapse``'s run lengths):
    ``views`` = visits (collapsed steps); ``sessions`` = sessions with a visit;
    ``entries``/``exits`` = sessions whose first/last visit it is; ``drop_off_rate =
    exits / views``; ``interactions`` = events on the page after the one opening a visit,
    summed over visits; ``next`` = the pages visited right after it, by count desc then
    page asc, the first ``NEXT_PAGES``. Pages by views desc, then page asc."""
    c = _coded(j_collapsed)
    events = np.asarray(visits_events, dtype=np.int64)
    if len(events) != len(c.codes):
        raise ValueError("visits_events needs one run length per collapsed step")
    base = len(c.names)
    views = np.bincount(c.codes, minlength=base)
    page, _ = _distinct_pairs(c.codes, base, c.session, max(len(c.start), 1))
    sessions = np.bincount(page, minlength=base)
    visited = c.start[c.start >= 0]
    entries = np.bincount(c.codes[visited], minlength=base)
    exits = np.bincount(c.codes[c.end[c.start >= 0] - 1], minlength=base)
    interactions = np.rint(np.bincount(c.codes, weights=events - 1, minlength=base))
    nexts = _next_pages(c)
    order = np.lexsort((np.arange(base), -views)).tolist()
    return [PageRow(c.names[p], int(views[p]), int(sessions[p]), int(entries[p]),
                    int(exits[p]), int(exits[p]) / int(views[p]), int(interactions[p]),
                    nexts.get(p, [])) for p in order]


def _next_pages(c: _Coded) -> dict[int, list[tuple[str, int]]]:
    base = len(c.names)
    moves = np.flatnonzero(c.session[1:] == c.session[:-1])
    pairs, counts = _counts(c.codes[moves] * base + c.codes[moves + 1], base * base)
    page, following = pairs // base, pairs % base
    order = np.lexsort((following, -counts, page))
    page, following, counts = page[order], following[order], counts[order]
    starts = _run_starts(page)
    rank = np.arange(len(page)) - np.repeat(starts, np.diff(np.append(starts, len(page))))
    nexts: dict[int, list[tuple[str, int]]] = {}
    for p, f, n in zip(*(x[rank < NEXT_PAGES].tolist() for x in (page, following, counts)),
                       strict=True):
        nexts.setdefault(p, []).append((c.names[f], n))
    return nexts
