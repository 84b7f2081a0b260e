"""`cep devstack`: real servers on free loopback ports, each answering a real client round
trip, then stopped by pid; and the process handling (failed starts, timeouts, SIGKILL, pid
reuse, busy ports) against a scripted stand-in server.

The real stack gets its own temporary data dir and free ports, so it can run beside a dev
stack already up on the default ports; the Maven artifact cache is the shared one. Missing
prerequisites (a supported JDK, Maven, redis-server) skip those tests on a developer's
machine but fail them under CI.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from clients.devstack import DevStack, DevStackError, Endpoint, Ports
from clients.devstack.process import is_alive, write_pid
from clients.devstack.services import Service
from tests.integration.services import free_ports, running

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    kafka, controller, cql, storage, bolt, http, redis = free_ports(7)
    ports = Ports(kafka=kafka, kafka_controller=controller, cassandra=cql,
                  cassandra_storage=storage, neo4j_bolt=bolt, neo4j_http=http, redis=redis)
    with running(tmp_path_factory.mktemp("devstack"), ports) as dev:
        yield dev


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.mark.slow
def test_status_reports_every_service_up(stack: DevStack) -> None:
    reports = stack.status()
    assert [(r.name, r.state) for r in reports] == [
        ("kafka", "up"), ("cassandra", "up"), ("neo4j", "up"), ("redis", "up"),
    ]
    assert all(r.pid for r in reports)


@pytest.mark.slow
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


@pytest.mark.slow
def test_cassandra_prepared_insert_and_select(stack: DevStack) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    keyspace = _name("devstack")
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
    cluster = Cluster(["127.0.0.1"], port=stack.ports.cassandra,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
async def test_up_again_leaves_running_services_alone(stack: DevStack) -> None:
    before = stack.pids()
    reports = await stack.up()
    assert {r.name: (r.state, r.pid) for r in reports} == {
        name: ("running", pid) for name, pid in before.items()
    }


@pytest.mark.slow
async def test_down_stops_every_process(stack: DevStack) -> None:
    pids = stack.pids()
    assert set(pids) == {"kafka", "cassandra", "neo4j", "redis"}
    reports = await stack.down()
    assert {r.name: r.state for r in reports} == dict.fromkeys(pids, "stopped")
    assert [name for name, pid in pids.items() if is_alive(pid)] == []
    assert [r.state for r in stack.status()] == ["down"] * 4
    assert not any(s.pid_file.exists() for s in stack.services())


# -- process handling, against a scripted stand-in ------------------------------------------


class Scripted(Service):
    """A stand-in server: ``/bin/sh -c SCRIPT HOME``; it is ready once HOME/ready exists."""

    name = "scripted"
    ready_timeout_s = 10.0
    stop_timeout_s = 1.0
    # No `exec`: the shell must stay, so that its command line still names HOME.
    script: ClassVar[str] = 'echo starting; touch "$0/ready"; while :; do sleep 0.2; done'

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("test", self.ports.redis, f"scripted://127.0.0.1:{self.ports.redis}")]

    async def prepare(self) -> list[str]:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "ready").unlink(missing_ok=True)
        return ["/bin/sh", "-c", self.script, str(self.home)]

    async def probe(self) -> None:
        if not (self.home / "ready").exists():
            raise ConnectionError("not ready")


class Crashing(Scripted):
    script = 'for i in $(seq 1 60); do echo "line $i"; done; exit 3'


class NeverReady(Scripted):
    ready_timeout_s = 1.5
    script = "echo waiting; while :; do sleep 0.2; done"


class IgnoresSigterm(Scripted):
    script = 'trap "" TERM; touch "$0/ready"; while :; do sleep 0.1; done'


def _scripted_stack(tmp_path: Path, service: type[Service]) -> DevStack:
    (port,) = free_ports(1)
    return DevStack(tmp_path / "data", tmp_path / "cache", ports=Ports(redis=port),
                    service_types={"scripted": service})


async def test_up_is_idempotent_and_down_stops_by_pid(tmp_path: Path) -> None:
    stack = _scripted_stack(tmp_path, Scripted)
    first = await stack.up()
    again = await stack.up()
    assert [(r.state, r.pid) for r in again] == [("running", first[0].pid)]
    assert [r.state for r in await stack.down()] == ["stopped"]
    assert first[0].pid is not None
    assert not is_alive(first[0].pid)
    assert [r.state for r in await stack.down()] == ["down"]


async def test_failed_start_reports_the_last_40_log_lines(tmp_path: Path) -> None:
    stack = _scripted_stack(tmp_path, Crashing)
    with pytest.raises(DevStackError, match="exited before it answered") as failure:
        await stack.up()
    lines = [line for line in str(failure.value).splitlines() if line.startswith("line ")]
    assert lines == [f"line {i}" for i in range(21, 61)]
    assert not stack.services()[0].pid_file.exists()


async def test_unready_service_is_stopped_after_its_timeout(tmp_path: Path) -> None:
    stack = _scripted_stack(tmp_path, NeverReady)
    with pytest.raises(DevStackError, match="did not answer within 2 s") as failure:
        await stack.up()
    assert "waiting" in str(failure.value)
    assert stack.pids() == {}


async def test_down_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    stack = _scripted_stack(tmp_path, IgnoresSigterm)
    pid = (await stack.up())[0].pid
    assert [r.state for r in await stack.down()] == ["killed"]
    assert pid is not None
    assert not is_alive(pid)


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    stack = _scripted_stack(tmp_path, Scripted)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_pid(stack.services()[0].pid_file, stranger.pid)
        assert [r.state for r in stack.status()] == ["down"]
        assert [r.state for r in asyncio.run(stack.down())] == ["down"]
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_port_taken_by_someone_else_is_reported(tmp_path: Path) -> None:
    stack = _scripted_stack(tmp_path, Scripted)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.ports.redis))
        squatter.listen()
        with pytest.raises(DevStackError, match="already in use"):
            await stack.up()
    assert stack.pids() == {}
