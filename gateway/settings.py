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
    page_size_limit: int = 1_000
    duckdb_memory: str = "128MB"  # DuckDB's buffer pool; larger queries spill to disk

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            data_dir=Path(os.environ.get("CEP_DATA_DIR", ".cep")),
            host=os.environ.get("CEP_HOST", "127.0.0.1"),
            port=_env_int("CEP_PORT", 8000),
            max_body_bytes=_env_int("CEP_MAX_BODY_BYTES", 10 << 20),
            max_batch=_env_int("CEP_MAX_BATCH", 10_000),
            geo_dir=Path(os.environ["CEP_GEO_DIR"]) if os.environ.get("CEP_GEO_DIR") else None,
            duckdb_memory=os.environ.get("CEP_DUCKDB_MEMORY", "128MB"),
            geo_files=tuple(Path(p) for p in os.environ.get("CEP_GEO_DB", "").split(",") if p),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **clean)  # type: ignore[arg-type]

    def resolved_geo_dir(self) -> Path:
        if self.geo_dir is not None:
            return self.geo_dir
        own = self.data_dir / "geo"
        return own if own.is_dir() else Path(".cache/geo")
