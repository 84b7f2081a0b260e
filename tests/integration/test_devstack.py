"""`cep devstack`: real servers on free loopback ports, each answering a real client round
trip, then stopped by pid.

The stack gets its own temporary data dir and free ports, so it can run beside a dev stack
already up on the default ports; the Maven artifact cache is the shared one. Missing
prerequisites (a supported JDK, Maven, redis-server) skip the module on a developer's
machine but fail it under CI.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.devstack import DevStack, DevStackError, Ports, ServiceUnavailable
from clients.devstack.process import is_alive

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    kafka, controller, cql, storage, bolt, http, redis = _free_ports(7)
    ports = Ports(kafka=kafka, kafka_controller=controller, cassandra=cql,
                  cassandra_storage=storage, neo4j_bolt=bolt, neo4j_http=http, redis=redis)
    cache = Path(os.environ.get("CEP_DEVSTACK_CACHE") or REPO / ".cache" / "devstack")
    dev = DevStack(tmp_path_factory.mktemp("devstack"), cache, ports=ports)
    try:
        asyncio.run(dev.up())
    except ServiceUnavailable as exc:
        asyncio.run(dev.down())
        if os.environ.get("CI") == "true":
            pytest.fail(f"dev stack prerequisites are missing under CI:\n{exc}")
        pytest.skip(f"dev stack prerequisites are missing:\n{exc}")
    except DevStackError:
        asyncio.run(dev.down())
        raise
    yield dev
    asyncio.run(dev.down())  # a no-op once test_down_stops_every_process has run


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def test_status_reports_every_service_up(stack: DevStack) -> None:
    reports = stack.status()
    assert [(r.name, r.state) for r in reports] == [
        ("kafka", "up"), ("cassandra", "up"), ("neo4j", "up"), ("redis", "up"),
    ]
    assert all(r.pid for r in reports)


async def test_kafka_produce_and_consume(stack: DevStack) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    bootstrap = f"127.0.0.1:{stack.ports.kafka}"
    topic = _name("devstack")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert topic in await admin.list_topics()
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b'{"event_name": "App Launch"}', key=b"u1")
    finally:
        await producer.stop()
    assert sent.offset == 0

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=_name("group"),
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=60)
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"u1", b'{"event_name": "App Launch"}')


def test_cassandra_prepared_insert_and_select(stack: DevStack) -> None:
    from cassandra.cluster import Cluster
    from cassandra.policies import RoundRobinPolicy

    keyspace = _name("devstack")
    cluster = Cluster(["127.0.0.1"], port=stack.ports.cassandra,
                      load_balancing_policy=RoundRobinPolicy())
    try:
        session = cluster.connect()
        assert session.execute("SELECT release_version FROM system.local").one()[0] \
            .startswith("5.0.")
        session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {keyspace}.events "
                        "(user_id text, time bigint, name text, PRIMARY KEY (user_id, time))")
        insert = session.prepare(
            f"INSERT INTO {keyspace}.events (user_id, time, name) VALUES (?, ?, ?)")
        session.execute(insert, ("u1", 1618716477000, "Add to Cart"))
        select = session.prepare(f"SELECT time, name FROM {keyspace}.events WHERE user_id = ?")
        rows = list(session.execute(select, ("u1",)))
        session.execute(f"DROP KEYSPACE {keyspace}")
    finally:
        cluster.shutdown()
    assert [(r.time, r.name) for r in rows] == [(1618716477000, "Add to Cart")]


async def test_neo4j_parameterized_create_and_match(stack: DevStack) -> None:
    from neo4j import AsyncGraphDatabase

    page = _name("page")
    async with AsyncGraphDatabase.driver(f"bolt://127.0.0.1:{stack.ports.neo4j_bolt}",
                                         auth=None) as driver:
        await driver.execute_query("CREATE (:Page {url: $url, visits: $visits})",
                                   url=page, visits=3)
        records, _, _ = await driver.execute_query(
            "MATCH (p:Page {url: $url}) RETURN p.visits AS visits", url=page)
        await driver.execute_query("MATCH (p:Page {url: $url}) DELETE p", url=page)
    assert [r["visits"] for r in records] == [3]


async def test_redis_stream_add_and_read(stack: DevStack) -> None:
    from redis.asyncio import Redis

    stream = _name("devstack")
    client = Redis(host="127.0.0.1", port=stack.ports.redis)
    try:
        entry_id = await client.xadd(stream, {"event_name": "App Launch"})
        read = await client.xread({stream: "0-0"}, count=10)
        await client.delete(stream)
    finally:
        await client.aclose()
    assert read == [[stream.encode(), [(entry_id, {b"event_name": b"App Launch"})]]]


async def test_up_again_leaves_running_services_alone(stack: DevStack) -> None:
    before = stack.pids()
    reports = await stack.up()
    assert {r.name: (r.state, r.pid) for r in reports} == {
        name: ("running", pid) for name, pid in before.items()
    }


async def test_down_stops_every_process(stack: DevStack) -> None:
    pids = stack.pids()
    assert set(pids) == {"kafka", "cassandra", "neo4j", "redis"}
    reports = await stack.down()
    assert {r.name: r.state for r in reports} == dict.fromkeys(pids, "stopped")
    assert [name for name, pid in pids.items() if is_alive(pid)] == []
    assert [r.state for r in stack.status()] == ["down"] * 4
    assert not any(s.pid_file.exists() for s in stack.services())
