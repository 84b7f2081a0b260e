"""Per-request context: who is asking (project and key kind) and the ports they may use."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from graph.ports import JourneyGraph
from resolvers.errors import api_error
from resolvers.live import LivePort
from storage.ports import DeadLetterStore, EventStore, ProfileStore, SessionStore

T = TypeVar("T")


class IngestPort(Protocol):
    async def events(self, project: str, records: list[Any], source: str = ...) -> Any: ...

    async def profiles(self, project: str, records: list[Any], source: str = ...) -> Any: ...

    async def replay(self, project: str, letters: list[tuple[int, str, bytes]]) -> Any: ...


@dataclass
class Context:
    project: str | None
    key_kind: str | None
    sessions: SessionStore
    dead_letters: DeadLetterStore
    ingest: IngestPort
    registry: Any
    pipeline: Callable[[], Awaitable[tuple[int, int, bool]]]
    now_ms: Callable[[], int]
    page_size_limit: int = 1000
    about: Callable[[], dict[str, Any]] = dict
    session_settings: Callable[[str], Any] | None = None
    update_session_settings: Callable[[str, dict[str, Any]], Any] | None = None
    events: EventStore | None = None
    profiles: ProfileStore | None = None
    project_settings: Callable[[str], dict[str, Any]] | None = None
    update_project_settings: Callable[[str, dict[str, Any]], Any] | None = None
    graph: JourneyGraph | None = None
    live: LivePort | None = None
    campaigns: Any = None  # gateway.campaigns.Campaigns
    keys: Any = None  # gateway.auth.KeyAdmin
    extras: dict[str, Any] = field(default_factory=dict)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call off the event loop."""
        return await asyncio.to_thread(fn, *args)

    def require(self, *kinds: str) -> str:
        """The caller's project if its key is one of ``kinds``; else a coded error."""
        if self.project is None or self.key_kind is None:
            raise api_error("UNAUTHENTICATED", "a project key is required: "
                            "Authorization: Bearer <key>")
        if self.key_kind not in kinds and self.key_kind != "admin":
            raise api_error("FORBIDDEN", f"this needs a {' or '.join(kinds)} key; "
                            f"a {self.key_kind} key was given")
        return self.project
