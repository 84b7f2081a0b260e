"""``--remote``: the job submitted to a standalone Flink cluster gives the local run's answers.

The cluster is the one the apache-flink wheel ships (``pyflink/bin/jobmanager.sh`` and
``taskmanager.sh`` in the foreground, small memory, free ports, a temporary conf dir); the
job's code travels with it (``python.files``), its libraries come from the cluster's Python
(here the same Flink venv).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess  # nosec B404 - the wheel's own cluster scripts and our job
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis
import yaml

from clients.devstack import DevStack
from storage.cassandra_store import CassandraStore
from stream.flink.rules import SETTINGS_KEY
from tests.integration.services import free_ports
from tests.integration.test_flink_local import (
    LATENESS_MS,
    OUT_OF_ORDERNESS_MS,
    ROOT,
    _check,
    _read_outputs,
    arrivals,
    flink_python,
)
from tests.integration.test_flink_stores import LATENESS_MS as STORE_LATENESS_MS
from tests.integration.test_flink_stores import (
    SETTINGS,
    _answers,
    _diff,
    _embedded,
    _publish,
    _records,
    _urls,
    stack,
)

__all__ = ["flink_python", "stack"]  # fixtures, shared with the other Flink tests

CONFIG = """\
jobmanager:
  bind-host: 127.0.0.1
  rpc: {{address: 127.0.0.1, port: {rpc}}}
  memory: {{process: {{size: 900m}}}}
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  numberOfTaskSlots: 2
  memory: {{process: {{size: 1400m}}}}
rest: {{address: 127.0.0.1, bind-address: 127.0.0.1, port: {rest}}}
blob: {{server: {{port: {blob}}}}}
"""


@pytest.fixture
def cluster(flink_python: Path, tmp_path: Path) -> Iterator[str]:
    home, site = subprocess.run(  # nosec B603
        [str(flink_python), "-c", "import pyflink, os, sysconfig; "
         "print(os.path.dirname(pyflink.__file__)); print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.split()
    rpc, rest, blob = free_ports(3)
    conf = tmp_path / "conf"
    conf.mkdir()
    # Every Flink distribution's config carries these JVM flags; the stores' native drivers
    # (loaded by pemja inside the task manager) need the --add-opens among them.
    stock = yaml.safe_load((Path(home) / "conf" / "config.yaml").read_text())
    java_opts = stock["env"]["java"]["opts"]["all"]
    (conf / "config.yaml").write_text(CONFIG.format(rpc=rpc, rest=rest, blob=blob)
                                      + f"env: {{java: {{opts: {{all: '{java_opts}'}}}}}}\n")
    for name in ("log4j.properties", "log4j-console.properties"):
        shutil.copy(Path(home) / "conf" / name, conf / name)
    logs = tmp_path / "logs"
    logs.mkdir()
    # Thread mode runs the functions in the task manager's JVM (pemja): the cluster's
    # Python environment is the Flink venv, found through PYTHONPATH as a worker image
    # would have it installed.
    env = {**os.environ, "FLINK_HOME": home, "FLINK_CONF_DIR": str(conf),
           "FLINK_LOG_DIR": str(logs), "PYTHONPATH": site}
    java17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
    if "JAVA_HOME" not in env and java17.is_dir():
        env["JAVA_HOME"] = str(java17)
    procs = []
    try:
        for script in ("jobmanager.sh", "taskmanager.sh"):
            out = (logs / f"{script}.out").open("wb")
            procs.append(subprocess.Popen(  # nosec B603
                ["bash", str(Path(home) / "bin" / script), "start-foreground"], env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            out.close()
        url = f"http://127.0.0.1:{rest}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/overview", timeout=2).json().get("taskmanagers") == 1:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                tails = "\n".join(f"--- {f.name}\n" + f.read_text(errors="replace")[-3000:]
                                  for f in sorted(logs.iterdir()))
                pytest.fail(f"the standalone Flink cluster did not come up:\n{tails}")
            time.sleep(0.5)
        yield f"127.0.0.1:{rest}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_a_remote_cluster_gives_the_local_answers(flink_python: Path, cluster: str,
                                                   tmp_path: Path) -> None:
    events = arrivals()
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    out_dir = tmp_path / "out"
    started = time.monotonic()
    run = subprocess.run(  # nosec B603 - our own job module, fixed arguments
        [str(flink_python), "-m", "stream.flink.job", "--remote", cluster, "--remote-python",
         str(flink_python), "--parallelism", "2", "--out-of-orderness-ms",
         str(OUT_OF_ORDERNESS_MS), "--allowed-lateness-ms", str(LATENESS_MS),
         "--checkpoint-interval-ms", "0", "--events", str(source),
         "--sink", f"jsonl:{out_dir}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=600, check=False)
    print(f"remote flink job: {time.monotonic() - started:.1f} s", file=sys.stderr)
    assert run.returncode == 0, f"job failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    outputs = _read_outputs(out_dir)
    stats = _check(events, outputs, LATENESS_MS)
    assert stats["moved"] > 0
    assert stats["deleted"] > 0


def test_a_remote_cluster_writes_the_stores(flink_python: Path, cluster: str, stack: DevStack,
                                            tmp_path: Path) -> None:
    """The same job submitted with ``--remote`` and the ``stores`` sink: the task managers
    (whose Python path holds only the Flink venv) import the shipped ``stream``, ``storage``
    and ``graph`` packages and write what the embedded runner commits."""
    urls = _urls(stack)
    project = f"p{uuid.uuid4().hex[:10]}"
    keyspace = f"k{uuid.uuid4().hex[:10]}"
    records = _records(project)
    settings = redis.Redis.from_url(urls["redis"])
    settings.hset(SETTINGS_KEY, project, json.dumps(SETTINGS))
    settings.close()
    asyncio.run(_publish(urls["kafka"], records))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CEP_CASSANDRA_HOSTS": "127.0.0.1",
           "CEP_CASSANDRA_PORT": str(urls["cassandra"]), "CEP_CASSANDRA_KEYSPACE": keyspace,
           "CEP_REDIS_URL": urls["redis"], "CEP_NEO4J_URI": urls["neo4j"]}
    run = subprocess.run(  # nosec B603 - our own job module, fixed arguments
        [str(flink_python), "-m", "stream.flink.job", "--remote", cluster, "--remote-python",
         str(flink_python), "--kafka", urls["kafka"], "--sink", "stores", "--bounded",
         "--from", "earliest", "--group-id", f"g-{project}", "--parallelism", "2",
         "--out-of-orderness-ms", "1000", "--allowed-lateness-ms", str(STORE_LATENESS_MS),
         "--checkpoint-interval-ms", "0", "--rules-refresh-s", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    python_lines = [line for line in (run.stdout + run.stderr).splitlines()
                    if not line.lstrip().startswith("at ")]
    assert run.returncode == 0, "job failed:\n" + "\n".join(python_lines[-80:])
    duck, _graph = _embedded(tmp_path / "embedded", records)
    cassandra = CassandraStore(["127.0.0.1"], urls["cassandra"], keyspace)
    try:
        expected = _answers(duck, project)
        got = _answers(cassandra, project)
        assert len(expected["sessions"]) > 10
        assert _diff(got["sessions"], expected["sessions"]) == []
        assert got["events"] == expected["events"]
    finally:
        cassandra.close()
        duck.close()
