"""CassandraStore against a real Cassandra: the same answers as DuckDBStore.

The embedded runner processes one random stream (late events, SDK retries, identity ties,
profiles, dead letters, a restart) twice — into DuckDB and into Cassandra — and every read
must agree. Then: a step committed twice leaves the same data, projects never see each
other's rows, and the migration can run again. Cassandra is started from the dev stack on
free ports with a temporary data dir and the shared artifact cache; missing prerequisites
skip here and fail under CI.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.devstack import Ports
from storage.cassandra_store import CassandraStore
from storage.duckdb_store import DuckDBStore
from storage.local_log import LocalEventLog
from storage.ports import Enrichment, SessionQuery, StoredEvents, WriteBatch
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter, LogRecord, encode_record
from stream.embedded import EmbeddedRunner
from stream.operators.dedupe import dedupe_key
from stream.operators.enrich import Enricher
from stream.operators.sessionize import SessionRow
from tests.integration.services import free_ports, running

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MIN = 60_000
T0 = 1_760_000_000_000
NAMES = ["App Launch", "Search", "Add to Cart", "Purchase", "App Close", "Product View"]
START = T0 - T0 % 86_400_000 - 5 * 60 * MIN  # 19:00 UTC: sessions cross midnight
EVERYTHING = SessionQuery(start=0, end=T0 * 2)


@pytest.fixture(scope="module")
def cassandra_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    cql, storage = free_ports(2)
    started = time.monotonic()
    with running(tmp_path_factory.mktemp("cassandra"),
                 Ports(cassandra=cql, cassandra_storage=storage), ("cassandra",)):
        print(f"cassandra up in {time.monotonic() - started:.1f} s")  # noqa: T201 — timing note
        yield cql


@pytest.fixture
def new_store(cassandra_port: int) -> Iterator[Callable[[], CassandraStore]]:
    """Stores on a fresh keyspace per test (random name instead of truncating)."""
    keyspace = f"cep_{uuid.uuid4().hex[:12]}"
    opened: list[CassandraStore] = []

    def make() -> CassandraStore:
        store = CassandraStore(port=cassandra_port, keyspace=keyspace)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class Pipeline:
    """A log, a store and the real embedded runner over them; reopenable like a restart."""

    def __init__(self, root: Path, make_store: Callable[[], Any]) -> None:
        self.root, self.make_store = root, make_store
        self.open()

    def open(self) -> None:
        self.log = LocalEventLog(self.root / "log", fsync=False)
        self.store = self.make_store()
        self.runner = EmbeddedRunner(self.log, self.store, Enricher(None, None))

    def close(self) -> None:
        self.runner.stop(drain=False)
        self.log.close()
        self.store.close()

    def send(self, record: LogRecord) -> None:
        self.log.append_sync(encode_record(record), record.items)


def random_records(seed: int, n: int = 400) -> list[LogRecord]:
    """Events of 6 devices over 10 hours (a day boundary included), mostly in order, with
    late arrivals, repeated insert ids, logins, profiles, dead letters and a replay."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        device = f"D{rng.randrange(6)}"
        user = f"U{device}" if rng.random() < 0.1 else None
        events.append(Event(project="p", insert_id=f"e{i}", event_name=rng.choice(NAMES),
                            category="c", time=START + int(rng.uniform(0, 600) * MIN),
                            ingest_time=T0, device_id=device, distinct_user_id=user,
                            url=f"/p{rng.randrange(5)}",
                            app_version=rng.choice(["1.0", "2.0", None])))
    events.sort(key=lambda e: e.time)
    for _ in range(n // 5):
        i, j = rng.randrange(n), rng.randrange(n)
        events[i], events[j] = events[j], events[i]
    events += [events[rng.randrange(n)] for _ in range(n // 20)]
    records = []
    i = 0
    while i < len(events):
        size = rng.randint(1, 60)
        records.append(LogRecord(events=events[i:i + size]))
        i += size
    records.insert(2, LogRecord(profiles=[
        Profile(project="p", distinct_user_id="UD1", ingest_time=T0,
                traits={"city": "Berlin", "lat": 52.5, "latitude": 53.0, "vip": True},
                device_id="D1"),
        Profile(project="p", distinct_user_id="UD2", ingest_time=T0, traits={"os": "iOS"}),
    ]))
    records.insert(4, LogRecord(dead=[
        DeadLetter(project="p", kind="event", index=k, reason="bad time", payload=b"{}",
                   received_at=T0) for k in range(3)
    ]))
    records.insert(7, LogRecord(replayed=[("p", 2)]))
    return records


def snapshot(store: Any, project: str = "p") -> dict[str, Any]:
    """Everything the read ports answer for ``project``."""
    sessions = store.scan_sessions(project, EVERYTHING)
    ids = sessions.column("session_id").to_pylist()
    return {
        "schema": sessions.schema,
        "sessions": sessions.to_pylist(),
        "one": [store.session(project, sid).to_pylist() for sid in ids],
        "events": {sid: store.session_events(project, sid).to_pylist() for sid in ids},
        "events_schema": [store.session_events(project, sid).schema for sid in ids[:1]],
        "dead": store.dead_letters(project, None, 100, 0).to_pylist(),
        "dead_open": store.dead_letters(project, "open", 1, 0).to_pylist(),
        "filtered": [store.scan_sessions(project, q).to_pylist() for q in (
            SessionQuery(start=0, end=T0 * 2, city="Berlin"),
            SessionQuery(start=0, end=T0 * 2, os="iOS"),
            SessionQuery(start=0, end=T0 * 2, user_id="UD1", converted=True),
            SessionQuery(start=0, end=T0 * 2, device_id="D3", app_version="2.0"),
            SessionQuery(start=START + 240 * MIN, end=START + 360 * MIN),  # over midnight
        )],
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_embedded_runner_gives_the_same_answers_on_cassandra_as_on_duckdb(
        tmp_path: Path, new_store: Callable[[], CassandraStore], seed: int) -> None:
    records = random_records(seed)
    duck = Pipeline(tmp_path / "duck", lambda: DuckDBStore(tmp_path / "db.duckdb"))
    cass = Pipeline(tmp_path / "cass", new_store)
    rng = random.Random(seed)
    for n, record in enumerate(records):
        for p in (duck, cass):
            p.send(record)
        if rng.random() < 0.5:
            for p in (duck, cass):
                p.runner.run_until_idle()
        if n == len(records) // 2:  # a restart: state reloads from each store
            for p in (duck, cass):
                p.runner.run_until_idle()
                p.close()
                p.open()
    for p in (duck, cass):
        p.runner.run_until_idle()
    want, got = snapshot(duck.store), snapshot(cass.store)
    assert len(want["sessions"]) > 20
    assert any(r["resolved_user"] == "UD1" for r in want["sessions"]), "ties exercised"
    assert any(r["r_city"] == "Berlin" for r in want["sessions"]), "profiles exercised"
    for key in want:
        assert got[key] == want[key], key
    assignments = {e["insert_id"]: e["session_id"]
                   for evs in got["events"].values() for e in evs}
    assert assignments == dict(duck.store.cursor().execute(
        "SELECT insert_id, session_id FROM events WHERE project = 'p'").fetchall())
    assert cass.store.checkpoint() == duck.store.checkpoint()
    assert sorted(cass.store.dedupe_keys().tolist()) == sorted(duck.store.dedupe_keys().tolist())
    duck.close()
    cass.close()


def _batch(project: str, offset: int) -> WriteBatch:
    events = [Event(project=project, insert_id=f"i{k}", event_name="Search", category="c",
                    time=T0 + k * MIN, ingest_time=T0, device_id="D1", url=f"/u{k}")
              for k in range(5)]
    row = SessionRow(session_id="s1", project=project, session_key="d:D1", producer=False,
                     start_time=T0, end_time=T0 + 4 * MIN, last_insert_id="i4", events=5,
                     device_id="D1", first_event="Search", last_event="Search")
    gone = SessionRow(session_id="s0", project=project, session_key="d:D1", producer=False,
                      start_time=T0 - 60 * MIN, end_time=T0 - 60 * MIN, last_insert_id="x",
                      events=1, device_id="D1")
    return WriteBatch(
        next_offset=offset,
        events=StoredEvents(events=events, session_ids=["s1"] * 5,
                            session_keys=["d:D1"] * 5,
                            enrichments=[Enrichment(city="Paris")] * 5,
                            dedupe_keys=[dedupe_key(project, e.insert_id) for e in events]),
        sessions=[(row, Enrichment(city="Paris", lat=48.8)), (gone, Enrichment())],
        ties=[(project, "D1", "alice", T0)],
        traits=[(project, "alice", "country", "FR", T0), (project, "alice", "age", 30, T0)],
        dead=[DeadLetter(project=project, kind="event", index=0, reason="r", payload=b"x",
                         received_at=T0)],
    )


def _followup(project: str, offset: int) -> WriteBatch:
    """A later step: a session deleted, an event moved, a late tie that must not win."""
    moved = SessionRow(session_id="s2", project=project, session_key="d:D1", producer=False,
                       start_time=T0 + 4 * MIN, end_time=T0 + 4 * MIN, last_insert_id="i4",
                       events=1, device_id="D1")
    return WriteBatch(next_offset=offset, sessions=[(moved, Enrichment())],
                      deleted_sessions=[(project, "s0")], moved_events=[(project, "i4", "s2")],
                      ties=[(project, "D1", "bob", T0 - 1)], settled_dead=[(project, 1)])


def test_replaying_a_step_leaves_the_same_data_as_duckdb(
        tmp_path: Path, new_store: Callable[[], CassandraStore]) -> None:
    store, duck = new_store(), DuckDBStore(tmp_path / "db.duckdb")
    for target in (store, duck):
        target.commit(_batch("p", 10))
    once = snapshot(store)
    store.commit(_batch("p", 10))
    assert snapshot(store) == once
    for target in (store, duck):
        target.commit(_followup("p", 11))
    after = snapshot(store)
    store.commit(_followup("p", 11))
    assert snapshot(store) == after
    want = snapshot(duck)
    for key in ("sessions", "one", "events", "schema", "events_schema", "filtered"):
        assert after[key] == want[key], key
    # settled_at is the wall clock at commit; compare the rest.
    assert [d["status"] for d in after["dead"]] == ["replayed"]
    assert [d["status"] for d in want["dead"]] == ["replayed"]
    assert {s["session_id"]: s["resolved_user"] for s in after["sessions"]} == {"s1": "alice",
                                                                                 "s2": "alice"}
    assert store.checkpoint() == 11
    assert store.existing_insert_ids([("p", "i1"), ("p", "nope")]) == {("p", "i1")}
    duck.close()


def test_projects_never_see_each_others_rows(new_store: Callable[[], CassandraStore]) -> None:
    store = new_store()
    store.commit(_batch("a", 1))
    assert store.scan_sessions("b", EVERYTHING).num_rows == 0
    assert store.session("b", "s1").num_rows == 0
    assert store.session_events("b", "s1").num_rows == 0
    assert store.dead_letters("b", None, 10, 0).num_rows == 0
    assert store.existing_insert_ids([("b", "i1")]) == set()
    assert store.last_sessions([("b", "d:D1")]) == []
    assert store.sessions_overlapping([("b", "d:D1", 0, T0 * 2)]) == []
    assert store.events_in_ranges([("b", "d:D1", T0, T0 + 10 * MIN)]) == []
    store.commit(_batch("b", 2))  # the same ids in another project are other rows
    assert store.scan_sessions("a", EVERYTHING).column("session_id").to_pylist() == ["s0", "s1"]
    assert len(store.events_in_ranges([("a", "d:D1", T0, T0 + 10 * MIN)])) == 5
    assert [r.session_id for r in store.last_sessions([("a", "d:D1")])] == ["s1"]


def test_migration_is_versioned_and_idempotent(new_store: Callable[[], CassandraStore]) -> None:
    first = new_store()
    first.commit(_batch("p", 3))
    second = new_store()  # runs the migration again on the same keyspace
    assert second.checkpoint() == 3
    assert second.scan_sessions("p", EVERYTHING).num_rows == 2


def test_commit_throughput(new_store: Callable[[], CassandraStore]) -> None:
    """Not a gate: prints events/s written by ``commit`` (three event tables each)."""
    store = new_store()
    n = 5_000
    events = [Event(project="p", insert_id=f"t{k}", event_name="Search", category="c",
                    time=T0 + k * 1000, ingest_time=T0, device_id=f"D{k % 50}")
              for k in range(n)]
    batch = WriteBatch(next_offset=1, events=StoredEvents(
        events=events, session_ids=["s"] * n, session_keys=[f"d:D{k % 50}" for k in range(n)],
        enrichments=[Enrichment()] * n,
        dedupe_keys=[dedupe_key("p", e.insert_id) for e in events]))
    started = time.perf_counter()
    store.commit(batch)
    elapsed = time.perf_counter() - started
    print(f"commit: {n / elapsed:.0f} events/s")  # noqa: T201 — timing note
    assert len(store.dedupe_keys()) == n
