"""Java for the JVM services: pick a JDK each server supports, and assemble its classpath
from Maven Central with one small pom per service (their Netty, Jackson, Guava and logging
stacks differ, so they never share a lib dir)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from clients.devstack.errors import DevStackError, ServiceUnavailable
from clients.devstack.process import tail

JVM_ROOT = Path("/usr/lib/jvm")


def java_major(home: Path) -> int | None:
    """The feature version of the JDK at ``home``, from its ``release`` file."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            head = version.split(".", 1)[0]
            if head == "1":  # 1.8.0_x
                head = version.split(".")[1]
            return int(head) if head.isdigit() else None
    return None


def _candidates() -> Iterable[Path]:
    for var in ("CEP_DEVSTACK_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            yield Path(os.environ[var])
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path).resolve().parent.parent
    if JVM_ROOT.is_dir():
        yield from sorted(p for p in JVM_ROOT.iterdir() if p.is_dir() and not p.is_symlink())


def find_java(service: str, supported: tuple[int, ...]) -> Path:
    """The ``bin/java`` of the first JDK (CEP_DEVSTACK_JAVA_HOME, JAVA_HOME, PATH, then
    /usr/lib/jvm) whose major version is in ``supported``."""
    seen: list[str] = []
    for home in _candidates():
        major = java_major(home)
        java = home / "bin" / "java"
        if major is None or not java.is_file():
            continue
        if major in supported:
            return java
        seen.append(f"{home} ({major})")
    raise ServiceUnavailable(
        f"{service}: needs Java {' or '.join(map(str, supported))}; found "
        f"{', '.join(seen) or 'none'}. Set CEP_DEVSTACK_JAVA_HOME to a supported JDK."
    )


async def resolve_classpath(service: str, pom: Path, cache_dir: Path) -> Path:
    """Copy ``pom``'s runtime dependencies into ``<cache_dir>/<service>/lib`` (once per pom
    content) and return that directory."""
    base = cache_dir / service
    lib = base / "lib"
    stamp = base / "lib.sha256"
    digest = _digest(pom)
    if _stamped(lib, stamp, digest):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceUnavailable(f"{service}: Maven (mvn) is not on PATH; install Maven 3.8+")
    base.mkdir(parents=True, exist_ok=True)
    staging = base / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    log = base / "mvn.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
        code = await proc.wait()
    if code != 0 or not any(staging.glob("*.jar")):
        raise DevStackError(
            f"{service}: resolving {pom.name} from Maven Central failed (exit {code}); "
            f"last lines of {log}:\n{tail(log)}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    staging.replace(lib)
    stamp.write_text(digest + "\n")
    for stale in base.glob("cds-*.jsa"):  # archived classes of the previous classpath
        stale.unlink(missing_ok=True)
    return lib


def _digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _stamped(lib: Path, stamp: Path, digest: str) -> bool:
    """True if ``lib`` was resolved from a pom with this ``digest``."""
    return lib.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest


def jar(lib: Path, prefix: str) -> Path:
    """The single jar in ``lib`` named ``<prefix>-<version>.jar``."""
    found = sorted(p for p in lib.glob(f"{prefix}-*.jar") if p.name[len(prefix) + 1].isdigit())
    if not found:
        raise DevStackError(f"{prefix}-*.jar is missing from {lib}")
    return found[-1]


# -- class data sharing ---------------------------------------------------------------------
# A JVM that starts from an archive of the classes it loaded last time skips most class
# loading and verification: on this 2-core box Neo4j answers in ~4.6 s instead of ~7.5 s and
# Kafka in ~2.1 s instead of ~3.1 s. JDK 17 writes such a (dynamic) archive only when the
# VM exits, so the first run of a classpath writes one to a private name recorded in the
# service's home, and `down` adopts it once the process has exited cleanly. A mismatched
# or damaged archive only makes the JVM print a warning and load classes as usual.


def _runtime_id(java: Path) -> str:
    home = java.parent.parent
    try:
        release = (home / "release").read_text()
    except OSError:
        release = ""
    return hashlib.sha256(f"{home}\n{release}".encode()).hexdigest()[:12]


def class_sharing_flags(java: Path, cache_base: Path, record: Path, *,
                        java_agent: bool = False) -> list[str]:
    """JVM flags that use this service's class archive, or write one at exit (its path is
    kept in ``record`` for ``adopt_class_archive``). Empty when CEP_DEVSTACK_CDS=0."""
    record.unlink(missing_ok=True)
    if os.environ.get("CEP_DEVSTACK_CDS", "1") == "0":
        return []
    archive = cache_base / f"cds-{_runtime_id(java)}.jsa"
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"]
    partial = archive.with_name(f"{archive.stem}.{uuid.uuid4().hex[:8]}.partial")
    record.write_text(f"{partial}\n{archive}\n")
    flags = [f"-XX:ArchiveClassesAtExit={partial}"]
    if java_agent:  # Cassandra's jamm agent; JDK 17 refuses to dump with an agent otherwise
        flags[:0] = ["-XX:+UnlockDiagnosticVMOptions", "-XX:+AllowArchivingWithJavaAgent"]
    return flags


def adopt_class_archive(record: Path, *, exited_cleanly: bool) -> None:
    """After the JVM has exited: make its archive the service's (unless one appeared
    meanwhile or the JVM was killed mid-write), else discard it."""
    try:
        partial_text, archive_text = record.read_text().splitlines()
    except (OSError, ValueError):
        return
    partial, archive = Path(partial_text), Path(archive_text)
    record.unlink(missing_ok=True)
    if exited_cleanly and partial.is_file() and not archive.exists():
        with contextlib.suppress(OSError):
            partial.replace(archive)
            return
    partial.unlink(missing_ok=True)
