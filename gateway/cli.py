"""The ``cep`` command line. Names and output shapes are a contract: scripts use them."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from clients.devstack.cli import devstack
from gateway.cli_data import progress_bar, register_data_commands, replay_dead_letters
from gateway.platform import open_control
from gateway.settings import Settings

DATA_OPTION = click.option("--data", "data_dir", type=click.Path(path_type=Path),
                           default=None, help="Data directory (default ./.cep).")


CONFIG_OPTION = click.option(
    "--config", "config", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="TOML settings file (CEP_CONFIG; else ./cep.toml when present).")


def _settings(config: Path | None = None, **overrides: Any) -> Settings:
    return Settings.load(config, **overrides)


def service_options(fn: Any) -> Any:
    """Connection flags of the distributed profile (default: ``CEP_*`` variables, else the
    dev stack's ports)."""
    for option in reversed([
        click.option("--kafka", "kafka_bootstrap", default=None,
                     help="Kafka bootstrap servers (CEP_KAFKA_BOOTSTRAP; 127.0.0.1:9092)."),
        click.option("--cassandra", "cassandra", default=None,
                     help="Cassandra HOST[,HOST…][:PORT] (CEP_CASSANDRA_HOSTS/PORT; "
                          "127.0.0.1:9042)."),
        click.option("--keyspace", "cassandra_keyspace", default=None,
                     help="Cassandra keyspace (CEP_CASSANDRA_KEYSPACE; cep)."),
        click.option("--redis", "redis_url", default=None,
                     help="Redis URL (CEP_REDIS_URL; redis://127.0.0.1:6379/0)."),
        click.option("--neo4j", "neo4j_uri", default=None,
                     help="Neo4j bolt URI (CEP_NEO4J_URI; bolt://127.0.0.1:7687)."),
    ]):
        fn = option(fn)
    return fn


def _service_overrides(kafka_bootstrap: str | None, cassandra: str | None,
                       cassandra_keyspace: str | None, redis_url: str | None,
                       neo4j_uri: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"kafka_bootstrap": kafka_bootstrap,
                           "cassandra_keyspace": cassandra_keyspace, "redis_url": redis_url,
                           "neo4j_uri": neo4j_uri}
    if cassandra:
        hosts, _, port = cassandra.rpartition(":") if ":" in cassandra else (cassandra, "", "")
        if port and not port.isdigit():
            raise click.BadParameter(f"{cassandra!r}: the port after ':' must be a number",
                                     param_hint="--cassandra")
        out["cassandra_hosts"] = tuple(h for h in hosts.split(",") if h)
        out["cassandra_port"] = int(port) if port else None
    return out


def open_platform(settings: Settings) -> Any:
    """The platform of ``settings.profile``: embedded, or the distributed stores' clients."""
    if settings.profile == "distributed":
        from gateway.distributed import DistributedPlatform

        try:
            return DistributedPlatform.open(settings)
        except Exception as exc:  # name the dependency that cannot be reached
            raise click.ClickException(
                f"distributed profile: cannot connect to its stores ({exc!r}); start them "
                "with `cep devstack up` or point --cassandra/--redis/--neo4j/--kafka at "
                "yours") from None
    from gateway.platform import Platform

    return Platform.open(settings)


@click.group()
def main() -> None:
    """CEP — customer engagement platform."""


# -- projects ------------------------------------------------------------------------------

@main.group()
def project() -> None:
    """Projects (tenants) and their keys."""


@project.command("create")
@click.argument("name")
@DATA_OPTION
@click.option("--profile", type=click.Choice(["embedded", "distributed"]), default=None,
              help="distributed: also check that its stores answer and mirror the project's "
                   "settings into Redis for the PyFlink job.")
@service_options
def project_create(name: str, data_dir: Path | None, profile: str | None,
                   **services: Any) -> None:
    """Create a project; prints its id and keys as one JSON object (keys are shown once)."""
    settings = _settings(data_dir=data_dir, profile=profile, **_service_overrides(**services))
    if settings.profile == "distributed":
        platform = open_platform(settings)  # fails, naming the store, before creating
        try:
            created = platform.control.create_project(name)
            from gateway.distributed import publish_settings

            publish_settings(platform.redis, platform.control, [created["project"]])
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        finally:
            platform.close()
        click.echo(json.dumps(created))
        return
    control = open_control(settings.data_dir)
    try:
        created = control.create_project(name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        control.close()
    click.echo(json.dumps(created))


@project.command("list")
@DATA_OPTION
def project_list(data_dir: Path | None) -> None:
    """List projects as JSON lines."""
    control = open_control(_settings(data_dir=data_dir).data_dir)
    for p in control.projects():
        click.echo(json.dumps(p))
    control.close()


@project.command("rotate-key")
@click.argument("project_id")
@click.argument("kind", type=click.Choice(["write", "read", "admin"]))
@DATA_OPTION
def project_rotate(project_id: str, kind: str, data_dir: Path | None) -> None:
    """Issue a new key of KIND and revoke the old one; prints the new key."""
    control = open_control(_settings(data_dir=data_dir).data_dir)
    if not control.project_exists(project_id):
        raise click.UsageError(f"project: {project_id!r} does not exist")
    click.echo(json.dumps({"project": project_id, f"{kind}_key": control.rotate_key(
        project_id, kind)}))
    control.close()


@project.group("keys")
def project_keys() -> None:
    """A project's keys: list, create, rotate, revoke (the gateway stops accepting a revoked
    key within seconds)."""


def _control_for(project_id: str, data_dir: Path | None) -> Any:
    control = open_control(_settings(data_dir=data_dir).data_dir)
    if not control.project_exists(project_id):
        control.close()
        raise click.UsageError(f"project: {project_id!r} does not exist")
    return control


@project_keys.command("list")
@click.argument("project_id")
@DATA_OPTION
def keys_list(project_id: str, data_dir: Path | None) -> None:
    """The project's keys as JSON lines: kind, prefix, created_at, revoked_at (never keys)."""
    control = _control_for(project_id, data_dir)
    try:
        for row in control.keys(project_id):
            click.echo(json.dumps(row))
    finally:
        control.close()


@project_keys.command("create")
@click.argument("project_id")
@click.argument("kind", type=click.Choice(["write", "read", "admin"]))
@DATA_OPTION
def keys_create(project_id: str, kind: str, data_dir: Path | None) -> None:
    """One more key of KIND (the others stay valid); prints it, once."""
    control = _control_for(project_id, data_dir)
    try:
        click.echo(json.dumps({"project": project_id,
                               f"{kind}_key": control.create_key(project_id, kind)}))
    finally:
        control.close()


@project_keys.command("rotate")
@click.argument("project_id")
@click.argument("kind", type=click.Choice(["write", "read", "admin"]))
@DATA_OPTION
def keys_rotate(project_id: str, kind: str, data_dir: Path | None) -> None:
    """A new key of KIND, every other key of that kind revoked; prints it, once."""
    control = _control_for(project_id, data_dir)
    try:
        click.echo(json.dumps({"project": project_id,
                               f"{kind}_key": control.rotate_key(project_id, kind)}))
    finally:
        control.close()


@project_keys.command("revoke")
@click.argument("project_id")
@click.argument("prefix")
@DATA_OPTION
def keys_revoke(project_id: str, prefix: str, data_dir: Path | None) -> None:
    """Revoke the key with PREFIX (as `keys list` shows it) or this whole key."""
    control = _control_for(project_id, data_dir)
    try:
        n = control.revoke_key(project_id, prefix)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        control.close()
    if n == 0:
        raise click.UsageError(f"prefix: no active key of {project_id} matches {prefix!r}")
    click.echo(json.dumps({"project": project_id, "revoked": n}))


# -- serving -------------------------------------------------------------------------------

@main.command()
@DATA_OPTION
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--profile", type=click.Choice(["embedded", "distributed"]), default=None,
              help="embedded (default; CEP_PROFILE) or distributed: Kafka, Cassandra, Redis "
                   "and Neo4j, processed by the PyFlink job (`cep flink run`).")
@service_options
@click.option("--demo", is_flag=True, help="Load the demo data set first (once per data dir).")
@click.option("--geo-db", "geo_db", multiple=True, type=click.Path(path_type=Path,
              exists=True, dir_okay=False), help="A .mmdb file to use for geo-IP (e.g. your "
              "MaxMind GeoIP2/GeoLite2 City); repeat to layer several.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error",
              "critical"], case_sensitive=False), default=None,
              help="Log level (CEP_LOG_LEVEL; info).")
@click.option("--log-format", type=click.Choice(["json", "text"]), default=None,
              help="json: one object per line (default; CEP_LOG_FORMAT) or text.")
@CONFIG_OPTION
def serve(data_dir: Path | None, host: str | None, port: int | None, profile: str | None,
          demo: bool, geo_db: tuple[Path, ...], log_level: str | None,
          log_format: str | None, config: Path | None, **services: Any) -> None:
    """Serve ingest, GraphQL and health endpoints."""
    import gc
    import logging

    import pyarrow

    from gateway.app import create_app
    from gateway.logs import configure, uvicorn_log_config
    from gateway.shutdown import serve as serve_gracefully

    # The runner allocates several objects per event in steps of ~30k events; with default
    # thresholds the collector's full scans of every live object cost ~20% of processing.
    gc.set_threshold(50_000, 20, 100)
    # Arrow's allocator keeps freed pages for reuse; hand them back at once instead, so the
    # gateway's resident memory follows what it holds.
    pyarrow.jemalloc_set_decay_ms(0)
    settings = _settings(config=config, data_dir=data_dir, host=host, port=port,
                         geo_files=geo_db or None, profile=profile,
                         log_level=log_level.lower() if log_level else None,
                         log_format=log_format, **_service_overrides(**services))
    configure(settings.log_level, settings.log_format)
    for name in Settings.unknown_variables():
        logging.getLogger("cep.config").warning("%s is not a CEP setting (ignored)", name)
    platform = open_platform(settings)
    if demo:
        from gateway.demo import load_demo

        keys = load_demo(platform)
        click.echo(json.dumps({"demo": keys}), err=True)
    gc.freeze()
    app = create_app(platform, own_platform=True)
    serve_gracefully(app, app.state.sockets, host=settings.host, port=settings.port,
                     log_level=settings.log_level, log_config=uvicorn_log_config(),
                     access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_seconds)


# -- configuration -------------------------------------------------------------------------

@main.group()
def config() -> None:
    """The effective configuration (TOML file < CEP_* variables < flags)."""


@config.command("show")
@DATA_OPTION
@CONFIG_OPTION
def config_show(data_dir: Path | None, config: Path | None) -> None:
    """Print the effective settings as JSON, secrets masked."""
    settings = _settings(config=config, data_dir=data_dir)
    for name in Settings.unknown_variables():
        click.echo(f"warning: {name} is not a CEP setting (ignored)", err=True)
    click.echo(json.dumps(settings.shown(), indent=2, sort_keys=True))


# -- the PyFlink job -----------------------------------------------------------------------

@main.group()
def flink() -> None:
    """The distributed profile's PyFlink job."""


@flink.command("run", context_settings={"ignore_unknown_options": True})
@DATA_OPTION
@service_options
@click.option("--remote", default=None, metavar="HOST:PORT",
              help="Submit to a Flink cluster's REST endpoint instead of running a local "
                   "mini cluster in this process.")
@click.option("--parallelism", type=int, default=None, help="Job parallelism (default 2).")
@click.option("--venv", type=click.Path(path_type=Path), default=None,
              help="The Flink virtualenv (default .cache/flink-venv; scripts/flink/setup.sh).")
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED)
def flink_run(data_dir: Path | None, remote: str | None, parallelism: int | None,
              venv: Path | None, job_args: tuple[str, ...], **services: Any) -> None:
    """Run the job: Kafka raw.* -> dedupe -> sessions + enrichment -> Cassandra, Redis, Neo4j,
    and the raw events as Parquet under the archive (CEP_ARCHIVE_URI; DATA/archive).

    Extra arguments go to ``python -m stream.flink.job`` (see its --help). Runs in the
    foreground until interrupted.
    """
    import os
    import subprocess  # nosec B404 - runs our own job module with the Flink venv's Python

    root = Path(__file__).resolve().parents[1]
    settings = _settings(data_dir=data_dir, profile="distributed",
                         **_service_overrides(**services))
    python = (venv or root / ".cache" / "flink-venv") / "bin" / "python"
    if not python.exists():
        raise click.ClickException(f"no Flink virtualenv at {python.parent.parent}: run "
                                   "scripts/flink/setup.sh (make setup does)")
    args = [str(python), "-m", "stream.flink.job", "--kafka", settings.kafka_bootstrap,
            "--group-id", settings.flink_group, "--sink", "stores",
            "--sink", "stream.flink.archive_sink:ArchiveSink"]
    if parallelism is not None:
        args += ["--parallelism", str(parallelism)]
    if remote:
        args += ["--remote", remote]
    if "--checkpoint-dir" not in job_args:  # restarts resume from the data dir's checkpoints
        checkpoints = (settings.data_dir / "flink-checkpoints").resolve()
        args += ["--checkpoint-dir", checkpoints.as_uri()]
    if "--restore" not in job_args:
        # Resume dedupe and session state with the offsets (a fresh start when none yet):
        # committed offsets alone would start again with empty state.
        args += ["--restore", "latest"]
    if "--checkpoint-interval-ms" not in job_args:
        # pendingEvents moves when a checkpoint commits the job's offsets.
        args += ["--checkpoint-interval-ms", "2000"]
    args += list(job_args)
    from gateway.data_lifecycle import job_env

    env = {**job_env(settings), **os.environ, **settings.service_env(),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root),
                                                       os.environ.get("PYTHONPATH")]))}
    click.echo(f"flink: {' '.join(args[1:])}", err=True)
    try:
        code = subprocess.call(args, env=env, cwd=root)  # nosec B603 - fixed module
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


# -- data ----------------------------------------------------------------------------------

@main.command()
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--users", type=int, default=200, show_default=True)
@click.option("--days", type=int, default=14, show_default=True)
@click.option("--end", "end_ms", type=int, default=None,
              help="End of the generated period, unix ms (default: now).")
@click.option("--invalid-rate", type=float, default=0.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write NDJSON events here (profiles beside it).")
@click.option("--url", default=None, help="Send to a running gateway at this base URL.")
@click.option("--write-key", default=None, help="The project's write key (with --url).")
def generate(seed: int, users: int, days: int, end_ms: int | None, invalid_rate: float,
             out: Path | None, url: str | None, write_key: str | None) -> None:
    """Generate a realistic grocery-app event stream, deterministic for a seed."""
    from stream.generate import generate as make
    from stream.generate import send, write_ndjson

    if (out is None) == (url is None):
        raise click.UsageError("give exactly one of --out FILE or --url URL")
    if url is not None and not write_key:
        raise click.UsageError("write-key: required with --url")
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    dataset = make(seed=seed, users=users, days=days, end_ms=end, invalid_rate=invalid_rate)
    if out is not None:
        with progress_bar("writing records", len(dataset.events) + len(dataset.profiles)) as bar:
            write_ndjson(dataset, out, progress=bar)  # complete files or none (Ctrl-C)
        click.echo(json.dumps({"events": len(dataset.events),
                               "profiles": len(dataset.profiles), "out": str(out)}))
        return
    totals = asyncio.run(send(dataset, url or "", write_key or "", progress=sys.stderr.isatty()))
    click.echo(json.dumps(totals.as_dict(), default=str))


@main.group()
def deadletters() -> None:
    """Rejected records: list and replay after a schema fix."""


@deadletters.command("list")
@click.option("--url", required=True, help="Base URL of a running gateway.")
@click.option("--read-key", required=True)
@click.option("--first", type=int, default=50)
def deadletters_list(url: str, read_key: str, first: int) -> None:
    """Print open dead letters as JSON lines."""
    data = _graphql(url, read_key, "query($n:Int!){deadLetters(first:$n){edges{id kind index "
                    "reason payload receivedAt}}}", {"n": first})
    for edge in data["deadLetters"]["edges"]:
        click.echo(json.dumps(edge))


@deadletters.command("replay")
@click.option("--url", default=None, help="Base URL of a running gateway.")
@click.option("--admin-key", default=None, help="The project's admin key (with --url).")
@DATA_OPTION
@click.option("--project", "project_id", default=None, help="Project id (offline replay).")
def deadletters_replay(url: str | None, admin_key: str | None, data_dir: Path | None,
                       project_id: str | None) -> None:
    """Re-judge open dead letters with the current schemas; ingest those now valid.

    With --url it asks a running gateway; otherwise it works on the data directory (the
    gateway must be stopped then).
    """
    if url:
        if not admin_key:
            raise click.UsageError("admin-key: required with --url")
        data = _graphql(url, admin_key, "mutation{replayDeadLetters{accepted rejected"
                        "{index reason}}}", {})
        click.echo(json.dumps(data["replayDeadLetters"]))
        return
    if not project_id:
        raise click.UsageError("project: required for an offline replay (or give --url)")
    from gateway.platform import Platform

    platform = Platform.open(_settings(data_dir=data_dir), start_runner=False)
    try:
        result = replay_dead_letters(platform, project_id)  # in chunks, with progress
    finally:
        platform.close()
    click.echo(json.dumps(result.as_json()))


@main.group()
def schema() -> None:
    """The GraphQL schema."""


@schema.command("export")
def schema_export() -> None:
    """Print the GraphQL SDL (the committed schema.graphql is this output)."""
    from resolvers.schema import schema as gql_schema

    click.echo(gql_schema.as_str())


def _graphql(url: str, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    import httpx

    resp = httpx.post(url.rstrip("/") + "/graphql", json={"query": query,
                      "variables": variables}, headers={"Authorization": f"Bearer {key}"},
                      timeout=60)
    body = orjson.loads(resp.content)
    if body.get("errors"):
        raise click.ClickException("; ".join(e["message"] for e in body["errors"]))
    return dict(body["data"])


main.add_command(devstack)
register_data_commands(main, project)  # archive query|compact, project export|delete

if __name__ == "__main__":
    main()
