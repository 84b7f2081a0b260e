"""Cassandra 5.0, one node, started the way bin/cassandra starts CassandraDaemon."""

from __future__ import annotations

import asyncio

from clients.devstack import jvm
from clients.devstack.process import port_open
from clients.devstack.services import Endpoint, Service

MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
# 5.0 supports Java 11 and 17 only (build.xml java.supported); on 24+ its
# ThreadAwareSecurityManager cannot be installed at all.
SUPPORTED_JAVA = (17, 11)
# MAX_HEAP_SIZE equivalent. No HEAP_NEWSIZE (-Xmn): cassandra-env.sh applies it to CMS only,
# and jvm-server.options advises against fixing the young generation under G1.
HEAP = "1g"

# conf/jvm-server.options and conf/jvm17-server.options of 5.0, less what hurts a small,
# fast-starting node: -XX:+AlwaysPreTouch (touches the whole heap before starting),
# -XX:G1HeapRegionSize=16m (64 regions in a 1G heap), -XX:+UseNUMA.
JVM_FLAGS = (
    f"-Xms{HEAP}", f"-Xmx{HEAP}",
    "-ea", "-da:net.openhft...", "-XX:+UseThreadPriorities", "-XX:+HeapDumpOnOutOfMemoryError",
    "-Xss256k", "-XX:+UseTLAB", "-XX:+ResizeTLAB", "-XX:+PerfDisableSharedMem",
    "-Djava.net.preferIPv4Stack=true",
    "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
    "-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    # cassandra-env.sh: fail fast on OOM rather than limp on with corrupt state.
    "-XX:+ExitOnOutOfMemoryError",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Dcassandra-foreground=yes",
    # A lone seed has no one to gossip with: skip Gossiper.waitToSettle's >= 5 s wait.
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    # No fsync of the system keyspace (what cassandra-unit sets for embedded test nodes).
    "-Dcassandra.unsafesystem=true",
)


class Cassandra(Service):
    name = "cassandra"
    ready_timeout_s = 300.0

    @property
    def markers(self) -> tuple[str, ...]:
        return (MAIN_CLASS, str(self.home))

    def endpoints(self) -> list[Endpoint]:
        port, storage = self.ports.cassandra, self.ports.cassandra_storage
        return [
            Endpoint("cql", port, f"127.0.0.1:{port}"),
            Endpoint("storage", storage, f"127.0.0.1:{storage}"),
        ]

    async def prepare(self) -> list[str]:
        lib = await jvm.resolve_classpath(self.name, self.pom(), self.paths.cache_dir)
        java = jvm.find_java(self.name, SUPPORTED_JAVA)
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        sharing = jvm.class_sharing_flags(java, lib.parent, self.class_archive_record,
                                          java_agent=True)
        conf = self.home / "conf"
        logs = self.home / "logs"
        tmp = self.home / "tmp"
        for d in (logs, tmp):
            d.mkdir(parents=True, exist_ok=True)
        yaml = self.render("cassandra.yaml", conf / "cassandra.yaml",
                           port=self.ports.cassandra, storage_port=self.ports.cassandra_storage)
        logback = self.render("logback.xml", conf / "logback.xml")
        return [
            str(java), *JVM_FLAGS, *sharing,
            f"-javaagent:{jvm.jar(lib, 'jamm')}",
            # Must be a URL: YamlConfigurationLoader reads a bare value as a classpath name.
            f"-Dcassandra.config={yaml.as_uri()}",
            f"-Dcassandra.storagedir={self.home / 'data'}",
            f"-Dcassandra.logdir={logs}",
            f"-Dlogback.configurationFile={logback}",
            # JNA unpacks its native library here; /tmp may be mounted noexec.
            f"-Djna.tmpdir={tmp}",
            f"-XX:HeapDumpPath={logs}", f"-XX:ErrorFile={logs}/hs_err_pid%p.log",
            # conf/ stays off the classpath (bin/cassandra puts it first): both files it
            # would serve are passed above, and a non-empty directory there stops the JVM
            # from archiving classes.
            "-cp", f"{lib}/*", MAIN_CLASS,
        ]

    async def probe(self) -> None:
        if not port_open(self.ports.cassandra):
            raise ConnectionError("not listening yet")
        await asyncio.to_thread(self._select_release_version)

    def _select_release_version(self) -> None:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=5)
        cluster = Cluster(["127.0.0.1"], port=self.ports.cassandra, connect_timeout=5,
                          execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local").one()
            if row is None:
                raise ConnectionError("system.local is empty")
        finally:
            cluster.shutdown()
