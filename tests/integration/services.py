"""Real services for integration tests: started from the dev stack on free ports, in a
temporary data dir, sharing the artifact cache. A missing prerequisite skips the test
locally and fails it under CI (CI=true), so CI never passes by skipping."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from clients.devstack import DevStack, DevStackError, Ports, ServiceUnavailable

REPO = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def running(data: Path, ports: Ports, services: tuple[str, ...] = ()) -> Iterator[DevStack]:
    """``services`` (default: all) up for the duration of the block, then stopped."""
    cache = Path(os.environ.get("CEP_DEVSTACK_CACHE") or REPO / ".cache" / "devstack")
    dev = DevStack(data, cache, ports=ports)
    what = ", ".join(services) if services else "dev stack"
    try:
        asyncio.run(dev.up(services))
    except ServiceUnavailable as exc:
        asyncio.run(dev.down(services))
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} prerequisites are missing under CI:\n{exc}")
        pytest.skip(f"{what} prerequisites are missing:\n{exc}")
    except DevStackError:
        asyncio.run(dev.down(services))
        raise
    try:
        yield dev
    finally:
        asyncio.run(dev.down(services))  # a no-op when a test already stopped them
