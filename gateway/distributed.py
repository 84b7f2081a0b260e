"""The distributed profile's bootstrap: the gateway over Kafka, Cassandra, Redis and Neo4j.

The gateway here judges and publishes (Kafka, answered after every in-sync replica
acknowledged) and answers queries from the stores; the PyFlink job (``cep flink run``)
does the processing in between. Projects, keys and schemas stay in the control store
(SQLite in the data dir, as in the embedded profile); each project's session settings are
mirrored into Redis (``cep:project-settings``) for the job, at start and on every change.

``open`` connects the blocking clients; ``start`` (in the server's event loop) starts the
asynchronous ones: the Kafka producer and the lag monitor. Live subscriptions read the
Redis streams the job writes (``storage.redis_live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from clients.channels import ChannelSettings
from clients.kafka import KafkaEventLog, KafkaSettings
from clients.kafka_topics import ensure_heartbeat_topic, ensure_topics
from clients.pipeline_lag import PipelineLag
from gateway.campaigns import Campaigns
from gateway.data_lifecycle import distributed_user_data, open_forgotten, publish_forgotten
from gateway.ingest import Ingestor
from gateway.metrics import Metrics, PipelineReading, TimedLog
from gateway.platform import about_of, now_ms, open_control, project_rules
from gateway.settings import Settings
from graph.neo4j_graph import Neo4jJourneyGraph
from storage.campaigns import CampaignStore
from storage.cassandra_store import CassandraStore
from storage.control import ControlStore
from storage.redis_firings import read_firings
from storage.redis_live import RedisLiveStore
from stream.contract.envelope import EnvelopeParser
from stream.contract.registry import SchemaRegistry
from stream.enrich.fetch import default_geo_paths
from stream.enrich.geo import GeoLocator
from stream.flink.campaigns import CAMPAIGNS_KEY
from stream.flink.write_metrics import STORE_WRITES_KEY, StoreWriteTotals, decode_store_writes
from stream.operators.sessionize import SessionRules

log = logging.getLogger("cep.platform")

SETTINGS_HASH = "cep:project-settings"
SyncRedis = redis.Redis  # the platform's ``redis`` field shadows the module in its class
SCRAPE_TIMEOUT_S = 0.5  # a scrape's read of the job's store writes, connect and answer


def publish_campaigns(client: redis.Redis, project: str,
                      specs: dict[str, dict[str, Any]]) -> None:
    """Mirror a project's active triggered campaigns for the job (``cep:campaigns``)."""
    if specs:
        client.hset(CAMPAIGNS_KEY, project, orjson.dumps(specs).decode())
    else:
        client.hdel(CAMPAIGNS_KEY, project)


def publish_settings(client: redis.Redis, control: ControlStore,
                     projects: list[str] | None = None) -> int:
    """Mirror project settings into Redis for the PyFlink job; returns how many."""
    ids = projects if projects is not None else [p["project"] for p in control.projects()]
    mapping = {p: orjson.dumps(control.settings(p)).decode() for p in ids}
    if mapping:
        client.hset(SETTINGS_HASH, mapping=mapping)
    return len(mapping)


@dataclass
class DistributedPlatform:
    settings: Settings
    control: ControlStore
    registry: SchemaRegistry
    geo: GeoLocator
    store: CassandraStore
    graph: Neo4jJourneyGraph
    redis: redis.Redis
    event_log: KafkaEventLog
    ingestor: Ingestor
    live: RedisLiveStore
    campaigns: Campaigns
    lag_monitor: PipelineLag | None = None
    user_data: Any = None  # gateway.user_data.UserDataService (gateway.data_lifecycle)
    metrics: Metrics = field(default_factory=Metrics)
    metrics_redis: SyncRedis | None = None  # the job's store writes, at scrape time
    _aredis: Any = field(default=None, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, settings: Settings) -> DistributedPlatform:
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        control = open_control(data)
        registry = SchemaRegistry.from_state(
            [r for _, r in control.schema_records()], on_change=control.append_schema_record)
        geo = GeoLocator(list(settings.geo_files) or default_geo_paths(settings.resolved_geo_dir()))
        store = CassandraStore(settings.cassandra_hosts, settings.cassandra_port,
                               settings.cassandra_keyspace, ttl_days=settings.cassandra_ttl_days)
        auth = ((settings.neo4j_user, settings.neo4j_password or "")
                if settings.neo4j_user else None)
        graph = Neo4jJourneyGraph(settings.neo4j_uri, auth=auth)
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        published = publish_settings(client, control)
        log.info("distributed profile: Kafka %s, Cassandra %s:%s/%s, Redis %s, Neo4j %s; "
                 "settings of %d projects mirrored for the job", settings.kafka_bootstrap,
                 ",".join(settings.cassandra_hosts), settings.cassandra_port,
                 settings.cassandra_keyspace, settings.redis_url, settings.neo4j_uri, published)
        event_log = KafkaEventLog(KafkaSettings(bootstrap=settings.kafka_bootstrap))
        parser = EnvelopeParser(registry, now_ms, max_event_bytes=settings.max_event_bytes)
        # The stores are written by the job, in its own process: the gateway's own store
        # metrics are its Kafka appends; the job's writes are read from Redis at scrape time.
        metrics = Metrics()
        ingestor = Ingestor(parser, TimedLog(event_log, metrics.store("kafka")),
                            max_batch=settings.max_batch, observe=metrics.judged)
        # The job's sink writes the live streams; subscriptions read them (one XREAD loop
        # per event loop, fanned out to every subscriber).
        live = RedisLiveStore(settings.redis_url, ttl_ms=settings.redis_ttl_seconds * 1000)
        # Campaigns and their delivery log stay here, like projects and keys; the job reads
        # the active triggers from Redis and sends its firings back through a Redis stream.
        campaigns = Campaigns(CampaignStore(data / "campaigns.sqlite"), store,
                              ChannelSettings.from_env(os.environ), (), now_ms,
                              on_change=lambda p, specs: publish_campaigns(client, p, specs))
        campaigns.on_delivery = metrics.delivery
        for project in {c.project for c in campaigns.store.campaigns()}:
            campaigns.publish(project)
        forgotten = open_forgotten(settings)
        publish_forgotten(client, forgotten)  # the job drops what erased users sent
        platform = cls(settings, control, registry, geo, store, graph, client, event_log,
                       ingestor, live, campaigns, metrics=metrics)
        metrics.watch_pipeline(platform.pipeline_reading)
        platform.metrics_redis = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=SCRAPE_TIMEOUT_S,
            socket_connect_timeout=SCRAPE_TIMEOUT_S)
        metrics.watch_job_writes(platform.job_store_writes)
        platform.user_data = distributed_user_data(platform, forgotten)
        return platform

    async def start(self) -> None:
        """Create the topics, connect the producer and the lag monitor (server loop)."""
        topics = self.event_log.router.all_topics()
        created = await ensure_topics(self.settings.kafka_bootstrap, topics)
        created += await ensure_heartbeat_topic(self.settings.kafka_bootstrap)
        if created:
            log.info("created Kafka topics %s", ", ".join(created))
        await self.event_log.start()
        self._aredis = aioredis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        self.lag_monitor = PipelineLag(self.settings.kafka_bootstrap, self.settings.flink_group,
                                       topics, self._aredis, nudge=self.event_log.heartbeat)
        await self.lag_monitor.start()
        self.event_log.on_append = self.lag_monitor.invalidate
        self._tasks = [
            asyncio.create_task(self.campaigns.follow(lambda after: read_firings(
                self.redis, after))),
            asyncio.create_task(self.campaigns.run(lambda: True)),  # the job owns the timers
            asyncio.create_task(self._watch_backlog()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.lag_monitor is not None:
            await self.lag_monitor.close()
        await self.event_log.close()
        if self._aredis is not None:
            await self._aredis.aclose()
        self.live.close()

    # -- what the app asks -------------------------------------------------------------------

    async def pipeline(self) -> tuple[int, int, bool]:
        if self.lag_monitor is None:
            return (-1, -1, False)
        lag = await self.lag_monitor.lag()
        return (lag.pending, lag.processed, lag.healthy)

    async def backlog(self) -> int:
        """The job's consumer lag as last measured (ingest refuses above a bound). Not
        measured here — every request would pay for it — but by ``pipelineStatus``,
        ``/readyz`` and a refresh every few seconds (``_watch_backlog``)."""
        return 0 if self.lag_monitor is None else self.lag_monitor.known_pending

    def pipeline_reading(self) -> PipelineReading:
        """The pipeline gauges of ``/metrics``: the job's lag as last measured (at most a
        few seconds old, ``_watch_backlog``), never measured for a scrape."""
        lag = None if self.lag_monitor is None else self.lag_monitor.latest
        if lag is None or not lag.healthy:
            return PipelineReading(False, None, None)
        return PipelineReading(True, lag.pending, lag.processed, lag.consumer_lag,
                               self.settings.flink_group)

    def job_store_writes(self) -> dict[str, StoreWriteTotals]:
        """The PyFlink job's store writes so far (``stream.flink.write_metrics``), read
        from Redis for a scrape; raises when Redis does not answer within
        ``SCRAPE_TIMEOUT_S`` (the scrape then leaves them out)."""
        if self.metrics_redis is None:
            return {}
        fields: Any = self.metrics_redis.hgetall(STORE_WRITES_KEY)
        return decode_store_writes(fields)

    async def _watch_backlog(self, every_s: float = 2.0) -> None:
        while True:
            if self.lag_monitor is not None:
                await self.lag_monitor.lag()
            await asyncio.sleep(every_s)

    async def readiness(self) -> tuple[bool, dict[str, str], dict[str, Any]]:
        async def check(name: str, probe: Any) -> tuple[str, str]:
            try:
                await asyncio.wait_for(probe(), 5)
            except Exception as exc:  # report which dependency is down and why
                return name, f"unavailable: {exc!r}"[:300]
            return name, "ok"

        async def kafka() -> None:
            if not await self.event_log.ping():
                raise ConnectionError(f"Kafka at {self.settings.kafka_bootstrap} does not answer")

        results = dict(await asyncio.gather(
            check("kafka", kafka),
            check("cassandra", lambda: asyncio.to_thread(self.store.checkpoint)),
            check("redis", lambda: asyncio.to_thread(self.redis.ping)),
            check("neo4j", lambda: asyncio.to_thread(self.graph.sessions_count, "")),
        ))
        pending, _processed, healthy = await self.pipeline()
        results["pipeline"] = "ok" if healthy else "unavailable: cannot read the job's lag"
        ok = all(v == "ok" for v in results.values())
        return ok, results, {"pending_events": pending, "geo": self.geo.source}

    def about(self) -> dict[str, Any]:
        return about_of(self.settings, self.geo)

    def runner_rules(self, project: str) -> SessionRules:
        return project_rules(self.control, self.registry, project)

    def update_session_settings(self, project: str, changes: dict[str, Any]) -> dict[str, Any]:
        merged = self.control.update_settings(project, changes)
        publish_settings(self.redis, self.control, [project])
        return merged

    def wait_processed(self, timeout: float) -> None:
        """Block until the job has caught up (the demo loader, offline tools)."""
        async def poll() -> None:
            await self.start()
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while loop.time() < deadline:
                    if (await self.pipeline())[0] == 0:
                        return
                    await asyncio.sleep(0.2)
                raise TimeoutError(f"the PyFlink job did not catch up in {timeout:.0f} s "
                                   "(is `cep flink run` running?)")
            finally:
                await self.stop()

        asyncio.run(poll())

    def close(self) -> None:
        if self.user_data is not None:
            self.user_data.forgotten.close()
        self.store.close()
        self.graph.close()
        self.redis.close()
        if self.metrics_redis is not None:
            self.metrics_redis.close()
        self.campaigns.store.close()
        self.control.close()
        self.geo.close()
