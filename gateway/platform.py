"""Bootstrap: builds every part of the embedded platform from ``Settings``, in one place.

Nothing connects at import time; ``Platform.open`` creates, ``close`` releases. The
gateway's lifespan, the CLI and the tests all go through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from clients.channels import ChannelSettings
from gateway.campaigns import Campaigns
from gateway.data_lifecycle import close_lifecycle, embedded_user_data, open_lifecycle
from gateway.ingest import Ingestor
from gateway.metrics import Metrics, PipelineReading, TimedLog
from gateway.settings import Settings
from graph.networkx_graph import NetworkxJourneyGraph
from graph.ports import GraphChanges
from storage.archive_stage import ArchiveStage
from storage.campaigns import CampaignStore
from storage.control import ControlStore
from storage.duckdb_store import DuckDBStore
from storage.live import InProcessLiveStore
from storage.local_log import LocalEventLog
from storage.ports import WriteBatch
from storage.suppression import SuppressionStore
from stream.contract.envelope import EnvelopeParser
from stream.contract.registry import SchemaRegistry
from stream.embedded import LINGER_SECONDS, EmbeddedRunner
from stream.enrich.device import DeviceParser
from stream.enrich.fetch import default_geo_paths
from stream.enrich.geo import GeoLocator
from stream.operators.enrich import Enricher
from stream.operators.sessionize import SessionRules, session_rules

log = logging.getLogger("cep.platform")


def _installed(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def project_rules(control: ControlStore, registry: SchemaRegistry, project: str
                  ) -> SessionRules:
    """A project's sessionization rules: its settings over the catalogue's defaults."""
    cat = registry.catalogue
    return session_rules(control.settings(project), cat.session_start_events,
                         cat.session_end_events, cat.conversion_events)


def now_ms() -> int:
    return int(time.time() * 1000)


def open_control(data_dir: Path) -> ControlStore:
    return ControlStore(data_dir / "control.sqlite")


def about_of(settings: Settings, geo: GeoLocator) -> dict[str, Any]:
    credit = geo.attribution
    return {
        "version": version("cep") if _installed("cep") else "dev",
        "profile": settings.profile,
        "geo_source": geo.source,
        "geo_attribution": None if credit is None else {
            "text": credit.text, "url": credit.url, "licence": credit.licence},
    }


LIVE_LINGER_SECONDS = 0.002


@dataclass
class Platform:
    settings: Settings
    control: ControlStore
    store: DuckDBStore
    log: LocalEventLog
    registry: SchemaRegistry
    geo: GeoLocator
    ingestor: Ingestor
    runner: EmbeddedRunner
    graph: NetworkxJourneyGraph
    live: InProcessLiveStore
    campaigns: Campaigns
    _worker: asyncio.Task[None] | None = None
    forgotten: SuppressionStore | None = None  # data lifecycle (gateway.data_lifecycle)
    archive: ArchiveStage | None = None
    user_data: Any = None  # gateway.user_data.UserDataService
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def open(cls, settings: Settings, *, start_runner: bool = True) -> Platform:
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        control = open_control(data)
        registry = SchemaRegistry.from_state(
            [r for _, r in control.schema_records()], on_change=control.append_schema_record)
        store = DuckDBStore(data / "events.duckdb", memory_limit=settings.duckdb_memory)
        event_log = LocalEventLog(data / "log", fsync=settings.fsync)
        geo = GeoLocator(list(settings.geo_files) or default_geo_paths(settings.resolved_geo_dir()))
        log.info("geo source: %s", geo.source)
        enricher = Enricher(geo, DeviceParser())
        parser = EnvelopeParser(registry, now_ms, max_event_bytes=settings.max_event_bytes)
        metrics = Metrics()
        ingestor = Ingestor(parser, TimedLog(event_log, metrics.store("local_log")),
                            max_batch=settings.max_batch, observe=metrics.judged)
        graph = NetworkxJourneyGraph()
        graph.rebuild(store.session_steps())
        live = InProcessLiveStore()

        forgotten, archive = open_lifecycle(settings, store.checkpoint())

        apply_graph = metrics.store("networkx").timed(graph.apply)

        def committed(batch: WriteBatch, changes: GraphChanges) -> None:
            if changes:
                apply_graph(changes)
            archive.committed(batch.next_offset)
            campaigns.after_commit()

        def before_commit(batch: WriteBatch) -> None:
            archive.stage(batch)  # durable before the step is: see storage.archive_stage
            campaigns.before_commit(batch)

        def linger() -> float:
            """A step waits for more records only while nobody watches live: a watcher
            wants each event within milliseconds, and commits batch up behind it anyway."""
            return LIVE_LINGER_SECONDS if live.subscriber_count else LINGER_SECONDS

        campaigns = Campaigns(CampaignStore(data / "campaigns.sqlite"), store,
                              ChannelSettings.from_env(os.environ), store.ties(), now_ms)
        campaigns.on_delivery = metrics.delivery
        runner = EmbeddedRunner(event_log, store, enricher,
                                rules_for=lambda p: project_rules(control, registry, p),
                                on_commit=committed, before_commit=before_commit,
                                on_step=metrics.store("live").timed(live.publish),
                                on_store_commit=metrics.store("duckdb").observe, linger=linger,
                                suppressed=forgotten.current)
        platform = cls(settings, control, store, event_log, registry, geo, ingestor, runner,
                       graph, live, campaigns, forgotten=forgotten, archive=archive,
                       metrics=metrics)
        metrics.watch_pipeline(platform.pipeline_reading)
        platform.user_data = embedded_user_data(platform)
        if start_runner:
            runner.start()
        return platform

    async def start(self) -> None:
        """The campaign delivery worker (timers fire on the wall clock once caught up)."""
        self._worker = asyncio.create_task(
            self.campaigns.run(lambda: self.log.pending_items == 0))

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def pipeline(self) -> tuple[int, int, bool]:
        return (self.log.pending_items, self.runner.processed_events, self.runner.error is None)

    async def backlog(self) -> int:
        """Events accepted and not yet processed (ingest refuses above a bound)."""
        return self.log.pending_items

    def pipeline_reading(self) -> PipelineReading:
        """The pipeline gauges of ``/metrics``, as ``pipeline`` reports them."""
        return PipelineReading(self.runner.error is None, self.log.pending_items,
                               self.runner.processed_events)

    async def readiness(self) -> tuple[bool, dict[str, str], dict[str, Any]]:
        runner_ok = self.runner.error is None
        deps = {"event_log": "ok", "store": "ok",
                "runner": "ok" if runner_ok else str(self.runner.error)}
        return runner_ok, deps, {"pending_events": self.log.pending_items,
                                 "geo": self.geo.source}

    def wait_processed(self, timeout: float) -> None:
        self.runner.drain(timeout=timeout)

    def about(self) -> dict[str, Any]:
        return about_of(self.settings, self.geo)

    def runner_rules(self, project: str) -> SessionRules:
        return project_rules(self.control, self.registry, project)

    def update_session_settings(self, project: str, changes: dict[str, Any]) -> dict[str, Any]:
        merged = self.control.update_settings(project, changes)
        self.runner.rules_changed(project)
        return merged

    def close(self) -> None:
        """Drain what was accepted, then release every resource."""
        self.log.close()
        self.runner.stop(drain=True)
        close_lifecycle(self)
        self.store.close()
        self.campaigns.store.close()
        self.control.close()
        self.geo.close()
