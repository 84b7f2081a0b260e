"""Live-subscription benchmark: ingest → subscriber latency with many subscribers.

Run by hand (`python bench/live.py`); it prints figures, each next to a baseline measured
in the same run (the machines are shared and noisy):

- baseline: the in-process live store alone — a thread publishing one event at a time at
  the target rate, ``--subscribers`` asyncio subscribers (one user stream each): publish
  call → the subscriber's ``async for`` (the thread hop and the bounded queue);
- gateway live path: a real `cep serve` with ``--subscribers`` WebSocket connections
  (``graphql-transport-ws``), each on ``userActivity`` of its own user, and a thread inside
  the gateway publishing to its live store as the runner's commit does, at ``--rate``:
  publish → event received by the client (the store, strawberry, the WebSocket; what
  this issue adds);
- end to end, embedded: the same subscribers, and a producer POSTing ``/v1/events``
  (``--batch`` events per request, round-robin over the users) at ``--rate``: POST sent →
  event received. This adds the HTTP ingest (log fsync), the runner's step and the DuckDB
  step, which publishes to the live views as soon as it has processed the events (before
  its DuckDB commit), lingering only 2 ms for more records while anyone subscribes;
- optionally the same with the runner's linger changed (``--linger-ms``, a what-if: under
  a trickle of requests the runner waits up to ``stream.embedded.LINGER_SECONDS`` = 1 s for
  4,096 records before a step), and with ``--publish-first`` also with the live views
  published when a step's commit starts instead of after the DuckDB transaction.

Times are ``time.perf_counter_ns`` (CLOCK_MONOTONIC on Linux: one clock for every process).

- ``--distributed``: end to end on the distributed profile — the dev stack, the PyFlink job
  and a distributed gateway started as the conformance suite starts them
  (`tests/conformance/distributed.py`): POST → Kafka → PyFlink → Redis → the gateway's
  XREAD → WebSocket client. The job sustains ~500 events/s on this machine (issue 3), so
  run it at a rate below that (``--rate 300``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import wait_healthy  # noqa: E402

QUERY = "subscription($user: String!) { userActivity(userId: $user) { insertId properties } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def figures(latencies_ms: list[float]) -> str:
    if not latencies_ms:
        return "no deliveries"
    a = np.asarray(latencies_ms)
    return (f"p50 {np.percentile(a, 50):6.2f} ms  p99 {np.percentile(a, 99):7.2f} ms  "
            f"max {a.max():7.2f} ms  ({len(a):,} deliveries)")


# -- baseline: the in-process store alone --------------------------------------------------


async def store_baseline(subscribers: int, rate: int, seconds: float) -> tuple[list[float],
                                                                              float]:
    from storage.live import InProcessLiveStore
    from storage.ports import Enrichment, StoredEvents
    from stream.contract.event import Event

    live = InProcessLiveStore()
    latencies: list[float] = []
    total = int(rate * seconds)
    done = asyncio.Event()

    async def subscriber(user: str) -> None:
        async for e in live.subscribe(("bench", "user", user)):
            latencies.append((time.perf_counter_ns() - int(e.properties)) / 1e6)
            if len(latencies) >= total:
                done.set()

    tasks = [asyncio.create_task(subscriber(f"u{i}")) for i in range(subscribers)]
    while live.subscriber_count < subscribers:  # noqa: ASYNC110 - the store has no event for it
        await asyncio.sleep(0.01)

    def publish() -> None:
        interval = 1 / rate
        next_at = time.perf_counter()
        for k in range(total):
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            e = Event(project="bench", insert_id=f"i{k}", event_name="Search", category="c",
                      time=k, ingest_time=0, distinct_user_id=f"u{k % subscribers}",
                      properties=str(time.perf_counter_ns()))
            live.publish(StoredEvents([e], ["s"], ["k"], [Enrichment()], [k]))

    started = time.perf_counter()
    thread = threading.Thread(target=publish)
    thread.start()
    await asyncio.wait_for(done.wait(), seconds * 3 + 10)
    elapsed = time.perf_counter() - started
    thread.join()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, len(latencies) / elapsed


# -- end to end through a gateway ----------------------------------------------------------


class Server:
    """`cep serve` on a fresh data dir, through ``serve_patched`` when ``patch`` is given
    (``{"linger_ms": …}`` or ``{"publish": …}``)."""

    def __init__(self, data: Path, patch: dict[str, Any] | None = None) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = subprocess.run([sys.executable, "-m", "gateway.cli", "project", "create",
                              "bench", "--data", str(data)], cwd=ROOT, check=True,
                             capture_output=True, text=True)
        self.keys = dict(json.loads(out.stdout))
        serve = ["serve", "--data", str(data), "--port", str(self.port), "--log-level",
                 os.environ.get("BENCH_LOG", "warning")]
        if patch is None:
            cmd = [sys.executable, "-m", "gateway.cli", *serve]
        else:
            if "publish" in patch:
                patch = {"publish": {**patch["publish"], "project": self.keys["project"]}}
            code = ("import sys; from bench.live import serve_patched; "
                    "serve_patched(sys.argv[1], sys.argv[2:])")
            cmd = [sys.executable, "-c", code, json.dumps(patch), *serve]
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        wait_healthy(self.url)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve_patched(patch_json: str, serve: list[str]) -> None:
    """`cep serve` (in the gateway's own process) with a shorter runner linger, or with a
    thread publishing to the live store once every subscriber is in."""
    patch = json.loads(patch_json)
    if "linger_ms" in patch:
        import stream.embedded

        stream.embedded.LINGER_SECONDS = patch["linger_ms"] / 1000
    if patch.get("publish_first"):
        from stream.embedded import EmbeddedRunner

        commit = EmbeddedRunner._commit

        def publish_then_commit(self: Any, steps: Any) -> None:
            hook, self._on_commit = self._on_commit, None
            try:
                if hook is not None:
                    for step in steps:
                        hook(step.batch, step.changes)
                commit(self, steps)
            finally:
                self._on_commit = hook

        EmbeddedRunner._commit = publish_then_commit  # type: ignore[method-assign]
    if "publish" in patch:
        import gateway.platform

        opened = gateway.platform.Platform.open.__func__  # type: ignore[attr-defined]

        def open_and_publish(cls: Any, *args: Any, **kwargs: Any) -> Any:
            platform = opened(cls, *args, **kwargs)
            threading.Thread(target=publish_live, args=(platform.live,),
                             kwargs=patch["publish"], daemon=True).start()
            return platform

        gateway.platform.Platform.open = classmethod(open_and_publish)  # type: ignore[assignment]
    from gateway.cli import main as cli

    sys.argv = ["cep", *serve]
    cli()


def publish_live(live: Any, project: str, subscribers: int, rate: int, seconds: float) -> None:
    """One event at a time at ``rate``, round-robin over the users, once all subscribed."""
    from storage.ports import Enrichment, StoredEvents
    from stream.contract.event import Event

    while live.subscriber_count < subscribers:
        time.sleep(0.05)
    time.sleep(1.0)
    interval = 1 / rate
    next_at = time.perf_counter()
    for k in range(int(rate * seconds)):
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        e = Event(project=project, insert_id=f"p{k}", event_name="Search", category="c",
                  time=k, ingest_time=0, distinct_user_id=f"bench-u{k % subscribers}",
                  properties=f'{{"sent_ns": {time.perf_counter_ns()}}}')
        live.publish(StoredEvents([e], ["s"], ["k"], [Enrichment()], [k]))


class Deliveries:
    """Latencies in ms as they arrive; ``reached`` is set at ``target`` of them."""

    def __init__(self, target: int) -> None:
        self.latencies: list[float] = []
        self.target = target
        self.reached = asyncio.Event()

    def add(self, ms: float) -> None:
        self.latencies.append(ms)
        if len(self.latencies) >= self.target:
            self.reached.set()

    async def wait(self, target: int, seconds: float) -> None:
        self.target = target
        if len(self.latencies) >= target:
            return
        self.reached.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.reached.wait(), seconds)


async def subscribe_all(server: Server, subscribers: int, deliveries: Deliveries,
                        measuring: Callable[[], bool], warm: set[int],
                        all_warm: asyncio.Event) -> list[asyncio.Task[None]]:
    """One connection and ``userActivity`` subscription per user; a received event's
    latency is appended while ``measuring()``; ``sent_ns`` 0 marks a warm-up event."""
    from websockets.asyncio.client import connect

    read = server.keys["read_key"]
    ws_url = server.url.replace("http://", "ws://") + "/graphql"

    async def subscriber(i: int) -> None:
        async with connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                           compression=None, max_size=None) as ws:
            await ws.send(orjson.dumps({"type": "connection_init",
                                        "payload": {"Authorization": f"Bearer {read}"}}).decode())
            assert orjson.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": QUERY, "variables": {"user": f"bench-u{i}"}}}).decode())
            async for raw in ws:
                received = time.perf_counter_ns()
                msg = orjson.loads(raw)
                if msg["type"] == "ping":
                    await ws.send('{"type":"pong"}')
                    continue
                if msg["type"] != "next" or "errors" in msg["payload"]:
                    raise SystemExit(f"subscriber {i}: {msg}")
                sent = msg["payload"]["data"]["userActivity"]["properties"]["sent_ns"]
                if sent == 0:
                    warm.add(i)
                    if len(warm) == subscribers:
                        all_warm.set()
                elif measuring():
                    deliveries.add((received - sent) / 1e6)

    return [asyncio.create_task(subscriber(i)) for i in range(subscribers)]


async def gateway_live_path(server: Server, subscribers: int, rate: int, seconds: float
                            ) -> tuple[list[float], float]:
    deliveries = Deliveries(1)
    tasks = await subscribe_all(server, subscribers, deliveries, lambda: True, set(),
                                asyncio.Event())
    await deliveries.wait(1, 60)
    started = time.perf_counter()
    await deliveries.wait(int(rate * seconds), seconds * 3 + 30)
    elapsed = time.perf_counter() - started
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return deliveries.latencies, len(deliveries.latencies) / elapsed


async def end_to_end(server: Server, subscribers: int, rate: int, seconds: float, batch: int
                     ) -> tuple[list[float], float, int, list[float]]:
    """(latencies in ms, deliveries/s, non-200 answers, POST round trips in ms)."""
    write = server.keys["write_key"]
    deliveries = Deliveries(0)
    warm: set[int] = set()
    all_warm = asyncio.Event()
    measuring = False
    tasks = await subscribe_all(server, subscribers, deliveries, lambda: measuring, warm,
                                all_warm)
    now = int(time.time() * 1000)
    failures = 0
    round_trips: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 headers={"Authorization": f"Bearer {write}"},
                                 limits=httpx.Limits(max_connections=16)) as http:
        # Warm-up: every subscriber has its subscription registered once it got an event.
        # Events keep coming until all have, since a subscription may register after one.
        k = 0
        while not all_warm.is_set():
            await http.post("/v1/events", content=orjson.dumps([
                {"event_name": "Warm", "time": now, "insert_id": f"warm-{k}-{i}",
                 "distinct_user_id": f"bench-u{i}", "custom_properties": {"sent_ns": 0}}
                for i in range(subscribers) if i not in warm]))
            k += 1
            try:
                await asyncio.wait_for(all_warm.wait(), 3)
            except TimeoutError:
                continue
        await asyncio.sleep(1.5)  # let stragglers of the warm-up drain
        measuring = True

        async def post(records: list[dict[str, Any]]) -> None:
            nonlocal failures
            stamp = time.perf_counter_ns()
            for r in records:
                r["custom_properties"] = {"sent_ns": stamp}
            resp = await http.post("/v1/events", content=orjson.dumps(records))
            round_trips.append((time.perf_counter_ns() - stamp) / 1e6)
            failures += resp.status_code != 200

        requests = int(rate * seconds / batch)
        interval = batch / rate
        pending: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        next_at = started
        for r in range(requests):
            records = [{"event_name": "Search", "time": now + r, "insert_id": f"e-{r}-{j}",
                        "distinct_user_id": f"bench-u{(r * batch + j) % subscribers}"}
                       for j in range(batch)]
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(post(records))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        expected = requests * batch
        await deliveries.wait(expected, 30)
        elapsed = time.perf_counter() - started
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = deliveries.latencies
    if len(latencies) < expected:
        print(f"  (only {len(latencies):,} of {expected:,} deliveries arrived)")
    return latencies, len(latencies) / elapsed, failures, round_trips


def run_live_path(subscribers: int, rate: int, seconds: float) -> None:
    publish = {"subscribers": subscribers, "rate": rate, "seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="cep-bench-live-") as tmp:
        server = Server(Path(tmp) / "data", {"publish": publish})
        try:
            latencies, per_second = asyncio.run(
                gateway_live_path(server, subscribers, rate, seconds))
        finally:
            server.stop()
    print(f"live path {figures(latencies)}  {per_second:,.0f} deliveries/s, gateway's live "
          "store publish → WebSocket client", flush=True)


def run_end_to_end(subscribers: int, rate: int, seconds: float, batch: int,
                   linger_ms: float | None, publish_first: bool = False) -> None:
    patch: dict[str, Any] | None = None
    if linger_ms is not None:
        patch = {"linger_ms": linger_ms, "publish_first": publish_first}
    with tempfile.TemporaryDirectory(prefix="cep-bench-live-") as tmp:
        server = Server(Path(tmp) / "data", patch)
        try:
            latencies, per_second, failures, round_trips = asyncio.run(
                end_to_end(server, subscribers, rate, seconds, batch))
        finally:
            server.stop()
    what = "as shipped" if linger_ms is None else f"runner linger {linger_ms:g} ms" + (
        ", live published before the DuckDB commit" if publish_first else "")
    print(f"end2end   {figures(latencies)}  {per_second:,.0f} deliveries/s, POST → WebSocket "
          f"client, {what}; non-200: {failures}", flush=True)
    print(f"  POST    {figures(round_trips)}  the POSTs' own round trips (HTTP ingest, log "
          "fsync)", flush=True)


@dataclass
class _Remote:
    """A running gateway as ``end_to_end`` needs it."""

    url: str
    keys: dict[str, Any]


def run_distributed(subscribers: int, rate: int, seconds: float, batch: int) -> None:
    from tests.conformance.distributed import distributed_backend

    with tempfile.TemporaryDirectory(prefix="cep-bench-live-dist-") as tmp:
        started = time.perf_counter()
        with distributed_backend(Path(tmp)) as gw:
            print(f"dev stack, gateway and PyFlink job up in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            server = _Remote(gw.url, gw.create_project("bench"))
            latencies, per_second, failures, round_trips = asyncio.run(
                end_to_end(server, subscribers, rate, seconds, batch))  # type: ignore[arg-type]
    print(f"distrib.  {figures(latencies)}  {per_second:,.0f} deliveries/s, POST → Kafka → "
          f"PyFlink → Redis → WebSocket client; non-200: {failures}", flush=True)
    print(f"  POST    {figures(round_trips)}  the POSTs' own round trips (HTTP ingest, Kafka)",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--rate", type=int, default=1000, help="deliveries (= events) per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=10, help="events per POST")
    ap.add_argument("--linger-ms", type=float, nargs="*", default=[],
                    help="what-if end-to-end runs with these runner lingers")
    ap.add_argument("--publish-first", action="store_true",
                    help="what-if runs also with live views published before the commit")
    ap.add_argument("--distributed", action="store_true")
    args = ap.parse_args()
    if args.distributed:
        run_distributed(args.subscribers, args.rate, args.seconds, args.batch)
        return

    print(f"{args.subscribers} subscribers, {args.rate:,} deliveries/s for {args.seconds:g} s, "
          f"{args.batch} events per POST", flush=True)
    latencies, per_second = asyncio.run(store_baseline(args.subscribers, args.rate,
                                                       args.seconds))
    print(f"baseline  {figures(latencies)}  {per_second:,.0f} deliveries/s, in-process store "
          "publish → subscriber", flush=True)
    run_live_path(args.subscribers, args.rate, args.seconds)
    run_end_to_end(args.subscribers, args.rate, args.seconds, args.batch, None)
    for linger in args.linger_ms:
        run_end_to_end(args.subscribers, args.rate, args.seconds, args.batch, linger)
        if args.publish_first:
            run_end_to_end(args.subscribers, args.rate, args.seconds, args.batch, linger, True)


if __name__ == "__main__":
    main()
