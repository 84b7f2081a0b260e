"""GraphQL for project keys (issue 7), admin key only: list them (prefixes, never the keys),
create one more, rotate a kind, revoke one. A revoked key stops at once on this gateway and
within seconds on others (``gateway.auth``)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from resolvers.errors import api_error, bad_input
from resolvers.window import iso


@strawberry.enum(description="write: ingest only; read: queries and subscriptions; admin: "
                 "everything, including schemas, segments, campaigns and keys.")
class KeyKind(Enum):
    WRITE = "write"
    READ = "read"
    ADMIN = "admin"


@strawberry.type
class ApiKey:
    kind: KeyKind
    prefix: str = strawberry.field(description="The key's first characters: enough to tell "
                                   "keys apart, not to use one.")
    created_at: str
    revoked_at: str | None
    active: bool


@strawberry.type(description="A new key: the only time it is shown.")
class NewApiKey:
    kind: KeyKind
    prefix: str
    key: str


def _admin(info: strawberry.Info) -> tuple[str, Any]:
    ctx = info.context
    project = ctx.require("admin")
    if ctx.keys is None:
        raise api_error("UNAVAILABLE", "key management is not available on this gateway")
    return project, ctx.keys


def _new(kind: KeyKind, key: str) -> NewApiKey:
    from storage.control import PREFIX_CHARS

    return NewApiKey(kind=kind, prefix=key[:PREFIX_CHARS], key=key)


@strawberry.type
class KeyQueries:
    @strawberry.field(description="The project's keys, newest first (admin key).")
    async def api_keys(self, info: strawberry.Info) -> list[ApiKey]:
        project, keys = _admin(info)
        rows = await info.context.call(keys.list, project)
        return [ApiKey(kind=KeyKind(r["kind"]), prefix=r["prefix"],
                       created_at=iso(r["created_at"]) or "",
                       revoked_at=iso(r["revoked_at"]), active=r["revoked_at"] is None)
                for r in rows]


@strawberry.type
class KeyMutations:
    @strawberry.mutation(description="One more key of a kind; the others stay valid (create, "
                         "deploy, then revoke the old one: no downtime). Admin key.")
    async def create_api_key(self, info: strawberry.Info, kind: KeyKind) -> NewApiKey:
        project, keys = _admin(info)
        return _new(kind, await info.context.call(keys.create, project, kind.value))

    @strawberry.mutation(description="A new key of a kind, every other key of that kind "
                         "revoked at once. Admin key.")
    async def rotate_api_key(self, info: strawberry.Info, kind: KeyKind) -> NewApiKey:
        project, keys = _admin(info)
        return _new(kind, await info.context.call(keys.rotate, project, kind.value))

    @strawberry.mutation(description="Revoke the key with this prefix (as `apiKeys` lists it) "
                         "or this whole key; returns how many were revoked. The last active "
                         "admin key cannot be revoked. Admin key.")
    async def revoke_api_key(self, info: strawberry.Info, prefix: str) -> int:
        project, keys = _admin(info)
        try:
            n: int = await info.context.call(keys.revoke, project, prefix)
        except ValueError as exc:
            raise bad_input("prefix", str(exc).removeprefix("prefix: ")) from None
        return n
