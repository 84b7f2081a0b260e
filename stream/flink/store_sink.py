"""The ``stores`` sink: each flushed batch into Cassandra, the Neo4j journey graph and the
Redis live views, as the embedded runner commits the same events.

Settings come from the environment where the job is started (the factory is pickled with
them): ``CEP_CASSANDRA_HOSTS`` (comma list, default 127.0.0.1), ``CEP_CASSANDRA_PORT``
(9042), ``CEP_CASSANDRA_KEYSPACE`` (cep), ``CEP_REDIS_URL`` (redis://127.0.0.1:6379/0),
``CEP_NEO4J_URI`` (bolt://127.0.0.1:7687), ``CEP_NEO4J_USER`` / ``CEP_NEO4J_PASSWORD``
(optional: no auth when unset).

Writes are upserts with explicit positions (``stream.flink.translate``), so writing a batch
again after a restore changes nothing in Cassandra or Neo4j; the live streams are
at-least-once (a replayed event is published again, as the embedded runner's would be
after a crash between commit and publish).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream.flink.translate import translate

log = logging.getLogger("cep.flink.stores")
# Graph batches of different subtasks touch the same EventType nodes and LEADS_TO edges in
# different orders and deadlock in Neo4j (retried, after back-offs of a second and more).
# The subtasks of one task manager share this interpreter (thread mode): one graph write at
# a time among them.
_GRAPH_WRITES = threading.Lock()


@dataclass(frozen=True, slots=True)
class StoreSettings:
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    keyspace: str = "cep"
    redis_url: str = "redis://127.0.0.1:6379/0"
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str | None = None
    neo4j_password: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        env = os.environ if env is None else env
        hosts = tuple(h.strip() for h in env.get("CEP_CASSANDRA_HOSTS", "127.0.0.1").split(",")
                      if h.strip())
        return cls(hosts, int(env.get("CEP_CASSANDRA_PORT", "9042")),
                   env.get("CEP_CASSANDRA_KEYSPACE", "cep"),
                   env.get("CEP_REDIS_URL", "redis://127.0.0.1:6379/0"),
                   env.get("CEP_NEO4J_URI", "bolt://127.0.0.1:7687"),
                   env.get("CEP_NEO4J_USER") or None, env.get("CEP_NEO4J_PASSWORD") or None)


def prepare_stores(settings: StoreSettings) -> None:
    """Create the keyspace, tables, constraints and indexes once, from the job's client,
    before any subtask opens a sink. Parallel subtasks racing to create the same new
    Cassandra table can each create it under another table id (Cassandra before 5.1 has
    no transactional schema), and rows written through the losing id are not read back."""
    from graph.neo4j_graph import Neo4jJourneyGraph
    from storage.cassandra_store import CassandraStore

    CassandraStore(list(settings.cassandra_hosts), settings.cassandra_port,
                   settings.keyspace).close()
    auth = (settings.neo4j_user, settings.neo4j_password or "") if settings.neo4j_user else None
    Neo4jJourneyGraph(settings.neo4j_uri, auth).close()


class StoresSink:
    """Cassandra first (the answers' source of truth), then the graph, then live views."""

    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings

    def open(self, subtask: int, attempt: int) -> None:
        from graph.neo4j_graph import Neo4jJourneyGraph
        from storage.cassandra_store import CassandraStore
        from storage.redis_live import RedisLiveStore

        s = self._settings
        self._cassandra = CassandraStore(list(s.cassandra_hosts), s.cassandra_port, s.keyspace)
        auth = (s.neo4j_user, s.neo4j_password or "") if s.neo4j_user else None
        self._graph = Neo4jJourneyGraph(s.neo4j_uri, auth)
        self._live = RedisLiveStore(s.redis_url)
        self._subtask = subtask

    def write(self, outputs: Sequence[Any]) -> None:
        from storage.cassandra_store import StreamWrite

        started = time.perf_counter()
        out = translate(outputs)
        self._cassandra.write_stream(StreamWrite(out.batch, out.stale_sessions, out.dead_ids))
        wrote = time.perf_counter()
        if out.graph:
            with _GRAPH_WRITES:
                self._graph.apply(out.graph)
        graphed = time.perf_counter()
        if out.live:
            self._live.publish(out.live)
        for late in out.too_late:
            log.warning("event %s/%s too late to sessionize, not stored: %s",
                        late.event.project, late.event.insert_id, late.reason)
        log.info("subtask %d wrote %d outputs (%d events, %d sessions): cassandra %.0f ms, "
                 "neo4j %.0f ms, redis %.0f ms", self._subtask, len(outputs),
                 len(out.batch.events), len(out.batch.sessions), (wrote - started) * 1000,
                 (graphed - wrote) * 1000, (time.perf_counter() - graphed) * 1000)

    def close(self) -> None:
        for name in ("_live", "_graph", "_cassandra"):
            client = getattr(self, name, None)
            if client is not None:
                client.close()


class StoresSinkFactory:
    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings

    def __call__(self) -> StoresSink:
        return StoresSink(self._settings)
