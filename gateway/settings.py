"""Runtime settings of one gateway process (command-line flags and ``CEP_*`` variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}: expected an integer, got {raw!r}") from None


PROFILES = ("embedded", "distributed")


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name) or default
    if raw not in choices:
        raise SystemExit(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path(".cep")
    host: str = "127.0.0.1"
    port: int = 8000
    profile: str = "embedded"
    max_body_bytes: int = 10 << 20
    max_batch: int = 10_000
    max_event_bytes: int = 1 << 20
    geo_dir: Path | None = None
    geo_files: tuple[Path, ...] = ()  # explicit .mmdb files (e.g. a MaxMind GeoIP2 City)
    fsync: bool = True
    graphql_max_depth: int = 12
    graphql_max_tokens: int = 5_000
    graphql_max_aliases: int = 30
    graphql_max_cost: int = 250_000  # resolvers.cost: fields × the items lists may return
    page_size_limit: int = 10_000  # rows per page of a list (a segment export page)
    rate_ingest_records: float = 100_000  # per key and second (0: no limit); burst 2 s
    rate_queries: float = 100  # GraphQL HTTP requests per key and second; burst 2 s
    max_backlog: int = 2_000_000  # events accepted, not yet processed: ingest 503s above
    duckdb_memory: str = "512MB"  # DuckDB's buffer pool; larger queries spill to disk
    # The distributed profile's services (defaults: the dev stack's, `cep devstack up`).
    kafka_bootstrap: str = "127.0.0.1:9092"
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_keyspace: str = "cep"
    redis_url: str = "redis://127.0.0.1:6379/0"
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str | None = None
    neo4j_password: str | None = None
    flink_group: str = "cep-flink"  # the PyFlink job's Kafka consumer group

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            data_dir=Path(os.environ.get("CEP_DATA_DIR", ".cep")),
            host=os.environ.get("CEP_HOST", "127.0.0.1"),
            port=_env_int("CEP_PORT", 8000),
            max_body_bytes=_env_int("CEP_MAX_BODY_BYTES", 10 << 20),
            max_batch=_env_int("CEP_MAX_BATCH", 10_000),
            page_size_limit=_env_int("CEP_PAGE_SIZE_LIMIT", 10_000),
            rate_ingest_records=_env_int("CEP_RATE_INGEST", 100_000),
            rate_queries=_env_int("CEP_RATE_QUERIES", 100),
            max_backlog=_env_int("CEP_MAX_BACKLOG", 2_000_000),
            geo_dir=Path(os.environ["CEP_GEO_DIR"]) if os.environ.get("CEP_GEO_DIR") else None,
            duckdb_memory=os.environ.get("CEP_DUCKDB_MEMORY", "512MB"),
            geo_files=tuple(Path(p) for p in os.environ.get("CEP_GEO_DB", "").split(",") if p),
            profile=_env_choice("CEP_PROFILE", "embedded", PROFILES),
            kafka_bootstrap=os.environ.get("CEP_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
            cassandra_hosts=tuple(h.strip() for h in os.environ.get(
                "CEP_CASSANDRA_HOSTS", "127.0.0.1").split(",") if h.strip()),
            cassandra_port=_env_int("CEP_CASSANDRA_PORT", 9042),
            cassandra_keyspace=os.environ.get("CEP_CASSANDRA_KEYSPACE") or "cep",
            redis_url=os.environ.get("CEP_REDIS_URL") or "redis://127.0.0.1:6379/0",
            neo4j_uri=os.environ.get("CEP_NEO4J_URI") or "bolt://127.0.0.1:7687",
            neo4j_user=os.environ.get("CEP_NEO4J_USER") or None,
            neo4j_password=os.environ.get("CEP_NEO4J_PASSWORD") or None,
            flink_group=os.environ.get("CEP_FLINK_GROUP") or "cep-flink",
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **clean)  # type: ignore[arg-type]

    def service_env(self) -> dict[str, str]:
        """The distributed services as ``CEP_*`` variables (what the PyFlink job reads)."""
        env = {"CEP_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
               "CEP_CASSANDRA_HOSTS": ",".join(self.cassandra_hosts),
               "CEP_CASSANDRA_PORT": str(self.cassandra_port),
               "CEP_CASSANDRA_KEYSPACE": self.cassandra_keyspace,
               "CEP_REDIS_URL": self.redis_url, "CEP_NEO4J_URI": self.neo4j_uri,
               "CEP_FLINK_GROUP": self.flink_group}
        if self.neo4j_user:
            env["CEP_NEO4J_USER"] = self.neo4j_user
        if self.neo4j_password:
            env["CEP_NEO4J_PASSWORD"] = self.neo4j_password
        return env

    def resolved_geo_dir(self) -> Path:
        if self.geo_dir is not None:
            return self.geo_dir
        own = self.data_dir / "geo"
        return own if own.is_dir() else Path(".cache/geo")
