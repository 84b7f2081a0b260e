"""Ingest benchmark: events/s accepted over HTTP and processed into the stores.

Run by hand (`make bench` or `python bench/ingest.py --events 1000000`); it prints figures,
and each is quoted against a baseline measured in the same run, because the machines are
shared and noisy:

- baseline: `orjson.loads` of the very same request bodies, in this process;
- accepted: events/s answered 200 by a real `cep serve` (fsync on) in batches of 500,
  from concurrent keep-alive connections;
- processed: events/s from the first request until `pendingEvents` is 0 (end to end), and
  the embedded runner alone over the same log (processing only);
- single-event POSTs: requests/s and p50/p99 latency;
- memory: the gateway's RSS per million stored events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_events(n: int, seed: int) -> list[dict[str, Any]]:
    from stream.generate import generate

    users = max(10, n // 110)
    now = int(time.time() * 1000)
    events: list[dict[str, Any]] = []
    while len(events) < n:
        events.extend(generate(seed=seed, users=users, days=14, end_ms=now).events)
        seed += 1
    return events[:n]


def create_project(data: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "project", "create", "bench",
                          "--data", str(data)], cwd=ROOT, check=True, capture_output=True,
                         text=True)
    return dict(json.loads(out.stdout))


def wait_healthy(url: str, timeout: float = 120) -> None:
    """Until the gateway at ``url`` answers ``/healthz``; exits the benchmark if it never
    does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("gateway did not start")


class Server:
    def __init__(self, data: Path, keys: dict[str, Any] | None = None) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys = keys if keys is not None else create_project(data)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--data", str(data), "--port",
             str(self.port), "--log-level", os.environ.get("BENCH_LOG", "warning")], cwd=ROOT)
        wait_healthy(self.url)

    def pending(self) -> int:
        resp = httpx.post(self.url + "/graphql", json={
            "query": "{ pipelineStatus { pendingEvents } }"},
            headers={"Authorization": f"Bearer {self.keys['read_key']}"}, timeout=60)
        return int(resp.json()["data"]["pipelineStatus"]["pendingEvents"])

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def post_all(port: int, key: str, bodies: list[bytes], connections: int
                   ) -> tuple[float, list[float], int]:
    """POST every body over ``connections`` keep-alive connections; (seconds, latencies, 200s)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    ok = 0

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
                "Content-Type: application/json\r\n").encode()
        while not queue.empty():
            body = queue.get_nowait()
            start = time.perf_counter()
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            ok += status.split()[1] == b"200"
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start, latencies, ok


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--single", type=int, default=20_000, help="single-event POSTs")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    print(f"generating {args.events:,} events…", flush=True)
    events = make_events(args.events, args.seed)
    bodies = [orjson.dumps(events[i:i + args.batch]) for i in range(0, len(events), args.batch)]
    mb = sum(map(len, bodies)) / 1e6

    start = time.perf_counter()
    parsed = sum(len(orjson.loads(b)) for b in bodies)
    baseline = parsed / (time.perf_counter() - start)
    print(f"baseline  orjson parse of the same bodies: {baseline:,.0f} events/s ({mb:.0f} MB)")

    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        server = Server(Path(tmp) / "data")
        try:
            rss_start = server.rss_mb()
            secs, lat, ok = asyncio.run(post_all(server.port, server.keys["write_key"], bodies,
                                                 args.connections))
            accepted = len(events) / secs
            print(f"accepted  {accepted:,.0f} events/s over HTTP, batches of {args.batch}, "
                  f"{args.connections} connections, fsync on ({ok}/{len(bodies)} × 200; "
                  f"p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms per batch) — "
                  f"{accepted / baseline:.3f} × baseline")
            t0 = time.perf_counter()
            while server.pending() > 0:
                time.sleep(0.05)
            total = secs + (time.perf_counter() - t0)
            e2e = len(events) / total
            print(f"processed {e2e:,.0f} events/s end to end (first request → pendingEvents 0)"
                  f" — {e2e / baseline:.3f} × baseline")
            rss = server.rss_mb()
            per_million = (rss - rss_start) / (len(events) / 1e6)
            print(f"memory    gateway RSS {rss_start:,.0f} MB at start, {rss:,.0f} MB with "
                  f"{len(events):,} events stored → {per_million:,.0f} MB per million events")

            now = int(time.time() * 1000)
            singles = [orjson.dumps([{**events[i % len(events)], "insert_id": f"single-{i}",
                                      "device_id": f"single-dev-{i % 500}",
                                      "time": now - args.single + i}])
                       for i in range(args.single)]
            secs, lat, ok = asyncio.run(post_all(server.port, server.keys["write_key"], singles,
                                                 32))
            print(f"single    {len(singles) / secs:,.0f} requests/s, 1 event each, 32 "
                  f"connections ({ok}/{len(singles)} × 200): p50 {pct(lat, .5):.1f} ms, "
                  f"p99 {pct(lat, .99):.1f} ms")
        finally:
            server.stop()
    processing_only(bodies, baseline)


def processing_only(bodies: list[bytes], baseline: float) -> None:
    """The embedded runner alone: the same bodies judged into a fresh log, then processed."""
    import gc

    from storage.duckdb_store import DuckDBStore
    from storage.local_log import LocalEventLog
    from stream.contract.envelope import EnvelopeParser, split_records
    from stream.contract.records import LogRecord, encode_record
    from stream.contract.registry import SchemaRegistry
    from stream.embedded import EmbeddedRunner
    from stream.enrich.device import DeviceParser
    from stream.enrich.fetch import default_geo_paths
    from stream.enrich.geo import GeoLocator
    from stream.operators.enrich import Enricher

    with tempfile.TemporaryDirectory(prefix="cep-bench-proc-") as tmp:
        log = LocalEventLog(Path(tmp) / "log", fsync=False)
        parser = EnvelopeParser(SchemaRegistry(), lambda: int(time.time() * 1000))
        for body in bodies:
            record = LogRecord(events=parser.events("bench", split_records(body)).accepted)
            log.append_sync(encode_record(record), record.items)
        gc.set_threshold(50_000, 20, 100)
        store = DuckDBStore(Path(tmp) / "db.duckdb")
        geo = GeoLocator(default_geo_paths(ROOT / ".cache" / "geo"))
        runner = EmbeddedRunner(log, store, Enricher(geo, DeviceParser()))
        gc.freeze()
        start = time.perf_counter()
        n = runner.run_until_idle()
        rate = n / (time.perf_counter() - start)
        print(f"processed {rate:,.0f} events/s by the embedded runner alone ({n:,} events "
              f"after de-duplication) — {rate / baseline:.3f} × baseline")
        runner.stop(drain=False)
        log.close()
        store.close()


if __name__ == "__main__":
    main()
