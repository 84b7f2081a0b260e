"""Query benchmark: every analytics question over 1M (or 10M) generated events, embedded.

Run by hand: `python bench/queries.py --events 1000000` (add `--data DIR` to keep the built
store and reuse it on the next run). It prints one line per query; figures are quoted next
to the same run's baseline — the simplest hand-written DuckDB SQL for a funnel and for a
retention table over the very same events file — because the machines are shared and noisy.

- build: `cep generate` journeys judged into the embedded log (as ingest would), then
  processed by a real `cep serve` (de-duplication, identity, sessions, enrichment);
- each query: median of 3 timed runs after one warm-up, through GraphQL over HTTP with the
  read key (so strawberry's cost is in the figure);
- memory: the gateway's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import Server, create_project  # noqa: E402

WINDOW = '{last: "30d"}'
FUNNEL_STEPS = ["App Launch", "Product View", "Add to Cart", "Purchase"]
QUERIES: dict[str, str] = {
    "funnel (4 steps)": """{ funnel(steps: [STEPS], window: WINDOW, conversionWindow: "1d") {
        steps { event users conversionFromPrevious medianSecondsFromPrevious } } }""",
    "retention (weekly, 8)": """{ retention(window: WINDOW, period: WEEK, periods: 8) {
        cohorts { start size retained } } }""",
    "sessionMetrics": """{ sessionMetrics(window: WINDOW) { count averageDurationSeconds
        purchaseSessionRate bounceRate perDay { day sessions } topLandingPages { url } } }""",
    "engagement": """{ engagement(window: WINDOW) { activeUsers dau wau mau stickiness
        averageSecondsBetweenSessions interactionsPerSession(first: 10) { event } } }""",
    "conversion": """{ conversion(fromEvent: "App Launch", toEvent: "Purchase",
        window: WINDOW) { users converted rate medianSeconds } }""",
    "repeatPurchasers": """{ repeatPurchasers(window: WINDOW) { purchasers users share } }""",
    "churn (daily)": """{ churn(period: DAY, window: WINDOW) { period rate } }""",
    "lifecycle (weekly)": """{ lifecycle(period: WEEK, window: WINDOW) { period new } }""",
    "featureUsage": """{ featureUsage(window: WINDOW, by: EVENT) { key users retentionLift } }""",
    "breakdown (sessions by city)": """{ breakdown(metric: SESSIONS, by: CITY,
        window: WINDOW) { key value } }""",
    "crashes (by OS)": """{ crashes(window: WINDOW, by: OS) { crashesPer1000Sessions
        crashFreeUsers topCauses { cause count } groups { key crashes } } }""",
    "segment (10,000-row page)": """{ segment(filter: {did: [{event: "App Launch"}]},
        window: WINDOW, first: 10000) { totalCount edges { node { userId city country
        deviceType os email phone } } } }""",
    "segment (10,000 rows, lean)": """{ segment(filter: {did: [{event: "App Launch"}]},
        window: WINDOW, first: 10000) { totalCount rows } }""",
    "segment (count only)": """{ segment(filter: {did: [{event: "App Launch"}]},
        window: WINDOW, first: 0) { totalCount } }""",
    "trends (3 events, daily)": """{ trends(series: [{event: "App Launch"},
        {event: "Add to Cart"}, {event: "Purchase"}], window: WINDOW, interval: DAY) {
        buckets series { name total values } } }""",
    "trends (users by country)": """{ trends(series: [{event: "App Launch",
        math: UNIQUE_USERS}], window: WINDOW, interval: DAY, breakdown: "country") {
        series { breakdownValue total values } } }""",
    "eventDefinitions": """{ eventDefinitions(window: WINDOW, first: 50) { name count users
        lastSeen properties { key type count examples } } }""",
    "user (person page)": """{ user(userId: "THE_USER", window: WINDOW) { userId eventCount
        sessionCount deviceIds topEvents { event count } events(first: 50) { totalCount
        edges { node { eventName time } } } sessions(first: 20) { id } } }""",
}


def build(data: Path, events: int, seed: int) -> dict[str, Any]:
    """A project whose log holds ``events`` generated events (no identify calls)."""
    from bench.ingest import make_events
    from storage.local_log import LocalEventLog
    from stream.contract.envelope import EnvelopeParser, split_records
    from stream.contract.records import LogRecord, encode_record
    from stream.contract.registry import SchemaRegistry

    keys_file = data / "bench-keys.json"
    if keys_file.exists():
        return dict(json.loads(keys_file.read_text()))
    data.mkdir(parents=True, exist_ok=True)
    keys = create_project(data)
    log = LocalEventLog(data / "log", fsync=False)
    parser = EnvelopeParser(SchemaRegistry(), lambda: int(time.time() * 1000))
    written, chunk_seed = 0, seed
    while written < events:
        batch = make_events(min(500_000, events - written), chunk_seed)
        chunk_seed += 1000
        for i in range(0, len(batch), 5_000):
            body = b"\n".join(orjson.dumps(e) for e in batch[i:i + 5_000])
            record = LogRecord(events=parser.events(keys["project"],
                                                    split_records(body)).accepted)
            log.append_sync(encode_record(record), record.items)
        written += len(batch)
        print(f"  generated {written:,} events", flush=True)
    log.close()
    keys_file.write_text(json.dumps(keys))
    return keys


def timed(url: str, key: str, query: str, runs: int = 3) -> tuple[float, int]:
    """Median ms of ``runs`` after a warm-up, and the response's size in bytes."""
    headers = {"Authorization": f"Bearer {key}"}
    times, size = [], 0
    with httpx.Client(timeout=600) as client:
        for i in range(runs + 1):
            start = time.perf_counter()
            resp = client.post(url + "/graphql", json={"query": query}, headers=headers)
            elapsed = (time.perf_counter() - start) * 1000
            body = resp.json()
            if "errors" in body:
                raise SystemExit(f"query failed: {body['errors']}\n{query}")
            size = len(resp.content)
            if i:
                times.append(elapsed)
    return statistics.median(times), size


def a_user(url: str, key: str) -> str:
    """A user for the person page: the first of a segment page (any active user)."""
    resp = httpx.post(f"{url}/graphql", headers={"Authorization": f"Bearer {key}"}, json={
        "query": "{ segment(window: WINDOW, first: 1) { edges { node { userId } } } }".replace(
            "WINDOW", WINDOW)}, timeout=600)
    return str(resp.json()["data"]["segment"]["edges"][0]["node"]["userId"])


def duckdb_baselines(db: Path, project: str) -> dict[str, float]:
    """The simplest hand-written SQL for the funnel and the retention table, median ms."""
    import duckdb

    steps = FUNNEL_STEPS
    funnel = f"""
    WITH e AS (SELECT COALESCE(distinct_user_id, device_id) AS u, event_name AS n, time AS t
               FROM events WHERE project = $p AND time >= $lo
               AND event_name IN ({', '.join(f"'{s}'" for s in steps)})),
    s1 AS (SELECT u, min(t) AS t1 FROM e WHERE n = '{steps[0]}' GROUP BY u),
    s2 AS (SELECT s1.u, s1.t1, min(e.t) AS t2 FROM s1 JOIN e ON e.u = s1.u
           AND e.n = '{steps[1]}' AND e.t >= s1.t1 AND e.t <= s1.t1 + 86400000
           GROUP BY s1.u, s1.t1),
    s3 AS (SELECT s2.u, s2.t1, min(e.t) AS t3 FROM s2 JOIN e ON e.u = s2.u
           AND e.n = '{steps[2]}' AND e.t >= s2.t2 AND e.t <= s2.t1 + 86400000
           GROUP BY s2.u, s2.t1),
    s4 AS (SELECT s3.u FROM s3 JOIN e ON e.u = s3.u AND e.n = '{steps[3]}'
           AND e.t >= s3.t3 AND e.t <= s3.t1 + 86400000 GROUP BY s3.u)
    SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2), (SELECT count(*) FROM s3),
           (SELECT count(*) FROM s4)"""
    retention = """
    WITH a AS (SELECT DISTINCT COALESCE(distinct_user_id, device_id) AS u,
                      date_trunc('week', make_timestamp(time * 1000)) AS w
               FROM events WHERE project = $p),
    c AS (SELECT u, min(w) AS cw FROM a GROUP BY u)
    SELECT c.cw, datediff('week', c.cw, a.w) AS k, count(*) FROM c JOIN a USING (u)
    WHERE a.w >= c.cw AND datediff('week', c.cw, a.w) < 8 GROUP BY ALL ORDER BY ALL"""
    con = duckdb.connect(str(db), read_only=True)
    lo = int(time.time() * 1000) - 30 * 86_400_000
    out = {}
    for name, sql, params in (("funnel SQL", funnel, {"p": project, "lo": lo}),
                              ("retention SQL", retention, {"p": project})):
        times = []
        for i in range(4):
            start = time.perf_counter()
            con.execute(sql, params).fetchall()
            if i:
                times.append((time.perf_counter() - start) * 1000)
        out[name] = statistics.median(times)
    con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=None, help="keep the built store here")
    ap.add_argument("--only", default="", help="run only queries whose name contains this")
    ap.add_argument("--skip", default=None, help="skip queries whose name contains this")
    args = ap.parse_args()
    import tempfile

    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="cep-bench-queries-")
        data = Path(tmp.name)
    if (data / "bench-keys.json").exists():
        print(f"reusing the store in {data}", flush=True)
    else:
        print(f"building {args.events:,} events in {data}", flush=True)
    keys = build(data, args.events, args.seed)
    server_start = time.perf_counter()
    server = Server(data, keys=keys)
    while server.pending() > 0:
        time.sleep(1)
    print(f"processed the log in {time.perf_counter() - server_start:.0f} s", flush=True)
    results = {}
    try:
        user = a_user(server.url, keys["read_key"])
        for name, query in QUERIES.items():
            if args.only not in name or (args.skip and args.skip in name):
                continue
            query = query.replace("WINDOW", WINDOW).replace("THE_USER", user).replace(
                "STEPS", ", ".join(f'{{event: "{s}"}}' for s in FUNNEL_STEPS))
            ms, size = timed(server.url, keys["read_key"], query)
            results[name] = ms
            print(f"  {name:30s} {ms:9.1f} ms   ({size:,} bytes)", flush=True)
        peak = server.peak_rss_mb()
    finally:
        server.stop()
    base = duckdb_baselines(data / "events.duckdb", keys["project"])
    for name, ms in base.items():
        print(f"  baseline {name:21s} {ms:9.1f} ms")
    for ours, theirs in (("funnel (4 steps)", "funnel SQL"),
                         ("retention (weekly, 8)", "retention SQL")):
        if ours in results:
            print(f"{ours} / {theirs}: {results[ours] / base[theirs]:.2f}x")
    print(f"gateway peak RSS: {peak:,.0f} MB")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
