"""The journey graph in Neo4j (distributed profile), explorable in Neo4j Browser.

Model, every node carrying ``project`` and every MERGE keyed by it::

    (:User {project, id})-[:HAD]->(:Session {project, id})-[:FIRST]->(:Step)-[:NEXT]->(:Step)
    (:Step {project, session, index, name, url})-[:IS]->(:EventType {project, name})
    (:EventType)-[:LEADS_TO {count, sessions}]->(:EventType)

A session also carries its whole journey as one JSON string, ``journey`` =
``{"n": [names…], "u": [urls or null…]}``, rewritten whenever its steps change: path
analysis reads a hundred thousand sessions' journeys as two collected lists in one record
instead of walking a million ``Step`` nodes. The driver spends ~20 µs on each record and
each list item it decodes, so one record of JSON strings (parsed by Arrow's JSON reader)
is what keeps 80k sessions under a second (docs/decisions.md).

``User.id`` is the session key (the user, else the device). ``LEADS_TO.count`` is how often
one step directly followed the other, ``sessions`` in how many sessions — the same numbers
as ``NetworkxJourneyGraph.transitions``.

Each ``apply`` is one write transaction: it reads the touched sessions' stored steps, works
out their new sequences in Python (removed, then replaced, then appended — as networkx
does), rewrites only the steps that changed and moves ``LEADS_TO`` by the difference
between the old and new transitions of each session. Counts therefore always equal what
the stored steps imply; replaced and removed sessions are idempotent on replay. An append
has no position, so replaying one is indistinguishable from the same steps happening
again: pass the runner's ``offset`` and a session skips appends at or below the last offset
it applied. Positioned appends (``old[:start] + steps``) need no offset: they are
idempotent. All Cypher is parameterized and batched with UNWIND.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pajson
from neo4j import Driver, GraphDatabase, ManagedTransaction, NotificationDisabledClassification

from graph.ports import JOURNEY_SCHEMA, GraphChanges, SessionRef, Step, Transition

SCHEMA = (
    "CREATE CONSTRAINT cep_user IF NOT EXISTS FOR (n:User) REQUIRE (n.project, n.id) IS UNIQUE",
    "CREATE CONSTRAINT cep_session IF NOT EXISTS "
    "FOR (n:Session) REQUIRE (n.project, n.id) IS UNIQUE",
    "CREATE CONSTRAINT cep_step IF NOT EXISTS "
    "FOR (n:Step) REQUIRE (n.project, n.session, n.index) IS UNIQUE",
    "CREATE CONSTRAINT cep_event_type IF NOT EXISTS "
    "FOR (n:EventType) REQUIRE (n.project, n.name) IS UNIQUE",
    "CREATE INDEX cep_step_session IF NOT EXISTS FOR (n:Step) ON (n.project, n.session)",
    "CREATE INDEX cep_step_name IF NOT EXISTS FOR (n:Step) ON (n.project, n.name)",
)
CONSTRAINTS = ("cep_user", "cep_session", "cep_step", "cep_event_type")

_READ_STEPS = """
UNWIND $refs AS ref
MATCH (s:Session {project: ref.project, id: ref.session})
OPTIONAL MATCH (st:Step {project: ref.project, session: ref.session})
WITH ref, s, st ORDER BY st.index
RETURN ref.project AS project, ref.session AS session, s.offset AS offset,
       [x IN collect(st) | [x.name, x.url]] AS steps
"""

# Sessions that go or are rewritten lose their steps (from ``cut`` on) first.
_CUT = """
UNWIND $rows AS row
MATCH (st:Step {project: row.project, session: row.session})
WHERE st.index >= row.cut
DETACH DELETE st
"""

_DROP_SESSIONS = """
UNWIND $rows AS row
MATCH (s:Session {project: row.project, id: row.session})
DETACH DELETE s
"""

_UPSERT_SESSIONS = """
UNWIND $rows AS row
MERGE (s:Session {project: row.project, id: row.session})
SET s.offset = coalesce(row.offset, s.offset)
WITH s, row WHERE row.user IS NOT NULL
MERGE (u:User {project: row.project, id: row.user})
MERGE (u)-[:HAD]->(s)
"""

_SET_JOURNEYS = """
UNWIND $rows AS row
MATCH (s:Session {project: row.project, id: row.session})
SET s.journey = row.journey
"""

# Sessions written before journeys were kept on them get theirs from their steps.
_WITHOUT_JOURNEY = """
MATCH (s:Session) WHERE s.journey IS NULL
WITH s LIMIT $batch
OPTIONAL MATCH (st:Step {project: s.project, session: s.id})
WITH s, st ORDER BY st.index
WITH s, collect(st) AS steps
RETURN s.project AS project, s.id AS session, [x IN steps | [x.name, x.url]] AS steps
"""

_JOURNEYS = """
UNWIND $ids AS id
MATCH (s:Session {project: $project, id: id})
RETURN collect(s.id) AS sessions, collect(s.journey) AS journeys
"""
_JOURNEY_JSON = pa.schema([("n", pa.list_(pa.string())), ("u", pa.list_(pa.string()))])
_READ_CHUNK = 50_000  # session ids per read query

_EVENT_TYPES = """
UNWIND $rows AS row
MERGE (:EventType {project: row.project, name: row.name})
"""

_ADD_STEPS = """
UNWIND $rows AS row
MATCH (t:EventType {project: row.project, name: row.name})
CREATE (st:Step {project: row.project, session: row.session, index: row.index,
                 name: row.name, url: row.url})
CREATE (st)-[:IS]->(t)
"""

_LINK_FIRST = """
UNWIND $rows AS row
MATCH (s:Session {project: row.project, id: row.session})
MATCH (st:Step {project: row.project, session: row.session, index: 0})
CREATE (s)-[:FIRST]->(st)
"""

_LINK_NEXT = """
UNWIND $rows AS row
MATCH (prev:Step {project: row.project, session: row.session, index: row.index - 1})
MATCH (st:Step {project: row.project, session: row.session, index: row.index})
CREATE (prev)-[:NEXT]->(st)
"""

# A user node (its id is a session key) goes once no session of it remains.
_DROP_USERS = """
UNWIND $ids AS id
MATCH (u:User {project: $project, id: id})
WHERE NOT EXISTS { (u)-[:HAD]->(:Session) }
DETACH DELETE u
"""

_MOVE_LEADS_TO = """
UNWIND $rows AS row
MERGE (a:EventType {project: row.project, name: row.source})
MERGE (b:EventType {project: row.project, name: row.target})
MERGE (a)-[r:LEADS_TO]->(b)
ON CREATE SET r.count = 0, r.sessions = 0, r.project = row.project
SET r.count = r.count + row.count, r.sessions = r.sessions + row.sessions
WITH r WHERE r.count <= 0
DELETE r
"""


class Neo4jJourneyGraph:
    """``uri`` e.g. ``bolt://127.0.0.1:7687``; creates its constraints and indexes (idempotent)."""

    def __init__(self, uri: str, auth: tuple[str, str] | None = None,
                 database: str | None = None, backfill: bool = True) -> None:
        """``backfill``: give sessions written before journeys were kept theirs (a scan of
        every session; once per start, not once per sink)."""
        # A step's url is often never set in a young graph: Cypher reading it would log
        # "property key does not exist" on every read.
        # Bounded waits: a Neo4j that is down answers UNAVAILABLE within seconds instead of
        # holding a query for the driver's defaults (60 s to get a connection, 30 s of
        # transaction retries).
        self._driver: Driver = GraphDatabase.driver(
            uri, auth=auth, connection_timeout=5.0, connection_acquisition_timeout=10.0,
            max_transaction_retry_time=5.0,
            notifications_disabled_classifications=[
                NotificationDisabledClassification.UNRECOGNIZED])
        self._database = database
        for statement in SCHEMA:
            self._driver.execute_query(statement, database_=database)
        # New indexes fill in the background; until then every MATCH would scan labels.
        self._driver.execute_query("CALL db.awaitIndexes($seconds)", seconds=300,
                                   database_=database)
        if backfill:
            self._backfill_journeys()

    def _backfill_journeys(self, batch: int = 5_000) -> None:
        while True:
            records, _, _ = self._driver.execute_query(_WITHOUT_JOURNEY, batch=batch,
                                                       database_=self._database)
            if not records:
                return
            self._driver.execute_query(_SET_JOURNEYS, rows=[
                {"project": r["project"], "session": r["session"],
                 "journey": _journey([(n, u) for n, u in r["steps"]])} for r in records],
                database_=self._database)

    def close(self) -> None:
        self._driver.close()

    # -- writing ---------------------------------------------------------------------------

    def apply(self, changes: GraphChanges, offset: int | None = None) -> None:
        if not changes:
            return
        with self._driver.session(database=self._database) as session:
            session.execute_write(self._apply, changes, offset)

    def _apply(self, tx: ManagedTransaction, changes: GraphChanges,
               offset: int | None) -> None:
        refs = list(dict.fromkeys([*changes.removed, *changes.replaced, *changes.appended,
                                   *changes.positioned]))
        old: dict[SessionRef, list[Step]] = {}
        stored_offset: dict[SessionRef, int | None] = {}
        for r in tx.run(_READ_STEPS, refs=[{"project": p, "session": s} for p, s in refs]):
            ref = (r["project"], r["session"])
            old[ref] = [(n, u) for n, u in r["steps"]]
            stored_offset[ref] = r["offset"]
        new: dict[SessionRef, list[Step] | None] = {ref: old.get(ref) for ref in refs}
        for ref in changes.removed:
            new[ref] = None
        for ref, steps in changes.replaced.items():
            new[ref] = list(steps)
        for ref, steps in changes.appended.items():
            new[ref] = (new[ref] or []) + list(steps)
        for ref, (start, steps) in changes.positioned.items():
            new[ref] = (new[ref] or [])[:start] + list(steps)
        if offset is not None:  # a session already at this offset saw these changes
            refs = [ref for ref in refs if (stored_offset.get(ref) or -1) < offset]

        cut: list[dict[str, Any]] = []
        drop: list[dict[str, Any]] = []
        upsert: list[dict[str, Any]] = []
        add: list[dict[str, Any]] = []
        journeys: list[dict[str, Any]] = []
        delta: Counter[tuple[str, str, str]] = Counter()
        seen_delta: Counter[tuple[str, str, str]] = Counter()
        for ref in refs:
            before, after = old.get(ref), new[ref]
            p, sid = ref
            keep = _common_prefix(before or [], after or [])
            if before is not None and keep < len(before):
                cut.append({"project": p, "session": sid, "cut": keep})
            if after is None:
                if before is not None:
                    drop.append({"project": p, "session": sid})
            else:
                if before is None or offset is not None:  # else its node and user are there
                    upsert.append({"project": p, "session": sid,
                                   "user": changes.keys.get(ref), "offset": offset})
                add.extend({"project": p, "session": sid, "index": i, "name": n, "url": u}
                           for i, (n, u) in enumerate(after[keep:], start=keep))
                if after != before or offset is not None:
                    journeys.append({"project": p, "session": sid,
                                     "journey": _journey(after)})
            b_pairs, a_pairs = _pairs(p, before or []), _pairs(p, after or [])
            delta.update(a_pairs)
            delta.subtract(b_pairs)
            seen_delta.update(set(a_pairs))
            seen_delta.subtract(set(b_pairs))
        moves = [{"project": p, "source": a, "target": b, "count": delta[k],
                  "sessions": seen_delta[k]}
                 for k in sorted(set(delta) | set(seen_delta)) for p, a, b in [k]
                 if delta[k] or seen_delta[k]]
        types = [{"project": p, "name": n} for p, n in dict.fromkeys(
            (r["project"], r["name"]) for r in add)]
        first = [r for r in add if r["index"] == 0]
        later = [r for r in add if r["index"] > 0]
        for query, rows in ((_CUT, cut), (_DROP_SESSIONS, drop), (_UPSERT_SESSIONS, upsert),
                            (_SET_JOURNEYS, journeys), (_EVENT_TYPES, types),
                            (_ADD_STEPS, add), (_LINK_FIRST, first),
                            (_LINK_NEXT, later), (_MOVE_LEADS_TO, moves)):
            if rows:
                tx.run(query, rows=rows).consume()

    def forget(self, project: str, session_ids: Sequence[str], keys: Sequence[str]) -> None:
        """Erase sessions (steps, journeys, ``LEADS_TO`` moved by their transitions, as a
        removal does), then the ``User`` nodes of ``keys`` left without a session."""
        if session_ids:
            self.apply(GraphChanges(removed=[(project, sid) for sid in session_ids]))
        if keys:
            self._driver.execute_query(_DROP_USERS, project=project, ids=list(keys),
                                       database_=self._database)

    # -- reading ---------------------------------------------------------------------------

    def session_steps(self, project: str, session_id: str) -> list[Step]:
        records, _, _ = self._driver.execute_query(
            "MATCH (st:Step {project: $project, session: $session}) "
            "RETURN st.name AS name, st.url AS url ORDER BY st.index",
            project=project, session=session_id, database_=self._database)
        return [(r["name"], r["url"]) for r in records]

    def sequences(self, project: str) -> Iterator[tuple[str, list[Step]]]:
        records, _, _ = self._driver.execute_query(
            "MATCH (s:Session {project: $project}) "
            "OPTIONAL MATCH (st:Step {project: $project, session: s.id}) "
            "WITH s, st ORDER BY st.index "
            "RETURN s.id AS session, [x IN collect(st) | [x.name, x.url]] AS steps",
            project=project, database_=self._database)
        for r in records:
            yield r["session"], [(n, u) for n, u in r["steps"]]

    def transitions(self, project: str) -> list[Transition]:
        records, _, _ = self._driver.execute_query(
            "MATCH (a:EventType {project: $project})-[r:LEADS_TO]->"
            "(b:EventType {project: $project}) "
            "RETURN a.name AS source, b.name AS target, r.count AS count, "
            "r.sessions AS sessions",
            project=project, database_=self._database)
        edges = [Transition(r["source"], r["target"], r["count"], r["sessions"])
                 for r in records]
        return sorted(edges, key=lambda t: (-t.count, t.source, t.target))

    def journeys(self, project: str, session_ids: Sequence[str] | pa.Array) -> pa.Table:
        ids = (session_ids.to_pylist() if isinstance(session_ids, pa.Array)
               else list(session_ids))
        sessions: list[str] = []
        texts: list[str] = []
        for at in range(0, len(ids), _READ_CHUNK):
            records, _, _ = self._driver.execute_query(
                _JOURNEYS, project=project, ids=ids[at:at + _READ_CHUNK],
                database_=self._database)
            sessions += records[0]["sessions"]
            texts += records[0]["journeys"]
        row_of = {sid: i for i, sid in enumerate(sessions)}
        rows = pa.array([row_of.get(sid) for sid in ids], pa.int64())
        if texts:
            parsed = pajson.read_json(io.BytesIO("\n".join(texts).encode()),
                                      parse_options=pajson.ParseOptions(
                                          explicit_schema=_JOURNEY_JSON))
        else:
            parsed = _JOURNEY_JSON.empty_table()
        return pa.Table.from_arrays(
            [pa.array(ids, pa.string()), parsed.column("n").take(rows),
             parsed.column("u").take(rows)], schema=JOURNEY_SCHEMA)

    def sessions_count(self, project: str) -> int:
        records, _, _ = self._driver.execute_query(
            "MATCH (s:Session {project: $project}) RETURN count(s) AS n",
            project=project, database_=self._database)
        return int(records[0]["n"])


def _journey(steps: list[Step]) -> str:
    """A session's ``journey`` property: its steps' names and urls as JSON."""
    return orjson.dumps({"n": [n for n, _ in steps], "u": [u for _, u in steps]}).decode()


def _common_prefix(a: list[Step], b: list[Step]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _pairs(project: str, steps: list[Step]) -> Counter[tuple[str, str, str]]:
    names = [n for n, _ in steps]
    return Counter((project, a, b) for a, b in zip(names, names[1:], strict=False))

