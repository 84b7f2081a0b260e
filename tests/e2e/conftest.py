"""A real gateway process (``cep serve``) per test module, and helpers to talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cep(*args: str, data: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--data", str(data)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise AssertionError(f"cep {' '.join(args)} failed ({out.returncode}):\n"
                             f"{out.stdout}\n{out.stderr}")
    return dict(json.loads(out.stdout))


class Gateway:
    """``cep serve`` in a subprocess; ``env`` adds ``CEP_*`` settings (e.g. the profile)."""

    def __init__(self, data: Path, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.data = data
        self.extra = extra
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data / "gateway.log"

    def start(self, timeout: float = 120.0) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--data", str(self.data),
             "--port", str(self.port), "--log-level", "warning", *self.extra],
            cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready in {timeout}s:\n{self.tail()}")

    def create_project(self, name: str) -> dict[str, Any]:
        return cep("project", "create", name, data=self.data, env=self.env)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def gql(self, key: str, query: str, variables: dict[str, Any] | None = None
            ) -> dict[str, Any]:
        resp = httpx.post(self.url + "/graphql", json={"query": query,
                          "variables": variables or {}},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)
        return dict(resp.json())

    def wait_processed(self, key: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.gql(key, "{ pipelineStatus { pendingEvents } }")
            if body.get("data", {}).get("pipelineStatus", {}).get("pendingEvents") == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"pipeline did not drain in {timeout}s: {body}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gw"))
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[str, Any]:
    return cep("project", "create", "e2e", data=gateway.data)
