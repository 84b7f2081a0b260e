"""Campaign firings from the PyFlink job to the gateway's delivery worker: one Redis stream.

The job's ``stores`` sink appends every firing (``XADD cep:campaign-firings MAXLEN ~``); the
gateway reads the stream from the last id it took (kept in its campaign store) and puts the
firings in its outbox. A firing read twice, or emitted twice by a job replaying from a
checkpoint, is one outbox row and one delivery: both are keyed by the firing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

FIRINGS_STREAM = "cep:campaign-firings"
MAXLEN = 1_000_000  # about a day of firings at 10/s; the gateway reads them within seconds


@dataclass(frozen=True, slots=True)
class FiringRecord:
    project: str
    campaign: str
    user: str
    firing: str
    at: int
    event_name: str | None = None


def publish_firings(client: Any, firings: Iterable[FiringRecord], maxlen: int = MAXLEN) -> int:
    """Append ``firings`` (a ``redis.Redis``; one round trip). Returns how many."""
    pipe = client.pipeline(transaction=False)
    n = 0
    for f in firings:
        pipe.xadd(FIRINGS_STREAM, {"f": orjson.dumps(
            [f.project, f.campaign, f.user, f.firing, f.at, f.event_name])},
            maxlen=maxlen, approximate=True)
        n += 1
    if n:
        pipe.execute()
    return n


def read_firings(client: Any, after: str, count: int = 500, block_ms: int = 1000
                 ) -> list[tuple[str, FiringRecord]]:
    """Firings after stream id ``after`` (``"0"`` = from the start), waiting up to
    ``block_ms`` for one; each with its stream id."""
    found: Sequence[Any] = client.xread({FIRINGS_STREAM: after}, count=count,
                                        block=block_ms) or []
    out: list[tuple[str, FiringRecord]] = []
    for _stream, entries in found:
        for entry_id, fields in entries:
            raw = fields.get("f", fields.get(b"f"))
            project, campaign, user, firing, at, event_name = orjson.loads(raw)
            ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append((ident, FiringRecord(project, campaign, user, firing, int(at),
                                            event_name)))
    return out


def forget_firings(client: Any, project: str, users: Iterable[str], page: int = 10_000) -> int:
    """Delete the firings of ``users`` in ``project`` still in the stream (an erasure: the
    stream keeps about a day of them); returns how many."""
    ids = set(users)
    start, doomed = "-", []
    while True:
        entries = client.xrange(FIRINGS_STREAM, start, "+", count=page) or []
        for entry_id, fields in entries:
            row = orjson.loads(fields.get("f", fields.get(b"f")))
            if row[0] == project and row[2] in ids:
                doomed.append(entry_id)
        if len(entries) < page:
            break
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else last)
    for at in range(0, len(doomed), 1000):
        client.xdel(FIRINGS_STREAM, *doomed[at:at + 1000])
    return len(doomed)
