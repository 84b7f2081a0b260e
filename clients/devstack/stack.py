"""Start, wait for, inspect and stop the dev stack's services.

``up`` prepares and spawns the services one after the other (so a cold Maven resolution of
one overlaps the boot of the previous) and then waits for all of them at once; a service
already running from the same data dir is left alone and only probed. ``down`` stops what
the pid files name. Everything is bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clients.devstack.cassandra import Cassandra
from clients.devstack.errors import DevStackError, ServiceUnavailable
from clients.devstack.kafka import Kafka
from clients.devstack.neo4j import Neo4j
from clients.devstack.process import (
    is_alive,
    port_open,
    running_pid,
    spawn,
    stop,
    tail,
    write_pid,
)
from clients.devstack.redis import Redis
from clients.devstack.services import Endpoint, Ports, Service, StackPaths

SERVICE_TYPES: dict[str, type[Service]] = {
    "kafka": Kafka, "cassandra": Cassandra, "neo4j": Neo4j, "redis": Redis,
}
SERVICE_NAMES = tuple(SERVICE_TYPES)
PROBE_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.5
LOG_TAIL_LINES = 40


@dataclass(frozen=True, slots=True)
class ServiceReport:
    """One service's outcome. ``state``: up, down or starting (status); started, running
    or failed (up); stopped, killed or down (down). Times in seconds."""

    name: str
    state: str
    pid: int | None
    endpoints: tuple[Endpoint, ...]
    prepare_s: float | None = None
    ready_s: float | None = None
    detail: str = ""
    unavailable: bool = field(default=False, repr=False)


ReportCallback = Callable[[ServiceReport], None]


class DevStack:
    """The dev stack rooted at one data dir (default ``.cep/devstack``), with the Maven
    artifact cache (default ``.cache/devstack``) shared between data dirs."""

    def __init__(self, data_dir: Path | None = None, cache_dir: Path | None = None, *,
                 ports: Ports | None = None, assets_dir: Path | None = None,
                 service_types: Mapping[str, type[Service]] | None = None) -> None:
        self.paths = StackPaths.create(data_dir, cache_dir, assets_dir)
        self.ports = ports or Ports()
        self.service_types = dict(service_types or SERVICE_TYPES)

    def services(self, only: Iterable[str] = ()) -> list[Service]:
        names = list(self.service_types)
        wanted = set(only) or set(names)
        unknown = wanted - set(names)
        if unknown:
            raise DevStackError(f"unknown service(s): {', '.join(sorted(unknown))}; "
                                f"choose from {', '.join(names)}")
        return [self.service_types[n](self.paths, self.ports) for n in names if n in wanted]

    def pids(self, only: Iterable[str] = ()) -> dict[str, int]:
        """Pids of the selected services that are running from this data dir."""
        found = {s.name: running_pid(s.pid_file, s.markers) for s in self.services(only)}
        return {name: pid for name, pid in found.items() if pid is not None}

    async def up(self, only: Iterable[str] = (), on_report: ReportCallback | None = None,
                 ) -> list[ServiceReport]:
        """Start the selected services not yet running and wait until each answers.
        Raises ServiceUnavailable if only missing prerequisites stopped some, else
        DevStackError if any failed; the others are left running either way."""
        services = self.services(only)
        with self._lock():
            waits: list[asyncio.Task[ServiceReport]] = []
            for service in services:
                # Sequential launches: one service's Maven resolution overlaps the boot of
                # the one before, without two Maven runs writing ~/.m2 at once.
                launch = await self._launch(service)
                waits.append(asyncio.create_task(self._await_ready(service, launch, on_report)))
            reports = list(await asyncio.gather(*waits))
        failed = [r for r in reports if r.state == "failed"]
        if failed:
            message = "\n\n".join(r.detail for r in failed)
            if all(r.unavailable for r in failed):
                raise ServiceUnavailable(message)
            raise DevStackError(message)
        return reports

    async def down(self, only: Iterable[str] = (), on_report: ReportCallback | None = None,
                   ) -> list[ServiceReport]:
        """Stop the selected services by pid file: SIGTERM, a bounded wait, SIGKILL."""
        services = self.services(only)
        with self._lock():
            return list(await asyncio.gather(*(self._stop(s, on_report) for s in services)))

    def status(self, only: Iterable[str] = ()) -> list[ServiceReport]:
        """Each selected service: up (its pid runs and its port answers), starting (the pid
        runs, the port does not answer yet) or down."""
        reports = []
        for service in self.services(only):
            pid = running_pid(service.pid_file, service.markers)
            endpoints = tuple(service.endpoints())
            state = "down" if pid is None else "up" if port_open(endpoints[0].port) else "starting"
            reports.append(ServiceReport(service.name, state, pid, endpoints))
        return reports

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.paths.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.paths.data_dir / ".lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DevStackError(f"another `cep devstack` command is working on "
                                    f"{self.paths.data_dir}") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    async def _launch(self, service: Service) -> _Launch:
        """Spawn ``service`` unless it already runs from this data dir."""
        pid = running_pid(service.pid_file, service.markers)
        if pid is not None:
            return _Launch(pid=pid, fresh=False, started=time.monotonic())
        began = time.monotonic()
        try:
            busy = [e for e in service.endpoints() if port_open(e.port)]
            if busy:
                ports = ", ".join(f"127.0.0.1:{e.port}" for e in busy)
                raise DevStackError(f"{service.name}: {ports} already in use by a process this "
                                    f"dev stack ({self.paths.data_dir}) did not start")
            argv = await service.prepare()
            prepared = time.monotonic()
            pid = spawn(argv, log_file=service.log_file, env=service.environment())
        except DevStackError as exc:
            return _Launch(error=exc)
        except OSError as exc:  # an unwritable data dir, an executable that will not run
            return _Launch(error=DevStackError(f"{service.name}: {exc}"))
        write_pid(service.pid_file, pid)
        return _Launch(pid=pid, fresh=True, started=prepared, prepare_s=prepared - began)

    async def _await_ready(self, service: Service, launch: _Launch,
                           on_report: ReportCallback | None) -> ServiceReport:
        report = await self._poll(service, launch)
        if on_report is not None:
            on_report(report)
        return report

    async def _poll(self, service: Service, launch: _Launch) -> ServiceReport:
        endpoints = tuple(service.endpoints())
        if launch.error is not None:
            return ServiceReport(service.name, "failed", None, endpoints, detail=str(launch.error),
                                 unavailable=isinstance(launch.error, ServiceUnavailable))
        assert launch.pid is not None  # set whenever error is None
        pid = launch.pid
        deadline = launch.started + service.ready_timeout_s
        last_error = "no answer"
        while True:
            if not is_alive(pid):
                service.pid_file.unlink(missing_ok=True)
                service.after_exit(exited_cleanly=False)
                return self._failed(service, endpoints, pid, "exited before it answered")
            try:
                await asyncio.wait_for(service.probe(), PROBE_TIMEOUT_S)
            except ImportError as exc:  # no client library: waiting would not help
                await stop(pid, timeout_s=service.stop_timeout_s)
                service.pid_file.unlink(missing_ok=True)
                service.after_exit(exited_cleanly=False)
                return ServiceReport(
                    service.name, "failed", pid, endpoints, unavailable=True,
                    detail=f"{service.name}: cannot check readiness without the Python "
                           f"package {exc.name!r} (pip install it); stopped pid {pid}")
            except Exception as exc:  # any client error means "not ready yet"; keep polling
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                state = "started" if launch.fresh else "running"
                return ServiceReport(service.name, state, pid, endpoints, launch.prepare_s,
                                     time.monotonic() - launch.started)
            if time.monotonic() > deadline:
                # A half-started server holds memory and ports: stop it so a retry starts clean.
                await stop(pid, timeout_s=service.stop_timeout_s)
                service.pid_file.unlink(missing_ok=True)
                service.after_exit(exited_cleanly=False)
                return self._failed(service, endpoints, pid,
                                    f"did not answer within {service.ready_timeout_s:.0f} s "
                                    f"(last probe: {last_error}); stopped it")
            await asyncio.sleep(POLL_INTERVAL_S)

    @staticmethod
    def _failed(service: Service, endpoints: tuple[Endpoint, ...], pid: int,
                why: str) -> ServiceReport:
        detail = (f"{service.name} (pid {pid}) {why}; last {LOG_TAIL_LINES} lines of "
                  f"{service.log_file}:\n{tail(service.log_file, LOG_TAIL_LINES)}")
        return ServiceReport(service.name, "failed", pid, endpoints, detail=detail)

    async def _stop(self, service: Service, on_report: ReportCallback | None) -> ServiceReport:
        endpoints = tuple(service.endpoints())
        pid = running_pid(service.pid_file, service.markers)
        if pid is None:
            service.pid_file.unlink(missing_ok=True)  # stale: the process is gone
            service.after_exit(exited_cleanly=False)
            report = ServiceReport(service.name, "down", None, endpoints)
        else:
            killed = await stop(pid, timeout_s=service.stop_timeout_s)
            service.pid_file.unlink(missing_ok=True)
            service.after_exit(exited_cleanly=not killed)
            report = ServiceReport(service.name, "killed" if killed else "stopped", pid,
                                   endpoints)
        if on_report is not None:
            on_report(report)
        return report


@dataclass(frozen=True, slots=True)
class _Launch:
    pid: int | None = None
    fresh: bool = False
    started: float = 0.0  # monotonic time the process was spawned (or found running)
    prepare_s: float | None = None
    error: DevStackError | None = None
