"""GraphQL for one user's data (issue 10, right to be forgotten), admin key only: every record
held about a user, and their erasure from every store (``gateway.user_data``). The same as
``cep project export`` and ``cep project delete``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import strawberry
from strawberry.scalars import JSON

from resolvers.errors import api_error, bad_input


@strawberry.type(description="How many records one store held about the user.")
class ErasedRecords:
    store: str
    records: int


@strawberry.type
class UserDeletion:
    user_id: str
    erased: list[ErasedRecords]
    total: int


@strawberry.type
class UserDataExport:
    user_id: str
    total: int
    records: list[JSON] = strawberry.field(description="Each record with its kind in "
                                           "`record`: trait, identity, session, event, "
                                           "journey, delivery, dead_letter, archived_event.")


def _service(info: strawberry.Info, user_id: str) -> tuple[str, Any]:
    ctx = info.context
    project = ctx.require("admin")
    service = ctx.extras.get("user_data")
    if service is None:
        raise api_error("UNAVAILABLE", "user data management is not available on this gateway")
    if not user_id.strip():
        raise bad_input("userId", "must not be empty")
    return project, service


def _plain(record: dict[str, Any]) -> Any:
    """JSON-ready: bytes and other values orjson knows turned into JSON types."""
    return orjson.loads(orjson.dumps(record, default=str))


@strawberry.type
class UserDataQueries:
    @strawberry.field(description="Every record held about a user: profile traits, tied "
                      "devices, sessions, events, journeys, campaign deliveries, dead letters "
                      "naming them, archived events. Admin key.")
    async def user_data(self, info: strawberry.Info, user_id: str) -> UserDataExport:
        project, service = _service(info, user_id)

        def collect() -> tuple[int, list[Any]]:
            total, records = service.export(project, user_id)
            return total, [_plain(r) for r in records]

        total, records = await asyncio.to_thread(collect)
        return UserDataExport(user_id=user_id, total=total, records=records)


@strawberry.type
class UserDataMutations:
    @strawberry.mutation(description="Erase a user from every store (right to be forgotten): "
                         "events, sessions, profile, devices tied to them, journeys, live "
                         "views, archive, campaign records, dead letters naming them. The "
                         "user and their devices stay on the project's forgotten list, so "
                         "nothing they sent is stored again (replays included). Admin key.")
    async def delete_user_data(self, info: strawberry.Info, user_id: str) -> UserDeletion:
        project, service = _service(info, user_id)
        counts: dict[str, int] = await service.erase(project, user_id)
        return UserDeletion(user_id=user_id,
                            erased=[ErasedRecords(store=k, records=v)
                                    for k, v in sorted(counts.items())],
                            total=sum(counts.values()))
