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
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec

from graph.ports import GraphChanges
from storage.hash_index import HashIndex
from storage.local_log import LocalEventLog
from storage.ports import ProcessingStore, StoredEvents, WriteBatch, merge_batches
from stream.contract.event import Event
from stream.contract.records import decode_record
from stream.operators.dedupe import Dedupe, Item, dedupe_key
from stream.operators.enrich import Enricher, Enrichment
from stream.operators.identify import ties
from stream.operators.sessionize import (
    Sessionizer,
    SessionRow,
    SessionRules,
    order_of,
    session_key,
)
from stream.operators.suppress import Suppressions
from stream.refold import refold

log = logging.getLogger("cep.runner")

GroupKey = tuple[str, str]  # (project, session key)
LINGER_RECORDS = 4096
LINGER_SECONDS = 1.0
MAX_QUEUED_EVENTS = 200_000  # processed, not yet committed: the runner waits above it


class _IndexedSeenSet:
    """Hash-index fast path; hits are confirmed exactly against the store, or against the
    insert ids of steps still being committed."""

    def __init__(self, store: ProcessingStore, index: HashIndex) -> None:
        self._store = store
        self.index = index
        self._lock = threading.Lock()
        self._pending: list[set[tuple[str, str]]] = []

    def seen(self, items: list[Item]) -> set[tuple[str, str]]:
        maybe = self.index.contains(k for k, _, _ in items)
        if not maybe:
            return set()
        pairs = [(p, i) for k, p, i in items if k in maybe]
        with self._lock:
            pending = set().union(*self._pending) if self._pending else set()
        hits = {pair for pair in pairs if pair in pending}
        rest = [pair for pair in pairs if pair not in hits]
        return hits | self._store.existing_insert_ids(rest)

    def in_flight(self, fresh: list[Event], keys: list[int]) -> None:
        """A step's new events: in the index now, confirmed from memory until committed."""
        with self._lock:
            self._pending.append({(e.project, e.insert_id) for e in fresh})
        self.index.add(keys)

    def committed(self) -> None:
        with self._lock:
            self._pending.pop(0)


@dataclass(slots=True)
class _Step:
    batch: WriteBatch
    changes: GraphChanges
    last_offset: int
    fresh: int


@dataclass(slots=True)
class StepResult:
    records: int
    events: int
    duplicates: int


class EmbeddedRunner:
    """Processing loop over ``LocalEventLog`` into a ``ProcessingStore``.

    Steps are pipelined: while the store commits on the commit thread (DuckDB releases the
    GIL), the runner thread decodes, de-duplicates, sessionizes and publishes the next steps;
    the commit thread then commits every step queued meanwhile in one transaction. So a
    record waits for the runner, never for the commit before it (live views see it within
    milliseconds), and a slow commit makes the next one bigger, not later. Anything that
    reads the store (late events) first waits until every processed step is committed, so
    it always sees every earlier step.

    ``rules_for(project)`` gives a project's sessionization rules. ``on_commit`` receives
    the stored events of each committed step (live views subscribe through it).
    ``suppressed()`` gives the forgotten identities (``stream.operators.suppress``), asked
    once a step: their events, profiles and dead letters are dropped as they are read.
    ``on_store_commit(seconds, failed)`` times each store transaction (metrics).
    """

    def __init__(
        self,
        log_: LocalEventLog,
        store: ProcessingStore,
        enricher: Enricher,
        rules_for: Callable[[str], SessionRules] = lambda _p: SessionRules(),
        on_commit: Callable[[WriteBatch, GraphChanges], None] | None = None,
        before_commit: Callable[[WriteBatch], None] | None = None,
        on_step: Callable[[StoredEvents, list[tuple[SessionRow, Enrichment]],
                           list[tuple[str, str]]], None] | None = None,
        on_store_commit: Callable[[float, bool], None] | None = None,
        linger: Callable[[], float] = lambda: LINGER_SECONDS,
        suppressed: Callable[[], Suppressions] | None = None,
        max_read_bytes: int = 8 << 20,
        state_capacity: int = 200_000,
    ) -> None:
        if state_capacity < 10 * 50_000:
            state_capacity = 10 * 50_000  # far above the session keys one step can touch
        self._log = log_
        self._store = store
        self._enricher = enricher
        self._rules_for = rules_for
        self._sessionizers: dict[str, Sessionizer] = {}
        self._on_commit = on_commit
        self._before_commit = before_commit
        self._on_step = on_step
        self._on_store_commit = on_store_commit
        self._linger = linger
        self._suppressed = suppressed
        self._step_lock = threading.Lock()  # held by a step; ``exclusive`` holds it too
        self._max_read = max_read_bytes
        self._capacity = state_capacity
        self._state: OrderedDict[GroupKey, SessionRow] = OrderedDict()
        self._seen = _IndexedSeenSet(store, HashIndex(store.dedupe_keys()))
        self._dedupe = Dedupe(self._seen)
        self.offset = store.checkpoint()  # everything before it is committed to the store
        self._read_offset = self.offset  # everything before it is at least in flight
        self._log.resume(self.offset, _count_items)
        # steps processed, waiting for the commit thread (which takes all of them at once)
        self._cond = threading.Condition()
        self._queued: list[_Step] = []
        self._queued_events = 0
        self._committing = False
        self._commit_error: BaseException | None = None
        self._closing = False
        self._committer = threading.Thread(target=self._commit_loop, name="cep-commit",
                                           daemon=True)
        self._committer.start()
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
        else:
            self._settle()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._committer.join(timeout=timeout)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until everything committed to the log so far is processed."""
        target = self._log.committed
        if self._thread is None or not self._thread.is_alive():
            self.run_until_idle()
            return self.offset >= target
        deadline = time.monotonic() + timeout
        while self.offset < target and time.monotonic() < deadline:
            self._stop.wait(0.01)
        return self.offset >= target

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                # Under a trickle of small requests, gather a few before stepping: every step
                # is a store transaction, and hundreds of tiny ones a second starve ingest.
                if self._log.committed - self._read_offset < LINGER_RECORDS:
                    self._log.wait_for(self._read_offset + LINGER_RECORDS - 1, self._linger())
                if self.step() is None:  # idle: commits go on meanwhile, unwaited for
                    with self._cond:
                        self._raise_commit_error()
                    self._log.wait_for(self._read_offset, timeout=0.2)
            except Exception as exc:  # the process stays up; /readyz reports it
                log.exception("runner step failed; state reset, retrying")
                self.error = exc
                self._reset()
                self._stop.wait(1.0)
                self.error = None
        self._settle()

    def run_until_idle(self) -> int:
        """Process every committed record now (tests and command-line tools)."""
        total = 0
        while (result := self.step()) is not None:
            total += result.events
        self._settle()
        return total

    # -- one step --------------------------------------------------------------------------

    def step(self) -> StepResult | None:
        with self._step_lock:
            return self._step()

    def _step(self) -> StepResult | None:
        records = self._log.read(self._read_offset, self._max_read)
        if not records:
            return None
        batch = WriteBatch(next_offset=records[-1][0] + 1, first_offset=records[0][0])
        events: list[Event] = []
        forgotten = self._suppressed() if self._suppressed is not None else Suppressions()
        for _offset, payload in records:
            record = decode_record(payload)
            if forgotten:
                record.events = forgotten.events(record.events)
                record.profiles = [p for p in record.profiles if not forgotten.drops_profile(p)]
                record.dead = [d for d in record.dead if not forgotten.drops_letter(d)]
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
        fresh: list[Event] = []
        keys: list[int] = []
        for e, item, keep in zip(events, items, first, strict=True):
            if keep:
                fresh.append(e)
                keys.append(item[0])
        self._seen.in_flight(fresh, keys)
        batch.ties.extend(ties(fresh))
        changes = GraphChanges()
        self._sessionize(fresh, keys, batch, changes)
        if self._on_step is not None and (batch.events.events or batch.deleted_sessions):
            # live views see a step as soon as it is processed, not after its commit (and
            # again after a crash replays it: they are at least once, keyed by insert id),
            # with the sessions it touched and deleted
            self._on_step(batch.events, batch.sessions, batch.deleted_sessions)
        if len(self._state) > self._capacity:
            for _ in range(len(self._state) - self._capacity):
                self._state.popitem(last=False)
        self._read_offset = batch.next_offset
        self._enqueue(_Step(batch, changes, records[-1][0], len(fresh)))
        return StepResult(len(records), len(fresh), len(events) - len(fresh))

    # -- commits ---------------------------------------------------------------------------

    def _enqueue(self, step: _Step) -> None:
        """Hand a processed step to the commit thread without waiting for the commit in
        flight (the next step is processed and published meanwhile); wait only while more
        than ``MAX_QUEUED_EVENTS`` events are queued. Re-raises a failed commit's error."""
        with self._cond:
            self._cond.wait_for(lambda: self._commit_error is not None
                                or self._queued_events < MAX_QUEUED_EVENTS)
            self._raise_commit_error()
            self._queued.append(step)
            self._queued_events += len(step.batch.events)
            self._cond.notify_all()

    def _commit_loop(self) -> None:
        """The commit thread: every step queued since its last commit, in one transaction
        (``merge_batches``). While DuckDB commits one transaction (it releases the GIL), the
        runner processes the next steps, so a record waits for processing, not for the
        commit before it."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queued or self._closing)
                if not self._queued:
                    return
                steps, self._queued, self._queued_events = self._queued, [], 0
                self._committing = True
                self._cond.notify_all()
            try:
                self._commit(steps)
                error = None
            except BaseException as exc:  # noqa: BLE001 - handed to the runner thread
                error = exc
            with self._cond:
                self._committing = False
                if error is not None:
                    self._commit_error = error
                    self._queued, self._queued_events = [], 0  # re-read from the log
                self._cond.notify_all()

    def _commit(self, steps: list[_Step]) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        if self._before_commit is not None:  # idempotent side state first: replays redo it
            for step in steps:
                self._before_commit(step.batch)
        batch = merge_batches([step.batch for step in steps])
        self._commit_to_store(batch)
        log.debug("committed %d steps to offset %d: %d events, %d sessions in %.1f ms "
                  "(%.1f ms CPU)", len(steps), batch.next_offset, len(batch.events),
                  len(batch.sessions), (time.perf_counter() - started) * 1000,
                  (time.thread_time() - cpu) * 1000)
        for _ in steps:
            self._seen.committed()
        self._log.ack(steps[-1].last_offset)
        self.offset = batch.next_offset
        self.processed_events += sum(step.fresh for step in steps)
        if self._on_commit is not None:
            for step in steps:
                self._on_commit(step.batch, step.changes)

    def _commit_to_store(self, batch: WriteBatch) -> None:
        """``store.commit``; its wall time (s) and whether it failed go to ``on_store_commit``."""
        if self._on_store_commit is None:
            self._store.commit(batch)
            return
        started = time.perf_counter()
        try:
            self._store.commit(batch)
        except BaseException:
            self._on_store_commit(time.perf_counter() - started, True)
            raise
        self._on_store_commit(time.perf_counter() - started, False)

    def _settle(self) -> None:
        """Wait until every processed step is committed; re-raises a failed commit's error."""
        with self._cond:
            self._cond.wait_for(lambda: self._commit_error is not None
                                or not (self._queued or self._committing))
            self._raise_commit_error()

    def _raise_commit_error(self) -> None:
        error, self._commit_error = self._commit_error, None
        if error is not None:
            raise error

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the runner between steps, every processed step committed (an erasure runs
        here: nothing it deletes can be written back by a step in flight). Raises if the
        last commit failed, leaving the error for the runner, which redoes it."""
        with self._step_lock:
            with self._cond:
                self._cond.wait_for(lambda: self._commit_error is not None
                                    or not (self._queued or self._committing))
                if self._commit_error is not None:
                    raise RuntimeError("the runner's last commit failed; try again once it "
                                       "has recovered") from self._commit_error
            yield

    def forget_sessions(self, keys: Iterable[GroupKey]) -> None:
        """Drop the cached open session of these (project, session key)s: their sessions
        were erased, so the next event of the key starts from what the store holds. Call it
        inside ``exclusive``."""
        for key in keys:
            self._state.pop(key, None)

    def rules_changed(self, project: str) -> None:
        """A project's sessionization settings changed: events processed from now on use
        them (sessions already stored keep the rules they were cut with)."""
        self._sessionizers.pop(project, None)

    def _sessionizer(self, project: str) -> Sessionizer:
        s = self._sessionizers.get(project)
        if s is None:
            s = self._sessionizers[project] = Sessionizer(self._rules_for(project))
        return s

    def _sessionize(self, fresh: list[Event], keys: list[int], batch: WriteBatch,
                    changes: GraphChanges) -> None:
        groups: dict[GroupKey, list[int]] = {}
        skeys = [session_key(e) for e in fresh]
        for i, e in enumerate(fresh):
            groups.setdefault((e.project, skeys[i]), []).append(i)
        # A key missing from the state was not touched by the step in flight (touched keys are
        # the most recent and eviction keeps far more than one step's keys), so the store
        # already holds its latest session: no need to wait for the commit.
        unknown = [k for k in groups if k not in self._state]
        if unknown:
            for row in self._store.last_sessions(unknown):
                self._state[(row.project, row.session_key)] = row
        touched: dict[tuple[str, str], SessionRow] = {}
        sids: list[str] = [""] * len(fresh)
        late: list[tuple[GroupKey, list[int], list[Event], SessionRow]] = []
        for gk, idx in groups.items():
            evs = [fresh[i] for i in idx]
            if len(evs) > 1:
                order = sorted(range(len(evs)), key=lambda j: order_of(evs[j]))
                idx = [idx[j] for j in order]
                evs = [evs[j] for j in order]
            project, key = gk
            sessionizer = self._sessionizer(project)
            state = self._state.get(gk)
            if state is None or order_of(evs[0]) > state.order:
                if state is not None and sessionizer.continues(state, evs[0]):
                    touched[(project, state.session_id)] = state
                step = sessionizer.step
                current = state
                for i, e in zip(idx, evs, strict=True):
                    current, new = step(current, key, e)
                    if new:
                        touched[(project, current.session_id)] = current
                    sids[i] = current.session_id
                    changes.append((project, current.session_id), key, (e.event_name, e.url))
                assert current is not None  # every group has at least one event
                self._state[gk] = current
                self._state.move_to_end(gk)
            else:
                late.append((gk, idx, evs, state))
        if late:
            self._settle()  # the late path reads the store: it must hold every earlier step
            self._late(late, batch, touched, sids, changes)
        enrich = self._enricher.enrich
        enrichments = [enrich(e.ip, e.user_agent) for e in fresh]
        drop = {p for p in {e.project for e in fresh} if self._sessionizer(p).rules.drop_ip}
        stored = fresh if not drop else [  # enriched from the IP, then stored without it
            msgspec.structs.replace(e, ip=None) if e.project in drop and e.ip else e
            for e in fresh]
        batch.events = StoredEvents(stored, sids, skeys, enrichments, keys)
        for r in touched.values():
            row, enrichment = r.snapshot(), enrich(r.ip, r.user_agent)
            if row.project in drop:  # every touched session is of a project in this step
                row.ip = None
            batch.sessions.append((row, enrichment))

    def _late(self, late: list[tuple[GroupKey, list[int], list[Event], SessionRow]],
              batch: WriteBatch, touched: dict[tuple[str, str], SessionRow],
              sids: list[str], changes: GraphChanges) -> None:
        """Re-fold the ranges late events can change and replace the sessions stored there
        (``stream.refold``: two store queries for all late keys of a step)."""
        done = refold(self._store, [(gk, evs) for gk, _idx, evs, _state in late],
                      self._sessionizer)
        for r, (gk, idx, evs, state) in zip(done, late, strict=True):
            project, key = gk
            gone = [row.session_id for row in r.gone]
            batch.deleted_sessions.extend((project, sid) for sid in gone)
            changes.removed.extend((project, sid) for sid in gone)
            for sid, steps in r.steps().items():
                changes.replaced[(project, sid)] = steps
                changes.keys[(project, sid)] = key
            for row in r.rows:
                touched[(project, row.session_id)] = row
            batch.moved_events.extend((project, e.insert_id, sid) for e, sid in r.moved())
            candidates = list(r.rows)
            if state.session_id not in {row.session_id for row in r.stored}:
                candidates.append(state)
            self._state[gk] = max(candidates, key=lambda row: row.order)
            for i, e in zip(idx, evs, strict=True):
                sids[i] = r.assigned[e.insert_id]

    def _reset(self) -> None:
        """Forget cached state after a failed step; it is rebuilt from committed data."""
        with self._step_lock:
            self._reset_state()

    def _reset_state(self) -> None:
        try:
            self._settle()
        except Exception:  # the failure being recovered from; already logged
            log.debug("commit in flight failed during reset", exc_info=True)
        self._state.clear()
        self._seen = _IndexedSeenSet(self._store, HashIndex(self._store.dedupe_keys()))
        self._dedupe = Dedupe(self._seen)
        self.offset = self._read_offset = self._store.checkpoint()


def _count_items(payload: bytes) -> int:
    return decode_record(payload).items
