"""What every dev-stack service shares: where it lives, how it is launched and probed.

A service subclass says three things: its endpoints, how to ``prepare`` a launch (resolve
its classpath, write its config, return the command line) and how to ``probe`` it with a
real client round trip. Starting, waiting, status and stopping live in ``stack.py``.
"""

from __future__ import annotations

import os
import string
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from clients.devstack import jvm
from clients.devstack.errors import DevStackError

# The repository's scripts/devstack (poms, config templates), next to this package in a
# source checkout; CEP_DEVSTACK_ASSETS points elsewhere for an installed package.
DEFAULT_ASSETS = Path(__file__).resolve().parents[2] / "scripts" / "devstack"


@dataclass(frozen=True, slots=True)
class Ports:
    """TCP ports on 127.0.0.1; the defaults are each project's own."""

    kafka: int = 9092
    kafka_controller: int = 9093
    cassandra: int = 9042
    cassandra_storage: int = 7000
    neo4j_bolt: int = 7687
    neo4j_http: int = 7474
    redis: int = 6379


@dataclass(frozen=True, slots=True)
class StackPaths:
    """Absolute directories: per-service data and logs, the shared artifact cache, assets."""

    data_dir: Path
    cache_dir: Path
    assets_dir: Path

    @classmethod
    def create(cls, data_dir: Path | None = None, cache_dir: Path | None = None,
               assets_dir: Path | None = None) -> StackPaths:
        data = data_dir or Path(os.environ.get("CEP_DEVSTACK_DATA")
                                or Path(os.environ.get("CEP_DATA_DIR") or ".cep") / "devstack")
        cache = cache_dir or Path(os.environ.get("CEP_DEVSTACK_CACHE") or ".cache/devstack")
        assets = assets_dir or Path(os.environ.get("CEP_DEVSTACK_ASSETS") or DEFAULT_ASSETS)
        return cls(Path(data).resolve(), Path(cache).resolve(), Path(assets).resolve())


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One listening socket; ``url`` is what a client is given."""

    role: str
    port: int
    url: str


class Service(ABC):
    """One server process of the dev stack."""

    name: ClassVar[str]
    # Seconds from spawn until the probe must have succeeded, generous for a cold JVM on
    # two cores shared with three other servers.
    ready_timeout_s: ClassVar[float]
    # SIGTERM-to-SIGKILL grace. Cassandra drains, Neo4j checkpoints, and a JVM's first run
    # also writes its class archive (~15 s for Neo4j on two busy cores).
    stop_timeout_s: ClassVar[float] = 90.0

    def __init__(self, paths: StackPaths, ports: Ports) -> None:
        self.paths = paths
        self.ports = ports

    @property
    def home(self) -> Path:
        return self.paths.data_dir / self.name

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "console.log"

    @property
    def class_archive_record(self) -> Path:
        """Where a JVM service notes the class archive its process writes at exit."""
        return self.home / "run" / "class-archive.partial"

    @property
    def markers(self) -> tuple[str, ...]:
        """Strings that all appear in this service's command line (guards pid reuse)."""
        return (str(self.home),)

    @abstractmethod
    def endpoints(self) -> list[Endpoint]:
        """Listening sockets, the client-facing one first."""

    @abstractmethod
    async def prepare(self) -> list[str]:
        """Make everything the launch needs (classpath, config, formatted storage) and
        return the command line, ``argv[0]`` an absolute executable path."""

    @abstractmethod
    async def probe(self) -> None:
        """One real client round trip; raises while the service does not answer yet."""

    def after_exit(self, *, exited_cleanly: bool) -> None:
        """Called once the process is gone: keep (or drop) the class archive it wrote."""
        jvm.adopt_class_archive(self.class_archive_record, exited_cleanly=exited_cleanly)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CLASSPATH", None)  # the launcher sets -cp; a stray CLASSPATH only confuses
        return env

    def render(self, template: str, dest: Path, **values: object) -> Path:
        """Fill ``$name`` placeholders of ``<assets>/<service>/<template>`` into ``dest``."""
        source = self.paths.assets_dir / self.name / template
        try:
            text = string.Template(source.read_text()).substitute(
                {k: str(v) for k, v in values.items()}
            )
        except (OSError, KeyError, ValueError) as exc:
            raise DevStackError(f"{self.name}: cannot render {source}: {exc!r}") from exc
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        return dest

    def pom(self) -> Path:
        return self.paths.assets_dir / "poms" / f"{self.name}.xml"
