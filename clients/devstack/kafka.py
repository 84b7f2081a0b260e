"""Kafka 4.x, one node in KRaft combined mode (broker and controller in one JVM)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

from clients.devstack import jvm
from clients.devstack.errors import DevStackError
from clients.devstack.process import port_open, tail
from clients.devstack.services import Endpoint, Service

MAIN_CLASS = "kafka.Kafka"
FORMAT_CLASS = "kafka.tools.StorageTool"
# The broker needs Java 17+ (Kafka 4's minNonClientJavaVersion).
SUPPORTED_JAVA = (17, 21, 25)
HEAP = "512m"
# bin/kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS; heap per the dev budget instead of
# kafka-server-start.sh's 1G.
JVM_FLAGS = (
    f"-Xms{HEAP}", f"-Xmx{HEAP}", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class Kafka(Service):
    name = "kafka"
    ready_timeout_s = 180.0

    @property
    def markers(self) -> tuple[str, ...]:
        return (MAIN_CLASS, str(self.home))

    def endpoints(self) -> list[Endpoint]:
        port, controller = self.ports.kafka, self.ports.kafka_controller
        return [
            Endpoint("bootstrap", port, f"127.0.0.1:{port}"),
            Endpoint("controller", controller, f"127.0.0.1:{controller}"),
        ]

    async def prepare(self) -> list[str]:
        lib = await jvm.resolve_classpath(self.name, self.pom(), self.paths.cache_dir)
        java = jvm.find_java(self.name, SUPPORTED_JAVA)
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        sharing = jvm.class_sharing_flags(java, lib.parent, self.class_archive_record)
        conf = self.home / "conf"
        data = self.home / "data"
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        props = self.render("server.properties", conf / "server.properties",
                            port=self.ports.kafka, controller_port=self.ports.kafka_controller,
                            log_dirs=data)
        log4j = self.render("log4j2.properties", conf / "log4j2.properties")
        common = [str(java), f"-Dlog4j2.configurationFile={log4j}",
                  f"-Dkafka.logs.dir={logs}", f"-XX:ErrorFile={logs}/hs_err_pid%p.log",
                  "-cp", f"{lib}/*"]
        if not (data / "meta.properties").is_file():
            await self._format(common, props)
        return [common[0], *JVM_FLAGS, *sharing, *common[1:], MAIN_CLASS, str(props)]

    async def _format(self, common: list[str], props: Path) -> None:
        """kafka-storage.sh format, with static voters (so without --standalone)."""
        log = self.home / "logs" / "format.log"
        argv = [common[0], "-Xmx256m", *common[1:], FORMAT_CLASS, "format",
                f"--cluster-id={new_cluster_id()}", "-c", str(props), "--ignore-formatted"]
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT)
            code = await proc.wait()
        if code != 0:
            raise DevStackError(f"kafka: formatting storage failed (exit {code}); "
                                f"last lines of {log}:\n{tail(log)}")

    async def probe(self) -> None:
        # The TCP check first keeps aiokafka from logging connection errors while we wait.
        if not port_open(self.ports.kafka):
            raise ConnectionError("not listening yet")
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{self.ports.kafka}",
                                    request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
        finally:
            await admin.close()
        if not cluster.get("brokers"):
            raise ConnectionError("metadata lists no broker yet")
