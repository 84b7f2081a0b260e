"""Path-analysis benchmark: paths, journeyGraph, compareJourneys and pageFlow over 1M
generated events, on the embedded networkx graph and on Neo4j.

Run by hand: `python bench/paths.py --data /tmp/bq1m` (the store `bench/queries.py` builds;
built here when missing). It prints one line per query and backend, next to the same run's
baseline: the simplest hand-written DuckDB SQL for the top paths to Purchase.

- embedded: through GraphQL over HTTP on a real `cep serve` (median of 3 after a warm-up);
- Neo4j: a dev-stack Neo4j loaded with the same sessions through `Neo4jJourneyGraph.apply`
  (what the PyFlink job's sink calls), then the resolvers' own read and compute
  (`session_journeys` + `graph.paths`) with the window's sessions from the store — the
  Cassandra session scan the distributed gateway adds is `bench/queries.py`'s business.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import Server  # noqa: E402
from bench.queries import build, timed  # noqa: E402

WINDOW = '{last: "30d"}'
QUERIES = {
    "paths to Purchase": """{ paths(target: "Purchase", window: WINDOW) {
        path sessions users conversionRate } }""",
    "paths (no target)": """{ paths(window: WINDOW, maxLength: 5) { path sessions } }""",
    "paths by URL": """{ paths(target: "moreretail.com/checkout", by: URL, window: WINDOW) {
        path sessions } }""",
    "journeyGraph": """{ journeyGraph(window: WINDOW, maxDepth: 6, minCount: 10) {
        sessions nodes { id count } links { source target count } } }""",
    "compareJourneys": """{ compareJourneys(target: "Purchase", window: WINDOW) {
        converterSessions distinctive { path lift } } }""",
    "pageFlow": """{ pageFlow(window: WINDOW) { page views exits dropOffRate
        interactions } }""",
}
BASELINE = """
WITH s AS (SELECT session_id, list(event_name ORDER BY time, insert_id) AS steps
           FROM events WHERE project = $p AND time >= $lo GROUP BY session_id),
c AS (SELECT steps[1:list_position(steps, 'Purchase')] AS path FROM s
      WHERE list_position(steps, 'Purchase') > 0)
SELECT path[greatest(len(path) - 9, 1):] AS p, count(*) AS n FROM c
GROUP BY p ORDER BY n DESC LIMIT 10"""


def median_ms(fn: Callable[[], Any], runs: int = 3) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def baseline(db: Path, project: str) -> float:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    lo = int(time.time() * 1000) - 30 * 86_400_000
    ms = median_ms(lambda: con.execute(BASELINE, {"p": project, "lo": lo}).fetchall())
    con.close()
    return ms


def load_neo4j(graph: Any, con: Any, project: str, batch: int = 2_000) -> int:
    """Every session of the store (a DuckDB connection) into Neo4j as whole sequences
    (idempotent)."""
    from graph.ports import GraphChanges

    keys = dict(con.execute("SELECT session_id, session_key FROM sessions WHERE project = ?",
                            [project]).fetchall())
    reader = con.sql(
        "SELECT session_id, list(event_name ORDER BY time, insert_id), "
        "list(url ORDER BY time, insert_id) FROM events WHERE project = $p "
        "GROUP BY session_id", params={"p": project}).to_arrow_reader(batch)
    steps, started = 0, time.perf_counter()
    for chunk in reader:
        changes = GraphChanges()
        for sid, names, urls in zip(*(chunk.column(i).to_pylist() for i in range(3)),
                                    strict=True):
            changes.replaced[(project, sid)] = list(zip(names, urls, strict=True))
            changes.keys[(project, sid)] = keys.get(sid, sid)
            steps += len(names)
        graph.apply(changes)
        rate = steps / (time.perf_counter() - started)
        print(f"\r  loaded {steps:,} steps into Neo4j ({rate:,.0f}/s)", end="", flush=True)
    print()
    return steps


def neo4j_timings(data: Path, keys: dict[str, Any]) -> dict[str, float]:
    from clients.devstack import DevStack, Ports
    from graph import paths as p
    from graph.neo4j_graph import Neo4jJourneyGraph
    from resolvers.schema_paths import PathBy, session_journeys
    from storage.duckdb_store import DuckDBStore
    from storage.ports import SessionQuery

    project = keys["project"]
    dev = DevStack(data / "neo4j-bench", ROOT / ".cache" / "devstack", ports=Ports())
    asyncio.run(dev.up(("neo4j",)))
    out: dict[str, float] = {}
    try:
        graph = Neo4jJourneyGraph(f"bolt://127.0.0.1:{dev.ports.neo4j_bolt}")
        store = DuckDBStore(data / "events.duckdb", memory_limit="512MB")
        now = int(time.time() * 1000)
        sessions = store.scan_sessions(project, SessionQuery(start=now - 30 * 86_400_000,
                                                             end=now + 1))
        if graph.sessions_count(project) < sessions.num_rows:
            load_neo4j(graph, store.cursor(), project)
        runs: dict[str, Callable[[], Any]] = {
            "paths to Purchase": lambda: p.compute_paths(
                session_journeys(graph, project, sessions, PathBy.EVENT).journeys,
                "Purchase", None, 10, 10),
            "paths (no target)": lambda: p.compute_paths(
                session_journeys(graph, project, sessions, PathBy.EVENT).journeys,
                None, None, 5, 10),
            "journeyGraph": lambda: p.compute_journey_graph(
                session_journeys(graph, project, sessions, PathBy.EVENT).journeys, 6, 10),
            "compareJourneys": lambda: p.compute_compare(
                session_journeys(graph, project, sessions, PathBy.EVENT).journeys,
                "Purchase", 5, 10),
            "pageFlow": lambda: p.compute_page_flow(
                *_url(session_journeys(graph, project, sessions, PathBy.URL))),
        }
        for name, fn in runs.items():
            out[name] = median_ms(fn)
            print(f"  neo4j     {name:24s} {out[name]:9.1f} ms", flush=True)
        read = median_ms(lambda: graph.journeys(
            project, sessions.column("session_id").to_pylist()))
        print(f"  neo4j     (journeys read alone)    {read:9.1f} ms "
              f"for {sessions.num_rows:,} sessions", flush=True)
        graph.close()
    finally:
        asyncio.run(dev.down(("neo4j",)))
    return out


def _url(read: Any) -> tuple[Any, Any]:
    return read.journeys, read.visits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=None, help="keep the built store here")
    ap.add_argument("--skip-neo4j", action="store_true")
    args = ap.parse_args()
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="cep-bench-paths-")
        data = Path(tmp.name)
    keys = build(data, args.events, args.seed)
    server = Server(data, keys=keys)
    while server.pending() > 0:
        time.sleep(1)
    results: dict[str, float] = {}
    try:
        for name, query in QUERIES.items():
            ms, size = timed(server.url, keys["read_key"], query.replace("WINDOW", WINDOW))
            results[name] = ms
            print(f"  embedded  {name:24s} {ms:9.1f} ms   ({size:,} bytes)", flush=True)
        peak = server.peak_rss_mb()
    finally:
        server.stop()
    base = baseline(data / "events.duckdb", keys["project"])
    print(f"  baseline  top paths SQL (DuckDB)   {base:9.1f} ms")
    print(f"paths to Purchase / SQL: {results['paths to Purchase'] / base:.2f}x (embedded)")
    print(f"gateway peak RSS: {peak:,.0f} MB")
    if not args.skip_neo4j:
        neo = neo4j_timings(data, keys)
        print(f"paths to Purchase / SQL: {neo['paths to Purchase'] / base:.2f}x (Neo4j)")
    print(json.dumps({"embedded": results, "baseline_ms": base}))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
