"""Distributed pipeline benchmark: HTTP → Kafka → PyFlink → Cassandra/Redis/Neo4j.

Run by hand (``python bench/pipeline.py --events 100000``). It starts its own dev stack on
free ports (or uses yours with ``--use-running``), a ``cep serve --profile distributed``
gateway and ``cep flink run``, and prints, each against a baseline measured in this run
(the machine is shared and noisy; four JVMs share two cores here):

- baseline: HTTP ingest alone (the job stopped): events/s answered 200 after Kafka acked;
- catch-up: the job started over that backlog — 14 days of generated history, so mostly
  events older than the job's state reaches, placed against the stored sessions — events/s
  until ``pendingEvents`` is 0 (every event, session, tie and graph step in the stores);
- sustained: live events (timed as they are sent) at ``--rate`` for ``--seconds`` with the
  job running; the rate the stores kept up with, and ingest → Cassandra visibility latency
  p50/p99 of probe events (one every 100 ms, each polled in ``events_by_id``);
- nothing lost: events in Cassandra == distinct events accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess  # nosec B404 - our own CLI
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, make_events, pct, post_all  # noqa: E402


def start_stack(data: Path) -> tuple[Any, dict[str, str]]:
    from clients.devstack import DevStack, Ports
    from tests.integration.services import free_ports

    p = free_ports(7)
    ports = Ports(kafka=p[0], kafka_controller=p[1], cassandra=p[2], cassandra_storage=p[3],
                  neo4j_bolt=p[4], neo4j_http=p[5], redis=p[6])
    dev = DevStack(data, ROOT / ".cache" / "devstack", ports=ports)
    asyncio.run(dev.up())
    return dev, env_for(ports)


def env_for(ports: Any) -> dict[str, str]:
    return {"CEP_PROFILE": "distributed", "CEP_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
            "CEP_CASSANDRA_HOSTS": "127.0.0.1", "CEP_CASSANDRA_PORT": str(ports.cassandra),
            "CEP_REDIS_URL": f"redis://127.0.0.1:{ports.redis}/0",
            "CEP_NEO4J_URI": f"bolt://127.0.0.1:{ports.neo4j_bolt}"}


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(  # nosec B603
                [sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
        self.log = log

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class Bench:
    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.data, self.env = data, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = subprocess.run([sys.executable, "-m", "gateway.cli", "project", "create",  # nosec
                              "bench", "--data", str(data)], cwd=ROOT, check=True,
                             capture_output=True, text=True, env={**os.environ, **env})
        self.keys = json.loads(out.stdout)
        self.gateway = Proc(["serve", "--data", str(data), "--port", str(self.port),
                             "--log-level", "warning"], env, data / "gateway.log")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"gateway did not start; see {data / 'gateway.log'}")
        self.job: Proc | None = None
        from storage.cassandra_store import CassandraStore

        self.cassandra = CassandraStore(("127.0.0.1",), int(env["CEP_CASSANDRA_PORT"]))

    def start_job(self, args: list[str]) -> None:
        self.job = Proc(["flink", "run", "--data", str(self.data), "--", *args], self.env,
                        self.data / "flink-job.log")

    def pending(self) -> int:
        resp = httpx.post(self.url + "/graphql", json={
            "query": "{ pipelineStatus { pendingEvents } }"},
            headers={"Authorization": f"Bearer {self.keys['read_key']}"}, timeout=60)
        return int(resp.json()["data"]["pipelineStatus"]["pendingEvents"])

    def wait_drained(self, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.pending() == 0:
                return time.monotonic()
            if self.job is not None and self.job.proc.poll() is not None:
                raise SystemExit(f"the job exited; see {self.job.log}")
            time.sleep(0.1)
        raise SystemExit(f"not drained in {timeout} s (pending {self.pending()})")

    def visible(self, insert_id: str) -> bool:
        return bool(self.cassandra.existing_insert_ids([(self.keys["project"], insert_id)]))

    def stored_of(self, insert_ids: set[str]) -> int:
        """How many of ``insert_ids`` (this run's project) ``events_by_id`` holds."""
        project = self.keys["project"]
        return len(self.cassandra.existing_insert_ids([(project, i) for i in insert_ids]))

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop()
        self.gateway.stop()
        self.cassandra.close()


def live(events: list[dict[str, Any]], rate: float) -> list[dict[str, Any]]:
    """``events`` as live traffic: in time order, re-timed to when they will be sent at
    ``rate`` (the generator's events span 14 days of history, which the catch-up phase
    measures; the sustained phase measures what an app sends as it happens)."""
    start = int(time.time() * 1000) + 5_000  # about when sending starts
    ordered = sorted(events, key=lambda e: e["time"])
    return [{**e, "time": start + int(i * 1000 / rate)} for i, e in enumerate(ordered)]


def bodies_of(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [orjson.dumps(events[i:i + size]) for i in range(0, len(events), size)]


def probe_loop(bench: Bench, stop: threading.Event, latencies: list[float],
               probes: list[str]) -> None:
    """One tagged event every 100 ms; each one's ingest → Cassandra visibility latency."""
    headers = {"Authorization": f"Bearer {bench.keys['write_key']}"}
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            iid = f"probe-{uuid.uuid4().hex}"
            probes.append(iid)
            sent = time.perf_counter()
            client.post(bench.url + "/v1/events", headers=headers, content=orjson.dumps(
                [{"event_name": "Probe", "time": int(time.time() * 1000), "insert_id": iid,
                  "device_id": f"probe-{iid[-4:]}"}]))
            while not bench.visible(iid):
                if time.perf_counter() - sent > 60:
                    break
                time.sleep(0.01)
            latencies.append(time.perf_counter() - sent)
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - sent)))


async def paced(port: int, key: str, bodies: list[bytes], rate: float, per_body: int
                ) -> tuple[float, int]:
    """Send ``bodies`` so that events go out at ``rate``/s; (seconds, 200s)."""
    interval = per_body / rate
    start = time.perf_counter()
    ok = 0
    tasks = []
    for i, body in enumerate(bodies):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post_all(port, key, [body], 1)))
    for t in tasks:
        ok += (await t)[2]
    return time.perf_counter() - start, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000, help="backlog for the catch-up")
    ap.add_argument("--rate", type=float, default=2_000, help="sustained events/s")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--batch", type=int, default=500, help="events per request")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--use-running", action="store_true",
                    help="use services already on the dev stack's default ports")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    ap.add_argument("job", nargs=argparse.REMAINDER,
                    help="after --: more flags for the job (e.g. -- --python-mode process)")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="cep-bench-pipeline-"))
    dev = None
    if args.use_running:
        from clients.devstack import Ports

        env = env_for(Ports())
    else:
        print("starting the dev stack …", flush=True)
        dev, env = start_stack(data / "stack")
    bench = Bench(data / "gw", env)
    try:
        sustained_n = int(args.rate * args.seconds)
        events = make_events(args.events + sustained_n, seed=7)
        backlog = bodies_of(events[:args.events], args.batch)
        later = bodies_of(live(events[args.events:], args.rate), 100)

        print(f"{args.events:,} events for the backlog, then {args.rate:,.0f}/s for "
              f"{args.seconds:.0f} s", flush=True)
        t, lat, ok = asyncio.run(post_all(bench.port, bench.keys["write_key"], backlog, 8))
        baseline = args.events / t
        print(f"baseline  HTTP → Kafka (job stopped): {baseline:,.0f} events/s "
              f"({ok}/{len(backlog)} requests 200, p99 {pct(lat, 0.99):.0f} ms)", flush=True)

        start = time.monotonic()
        extra = args.job[1:] if args.job[:1] == ["--"] else args.job
        bench.start_job(["--parallelism", str(args.parallelism), "--checkpoint-interval-ms",
                         "1000", *extra])
        done = bench.wait_drained(timeout=3600)
        catch_up = args.events / (done - start)
        print(f"catch-up  Kafka → job → stores: {catch_up:,.0f} events/s "
              f"({catch_up / baseline:.2f}× baseline; includes the job's start-up)", flush=True)

        stop = threading.Event()
        latencies: list[float] = []
        probes: list[str] = []
        prober = threading.Thread(target=probe_loop, args=(bench, stop, latencies, probes),
                                  daemon=True)
        prober.start()
        t0 = time.monotonic()
        sent_s, ok = asyncio.run(paced(bench.port, bench.keys["write_key"], later, args.rate,
                                       100))
        stop.set()  # probes only while the load is offered: they would keep pending above 0
        prober.join(timeout=70)
        drained = bench.wait_drained(timeout=3600)
        kept_up = sustained_n / (drained - t0)
        print(f"sustained {args.rate:,.0f} events/s offered for {sent_s:.0f} s: stores kept up "
              f"at {kept_up:,.0f} events/s ({kept_up / baseline:.2f}× baseline), "
              f"{ok}/{len(later)} requests 200", flush=True)
        if latencies:
            print(f"visibility ingest → Cassandra: p50 {pct(latencies, 0.5):.0f} ms, "
                  f"p99 {pct(latencies, 0.99):.0f} ms over {len(latencies)} probes")
        accepted = {e["insert_id"] for e in events} | set(probes)
        stored, expected = bench.stored_of(accepted), len(accepted)
        print(f"nothing lost: {stored:,} events stored, {expected:,} distinct accepted "
              f"({'OK' if stored == expected else 'MISMATCH'})")
        print("heaps: Kafka/Cassandra/Neo4j per clients/devstack; Flink mini cluster "
              f"JVM_ARGS={os.environ.get('JVM_ARGS', '-Xmx1g')}")
    finally:
        bench.stop()
        if dev is not None:
            asyncio.run(dev.down())
        if not args.keep:
            import shutil

            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
