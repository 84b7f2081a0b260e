"""Runtime settings of one gateway process: one model (pydantic-settings), three sources.

Precedence, highest first: command-line flags (``Settings.load(**flags)``), ``CEP_*``
environment variables (``CEP_PORT=8080``), a TOML file (``--config FILE``, else
``CEP_CONFIG``, else ``./cep.toml`` when it exists), then the defaults below. The TOML file
uses the field names (``port = 8080``, ``cassandra_hosts = ["10.0.0.1", "10.0.0.2"]``);
environment variables take lists comma-separated (``CEP_CASSANDRA_HOSTS=10.0.0.1,10.0.0.2``).

A wrong setting stops start-up with a message naming it (:class:`SettingsError`): a value of
the wrong type or out of range, or a TOML key that is no setting. ``cep config show`` prints
the effective settings with secrets masked (:meth:`Settings.shown`).
"""

from __future__ import annotations

import contextvars
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROFILES = ("embedded", "distributed")
DEFAULT_CONFIG = Path("cep.toml")
MASK = "****"
# CEP_* variables read by other parts (campaign channels, the CLI, the PyFlink job), so
# they are not reported as unknown settings.
OTHER_VARIABLES = re.compile(
    r"CEP_(CONFIG|SMTP_\w+|WEBHOOK_\w+|CHANNEL_\w+|FLINK_\w+|ARCHIVE_\w+|TEST_\w+|DEVSTACK_\w+|JOB_\w+)$")
# the TOML file of the load under way (pydantic-settings builds its sources per instance)
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "cep_config_file", default=None)


class SettingsError(SystemExit):
    """Start-up stops: a setting is wrong. The message names it and says why."""


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEP_", frozen=True, extra="forbid",
                                      validate_default=True)

    data_dir: Path = Path(".cep")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    profile: Literal["embedded", "distributed"] = "embedded"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "text"] = "json"  # json: one object per line (issue 10)
    shutdown_grace_seconds: float = Field(30.0, gt=0)  # SIGTERM: drain for at most this
    max_body_bytes: int = Field(10 << 20, gt=0)
    max_batch: int = Field(10_000, gt=0)
    max_event_bytes: int = Field(1 << 20, gt=0)
    geo_dir: Path | None = None
    # explicit .mmdb files (e.g. a MaxMind GeoIP2 City); CEP_GEO_DB=a.mmdb,b.mmdb
    geo_files: Annotated[tuple[Path, ...], NoDecode] = Field(
        (), validation_alias=AliasChoices("geo_files", "CEP_GEO_DB", "CEP_GEO_FILES"))
    fsync: bool = True
    graphql_max_depth: int = Field(12, gt=0)
    graphql_max_tokens: int = Field(5_000, gt=0)
    graphql_max_aliases: int = Field(30, gt=0)
    graphql_max_cost: int = Field(250_000, gt=0)  # resolvers.cost: fields × list sizes
    page_size_limit: int = Field(10_000, gt=0)  # rows per page of a list
    # per key and second (0: no limit); burst 2 s
    rate_ingest_records: float = Field(100_000, ge=0, validation_alias=AliasChoices(
        "rate_ingest_records", "CEP_RATE_INGEST", "CEP_RATE_INGEST_RECORDS"))
    rate_queries: float = Field(100, ge=0)  # GraphQL HTTP requests per key and second
    max_backlog: int = Field(2_000_000, gt=0)  # accepted, not yet processed: 503 above
    duckdb_memory: str = "512MB"  # DuckDB's buffer pool; larger queries spill to disk
    # The distributed profile's services (defaults: the dev stack's, `cep devstack up`).
    kafka_bootstrap: str = "127.0.0.1:9092"
    cassandra_hosts: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1",)
    cassandra_port: int = Field(9042, gt=0, le=65535)
    cassandra_keyspace: str = Field("cep", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
    redis_url: str = "redis://127.0.0.1:6379/0"
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str | None = None
    neo4j_password: str | None = Field(None, json_schema_extra={"secret": True})
    flink_group: str = "cep-flink"  # the PyFlink job's Kafka consumer group
    # Data lifecycle: hot data's time to live in Cassandra (0: kept until deleted), open
    # sessions' keys in Redis, and where the Parquet archive lives (a folder or any
    # pyarrow.fs URI such as s3://bucket/prefix; empty: DATA_DIR/archive).
    cassandra_ttl_days: int = Field(0, ge=0)
    redis_ttl_seconds: int = Field(2 * 60 * 60, gt=0)
    archive_uri: str = ""

    @field_validator("geo_files", "cassandra_hosts", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("cassandra_hosts")
    @classmethod
    def _some_host(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one host")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags, then CEP_* variables, then the TOML file (no .env, no secrets dir)
        return (init_settings, env_settings,
                TomlConfigSettingsSource(settings_cls, toml_file=_config_file.get()))

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, config: Path | None = None, **flags: Any) -> Settings:
        """The effective settings: ``flags`` (``None`` values are flags not given) over
        ``CEP_*`` variables over the TOML file over the defaults. Raises
        :class:`SettingsError` naming the wrong setting."""
        path = config or (Path(os.environ["CEP_CONFIG"]) if os.environ.get("CEP_CONFIG")
                          else DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
        if path is not None and not path.is_file():
            raise SettingsError(f"config file {path}: no such file")
        given = {k: v for k, v in flags.items() if v is not None}
        token = _config_file.set(path)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, path)) from None
        except ValueError as exc:  # a TOML file that does not parse
            raise SettingsError(f"config file {path}: {exc}") from None
        finally:
            _config_file.reset(token)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The settings from the environment (and TOML file), ``overrides`` on top."""
        return cls.load(**overrides)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (validated like any other source)."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise SettingsError(_explain(exc, None)) from None

    @staticmethod
    def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
        """``CEP_*`` variables that are no setting (a typo, most likely)."""
        env = os.environ if environ is None else environ
        known = set()
        for name, field in Settings.model_fields.items():
            known.add(f"CEP_{name.upper()}")
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                known.update(str(a) for a in alias.choices if str(a).startswith("CEP_"))
        return sorted(k for k in env if k.startswith("CEP_") and k not in known
                      and not OTHER_VARIABLES.match(k))

    # -- showing ---------------------------------------------------------------------------

    def shown(self) -> dict[str, Any]:
        """The effective settings as plain values, secrets masked (passwords, and the
        password part of any URL)."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            extra = Settings.model_fields[name].json_schema_extra
            if isinstance(extra, dict) and extra.get("secret") and value:
                value = MASK
            elif isinstance(value, str):
                value = mask_url(value)
            out[name] = value
        return out

    # -- derived ---------------------------------------------------------------------------

    def service_env(self) -> dict[str, str]:
        """The distributed services as ``CEP_*`` variables (what the PyFlink job reads)."""
        env = {"CEP_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
               "CEP_CASSANDRA_HOSTS": ",".join(self.cassandra_hosts),
               "CEP_CASSANDRA_PORT": str(self.cassandra_port),
               "CEP_CASSANDRA_KEYSPACE": self.cassandra_keyspace,
               "CEP_REDIS_URL": self.redis_url, "CEP_NEO4J_URI": self.neo4j_uri,
               "CEP_FLINK_GROUP": self.flink_group,
               "CEP_CASSANDRA_TTL_DAYS": str(self.cassandra_ttl_days),
               "CEP_REDIS_TTL_SECONDS": str(self.redis_ttl_seconds)}
        if self.neo4j_user:
            env["CEP_NEO4J_USER"] = self.neo4j_user
        if self.neo4j_password:
            env["CEP_NEO4J_PASSWORD"] = self.neo4j_password
        if self.archive_uri:
            env["CEP_ARCHIVE_URI"] = self.archive_uri
        return env

    def resolved_geo_dir(self) -> Path:
        if self.geo_dir is not None:
            return self.geo_dir
        own = self.data_dir / "geo"
        return own if own.is_dir() else Path(".cache/geo")


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+(?P<tail>@)")


def mask_url(value: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:****@host``; anything else unchanged."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", value)


def _explain(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "settings"
        env = f"CEP_{name.upper()}"
        if error["type"] == "extra_forbidden":
            where = f" in {path}" if path else ""
            lines.append(f"setting {name!r}{where}: not a setting of CEP")
        else:
            field = Settings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
            extra = field.json_schema_extra if field is not None else None
            secret = isinstance(extra, dict) and extra.get("secret")
            got = MASK if secret else _short(error.get("input"))
            lines.append(f"setting {name} ({env}): {error['msg']} (got {got})")
    return "invalid configuration: " + "; ".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
