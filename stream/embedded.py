"""The embedded runner: reads the local log, applies the operators, commits to the store.

Each step reads a chunk of committed log records, de-duplicates, sessionizes (handling
late events by re-folding the affected range), enriches, and commits everything together
with the next log offset in one store transaction. Operator state (open sessions per key,
the de-duplication index) is a cache of what is committed: after a crash it is rebuilt
from the store, so a restart neither loses nor duplicates anything.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from storage.hash_index import HashIndex
from storage.local_log import LocalEventLog
from storage.ports import ProcessingStore, StoredEvent, WriteBatch
from stream.contract.event import Event
from stream.contract.records import decode_record
from stream.operators.dedupe import Dedupe, Item, dedupe_key
from stream.operators.enrich import Enricher
from stream.operators.sessionize import (
    SessionRow,
    SessionRules,
    Sessionizer,
    order_of,
    session_key,
)

log = logging.getLogger("cep.runner")

GroupKey = tuple[str, str]  # (project, session key)


class _IndexedSeenSet:
    """Hash-index fast path; hits are confirmed exactly against the store."""

    def __init__(self, store: ProcessingStore, index: HashIndex) -> None:
        self._store = store
        self.index = index

    def seen(self, items: list[Item]) -> set[tuple[str, str]]:
        maybe = self.index.contains(k for k, _, _ in items)
        if not maybe:
            return set()
        pairs = [(p, i) for k, p, i in items if k in maybe]
        return self._store.existing_insert_ids(pairs)


@dataclass(slots=True)
class StepResult:
    records: int
    events: int
    duplicates: int


class EmbeddedRunner:
    """Single-threaded processing loop over ``LocalEventLog`` into a ``ProcessingStore``.

    ``rules_for(project)`` gives a project's sessionization rules. ``on_commit`` receives
    the stored events of each committed step (live views subscribe through it).
    """

    def __init__(
        self,
        log_: LocalEventLog,
        store: ProcessingStore,
        enricher: Enricher,
        rules_for: Callable[[str], SessionRules] = lambda _p: SessionRules(),
        on_commit: Callable[[list[StoredEvent]], None] | None = None,
        max_read_bytes: int = 8 << 20,
        state_capacity: int = 200_000,
    ) -> None:
        self._log = log_
        self._store = store
        self._enricher = enricher
        self._rules_for = rules_for
        self._sessionizers: dict[str, Sessionizer] = {}
        self._on_commit = on_commit
        self._max_read = max_read_bytes
        self._capacity = state_capacity
        self._state: OrderedDict[GroupKey, SessionRow] = OrderedDict()
        self._seen = _IndexedSeenSet(store, HashIndex(store.dedupe_keys()))
        self._dedupe = Dedupe(self._seen)
        self.offset = store.checkpoint()
        self._log.resume(self.offset, _count_items)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.processed_events = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cep-runner", daemon=True)
        self._thread.start()

    def stop(self, drain: bool = True, timeout: float = 60.0) -> None:
        """Stop the loop; with ``drain``, process what is already committed first."""
        if drain and self.error is None:
            self.drain(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until everything committed to the log so far is processed."""
        target = self._log.committed
        deadline = threading.Event()
        waited = 0.0
        while self.offset < target and waited < timeout and self.error is None:
            if self._thread is None or not self._thread.is_alive():
                self.run_until_idle()
                break
            deadline.wait(0.01)
            waited += 0.01
        return self.offset >= target

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step() is None:
                    self._log.wait_for(self.offset, timeout=0.2)
            except Exception as exc:  # the process stays up; /readyz reports it
                log.exception("runner step failed; state reset, retrying")
                self.error = exc
                self._reset()
                self._stop.wait(1.0)
                self.error = None

    def run_until_idle(self) -> int:
        """Process every committed record now (tests and command-line tools)."""
        total = 0
        while (result := self.step()) is not None:
            total += result.events
        return total

    # -- one step --------------------------------------------------------------------------

    def step(self) -> StepResult | None:
        records = self._log.read(self.offset, self._max_read)
        if not records:
            return None
        batch = WriteBatch(next_offset=records[-1][0] + 1)
        events: list[Event] = []
        for _offset, payload in records:
            record = decode_record(payload)
            events.extend(record.events)
            batch.dead.extend(record.dead)
            batch.settled_dead.extend(record.replayed)
            for profile in record.profiles:
                for key, value in profile.traits.items():
                    batch.traits.append((profile.project, profile.distinct_user_id, key,
                                         value, profile.ingest_time))
                if profile.device_id:
                    batch.ties.append((profile.project, profile.device_id,
                                       profile.distinct_user_id, profile.ingest_time))
        items = [(dedupe_key(e.project, e.insert_id), e.project, e.insert_id) for e in events]
        first = self._dedupe.first_occurrences(items)
        fresh = [e for e, keep in zip(events, first, strict=True) if keep]
        self._identities(fresh, batch)
        self._sessionize(fresh, batch, {i: k for (k, _, i), keep in zip(items, first,
                                                                         strict=True) if keep})
        self._store.commit(batch)
        self._seen.index.add(k for (k, _, _), keep in zip(items, first, strict=True) if keep)
        self._log.ack(records[-1][0])
        self.offset = batch.next_offset
        self.processed_events += len(fresh)
        for row in self._state.values():
            row.insert_ids.clear()
        while len(self._state) > self._capacity:
            self._state.popitem(last=False)
        if self._on_commit is not None and batch.events:
            self._on_commit(batch.events)
        return StepResult(len(records), len(fresh), len(events) - len(fresh))

    def _identities(self, fresh: list[Event], batch: WriteBatch) -> None:
        ties: dict[tuple[str, str], tuple[str, int]] = {}
        for e in fresh:
            if e.device_id and e.distinct_user_id:
                key = (e.project, e.device_id)
                prev = ties.get(key)
                if prev is None or e.time >= prev[1]:
                    ties[key] = (e.distinct_user_id, e.time)
        batch.ties.extend((p, d, u, t) for (p, d), (u, t) in ties.items())

    def _sessionizer(self, project: str) -> Sessionizer:
        s = self._sessionizers.get(project)
        if s is None:
            s = self._sessionizers[project] = Sessionizer(self._rules_for(project))
        return s

    def _sessionize(self, fresh: list[Event], batch: WriteBatch, keys: dict[str, int]
                    ) -> None:
        groups: dict[GroupKey, list[Event]] = {}
        for e in fresh:
            groups.setdefault((e.project, session_key(e)), []).append(e)
        unknown = [k for k in groups if k not in self._state]
        for row in self._store.last_sessions(unknown):
            self._state[(row.project, row.session_key)] = row
        touched: dict[tuple[str, str], SessionRow] = {}
        assigned: dict[tuple[str, str], str] = {}
        for gk, evs in groups.items():
            evs.sort(key=order_of)
            project, key = gk
            sessionizer = self._sessionizer(project)
            state = self._state.get(gk)
            if state is None or order_of(evs[0]) > state.order:
                for e in evs:
                    state, _new = sessionizer.step(state, key, e)
                    touched[(project, state.session_id)] = state
                    assigned[(project, e.insert_id)] = state.session_id
                self._state[gk] = state
                self._state.move_to_end(gk)
            else:
                self._late(gk, evs, state, sessionizer, batch, touched, assigned)
        enrich = self._enricher.enrich
        for e in fresh:
            sid = assigned[(e.project, e.insert_id)]
            batch.events.append(StoredEvent(e, sid, session_key(e), enrich(e.ip, e.user_agent),
                                            keys[e.insert_id]))
        batch.sessions.extend((r, enrich(r.ip, r.user_agent)) for r in touched.values())

    def _late(self, gk: GroupKey, evs: list[Event], state: SessionRow,
              sessionizer: Sessionizer, batch: WriteBatch,
              touched: dict[tuple[str, str], SessionRow],
              assigned: dict[tuple[str, str], str]) -> None:
        """Re-fold the range a late event can change; replace the sessions stored there."""
        project, key = gk
        timeout = sessionizer.rules.timeout_ms
        stored = self._store.sessions_overlapping(project, key, evs[0].time - timeout,
                                                  evs[-1].time + timeout)
        lo, hi = sessionizer.affected_range(evs, [(r.start_time, r.end_time) for r in stored])
        old_events = self._store.events_in_range(project, key, lo, hi)
        rows = sessionizer.fold(key, old_events + evs)
        new_ids = {r.session_id for r in rows}
        old_ids = {r.session_id for r in stored}
        batch.deleted_sessions.extend((project, sid) for sid in old_ids - new_ids)
        for row in rows:
            touched[(project, row.session_id)] = row
            for iid in row.insert_ids:
                assigned[(project, iid)] = row.session_id
        batch.moved_events.extend((project, e.insert_id, assigned[(project, e.insert_id)])
                                  for e in old_events)
        candidates = list(rows)
        if state.session_id not in old_ids:
            candidates.append(state)
        self._state[gk] = max(candidates, key=lambda r: r.order)

    def _reset(self) -> None:
        """Forget cached state after a failed step; it is rebuilt from committed data."""
        self._state.clear()
        self._seen.index = HashIndex(self._store.dedupe_keys())
        self.offset = self._store.checkpoint()


def _count_items(payload: bytes) -> int:
    return decode_record(payload).items
