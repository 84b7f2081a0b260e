"""The data-lifecycle commands (issue 10): ``cep archive query|compact`` and ``cep project
export|delete``, registered on the ``cep`` groups by ``register_data_commands``.

Long work draws a rich progress bar on stderr (when it is a terminal) and can be
interrupted: files are written under a temporary name and renamed when complete, so Ctrl-C
leaves no half-written file. Output shapes are a contract, like the rest of the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

FORMATS = ("table", "json", "csv")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


# -- shared helpers ------------------------------------------------------------------------

@contextlib.contextmanager
def progress_bar(label: str, total: int | None = None
                 ) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (drawn only on a terminal); yields ``advance(n)``."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                   disable=not sys.stderr.isatty())
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file written under a temporary name beside ``path``, renamed to it when the block
    ends normally; on any exception (Ctrl-C included) the temporary file is removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)


REPLAY_CHUNK = 1_000


def replay_dead_letters(platform: Any, project_id: str) -> Any:
    """``cep deadletters replay`` offline: the project's open dead letters re-judged in chunks
    of REPLAY_CHUNK, each settled by one log record (an interrupted replay leaves whole
    chunks replayed and the rest open), then processed. Returns the ``IngestResult``."""
    from gateway.ingest import IngestResult

    table = platform.store.dead_letters(project_id, "open", 1_000_000, 0)
    letters = [(r["id"], r["kind"], r["payload"].encode()) for r in table.to_pylist()]
    accepted, rejected = 0, []
    with progress_bar("replaying dead letters", len(letters)) as advance:
        for at in range(0, len(letters), REPLAY_CHUNK):
            chunk = letters[at:at + REPLAY_CHUNK]
            done = asyncio.run(platform.ingestor.replay(project_id, chunk))
            accepted += done.accepted
            rejected += [(at + i, reason) for i, reason in done.rejected]
            advance(len(chunk))
    platform.runner.run_until_idle()
    return IngestResult(accepted, rejected)


# -- archive -------------------------------------------------------------------------------

def _archive(data_dir: Path | None, uri: str | None) -> Any:
    from gateway.data_lifecycle import open_archive
    from gateway.settings import Settings

    return open_archive(Settings.from_env(data_dir=data_dir, archive_uri=uri))


def _print_table(table: Any, fmt: str) -> None:
    rows = table.to_pylist()
    if fmt == "json":
        click.echo(orjson.dumps(rows, default=str).decode())
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([[r[c] for c in table.column_names] for r in rows])
        click.echo(buf.getvalue(), nl=False)
    else:
        out = Table(*table.column_names, show_lines=False)
        for r in rows:
            out.add_row(*("" if r[c] is None else str(r[c]) for c in table.column_names))
        Console().print(out)


def _archive_group(data_option: Decorator) -> click.Group:
    archive_option = click.option(
        "--archive", "uri", default=None,
        help="The archive: a folder or a pyarrow.fs URI such as s3://bucket/prefix "
             "(CEP_ARCHIVE_URI; default DATA/archive).")

    @click.group("archive")
    def archive() -> None:
        """The raw-event archive: Parquet under project=/year=/month=/day=."""

    @archive.command("query")
    @click.argument("sql")
    @data_option
    @archive_option
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                  show_default=True, help="json: one array of objects; csv: with a header.")
    def archive_query(sql: str, data_dir: Path | None, uri: str | None, fmt: str) -> None:
        """Run DuckDB SQL over the archive: view `events` (one row per event) and
        `raw_events` (every copy as stored), with columns project, insert_id, event_name,
        category, time, ingest_time, distinct_user_id, device_id, session_id, source_id,
        url, ip, user_agent, properties, app_version, year, month, day.

        Example: cep archive query "SELECT event_name, count(*) n FROM events
        WHERE project = 'p_…' AND year = 2026 GROUP BY ALL ORDER BY n DESC"
        """
        import duckdb

        try:
            table = _archive(data_dir, uri).query(sql)
        except duckdb.Error as exc:
            raise click.UsageError(f"sql: {exc}") from None
        _print_table(table, fmt)

    @archive.command("compact")
    @data_option
    @archive_option
    @click.option("--min-files", type=int, default=2, show_default=True,
                  help="Merge partitions holding at least this many files.")
    def archive_compact(data_dir: Path | None, uri: str | None, min_files: int) -> None:
        """Merge each day partition's small files into one, removing copies of an event
        (the PyFlink job's archive is at-least-once). Safe to interrupt and to run while
        events are being archived; prints a JSON summary."""
        store = _archive(data_dir, uri)
        with progress_bar("compacting partitions") as advance:
            seen = [0]

            def progress(done: int, _total: int) -> None:
                advance(done - seen[0])
                seen[0] = done

            result = store.compact(progress, min_files=max(min_files, 1))
        click.echo(orjson.dumps({
            "archive": store.uri, "partitions": result.partitions,
            "files_in": result.files_in, "files_out": result.files_out,
            "rows": result.rows, "duplicates_removed": result.duplicates}).decode())

    return archive


# -- one user's data -----------------------------------------------------------------------

def _open_platform(settings: Any) -> Any:
    """The platform of ``settings.profile``, offline (no runner thread)."""
    from gateway.cli import open_platform

    if settings.profile == "distributed":
        return open_platform(settings)
    import duckdb

    from gateway.platform import Platform

    try:
        return Platform.open(settings, start_runner=False)
    except duckdb.IOException as exc:
        raise click.ClickException(
            f"cannot open the data dir while a gateway serves it ({exc}); stop it, or ask "
            "the running gateway with --url and --admin-key") from None


def _offline(project_id: str, data_dir: Path | None, profile: str | None,
             services: dict[str, Any]) -> Any:
    from gateway.cli import _service_overrides
    from gateway.platform import open_control
    from gateway.settings import Settings

    settings = Settings.from_env(data_dir=data_dir, profile=profile,
                                 **_service_overrides(**services))
    control = open_control(settings.data_dir)
    try:
        if not control.project_exists(project_id):
            raise click.UsageError(f"project: {project_id!r} does not exist")
    finally:
        control.close()
    return _open_platform(settings)


def _gateway_call(url: str, key: str | None, query: str, variables: dict[str, Any]) -> Any:
    from gateway.cli import _graphql

    if not key:
        raise click.UsageError("admin-key: required with --url")
    return _graphql(url, key, query, variables)


def _user_options(data_option: Decorator, service_options: Decorator) -> Decorator:
    """What ``project export`` and ``project delete`` both take: PROJECT_ID USER_ID, the data
    dir and profile with its services, or ``--url``/``--admin-key`` of a running gateway."""
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--admin-key", default=None,
                          help="The project's admin key (with --url).")(fn)
        fn = click.option("--url", default=None,
                          help="Ask a running gateway (its base URL) instead of opening the "
                               "data dir; the gateway must serve PROJECT_ID.")(fn)
        fn = service_options(fn)
        fn = click.option("--profile", type=click.Choice(["embedded", "distributed"]),
                          default=None)(fn)
        fn = data_option(fn)
        fn = click.argument("user_id")(fn)
        return click.argument("project_id")(fn)
    return apply


def _export_command(data_option: Decorator, service_options: Decorator) -> click.Command:
    @click.command("export")
    @_user_options(data_option, service_options)
    @click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
                  help="Write the JSON lines here (complete or not at all) instead of stdout.")
    def project_export(project_id: str, user_id: str, data_dir: Path | None,
                       profile: str | None, url: str | None, admin_key: str | None,
                       out: Path | None, **services: Any) -> None:
        """Every record held about USER_ID, as JSON lines, each with its kind in `record`:
        trait, identity, session, event, journey, delivery, dead_letter, archived_event."""
        if url:
            data = _gateway_call(url, admin_key, "query($u:String!){userData(userId:$u)"
                                 "{total records}}", {"u": user_id})["userData"]
            total, records = int(data["total"]), iter(data["records"])
            _write_export(total, records, out)
            return
        platform = _offline(project_id, data_dir, profile, services)
        try:
            total, records = platform.user_data.export(project_id, user_id)
            _write_export(total, records, out)
        finally:
            platform.close()

    return project_export


def _write_export(total: int, records: Iterator[dict[str, Any]], out: Path | None) -> None:
    sink = contextlib.nullcontext(sys.stdout.buffer) if out is None else atomic_file(out)
    with progress_bar("exporting records", total) as advance, sink as f:
        for r in records:
            f.write(_json_line(r))
            advance(1)
        f.flush()
    if out is None:
        return
    click.echo(orjson.dumps({"records": total, "out": str(out)}).decode(), err=True)


def _delete_command(data_option: Decorator, service_options: Decorator) -> click.Command:
    @click.command("delete")
    @_user_options(data_option, service_options)
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def project_delete(project_id: str, user_id: str, data_dir: Path | None,
                       profile: str | None, url: str | None, admin_key: str | None,
                       yes: bool, **services: Any) -> None:
        """Erase USER_ID from every store (right to be forgotten): events, sessions, profile,
        the devices tied to them, journeys, live views, the archive, campaign records and
        dead letters naming them. The user and their devices stay on the project's
        forgotten list: nothing they sent is stored again, replays of the log included.
        Prints how many records each store held, as JSON."""
        if not yes:
            click.confirm(f"Erase every record of {user_id!r} in {project_id}?", abort=True,
                          err=True)
        if url:
            data = _gateway_call(url, admin_key, "mutation($u:String!){deleteUserData("
                                 "userId:$u){erased{store records}}}", {"u": user_id})
            counts = {e["store"]: e["records"] for e in data["deleteUserData"]["erased"]}
        else:
            platform = _offline(project_id, data_dir, profile, services)
            try:
                counts = asyncio.run(platform.user_data.erase(project_id, user_id))
            finally:
                platform.close()
        click.echo(orjson.dumps({"project": project_id, "user_id": user_id,
                                 "erased": counts}).decode())

    return project_delete


def register_data_commands(main: click.Group, project: click.Group) -> None:
    """Add ``archive`` to ``main`` and ``export``/``delete`` to ``project``, with the data
    and service options of ``gateway.cli`` (imported here, once it is loaded)."""
    from gateway.cli import DATA_OPTION, service_options

    main.add_command(_archive_group(DATA_OPTION))
    project.add_command(_export_command(DATA_OPTION, service_options))
    project.add_command(_delete_command(DATA_OPTION, service_options))
