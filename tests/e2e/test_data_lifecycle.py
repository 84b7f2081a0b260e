"""The data lifecycle of the embedded profile end to end (issue 10): a real gateway, the
``cep`` commands against it and against its data dir.

Events reach the Parquet archive (``cep archive query`` in every output format, ``cep
archive compact``); ``cep project export`` writes a user's records; ``cep project delete``
erases them; and a rebuild of the store from the event log — the replay an operator runs
after losing the DuckDB file — brings back everyone but the erased user.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import ROOT, Gateway, cep

HOUR = 3_600_000
T0 = (int(time.time() * 1000) - 3 * HOUR) // HOUR * HOUR  # the scenario fits in one day
MIN = 60_000
ROLL_EVERY_COMMIT = {"CEP_ARCHIVE_ROLL_SECONDS": "0"}  # archive files appear at once


def run(*args: str, data: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--data", str(data)],
                         cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env={**os.environ, **ROLL_EVERY_COMMIT})
    if check and out.returncode != 0:
        raise AssertionError(f"cep {' '.join(args)} failed ({out.returncode}):\n"
                             f"{out.stdout}\n{out.stderr}")
    return out


def ev(iid: str, name: str, minute: int, user: str | None = None,
       device: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"event_name": name, "time": T0 + minute * MIN, "insert_id": iid}
    if user:
        record["distinct_user_id"] = user
    if device:
        record["device_id"] = device
    return record


ANN = [ev("a1", "App Launch", 0, device="phone"), ev("a2", "Search", 1, device="phone"),
       ev("a3", "Login", 2, "ann", "phone"), ev("a4", "Purchase", 3, "ann", "phone")]
BOB = [ev("b1", "App Launch", 0, "bob", "bobs"), ev("b2", "Purchase", 1, "bob", "bobs")]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("lifecycle"), env=ROLL_EVERY_COMMIT)
    gw.start()
    yield gw
    gw.stop()


def post(gw: Gateway, key: str, path: str, records: list[dict[str, Any]]) -> None:
    resp = httpx.post(gw.url + path, content=orjson.dumps(records),
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert resp.status_code == 200, resp.text


def users(gw: Gateway, key: str) -> list[str]:
    gw.wait_processed(key)
    body = gw.gql(key, '{ sessions(window: {last: "1d"}, first: 100) { edges { node { '
                  "userId } } } }")
    return sorted({e["node"]["userId"] for e in body["data"]["sessions"]["edges"]})


def archive_json(gw: Gateway, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(run("archive", "query", sql, "--format", "json",
                                                data=gw.data).stdout)
    return rows


def test_archive_export_delete_and_a_replay_that_brings_nobody_back(gateway: Gateway
                                                                    ) -> None:
    keys = cep("project", "create", "lifecycle", data=gateway.data)
    project, write, read = keys["project"], keys["write_key"], keys["read_key"]
    post(gateway, write, "/v1/identify", [{"distinct_user_id": "ann",
                                           "traits": {"city": "Pune"}}])
    post(gateway, write, "/v1/events", [*ANN, BOB[0]])
    assert users(gateway, read) == ["ann", "bob"]
    post(gateway, write, "/v1/events", BOB[1:])  # another commit: another archive file
    assert users(gateway, read) == ["ann", "bob"]

    # the archive, in each format
    sql = (f"SELECT insert_id, coalesce(distinct_user_id, device_id) AS who FROM events "
           f"WHERE project = '{project}' ORDER BY insert_id")
    assert [(r["insert_id"], r["who"]) for r in archive_json(gateway, sql)] == [
        ("a1", "phone"), ("a2", "phone"), ("a3", "ann"), ("a4", "ann"), ("b1", "bob"),
        ("b2", "bob")]
    as_csv = list(csv.reader(io.StringIO(run("archive", "query", sql, "--format", "csv",
                                             data=gateway.data).stdout)))
    assert as_csv[0] == ["insert_id", "who"]
    assert len(as_csv) == 7
    table = run("archive", "query", "SELECT count(*) AS n FROM events", data=gateway.data)
    assert "6" in table.stdout
    bad = run("archive", "query", "SELECT nope FROM events", data=gateway.data, check=False)
    assert bad.returncode == 2
    assert "sql:" in bad.stderr

    # export through the running gateway: complete JSON lines in the file
    out = gateway.data / "ann.jsonl"
    run("project", "export", project, "ann", "--url", gateway.url, "--admin-key",
        keys["admin_key"], "--out", str(out), data=gateway.data)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    by_kind: dict[str, int] = {}
    for r in records:
        by_kind[r["record"]] = by_kind.get(r["record"], 0) + 1
    assert by_kind == {"trait": 1, "identity": 1, "session": 1, "event": 4, "journey": 1,
                       "archived_event": 4}
    assert not [p for p in gateway.data.iterdir() if p.name.startswith(".ann.jsonl")]

    # delete through the running gateway
    done = json.loads(run("project", "delete", project, "ann", "--url", gateway.url,
                          "--admin-key", keys["admin_key"], "--yes", data=gateway.data).stdout)
    assert done["erased"]["events"] == 4
    assert done["erased"]["archived_events"] == 4
    assert users(gateway, read) == ["bob"]
    assert [r["who"] for r in archive_json(gateway, sql)] == ["bob", "bob"]
    post(gateway, write, "/v1/events", ANN)  # sent again: dropped
    assert users(gateway, read) == ["bob"]

    # compaction merges the small files the commits rolled, and changes no answer
    compacted = json.loads(run("archive", "compact", data=gateway.data).stdout)
    assert (compacted["partitions"], compacted["files_in"], compacted["rows"]) == (1, 2, 2)
    assert [r["who"] for r in archive_json(gateway, sql)] == ["bob", "bob"]

    # the store lost, rebuilt from the log: everyone comes back but ann
    gateway.stop()
    for name in ("events.duckdb", "events.duckdb.wal"):
        (gateway.data / name).unlink(missing_ok=True)
    gateway.start()
    try:
        assert users(gateway, read) == ["bob"]
        body = gateway.gql(read, '{ segment(filter: {city: "Pune"}, window: {last: "1d"}) '
                           "{ totalCount } }")
        assert body["data"]["segment"]["totalCount"] == 0
    finally:
        gateway.stop()

    # offline, on the data dir: nothing of ann's left anywhere; bob's export works too
    offline = run("project", "export", project, "ann", data=gateway.data)
    assert offline.stdout == ""
    bob = [orjson.loads(line) for line in run("project", "export", project, "bob",
                                              data=gateway.data).stdout.splitlines()]
    assert sorted(r["insert_id"] for r in bob if r["record"] == "event") == ["b1", "b2"]
    refused = run("project", "delete", project, "bob", data=gateway.data, check=False)
    assert refused.returncode != 0, "without --yes it asks, and stdin says no"
    gateway.start()  # the module fixture stops it again


def test_the_commands_explain_their_mistakes(gateway: Gateway) -> None:
    assert run("project", "export", "p_nope", "ann", data=gateway.data,
               check=False).returncode == 2
    held = run("project", "delete", "p_nope", "ann", "--yes", data=gateway.data, check=False)
    assert held.returncode == 2
    assert "does not exist" in held.stderr
    keys = cep("project", "create", "held", data=gateway.data)
    busy = run("project", "export", keys["project"], "ann", data=gateway.data, check=False)
    assert busy.returncode == 1
    assert "--url" in busy.stderr, "the running gateway holds the store: say how to ask it"


def test_kill_9_during_ingest_archives_every_stored_event_exactly_once(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "data", env=ROLL_EVERY_COMMIT)
    gw.start()
    keys = cep("project", "create", "crash", data=gw.data)
    acked: set[str] = set()
    stop = threading.Event()

    def producer() -> None:
        start = 0
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                body = [ev(f"k{start + i}", "Search", (start + i) % 120, device=f"d{i % 17}")
                        for i in range(200)]
                while not stop.is_set():  # retried until a 200, as an SDK does
                    try:
                        resp = client.post(gw.url + "/v1/events", content=orjson.dumps(body),
                                           headers={"Authorization":
                                                    f"Bearer {keys['write_key']}"})
                        if resp.status_code == 200:
                            acked.update(r["insert_id"] for r in body)
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.05)
                start += 200

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        for pause in (1.5, 2.0, 1.0):
            time.sleep(pause)
            gw.kill9()
            gw.start()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(timeout=60)
    gw.wait_processed(keys["read_key"], timeout=300)
    gw.stop()  # rolls what is staged
    copies = archive_json(gw, "SELECT insert_id, count(*) AS n FROM raw_events "
                          f"WHERE project = '{keys['project']}' GROUP BY ALL")
    assert len(acked) > 1000
    assert [r for r in copies if r["n"] != 1] == [], "no event archived twice"
    archived = {r["insert_id"] for r in copies}
    assert acked <= archived, "every acknowledged event archived"
    assert len(archived) <= len(acked) + 200  # at most the batch whose answer was lost
