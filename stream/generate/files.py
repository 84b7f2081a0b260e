"""Writing a dataset as NDJSON: one record per line, in send order.

``write_ndjson(dataset, "demo.ndjson")`` writes the events there and the profiles to the
sibling ``demo.profiles.ndjson``; both load as they are into ``POST /v1/events`` and
``POST /v1/identify`` (which accept NDJSON bodies).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from stream.generate.model import Dataset

_CHUNK = 10_000


def profiles_path(path: str | Path) -> Path:
    """Where the profiles of an events file go: ``x.ndjson`` -> ``x.profiles.ndjson``."""
    path = Path(path)
    suffix = path.suffix or ".ndjson"
    return path.with_name(f"{path.name.removesuffix(path.suffix)}.profiles{suffix}")


def ndjson_lines(records: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """Each record as one line of compact JSON (``\\n``-terminated), in chunks."""
    chunk: list[bytes] = []
    for record in records:
        chunk.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        if len(chunk) >= _CHUNK:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def write_ndjson(dataset: Dataset, path: str | Path,
                 progress: Callable[[int], None] | None = None) -> tuple[Path, Path]:
    """Write events to ``path`` and profiles beside it; returns both paths.

    The bytes depend only on the dataset, so the same seed writes identical files. Each
    file is written under a temporary name and renamed when complete: an interrupted run
    leaves no partial file. ``progress(n)`` is told of every ``n`` records written.
    """
    events_path = Path(path)
    people_path = profiles_path(events_path)
    for target, records in ((events_path, dataset.events), (people_path, dataset.profiles)):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as out:
                for start in range(0, len(records), _CHUNK):
                    part = records[start:start + _CHUNK]
                    for chunk in ndjson_lines(part):
                        out.write(chunk)
                    if progress is not None:
                        progress(len(part))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return events_path, people_path
