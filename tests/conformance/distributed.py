"""The distributed backend of the conformance suite, started for real.

Kafka, Cassandra, Neo4j and Redis from the dev stack (free ports, a temporary data dir),
the gateway with ``--profile distributed`` (creates the topics and the keyspace), and the
PyFlink job through ``cep flink run`` in a local mini cluster with a short checkpoint
interval (the job's consumer offsets, which ``pendingEvents`` reads, move at checkpoints).
Every process is stopped afterwards; a failed start shows the logs' tails.
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404 - our own CLI with fixed arguments
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from clients.devstack import DevStack, Ports
from tests.e2e.conftest import ROOT, Gateway
from tests.integration.services import free_ports, running

FLINK_VENV = Path(os.environ.get("CEP_FLINK_VENV", ROOT / ".cache" / "flink-venv"))


def _unusable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class FlinkJob:
    """``cep flink run`` in its own process group (the JVM is its child)."""

    def __init__(self, data: Path, env: dict[str, str], extra: tuple[str, ...] = ()) -> None:
        self.data = data
        self.env = env
        self.extra = extra  # job flags after the defaults (argparse: the last one wins)
        self.log_path = data / "flink-job.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "gateway.cli", "flink", "run", "--data", str(self.data),
             "--venv", str(FLINK_VENV), "--parallelism", "2", "--",
             "--checkpoint-interval-ms", "1000", "--out-of-orderness-ms", "1000",
             "--max-restarts", "3", *self.extra],
            cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        logf.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class DistributedGateway(Gateway):
    """A distributed-profile gateway whose pipeline waits also watch the job."""

    job: FlinkJob | None = None
    stack: DevStack | None = None  # the dev stack it runs on (a test may stop a service)

    def wait_processed(self, key: str, timeout: float = 180.0) -> None:
        if self.job is not None and not self.job.alive():
            raise AssertionError(f"the PyFlink job exited:\n{self.job.tail()}")
        try:
            super().wait_processed(key, timeout)
        except AssertionError as exc:
            job = self.job.tail() if self.job is not None else "(no job)"
            raise AssertionError(f"{exc}\n--- job log ---\n{job}\n--- gateway log ---\n"
                                 f"{self.tail()}") from None


@contextmanager
def distributed_backend(data: Path, job_args: tuple[str, ...] = ()
                        ) -> Iterator[DistributedGateway]:
    if not (FLINK_VENV / "bin" / "python").exists():
        _unusable(f"no Flink venv at {FLINK_VENV}: run scripts/flink/setup.sh (make setup)")
    p = free_ports(7)
    ports = Ports(kafka=p[0], kafka_controller=p[1], cassandra=p[2], cassandra_storage=p[3],
                  neo4j_bolt=p[4], neo4j_http=p[5], redis=p[6])
    with running(data / "stack", ports) as stack:
        env = {"CEP_PROFILE": "distributed",
               "CEP_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
               "CEP_CASSANDRA_HOSTS": "127.0.0.1", "CEP_CASSANDRA_PORT": str(ports.cassandra),
               "CEP_REDIS_URL": f"redis://127.0.0.1:{ports.redis}/0",
               "CEP_NEO4J_URI": f"bolt://127.0.0.1:{ports.neo4j_bolt}"}
        gw = DistributedGateway(data / "gateway", env=env)
        gw.start(timeout=180)
        job = FlinkJob(gw.data, env, job_args)
        gw.job = job
        gw.stack = stack
        try:
            job.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and job.alive():
                time.sleep(0.2)
            if not job.alive():
                raise RuntimeError(f"the PyFlink job did not start:\n{job.tail()}")
            yield gw
        finally:
            job.stop()
            gw.stop()
