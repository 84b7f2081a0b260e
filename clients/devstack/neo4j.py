"""Neo4j 5 Community with Bolt and HTTP (and the Browser at /browser/)."""

from __future__ import annotations

from clients.devstack import jvm
from clients.devstack.process import port_open
from clients.devstack.services import Endpoint, Service

# What bin/neo4j console ends up exec'ing: the community entry point in console mode.
MAIN_CLASS = "org.neo4j.server.CommunityEntryPoint"
SUPPORTED_JAVA = (17, 21)
HEAP = "512m"
PAGECACHE = "256m"
# The stock 5.x neo4j.conf server.jvm.additional, less -XX:+AlwaysPreTouch (slow start)
# and the flight-recorder/diagnostic extras.
JVM_FLAGS = (
    f"-Xms{HEAP}", f"-Xmx{HEAP}",
    "-XX:+UseG1GC", "-XX:-OmitStackTraceInFastThrow", "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields", "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024", "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048", "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "--enable-native-access=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true", "-Dlog4j.layout.jsonTemplate.maxStringLength=32768",
    "-Dfile.encoding=UTF-8",
)


class Neo4j(Service):
    name = "neo4j"
    ready_timeout_s = 240.0

    @property
    def markers(self) -> tuple[str, ...]:
        return (MAIN_CLASS, str(self.home))

    def endpoints(self) -> list[Endpoint]:
        bolt, http = self.ports.neo4j_bolt, self.ports.neo4j_http
        return [
            Endpoint("bolt", bolt, f"bolt://127.0.0.1:{bolt}"),
            Endpoint("browser", http, f"http://127.0.0.1:{http}/browser/"),
        ]

    async def prepare(self) -> list[str]:
        lib = await jvm.resolve_classpath(self.name, self.pom(), self.paths.cache_dir)
        java = jvm.find_java(self.name, SUPPORTED_JAVA)
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        sharing = jvm.class_sharing_flags(java, lib.parent, self.class_archive_record)
        for sub in ("data", "logs", "run", "import", "plugins"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        conf = self.home / "conf"
        self.render("neo4j.conf", conf / "neo4j.conf", home=self.home,
                    bolt_port=self.ports.neo4j_bolt, http_port=self.ports.neo4j_http,
                    heap=HEAP, pagecache=PAGECACHE)
        logs = self.home / "logs"
        return [
            str(java), *JVM_FLAGS, *sharing,
            f"-XX:ErrorFile={logs}/hs_err_pid%p.log",
            "-cp", f"{self.home / 'plugins'}/*:{lib}/*", MAIN_CLASS,
            f"--home-dir={self.home}", f"--config-dir={conf}", "--console-mode",
        ]

    async def probe(self) -> None:
        if not port_open(self.ports.neo4j_bolt):
            raise ConnectionError("not listening yet")
        from neo4j import AsyncGraphDatabase

        # auth=None: the dev stack runs with dbms.security.auth_enabled=false.
        async with AsyncGraphDatabase.driver(f"bolt://127.0.0.1:{self.ports.neo4j_bolt}",
                                             auth=None) as driver:
            records, _, _ = await driver.execute_query("RETURN 1 AS one")
            if not records or records[0]["one"] != 1:
                raise ConnectionError("RETURN 1 gave no row")
