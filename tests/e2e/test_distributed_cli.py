"""The distributed profile's CLI fails clearly when its stores cannot be reached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, free_port


def test_serve_names_the_unreachable_store_and_exits(tmp_path: Path) -> None:
    closed = free_port()
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--profile", "distributed", "--data",
         str(tmp_path), "--port", str(free_port()), "--cassandra", f"127.0.0.1:{closed}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "distributed profile: cannot connect" in out.stderr
    assert f"127.0.0.1:{closed}" in out.stderr


def test_project_create_checks_the_stores_before_creating(tmp_path: Path) -> None:
    closed = free_port()
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "project", "create", "shop", "--profile",
         "distributed", "--data", str(tmp_path), "--cassandra", f"127.0.0.1:{closed}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    listed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "project", "list", "--data", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert listed.stdout == "", "no project is created when its stores are unreachable"


def test_a_bad_cassandra_port_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--profile", "distributed", "--data",
         str(tmp_path), "--cassandra", "127.0.0.1:nine"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--cassandra" in out.stderr
    assert "port" in out.stderr
