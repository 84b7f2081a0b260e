"""The data lifecycle against real Cassandra and Redis (issue 10).

Cassandra: the hot tables' time to live follows the setting (and only theirs), a moved
event keeps what its row has left; and one user's records — found without a user index —
are the same as DuckDB finds, for every user of a random stream, and erasing users leaves
both stores answering alike. Redis: live keys live ``redis_ttl_seconds``; forgetting a
user's identities leaves nothing of theirs and everything of the others'.

Services come from the dev stack on free ports; missing prerequisites skip here and fail
under CI.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from clients.devstack import Ports
from storage.cassandra_schema import HOT_TABLES
from storage.cassandra_store import CassandraStore
from storage.cassandra_user_data import CassandraUserData
from storage.duckdb_store import DuckDBStore
from storage.duckdb_user_data import DuckDBUserData
from storage.ports import Enrichment, StoredEvents, WriteBatch
from storage.redis_live import RedisLiveStore, redis_key
from stream.contract.event import Event
from stream.contract.records import LogRecord
from tests.integration.services import free_ports, running
from tests.integration.test_cassandra_store import (
    EVERYTHING,
    MIN,
    START,
    T0,
    Pipeline,
    random_records,
    snapshot,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cassandra_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    cql, storage = free_ports(2)
    with running(tmp_path_factory.mktemp("cassandra"),
                 Ports(cassandra=cql, cassandra_storage=storage), ("cassandra",)):
        yield cql


@pytest.fixture
def keyspace() -> str:
    return f"cep_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def new_store(cassandra_port: int, keyspace: str
              ) -> Iterator[Callable[..., CassandraStore]]:
    opened: list[CassandraStore] = []

    def make(**kw: Any) -> CassandraStore:
        store = CassandraStore(port=cassandra_port, keyspace=keyspace, **kw)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def ttls(store: CassandraStore) -> dict[str, int]:
    return {name: ttl for name, ttl in store._one(
        "SELECT table_name, default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = ?", [store.keyspace])}


def events(n: int, device: str = "D1", user: str | None = None) -> list[Event]:
    return [Event(project="p", insert_id=f"i{k}", event_name="Search", category="c",
                  time=T0 + k * MIN, ingest_time=T0, device_id=device, distinct_user_id=user)
            for k in range(n)]


def step(evs: list[Event], offset: int, session: str = "s1") -> WriteBatch:
    return WriteBatch(next_offset=offset, events=StoredEvents(
        events=evs, session_ids=[session] * len(evs), session_keys=["d:D1"] * len(evs),
        enrichments=[Enrichment()] * len(evs), dedupe_keys=list(range(len(evs)))))


def test_the_hot_tables_time_to_live_follows_the_setting(
        new_store: Callable[..., CassandraStore]) -> None:
    store = new_store(ttl_days=3)
    table = ttls(store)
    assert {t: table[t] for t in HOT_TABLES} == dict.fromkeys(HOT_TABLES, 3 * 86_400)
    assert {t: table[t] for t in ("identities", "user_devices", "profile_traits",
                                  "dead_letters", "meta")} == dict.fromkeys(
        ("identities", "user_devices", "profile_traits", "dead_letters", "meta"), 0)
    store.commit(step(events(2), 1))
    (left,) = store._one("SELECT TTL(event_name) FROM events_by_id WHERE project = ? "
                         "AND insert_id = ?", ["p", "i0"])[0]
    assert 3 * 86_400 - 60 < left <= 3 * 86_400
    job = new_store()  # the PyFlink job's sinks leave the setting alone
    assert ttls(job)["events_by_name"] == 3 * 86_400
    new_store(ttl_days=0)
    assert set(ttls(store)[t] for t in HOT_TABLES) == {0}
    with pytest.raises(ValueError, match="cassandra_ttl_days"):
        new_store(ttl_days=100_000)


def test_a_moved_event_keeps_what_its_row_has_left(
        new_store: Callable[..., CassandraStore]) -> None:
    store = new_store(ttl_days=2)
    store.commit(step(events(1), 1))
    time.sleep(1.1)
    store.commit(WriteBatch(next_offset=2, moved_events=[("p", "i0", "s2")]))
    (row,) = store._one("SELECT session_id, TTL(session_id), TTL(event_name) FROM "
                        "events_by_id WHERE project = ? AND insert_id = ?", ["p", "i0"])
    assert row[0] == "s2"
    assert abs(row[1] - row[2]) <= 1, "the moved cell expires with its row"
    store.commit(step(events(1, device="D2"), 3))
    new_store(ttl_days=0)
    store.commit(WriteBatch(next_offset=4, moved_events=[("p", "i0", "s3")]))
    (row,) = store._one("SELECT TTL(session_id) FROM events_by_id WHERE project = ? "
                        "AND insert_id = ?", ["p", "i0"])
    assert row[0] is not None, "a row written with a TTL keeps expiring"


def lifecycle_records() -> list[LogRecord]:
    """The random stream of the store conformance test, plus a user ``UX`` who sends from a
    server, from a producer-keyed session, from an anonymous device she later logs in on,
    and from a device another user has too."""
    records = random_records(3)

    def e(iid: str, minute: int, device: str | None, user: str | None,
          session: str | None = None) -> Event:
        return Event(project="p", insert_id=iid, event_name="Search", category="c",
                     time=START + minute * MIN, ingest_time=T0, device_id=device,
                     distinct_user_id=user, session_id=session, url="/x")

    records.append(LogRecord(events=[
        e("x1", 10, None, "UX"), e("x2", 11, None, "UX"),
        e("x3", 20, "D9", "UX", session="ps-1"), e("x4", 21, "D9", "UX", session="ps-1"),
        e("x5", 30, "D7", None), e("x6", 31, "D7", None), e("x7", 32, "D7", "UX"),
        e("x8", 700, "D1", "UX"),  # D1 is UD1's too
    ]))
    return records


def records_of(store: Any, user: str) -> dict[str, Any]:
    r = store.user_records("p", user)
    return {"devices": r.devices, "insert_ids": sorted(r.insert_ids),
            "sessions": sorted(r.session_ids), "traits": r.traits,
            "events": sorted(r.events.to_pylist(), key=lambda x: x["insert_id"]),
            "session_rows": sorted(r.sessions.to_pylist(), key=lambda x: x["session_id"])}


def test_one_users_records_are_the_same_on_cassandra_as_on_duckdb_and_so_is_their_erasure(
        tmp_path: Path, new_store: Callable[..., CassandraStore]) -> None:
    duck = Pipeline(tmp_path / "duck", lambda: DuckDBStore(tmp_path / "db.duckdb"))
    cass = Pipeline(tmp_path / "cass", new_store)
    for record in lifecycle_records():
        for p in (duck, cass):
            p.send(record)
    for p in (duck, cass):
        p.runner.run_until_idle()
    d, c = DuckDBUserData(duck.store), CassandraUserData(cass.store)
    everyone = sorted(set(duck.store.scan_sessions("p", EVERYTHING).column(
        "resolved_user").to_pylist()))
    assert {"UX", "UD1"} <= set(everyone)
    for user in everyone:
        assert records_of(c, user) == records_of(d, user), user
    ux = records_of(d, "UX")
    assert ux["insert_ids"] == ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]
    assert ux["devices"] == ["D7", "D9"], "D1's latest tie is still UD1's"
    for user in ("UX", "UD1"):
        for store in (d, c):
            store.erase_user(store.user_records("p", user))
    want, got = snapshot(duck.store), snapshot(cass.store)
    for key in want:
        assert got[key] == want[key], key
    assert not {"UX", "UD1"} & {s["resolved_user"] for s in got["sessions"]}
    for store in (d, c):
        assert records_of(store, "UX")["insert_ids"] == []
    duck.close()
    cass.close()


# -- Redis ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    (port,) = free_ports(1)
    with running(tmp_path_factory.mktemp("redis"), Ports(redis=port), ("redis",)):
        yield f"redis://127.0.0.1:{port}"


def live_batch(project: str, rows: list[tuple[str, str | None, str, str]]) -> StoredEvents:
    """``(insert id, user, device, session)`` rows."""
    out = StoredEvents()
    for k, (iid, user, device, session) in enumerate(rows):
        out.events.append(Event(project=project, insert_id=iid, event_name="Search",
                                category="c", time=T0 + k * 1000, ingest_time=T0,
                                distinct_user_id=user, device_id=device))
        out.session_ids.append(session)
        out.session_keys.append(f"d:{device}")
        out.enrichments.append(Enrichment())
        out.dedupe_keys.append(k)
    return out


def test_live_keys_expire_after_the_setting_and_a_forgotten_user_leaves_nothing(
        redis_url: str) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    store = RedisLiveStore(redis_url, ttl_ms=5_000)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        store.publish(live_batch(project, [("a1", None, "phone", "s1"),
                                           ("a2", "ann", "phone", "s1"),
                                           ("b1", "bob", "bobs", "s2")]))
        for key in (f"cep:{{{project}}}:session:s1", redis_key((project, "session", "s1")),
                    redis_key((project, "user", "ann"))):
            assert 0 < client.pttl(key) <= 5_000, key
        assert store.forget(project, {"ann", "phone"}, {"s1"}) == 2
        assert [e.insert_id for e in store.read((project, "all", ""))] == ["b1"]
        assert store.read((project, "user", "ann")) == []
        assert store.read((project, "user", "phone")) == []
        assert not client.exists(f"cep:{{{project}}}:session:s1")
        assert [s.session_id for s in store.open_sessions(project, T0 + 60_000)] == ["s2"]
        assert [e.insert_id for e in store.read((project, "user", "bob"))] == ["b1"]
    finally:
        client.close()
        store.close()


# -- Neo4j ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def neo4j_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bolt, http = free_ports(2)
    with running(tmp_path_factory.mktemp("neo4j"), Ports(neo4j_bolt=bolt, neo4j_http=http),
                 ("neo4j",)):
        yield f"bolt://127.0.0.1:{bolt}"


def test_forgetting_sessions_moves_the_transition_counts_and_drops_their_users(
        neo4j_uri: str) -> None:
    import random

    from graph.neo4j_graph import Neo4jJourneyGraph
    from graph.networkx_graph import NetworkxJourneyGraph
    from tests.integration.test_neo4j_graph import assert_same, random_changes

    project = f"p{uuid.uuid4().hex[:10]}"
    neo, nx = Neo4jJourneyGraph(neo4j_uri), NetworkxJourneyGraph()
    try:
        for i, changes in enumerate(random_changes(random.Random(7), [project], 40)):
            nx.apply(changes)
            neo.apply(changes, offset=i)
        sessions = sorted(sid for sid, _ in nx.sequences(project))
        gone = sessions[::2]
        keys = sorted({f"u{sid[1:]}" for sid in gone})  # random_changes' session keys
        for graph in (neo, nx):
            graph.forget(project, gone, keys)
        assert_same(neo, nx, project)
        assert sorted(sid for sid, _ in nx.sequences(project)) == sessions[1::2]
        users, _, _ = neo._driver.execute_query(
            "MATCH (u:User {project: $p}) RETURN u.id AS id", p=project)
        held = {r["id"] for r in users}
        assert not held & set(keys), "the forgotten sessions' users are gone"
        assert {f"u{sid[1:]}" for sid in sessions[1::2]} <= held, "the others' stay"
    finally:
        neo.close()
