"""A user's data across every store: export it, or erase it (right to be forgotten).

One service for both profiles, over the ports: the analytics store (``storage.user_data``),
the journey graph, the live store, campaigns, the Parquet archive, and the forgotten list
(``storage.suppression``). What differs between the runners is in ``ErasureHooks``.

An erasure, in order:

1. find the user and the devices tied to them, and add them to the forgotten list (the
   distributed profile mirrors it to Redis for the PyFlink job): from here on both
   pipelines drop whatever of theirs they read — new events, the rest of the backlog, any
   replay of the log or of Kafka;
2. let the pipeline catch up with that (embedded: hold the runner between two steps, every
   step committed; distributed: wait until every sink batch has seen the list);
3. find their records again and delete them everywhere: the store's events, sessions,
   identity rows and traits, dead letters naming them, their sessions in the journey graph
   (transition counts move with them), live streams and open sessions, archived rows
   (rewriting the Parquet files that held any), campaign timers, outbox and deliveries;
4. note the erasure (who, when, how many records per store; never the records).

The event log itself is not rewritten: the embedded log's segments are deleted once
processed, Kafka's by retention. Until then the forgotten list keeps replays from bringing
anyone back (docs/decisions.md, "Data lifecycle").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from graph.ports import JourneyGraph
from storage.archive import ParquetArchive
from storage.suppression import SuppressionStore
from storage.user_data import UserDataStore, UserRecords, find_dead_letters
from stream.operators.suppress import Forgotten


class LiveForget(Protocol):
    def forget(self, project: str, identities: Any, session_ids: Any) -> int: ...


class CampaignForget(Protocol):
    store: Any  # storage.campaigns.CampaignStore

    def forget(self, project: str, users: Any) -> int: ...


@dataclass
class ErasureHooks:
    """What an erasure needs from the running pipeline (the defaults: nothing to do).

    ``publish(project)`` hands the forgotten list to the pipeline; ``settle()`` returns once
    it is honoured by every write to come; ``exclusive()`` holds processing while the
    stores are cleaned; ``forget_keys(project, session keys)`` drops cached per-key state;
    ``flush_archive()`` rolls staged events into Parquet first; ``forget_more(project,
    identities)`` erases whatever else the profile keeps (counts by name)."""

    publish: Callable[[str], object] = lambda _p: None
    settle: Callable[[], Any] = lambda: asyncio.sleep(0)
    exclusive: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    forget_keys: Callable[[str, list[tuple[str, str]]], None] = lambda _p, _k: None
    flush_archive: Callable[[], Any] = lambda: None
    forget_more: Callable[[str, set[str]], dict[str, int]] = field(
        default=lambda _p, _i: {})


@dataclass
class UserDataService:
    store: UserDataStore
    graph: JourneyGraph
    live: LiveForget
    campaigns: CampaignForget
    archive: ParquetArchive | None
    forgotten: SuppressionStore
    hooks: ErasureHooks = field(default_factory=ErasureHooks)

    # -- export ----------------------------------------------------------------------------

    def export(self, project: str, user: str) -> tuple[int, Iterator[dict[str, Any]]]:
        """Every record held about ``user``: how many, and the records as JSON-ready dicts,
        each with a ``record`` kind (trait, identity, event, session, journey, delivery,
        dead_letter, archived_event)."""
        r = self.store.user_records(project, user)
        letters = find_dead_letters(self.store, project, _forgotten(r))
        journeys = self.graph.journeys(project, r.session_ids)
        deliveries = self.campaigns.store.user_deliveries(project, r.identities)
        archived = (self.archive.user_rows(project, user, r.devices, r.insert_ids)
                    if self.archive is not None else pa.table({}))
        total = (len(r.traits) + len(r.devices) + r.events.num_rows + r.sessions.num_rows
                 + journeys.num_rows + len(deliveries) + letters.num_rows + archived.num_rows)

        def records() -> Iterator[dict[str, Any]]:
            base = {"project": project, "subject": user}
            for t in r.traits:
                yield {"record": "trait", **base, **t}
            for d in r.devices:
                yield {"record": "identity", **base, "device_id": d}
            yield from _rows("session", base, r.sessions)
            yield from _rows("event", base, r.events)
            for sid, names, urls in zip(*(journeys.column(c).to_pylist() for c in (
                    "session_id", "event_name", "url")), strict=True):
                if names is not None:  # a session the graph holds
                    steps = [[n, u] for n, u in zip(names, urls or [None] * len(names),
                                                    strict=True)]
                    yield {"record": "journey", **base, "session_id": sid, "steps": steps}
            for d in deliveries:
                yield {"record": "delivery", **base, "campaign": d.campaign,
                       "firing": d.firing, "status": d.status, "channel": d.channel,
                       "attempts": d.attempts, "created_at": d.created_at,
                       "settled_at": d.settled_at, "recipient": d.user_id}
            yield from _rows("dead_letter", base, letters)
            yield from _rows("archived_event", base, archived)

        return total, records()

    # -- erasure ---------------------------------------------------------------------------

    async def erase(self, project: str, user: str) -> dict[str, int]:
        """Erase ``user`` from every store (see the module docstring); returns how many
        records each held."""
        first = await asyncio.to_thread(self.store.user_records, project, user)
        await asyncio.to_thread(self.forgotten.forget, project, [user], first.devices)
        await asyncio.to_thread(self.hooks.publish, project)
        await self.hooks.settle()
        counts = await asyncio.to_thread(self._erase, project, user)
        await asyncio.to_thread(self.forgotten.record, project, user, counts)
        return counts

    def _erase(self, project: str, user: str) -> dict[str, int]:
        with self.hooks.exclusive():
            r = self.store.user_records(project, user)
            known = self.forgotten.forgotten(project)
            if not set(r.devices) <= known.devices:  # tied while step 1 was under way
                self.forgotten.forget(project, [], r.devices)
                self.hooks.publish(project)
            forgotten = _forgotten(r)
            r.dead_letters = find_dead_letters(self.store, project, forgotten)
            self.hooks.flush_archive()
            self.store.erase_user(r)
            self.store.delete_dead_letters(
                project, [int(i) for i in r.dead_letters.column("id").to_pylist()])
            keys = sorted({*r.session_keys, f"u:{user}", *(f"d:{d}" for d in r.devices)})
            self.graph.forget(project, r.session_ids, keys)
            self.hooks.forget_keys(project, [(project, k) for k in keys])
            live = self.live.forget(project, r.identities, r.session_ids)
            campaigns = self.campaigns.forget(project, r.identities)
        # Outside: processing may go on (nothing of theirs is written any more), and the
        # archive can be large. Again until clean, should a compaction running meanwhile
        # have merged a file from before its rewrite.
        archived = 0
        for _ in range(3):
            found = (self.archive.erase(project, user, r.devices, r.insert_ids)
                     if self.archive is not None else 0)
            archived += found
            if not found:
                break
        more = self.hooks.forget_more(project, r.identities)
        return {**r.counts(), "journeys": r.sessions.num_rows, "live_events": live,
                "archived_events": archived, "campaign_records": campaigns, **more}


def _forgotten(r: UserRecords) -> Forgotten:
    return Forgotten(frozenset({r.user}), frozenset(r.devices))


def _rows(kind: str, base: dict[str, Any], table: pa.Table) -> Iterator[dict[str, Any]]:
    for row in table.to_pylist():
        yield {"record": kind, **row, **base}
