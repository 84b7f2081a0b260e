"""Background processes the dev stack owns: spawn detached, find by pid file, stop.

A service is "ours" when its pid file names a live process whose command line carries the
service's marker (its main class, or ``redis-server``), so a recycled pid is never signalled.
Processes are spawned with ``posix_spawn`` in their own session rather than through
``subprocess.Popen``: a ``Popen`` object kept past its caller warns when collected while the
server still runs, and the servers are meant to outlive the ``cep`` process that starts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections import deque
from pathlib import Path

# Bounded so that one lost signal cannot hang `down` for ever.
STOP_TIMEOUT_S = 90.0


def spawn(argv: list[str], *, log_file: Path, env: dict[str, str]) -> int:
    """Start ``argv`` detached (new session, stdin from /dev/null, stdout+stderr to
    ``log_file``, truncated; the previous log is kept as ``<log_file>.1``). Returns the pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own exited child (the test runs ``up`` in-process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited child (zombie) counts as gone and is reaped."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def owns(pid: int, markers: tuple[str, ...]) -> bool:
    """True if ``pid`` is alive and its command line contains every one of ``markers``."""
    if not is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return all(m.encode() in cmdline for m in markers)


def running_pid(pid_file: Path, markers: tuple[str, ...]) -> int | None:
    """The pid recorded in ``pid_file`` if that process is still ours, else None."""
    pid = read_pid(pid_file)
    return pid if pid is not None and owns(pid, markers) else None


async def stop(pid: int, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return False
        await asyncio.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not is_alive(pid):
            break
        await asyncio.sleep(0.1)
    return True


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("r", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return ""
