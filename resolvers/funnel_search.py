"""The per-unit path search of the funnel modes whose best path is not simply each step's
earliest event: optional steps, per-step time limits, exclusions, ANY with shared events.

Memoised over one unit's rows at a time; ``resolvers.funnels`` vectorises everything else.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from resolvers.funnels import _Funnel

Arr = NDArray[Any]


class Search:
    """Per unit, the furthest reach of an attempt and the path that counts, for the modes
    whose best path is not simply each step's earliest event."""

    def __init__(self, funnel: _Funnel):
        self.f = funnel
        starts = np.flatnonzero(np.r_[True, funnel.unit[1:] != funnel.unit[:-1]])
        self.starts, self.ends = starts, np.r_[starts[1:], len(funnel.unit)]
        self._cached: tuple[int, _Unit] | None = None

    def _unit(self, pos: int) -> tuple[_Unit, int]:
        b = int(np.searchsorted(self.starts, pos, side="right")) - 1
        if self._cached is None or self._cached[0] != b:
            lo, hi, f = int(self.starts[b]), int(self.ends[b]), self.f
            self._cached = (b, _Unit(f, f.time[lo:hi].tolist(), f.bits[lo:hi].tolist(),
                                     f.excl[lo:hi].tolist(), f.hold[lo:hi].tolist()))
        return self._cached[1], int(self.starts[b])

    def reach(self, entries: Arr, units: Arr, groups: Arr) -> Arr:
        """Reach per attempt; 0 for attempts after a complete one of the same unit and
        group (they can never count)."""
        out = np.zeros(len(entries), np.int64)
        complete: set[tuple[int, int]] = set()
        for i, (e, u, g) in enumerate(zip(entries.tolist(), units.tolist(), groups.tolist(),
                                          strict=True)):
            if (u, g) in complete:
                continue
            unit, lo = self._unit(e)
            out[i] = unit.reach(e - lo)
            if out[i] == self.f.k:
                complete.add((u, g))
        return out

    def paths(self, entries: Arr, reach: Arr) -> tuple[Arr, Arr]:
        done = np.zeros((len(entries), self.f.k), bool)
        gap = np.zeros((len(entries), self.f.k), np.int64)
        for i in np.argsort(entries, kind="stable").tolist():
            unit, lo = self._unit(int(entries[i]))
            steps = unit.path(int(entries[i]) - lo, int(reach[i]))
            previous = steps[0]
            for k, q in enumerate(steps):
                if q >= 0:
                    done[i, k], gap[i, k] = True, unit.times[q] - unit.times[previous]
                    previous = q
        return done, gap


class _Unit:
    """One unit's rows (row order): the memoised best-path search of one attempt."""

    def __init__(self, f: _Funnel, times: list[int], bits: list[int], excl: list[int],
                 hold: list[int]):
        self.k, self.window, self.limits = f.k, f.window, f.limits
        self.strict, self.any = f.q.order == "STRICT", f.q.order == "ANY"
        self.optional = [s.optional for s in f.q.steps]
        self.spans = [(x.from_step - 1, x.to_step - 1) for x in f.q.exclusions]
        self.times, self.bits, self.hold = times, bits, hold
        self.positions = [[i for i, b in enumerate(bits) if (b >> k) & 1] for k in range(f.k)]
        n = len(times)
        self.next_excluded: list[list[int]] = []  # [i][a] = first row > a with exclusion i
        for i in range(len(self.spans)):
            nxt, column = n, [n] * n
            for a in range(n - 1, -1, -1):
                column[a] = nxt
                if (excl[a] >> i) & 1:
                    nxt = a
            self.next_excluded.append(column)
        self.memo: dict[tuple[Any, ...], int] = {}
        self.t1 = self.h1 = 0

    def reach(self, e: int) -> int:
        if self.any:
            return len(self._any_rows(e))
        anchors = self._begin(e)
        return self._best(1, e, 0, anchors) + 1

    def path(self, e: int, reach: int) -> list[int]:
        """The row of each step in the counted path (-1: not done)."""
        out = [-1] * self.k
        if self.any:
            rows = self._any_rows(e)
            out[: len(rows)] = rows
            return out
        anchors, target = self._begin(e), reach - 1
        out[0], p, last, k = e, e, 0, 1
        while last < target:
            for q in self._candidates(k, p):
                after = self._advance(k, q, anchors)
                if self._clear(k, q, anchors) and self._best(k + 1, q, k, after) == target:
                    out[k], p, last, anchors = q, q, k, after
                    break
            else:  # an optional step skipped
                anchors = self._advance(k, p, anchors)
            k += 1
        return out

    def _begin(self, e: int) -> tuple[int, ...]:
        self.t1, self.h1, self.memo = self.times[e], self.hold[e], {}
        return tuple(e if f == 0 else -1 for f, _ in self.spans)

    def _best(self, k: int, p: int, last: int, anchors: tuple[int, ...]) -> int:
        """The furthest step (0-based) reachable with steps < k decided, the last done
        being ``last`` at row ``p``."""
        if k == self.k:
            return last
        key = (k, p, last, anchors)
        known = self.memo.get(key)
        if known is not None:
            return known
        best = last
        for q in self._candidates(k, p):
            if self._clear(k, q, anchors):
                best = max(best, self._best(k + 1, q, k, self._advance(k, q, anchors)))
                if best == self.k - 1:
                    break
        if best < self.k - 1 and self.optional[k]:
            best = max(best, self._best(k + 1, p, last, self._advance(k, p, anchors)))
        self.memo[key] = best
        return best

    def _candidates(self, k: int, p: int) -> Iterator[int]:
        times, limit = self.times, self.limits[k]
        if self.strict:
            q = p + 1
            if (q < len(times) and (self.bits[q] >> k) & 1 and self.hold[q] == self.h1
                    and times[q] - self.t1 <= self.window
                    and (limit is None or times[q] - times[p] <= limit)):
                yield q
            return
        rows = self.positions[k]
        for i in range(bisect_right(rows, p), len(rows)):
            q = rows[i]
            if times[q] - self.t1 > self.window or (
                    limit is not None and times[q] - times[p] > limit):
                return
            if self.hold[q] == self.h1:
                yield q

    def _clear(self, k: int, q: int, anchors: tuple[int, ...]) -> bool:
        """No exclusion ending at step k happened strictly between its anchor and q."""
        return all(self.next_excluded[i][anchors[i]] >= q
                   for i, (_, to) in enumerate(self.spans) if to == k)

    def _advance(self, k: int, at: int, anchors: tuple[int, ...]) -> tuple[int, ...]:
        if not anchors:
            return anchors
        return tuple(at if f == k else (-1 if to <= k else a)
                     for (f, to), a in zip(self.spans, anchors, strict=True))

    def _any_rows(self, a: int) -> list[int]:
        """Rows of the window from ``a``, taken in order when they still match distinct
        steps (augmenting paths; rows taken stay matched)."""
        owner: dict[int, int] = {}
        taken: list[int] = []
        for q in range(a, len(self.times)):
            if self.times[q] - self.times[a] > self.window or len(taken) == self.k:
                break
            if self.bits[q] and self.hold[q] == self.hold[a] and self._augment(q, owner, set()):
                taken.append(q)
        return taken

    def _augment(self, q: int, owner: dict[int, int], seen: set[int]) -> bool:
        for k in range(self.k):
            if (self.bits[q] >> k) & 1 and k not in seen:
                seen.add(k)
                if k not in owner or self._augment(owner[k], owner, seen):
                    owner[k] = q
                    return True
        return False
