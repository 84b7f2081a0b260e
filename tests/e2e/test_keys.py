"""Project keys (issue 7): listed by prefix only, created, rotated and revoked through the
admin key's GraphQL fields and `cep project keys`; a revoked key stops working at once on
the gateway that revoked it."""

from __future__ import annotations

import subprocess  # nosec B404 - our own CLI
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, Gateway, cep


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("keys"))
    g.start()
    yield g
    g.stop()


@pytest.fixture
def keys(gw: Gateway) -> dict[str, Any]:
    return gw.create_project(f"keys-{uuid.uuid4().hex[:6]}")


def ok(gw: Gateway, key: str, query: str, variables: dict[str, Any] | None = None
       ) -> dict[str, Any]:
    body = gw.gql(key, query, variables)
    assert "errors" not in body, body
    return dict(body["data"])


def code(gw: Gateway, key: str, query: str, variables: dict[str, Any] | None = None) -> str:
    body = gw.gql(key, query, variables)
    assert body.get("errors"), body
    return str(body["errors"][0]["extensions"]["code"])


def post(gw: Gateway, key: str) -> int:
    return httpx.post(gw.url + "/v1/events", timeout=30, json=[{
        "event_name": "Search", "time": int(time.time() * 1000),
        "insert_id": uuid.uuid4().hex, "device_id": "d1"}],
        headers={"Authorization": f"Bearer {key}"}).status_code


LIST = "{ apiKeys { kind prefix createdAt revokedAt active } }"
ABOUT = "{ pipelineStatus { pendingEvents } }"


def test_keys_are_listed_by_prefix_and_only_to_the_admin_key(gw: Gateway,
                                                             keys: dict[str, Any]) -> None:
    listed = ok(gw, keys["admin_key"], LIST)["apiKeys"]
    assert sorted(k["kind"] for k in listed) == ["ADMIN", "READ", "WRITE"]
    assert all(k["active"] and k["revokedAt"] is None for k in listed)
    for k in listed:
        plain = keys[f"{k['kind'].lower()}_key"]
        assert plain.startswith(k["prefix"])
        assert len(k["prefix"]) == 10
    assert "key" not in str(listed).replace("apiKeys", "")
    assert code(gw, keys["read_key"], LIST) == "FORBIDDEN"
    assert code(gw, keys["write_key"], "mutation { createApiKey(kind: READ) { key } }") \
        == "FORBIDDEN"


def test_create_then_revoke_stops_the_old_key_at_once(gw: Gateway,
                                                      keys: dict[str, Any]) -> None:
    admin = keys["admin_key"]
    new = ok(gw, admin, "mutation { createApiKey(kind: READ) { kind prefix key } }")[
        "createApiKey"]
    assert new["kind"] == "READ"
    assert new["key"].startswith(new["prefix"])
    ok(gw, new["key"], ABOUT)
    ok(gw, keys["read_key"], ABOUT)  # both valid: deploy the new one, then revoke
    old_prefix = keys["read_key"][:10]
    assert ok(gw, admin, "mutation($p: String!) { revokeApiKey(prefix: $p) }",
              {"p": old_prefix}) == {"revokeApiKey": 1}
    assert code(gw, keys["read_key"], ABOUT) == "UNAUTHENTICATED"
    ok(gw, new["key"], ABOUT)
    listed = {k["prefix"]: k for k in ok(gw, admin, LIST)["apiKeys"]}
    assert listed[old_prefix]["active"] is False
    assert listed[old_prefix]["revokedAt"]


def test_rotating_the_write_key_moves_ingest_to_the_new_key(gw: Gateway,
                                                            keys: dict[str, Any]) -> None:
    assert post(gw, keys["write_key"]) == 200
    new = ok(gw, keys["admin_key"], "mutation { rotateApiKey(kind: WRITE) { key } }")[
        "rotateApiKey"]["key"]
    assert post(gw, keys["write_key"]) == 401
    assert post(gw, new) == 200


def test_the_last_admin_key_cannot_be_revoked(gw: Gateway, keys: dict[str, Any]) -> None:
    body = gw.gql(keys["admin_key"], "mutation($p: String!) { revokeApiKey(prefix: $p) }",
                  {"p": keys["admin_key"][:10]})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("prefix: that would revoke the project's last active "
                                       "admin key")
    ok(gw, keys["admin_key"], LIST)
    assert code(gw, keys["admin_key"], "mutation { revokeApiKey(prefix: \"cep_a\") }") \
        == "BAD_USER_INPUT"  # too short to name one key


def test_cli_lists_creates_and_revokes_keys(tmp_path: Path) -> None:
    created = cep("project", "create", "cli", data=tmp_path)
    project = created["project"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", "project", "keys", *args,
                               "--data", str(tmp_path)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    listed = [line for line in run("list", project).stdout.splitlines() if line]
    assert len(listed) == 3
    assert all(created["write_key"] not in line and "hash" not in line for line in listed)
    extra = cep("project", "keys", "create", project, "read", data=tmp_path)["read_key"]
    assert extra.startswith("cep_r_")
    revoked = run("revoke", project, extra[:10])
    assert revoked.returncode == 0, revoked.stderr
    assert '"revoked": 1' in revoked.stdout
    again = run("revoke", project, extra[:10])
    assert again.returncode == 2
    assert "no active key" in again.stderr
    missing = run("list", "p_nope")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_no_key_or_secret_reaches_the_log_even_at_debug(tmp_path: Path) -> None:
    g = Gateway(tmp_path, extra=("--log-level", "debug"))
    g.start()
    try:
        keys = g.create_project("logs")
        secret = "webhook-secret-" + uuid.uuid4().hex
        assert post(g, keys["write_key"]) == 200
        ok(g, keys["read_key"], ABOUT)
        ok(g, keys["admin_key"], """mutation($i: CampaignInput!) { createCampaign(input: $i)
            { id } }""", {"i": {"name": "c", "trigger": {"type": "ON_EVENT", "event": "X"},
                                "channel": {"type": "WEBHOOK", "url": "http://127.0.0.1:9/",
                                            "secret": secret}, "template": {"body": "hi"}}})
        new = ok(g, keys["admin_key"], "mutation { rotateApiKey(kind: READ) { key } }")[
            "rotateApiKey"]["key"]
        g.gql("cep_r_not-a-real-key-at-all", ABOUT)
        g.wait_processed(new)
    finally:
        g.stop()
    log = g.log_path.read_text(errors="replace")
    assert "DEBUG" in log or "debug" in log.lower(), "the gateway logged at debug"
    for value in (*[keys[f"{k}_key"] for k in ("write", "read", "admin")], new, secret,
                  "cep_r_not-a-real-key-at-all"):
        assert value not in log
