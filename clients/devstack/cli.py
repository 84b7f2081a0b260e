"""The ``cep devstack`` command group: ``up``, ``down``, ``status``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from clients.devstack.errors import DevStackError
from clients.devstack.stack import SERVICE_NAMES, DevStack, ServiceReport

DATA_OPTION = click.option(
    "--data", "data_dir", type=click.Path(path_type=Path), default=None,
    help="Data and logs of the services (default .cep/devstack, or $CEP_DEVSTACK_DATA).")
CACHE_OPTION = click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path), default=None,
    help="Maven-resolved server jars (default .cache/devstack, or $CEP_DEVSTACK_CACHE).")
ONLY_OPTION = click.option(
    "--only", "only", multiple=True, type=click.Choice(SERVICE_NAMES),
    help="Act on this service only (repeatable); default all.")


@click.group()
def devstack() -> None:
    """Local Kafka, Cassandra, Neo4j and Redis for the distributed profile (no Docker)."""


@devstack.command()
@DATA_OPTION
@CACHE_OPTION
@ONLY_OPTION
def up(data_dir: Path | None, cache_dir: Path | None, only: tuple[str, ...]) -> None:
    """Start the services not yet running and wait until each answers."""
    stack = DevStack(data_dir, cache_dir)
    click.echo(f"dev stack in {stack.paths.data_dir} (jars from {stack.paths.cache_dir})")
    try:
        asyncio.run(stack.up(only, on_report=_echo))
    except DevStackError as exc:
        raise click.ClickException(str(exc)) from None


@devstack.command()
@DATA_OPTION
@ONLY_OPTION
def down(data_dir: Path | None, only: tuple[str, ...]) -> None:
    """Stop what `up` started (SIGTERM, then SIGKILL after a bounded wait)."""
    try:
        asyncio.run(DevStack(data_dir).down(only, on_report=_echo))
    except DevStackError as exc:
        raise click.ClickException(str(exc)) from None


@devstack.command()
@DATA_OPTION
@ONLY_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per service.")
def status(data_dir: Path | None, only: tuple[str, ...], as_json: bool) -> None:
    """Show each service as up, starting or down, with where it listens."""
    for report in DevStack(data_dir).status(only):
        if as_json:
            click.echo(json.dumps({
                "service": report.name, "state": report.state, "pid": report.pid,
                "endpoints": {e.role: e.url for e in report.endpoints},
            }))
        else:
            _echo(report)


def _echo(report: ServiceReport) -> None:
    where = "  ".join(f"{e.role} {e.url}" for e in report.endpoints)
    if report.state == "failed":
        click.echo(f"{report.name:<10} failed", err=True)
        return
    pid = f"pid {report.pid}" if report.pid else ""
    timing = ""
    if report.ready_s is not None:
        timing = f"  (answered after {report.ready_s:.1f} s"
        if report.prepare_s is not None:
            timing += f"; prepared in {report.prepare_s:.1f} s"
        timing += ")"
    click.echo(f"{report.name:<10} {report.state:<8} {pid:<10} {where}{timing}")
