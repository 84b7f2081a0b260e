"""Redis from Debian's ``redis-server`` package (installed with apt-get when run as root)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from clients.devstack.errors import ServiceUnavailable
from clients.devstack.process import port_open, tail
from clients.devstack.services import Endpoint, Service

PACKAGE = "redis-server"


class Redis(Service):
    name = "redis"
    ready_timeout_s = 60.0

    @property
    def markers(self) -> tuple[str, ...]:
        # redis-server rewrites its process title to "redis-server 127.0.0.1:<port>", so the
        # config path is not visible there; the listening address is.
        return (f"redis-server 127.0.0.1:{self.ports.redis}",)

    def endpoints(self) -> list[Endpoint]:
        port = self.ports.redis
        return [Endpoint("redis", port, f"redis://127.0.0.1:{port}")]

    async def prepare(self) -> list[str]:
        server = await self._server_binary()
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.render("redis.conf", self.home / "conf" / "redis.conf",
                           port=self.ports.redis, dir=data)
        return [server, str(conf)]

    async def _server_binary(self) -> str:
        found = shutil.which(PACKAGE) or shutil.which(PACKAGE, path="/usr/sbin:/usr/bin")
        if found:
            return found
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise ServiceUnavailable(
                f"redis: {PACKAGE} is not installed; run `apt-get install {PACKAGE}` as root")
        log = self.home / "logs" / "apt.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        # A fresh machine's package lists may be empty: install, else update and retry.
        if not await _apt(log, "install", "-y", "-q", PACKAGE):
            await _apt(log, "update", "-q")
            if not await _apt(log, "install", "-y", "-q", PACKAGE):
                raise ServiceUnavailable(
                    f"redis: apt-get install {PACKAGE} failed; last lines of {log}:\n{tail(log)}")
        found = shutil.which(PACKAGE, path="/usr/bin:/usr/sbin")
        if not found:
            raise ServiceUnavailable(f"redis: {PACKAGE} installed but not found on PATH")
        return found

    async def probe(self) -> None:
        if not port_open(self.ports.redis):
            raise ConnectionError("not listening yet")
        from redis.asyncio import Redis as Client

        client = Client(host="127.0.0.1", port=self.ports.redis, socket_timeout=5)
        try:
            if not await client.ping():
                raise ConnectionError("PING was not answered")
        finally:
            await client.aclose()


async def _apt(log: Path, *args: str) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            "apt-get", *args, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT, env=env)
        return await proc.wait() == 0
