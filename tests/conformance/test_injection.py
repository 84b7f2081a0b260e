"""Injection strings everywhere a string goes (issue 7), on every backend: DuckDB SQL,
Cassandra CQL, Neo4j Cypher and Redis all take them as data.

Events whose names, property keys and values, user ids and URLs are SQL, CQL and Cypher
fragments are stored and read back exactly; then every query and mutation of the schema
(``tests.schema_walk``) is sent with each fragment in every string argument and input field,
optional ones included (segment filters, traits, property conditions, templates):
no answer is an internal error, and afterwards the stored data is unchanged.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from resolvers.schema import build_schema
from tests.conformance.conftest import Project
from tests.schema_walk import Values, operations

SCHEMA = build_schema()._schema
PAYLOADS = [
    "' OR '1'='1",
    "x'; DROP TABLE events; --",
    "\"; DELETE FROM sessions WHERE \"\"=\"",
    "') RETURN 1 UNION MATCH (n) DETACH DELETE n //",
    "} ) MATCH (n) SET n.x = 1 //",
    "x' ALLOW FILTERING; TRUNCATE events; --",
    "$where: function() { return true }",
    "\\' \\\" \\\\ %s %n {0} {{7*7}} ${7*7}",
    "EVAL \"return redis.call('FLUSHALL')\" 0",
    "日本語 ✓ \u202e",
]
ALLOWED = ("BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "UNAVAILABLE")


def events(user_tag: str, now: int) -> list[dict[str, Any]]:
    return [{"event_name": p, "time": now - 600_000 + k * 1_000,
             "insert_id": f"inj-{user_tag}-{k}", "distinct_user_id": f"{p}-{user_tag}",
             "device_id": f"dev-{user_tag}", "url": f"https://x.example/?q={p}",
             "custom_properties": {p: p, "plain": p}}
            for k, p in enumerate(PAYLOADS)]


def stored(project: Project, tag: str) -> list[tuple[str, str, Any]]:
    data = project.query("""query($d: String!) { sessions(filter: {deviceId: $d},
        window: {last: "1d"}, first: 100) { edges { node { events { eventName userId
        properties } } } } }""", {"d": f"dev-{tag}"})
    return sorted((e["eventName"], e["userId"], e["properties"])
                  for edge in data["sessions"]["edges"] for e in edge["node"]["events"])


def test_injection_strings_are_data_in_every_store_and_every_argument(
        project: Project) -> None:
    tag = uuid.uuid4().hex[:8]
    sent = events(tag, int(time.time() * 1000))
    result = project.send(sent)
    assert result == {"accepted": len(PAYLOADS), "rejected": []}
    want = sorted((e["event_name"], e["distinct_user_id"], e["custom_properties"])
                  for e in sent)
    assert stored(project, tag) == want

    # Twice: the fields a query needs (so it gets as far as the stores), then every field
    # (a malformed duration or cursor stops a query early, before the stores).
    walk: dict[str, list[tuple[str, Any]]] = {"query": [], "mutation": [], "erasure": []}
    seen: set[str] = set()
    for payload, every in [(p, e) for p in PAYLOADS for e in (False, True)]:
        values = Values(strings={}, default=payload, every_field=every)
        for kind in ("query", "mutation"):
            for op in operations(SCHEMA, kind, values, depth=3):
                if op.field in ("rotateApiKey", "revokeApiKey", "createApiKey"):
                    continue  # keys: the enum and prefix arguments are not free strings
                sent_as = json.dumps([op.document, op.variables], sort_keys=True)
                if sent_as in seen:  # an operation without optional fields, walked twice
                    continue
                seen.add(sent_as)
                group = "erasure" if op.field == "deleteUserData" else kind
                walk[group].append((payload, op))

    def check(item: tuple[str, Any]) -> None:
        payload, op = item
        body = project.gateway.gql(project.keys["admin_key"], op.document, op.variables)
        assert "data" in body or "errors" in body, body
        for error in body.get("errors") or ():
            code = (error.get("extensions") or {}).get("code")
            assert code in ALLOWED, (op.field, payload, error)

    # queries four at a time (they only read: the order they run in changes nothing),
    # mutations one after another in the walk's order, except erasures: each of another
    # user, and each waits for the pipeline to honour it (seconds, on the distributed
    # profile), so they run side by side
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, walk["query"]))
    for item in walk["mutation"]:
        check(item)
    with ThreadPoolExecutor(len(walk["erasure"]) or 1) as pool:
        list(pool.map(check, walk["erasure"]))
    tried = sum(len(ops) for ops in walk.values())
    assert tried >= len(PAYLOADS) * 50  # distinct operations: ~57 per payload
    print(f"injection: {tried} operations tried")
    project.gateway.wait_processed(project.keys["read_key"])
    assert stored(project, tag) == want, "nothing of what was stored changed"
    for payload in PAYLOADS:  # the walk saved and then deleted them; once more, to keep
        body = project.gateway.gql(project.keys["admin_key"], """mutation($n: String!,
            $e: String!) { saveSegment(name: $n, filter: {did: [{event: $e}]}) { name } }""",
                                   {"n": payload, "e": payload})
        assert body["data"]["saveSegment"]["name"] == payload, body
    names = {e["name"] for e in project.query("{ segments { name } }")["segments"]}
    assert set(PAYLOADS) <= names, "segment names were stored as given"
    for payload in PAYLOADS[:3]:
        found = project.query("""query($s: String!) { segment(savedSegment: $s,
            window: {last: "1d"}) { totalCount } }""", {"s": payload})
        assert found["segment"]["totalCount"] == 1, (payload, found)
    journeys = project.query("""{ paths(window: {last: "1d"}, top: 50) { path } }""")
    assert set(PAYLOADS) <= {step for row in journeys["paths"] for step in row["path"]}, \
        json.dumps(journeys)[:500]
