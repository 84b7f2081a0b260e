"""The ``stores`` sink: each flushed batch into Cassandra, the Neo4j journey graph and the
Redis live views, as the embedded runner commits the same events.

Settings come from the environment where the job is started (the factory is pickled with
them): ``CEP_CASSANDRA_HOSTS`` (comma list, default 127.0.0.1), ``CEP_CASSANDRA_PORT``
(9042), ``CEP_CASSANDRA_KEYSPACE`` (cep), ``CEP_REDIS_URL`` (redis://127.0.0.1:6379/0),
``CEP_NEO4J_URI`` (bolt://127.0.0.1:7687), ``CEP_NEO4J_USER`` / ``CEP_NEO4J_PASSWORD``
(optional: no auth when unset), ``CEP_REDIS_TTL_SECONDS`` (7200: how long a live session's
keys outlive its last event). Cassandra's time to live is the keyspace's (the gateway sets
it: ``storage.cassandra_schema.set_hot_ttl``).

Writes are upserts with explicit positions (``stream.flink.translate``), so writing a batch
again after a restore changes nothing in Cassandra or Neo4j; the live streams are
at-least-once (a replayed event is published again, as the embedded runner's would be
after a crash between commit and publish).

``TooLate`` events — older than what the job's keyed state reaches, a backfill of history
for instance — are placed here against the sessions stored in Cassandra, after the rest of
their batch is written: ``stream.refold`` re-folds the range they can change (merging,
splitting or extending stored sessions, as the embedded runner does) and the result is
written like any other outputs. Sessions still held in the job's state (starting after the
event's ``horizon``) are left to the state. Replaying a placed event re-folds the same range
to the same sessions.

Each batch's writes are timed per store (``cassandra``, ``neo4j``, ``redis``) and added to
the Redis hash the gateway's ``GET /metrics`` reads (``stream.flink.write_metrics``), in one
round trip after the batch; a failure there is logged at debug and never fails the batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from storage.redis_firings import FiringRecord, publish_firings
from stream.contract.event import Event
from stream.flink.records import (
    CampaignFiring,
    EnrichedEvent,
    SessionDeleted,
    SessionUpsert,
    TooLate,
)
from stream.flink.rules import ProjectRules
from stream.flink.translate import translate
from stream.flink.write_metrics import FLUSH_TIMEOUT_S, StoreWriteTally
from stream.operators.enrich import Enrichment
from stream.operators.sessionize import Sessionizer, session_key
from stream.refold import StoredSessions, refold

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
    redis_ttl_ms: int = 2 * 60 * 60 * 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        env = os.environ if env is None else env
        hosts = tuple(h.strip() for h in env.get("CEP_CASSANDRA_HOSTS", "127.0.0.1").split(",")
                      if h.strip())
        return cls(hosts, int(env.get("CEP_CASSANDRA_PORT", "9042")),
                   env.get("CEP_CASSANDRA_KEYSPACE", "cep"),
                   env.get("CEP_REDIS_URL", "redis://127.0.0.1:6379/0"),
                   env.get("CEP_NEO4J_URI", "bolt://127.0.0.1:7687"),
                   env.get("CEP_NEO4J_USER") or None, env.get("CEP_NEO4J_PASSWORD") or None,
                   int(env.get("CEP_REDIS_TTL_SECONDS") or 7200) * 1000)


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


@dataclass(frozen=True, slots=True)
class Placement:
    """What placing too-late events needs: the job's session rules and enrichment."""

    rules: ProjectRules
    geo_paths: tuple[str, ...] = ()
    enrich: bool = True


def place_too_late(store: StoredSessions, late: Sequence[TooLate],
                   sessionizer: Callable[[str], Sessionizer],
                   enrich: Callable[[str | None, str | None], Enrichment]) -> list[Any]:
    """The outputs that place ``late`` events among the sessions ``store`` holds (in
    order: sessions merged away, events that moved, the late events, every re-folded
    session with its steps), for any sink to write like the job's own outputs."""
    groups: dict[tuple[str, str], list[Event]] = {}
    horizons: dict[tuple[str, str], int] = {}
    for t in late:
        gk = (t.event.project, session_key(t.event))
        groups.setdefault(gk, []).append(t.event)
        if t.horizon is not None:
            horizons[gk] = max(horizons.get(gk, t.horizon), t.horizon)
    out: list[Any] = []
    for r in refold(store, list(groups.items()), sessionizer, horizons):
        out += [SessionDeleted(r.project, row.session_id, r.key, row.start_time)
                for row in r.gone]
        out += [EnrichedEvent(e, sid, r.key, enrich(e.ip, e.user_agent), moved=True)
                for e, sid in r.moved()]
        out += [EnrichedEvent(e, r.assigned[e.insert_id], r.key, enrich(e.ip, e.user_agent))
                for e in r.late]
        starts = {row.session_id: row.start_time for row in r.stored}
        steps = r.steps()
        for row in r.rows:
            before = starts.get(row.session_id)
            out.append(SessionUpsert(
                row.snapshot(), enrich(row.ip, row.user_agent), True, steps[row.session_id],
                before if before is not None and before != row.start_time else None))
    return out


class StoresSink:
    """Cassandra first (the answers' source of truth), then the graph, then live views —
    with ``live=False`` only those of too-late events it places (the job publishes the
    others on their own branch, ``functions.PublishLive``)."""

    def __init__(self, settings: StoreSettings, placement: Placement | None = None,
                 live: bool = True) -> None:
        self._settings = settings
        self._publish_live = live
        self._placement = placement or Placement(ProjectRules({}, settings.redis_url),
                                                 enrich=False)

    def open(self, subtask: int, attempt: int) -> None:
        import redis

        from graph.neo4j_graph import Neo4jJourneyGraph
        from storage.cassandra_store import CassandraStore
        from storage.redis_live import RedisLiveStore
        from stream.operators.enrich import Enricher

        s = self._settings
        self._cassandra = CassandraStore(list(s.cassandra_hosts), s.cassandra_port, s.keyspace)
        auth = (s.neo4j_user, s.neo4j_password or "") if s.neo4j_user else None
        self._graph = Neo4jJourneyGraph(s.neo4j_uri, auth, backfill=False)  # prepare_stores did
        self._live = RedisLiveStore(s.redis_url, ttl_ms=s.redis_ttl_ms)
        self._redis = redis.Redis.from_url(s.redis_url)  # campaign firings
        self._metrics_redis = redis.Redis.from_url(
            s.redis_url, socket_timeout=FLUSH_TIMEOUT_S, socket_connect_timeout=FLUSH_TIMEOUT_S)
        self._writes = StoreWriteTally()
        self._subtask = subtask
        placement = self._placement
        placement.rules.open()
        if placement.enrich:
            from stream.enrich import DeviceParser, GeoLocator

            self._enricher = Enricher(GeoLocator(list(placement.geo_paths)), DeviceParser())
        else:
            self._enricher = Enricher(None, None)
        self._sessionizers: dict[str, Sessionizer] = {}

    def write(self, outputs: Sequence[Any]) -> None:
        try:
            self._write_batch(outputs)
        finally:
            self._writes.flush(self._metrics_redis)

    def _write_batch(self, outputs: Sequence[Any]) -> None:
        firings = [o for o in outputs if type(o) is CampaignFiring]
        if firings:  # not session outputs: the gateway's delivery worker takes them
            outputs = [o for o in outputs if type(o) is not CampaignFiring]
            with self._writes.timing("redis"):
                publish_firings(self._redis, (FiringRecord(
                    f.project, f.campaign, f.user, f.firing, f.at, f.event_name)
                    for f in firings))
        late = [o for o in outputs if isinstance(o, TooLate)]
        if not late:
            self._write(outputs, self._publish_live)
            return
        # Only the outputs of one key are ordered; a too-late event's sessions are not held in
        # state, so the key's other outputs can go first and the re-fold then reads them.
        self._write([o for o in outputs if not isinstance(o, TooLate)], self._publish_live)
        self._write(self._place(late), True)

    def _sessionizer(self, project: str) -> Sessionizer:
        rules = self._placement.rules.rules(project)
        found = self._sessionizers.get(project)
        if found is None or found.rules != rules:
            found = self._sessionizers[project] = Sessionizer(rules)
        return found

    def _place(self, late: list[TooLate]) -> list[Any]:
        started = time.perf_counter()
        out = self._without_ip(place_too_late(self._cassandra, late, self._sessionizer,
                                              self._enricher.enrich))
        log.info("subtask %d placed %d too-late events against stored sessions in %.0f ms",
                 self._subtask, len(late), (time.perf_counter() - started) * 1000)
        return out

    def _without_ip(self, outputs: list[Any]) -> list[Any]:
        """Placed too-late events and sessions of projects that drop the raw IP: enriched
        from it, stored without it (as Sessionize's outputs)."""
        out = []
        for o in outputs:
            if type(o) is EnrichedEvent and o.event.ip and self._sessionizer(
                    o.event.project).rules.drop_ip:
                o = msgspec.structs.replace(o, event=msgspec.structs.replace(o.event, ip=None))
            elif type(o) is SessionUpsert and o.row.ip and self._sessionizer(
                    o.row.project).rules.drop_ip:
                row = o.row.snapshot()
                row.ip = None
                o = msgspec.structs.replace(o, row=row)
            out.append(o)
        return out

    def _write(self, outputs: Sequence[Any], live: bool) -> None:
        from storage.cassandra_store import StreamWrite

        if not outputs:
            return
        started = time.perf_counter()
        out = translate(outputs)
        with self._writes.timing("cassandra"):
            self._cassandra.write_stream(StreamWrite(out.batch, out.stale_sessions,
                                                     out.dead_ids))
        wrote = time.perf_counter()
        if out.graph:
            with _GRAPH_WRITES, self._writes.timing("neo4j"):  # the write, not the wait
                self._graph.apply(out.graph)
        graphed = time.perf_counter()
        if live and (out.live or out.batch.deleted_sessions):
            with self._writes.timing("redis"):
                self._live.publish(out.live, out.batch.sessions, out.batch.deleted_sessions)
        log.debug("subtask %d wrote %d outputs (%d events, %d sessions): cassandra %.0f ms, "
                 "neo4j %.0f ms, redis %.0f ms", self._subtask, len(outputs),
                 len(out.batch.events), len(out.batch.sessions), (wrote - started) * 1000,
                 (graphed - wrote) * 1000, (time.perf_counter() - graphed) * 1000)

    def close(self) -> None:
        for name in ("_metrics_redis", "_redis", "_live", "_graph", "_cassandra"):
            client = getattr(self, name, None)
            if client is not None:
                client.close()
        self._placement.rules.close()


class StoresSinkFactory:
    def __init__(self, settings: StoreSettings, placement: Placement | None = None) -> None:
        self._settings = settings
        self.placement = placement
        self.live = True  # the job turns it off when it publishes live views on a branch

    @property
    def redis_url(self) -> str:
        return self._settings.redis_url

    @property
    def redis_ttl_ms(self) -> int:
        return self._settings.redis_ttl_ms

    def __call__(self) -> StoresSink:
        return StoresSink(self._settings, self.placement, self.live)
