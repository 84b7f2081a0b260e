"""De-duplication by ``(project, insert_id)``: the first event wins.

The seen-set is a port so each runner backs it with what it has: the embedded runner with
a compact hash index over its event store (confirming hash hits exactly), the PyFlink job
with keyed state.
"""

from __future__ import annotations

from typing import Protocol

import xxhash

Item = tuple[int, str, str]  # (dedupe key, project, insert_id)


def dedupe_key(project: str, insert_id: str) -> int:
    """64-bit key of an event's identity within its project."""
    return xxhash.xxh3_64_intdigest(f"{project}\x1f{insert_id}".encode())


class SeenSet(Protocol):
    def seen(self, items: list[Item]) -> set[tuple[str, str]]:
        """The (project, insert_id) pairs of ``items`` already accepted — exactly."""
        ...


class Dedupe:
    """Filters a batch to events not seen before, keeping the first of in-batch repeats."""

    def __init__(self, seen: SeenSet) -> None:
        self._seen = seen

    def first_occurrences(self, items: list[Item]) -> list[bool]:
        """For each item in arrival order, whether it is the first occurrence."""
        already = self._seen.seen(items)
        out: list[bool] = []
        batch: set[tuple[str, str]] = set()
        for _key, project, insert_id in items:
            ident = (project, insert_id)
            if ident in already or ident in batch:
                out.append(False)
            else:
                batch.add(ident)
                out.append(True)
        return out
