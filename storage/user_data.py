"""One user's records in the analytics store: the port behind export and erasure.

Whose records: a user's identity is resolved as every answer resolves it
(``stream.operators.identify``): an event is the user's when it carries their
``distinct_user_id``, or carries no user and comes from a device tied to them (or is the
id itself, for a device never tied to anyone); a session is theirs when its resolved user
is. Events of their sessions count as theirs too (a session is erased whole). The devices
tied to them go with them: their identity rows, and they join the forgotten list.

Adapters: ``storage.duckdb_user_data`` (SQL over the resolved views) and
``storage.cassandra_user_data`` (partition reads keyed by the user's devices and
sessions). The conformance suite runs the same erasure on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from storage.ports import DeadLetterStore
from stream.operators.suppress import Forgotten, letter_ids

DEAD_PAGE = 10_000


@dataclass(slots=True)
class UserRecords:
    """What the store holds about ``user`` in ``project``."""

    project: str
    user: str
    devices: list[str]  # devices tied to the user now
    events: pa.Table  # full event rows (storage.columns.EVENT_COLUMNS)
    sessions: pa.Table  # full session rows (storage.columns.SESSION_COLUMNS)
    traits: list[dict[str, Any]]  # {key, value_text, value_num, set_at}
    dead_letters: pa.Table = field(default_factory=lambda: pa.table({}))

    @property
    def insert_ids(self) -> list[str]:
        return [str(v) for v in self.events.column("insert_id").to_pylist()]

    @property
    def session_ids(self) -> list[str]:
        return [str(v) for v in self.sessions.column("session_id").to_pylist()]

    @property
    def session_keys(self) -> list[str]:
        """The keys the user's sessions are kept under (``"d:<device>"``, ``"u:<user>"``,
        ``"p:<producer session>"``)."""
        return sorted({str(k) for k in self.sessions.column("session_key").to_pylist()})

    @property
    def identities(self) -> set[str]:
        """The ids the user's events were sent under (live streams are kept per id)."""
        return {self.user, *self.devices}

    def counts(self) -> dict[str, int]:
        return {"events": self.events.num_rows, "sessions": self.sessions.num_rows,
                "profile_traits": len(self.traits), "identities": len(self.devices),
                "dead_letters": self.dead_letters.num_rows}


class UserDataStore(DeadLetterStore, Protocol):
    def user_records(self, project: str, user: str) -> UserRecords:
        """Everything about ``user`` (dead letters not included: ``find_dead_letters``)."""
        ...

    def erase_user(self, records: UserRecords) -> None:
        """Delete ``records`` (as ``user_records`` found them) and the user's identity
        rows and traits."""
        ...

    def delete_dead_letters(self, project: str, ids: list[int]) -> None: ...


def find_dead_letters(store: DeadLetterStore, project: str,
                      forgotten: Forgotten) -> pa.Table:
    """The project's dead letters whose raw record names a forgotten identity (judged as
    ``Suppressions.drops_letter`` judges them), every status."""
    pages: list[pa.Table] = []
    after = 0
    while True:
        page = store.dead_letters(project, None, DEAD_PAGE, after)
        if page.num_rows == 0:
            break
        keep = []
        for payload in page.column("payload").to_pylist():
            users, devices = letter_ids(payload or b"")
            keep.append(not users.isdisjoint(forgotten.users) if users
                        else not devices.isdisjoint(forgotten.devices))
        pages.append(page.filter(pa.array(keep, pa.bool_())))
        after = int(page.column("id")[-1].as_py())
        if page.num_rows < DEAD_PAGE:
            break
    if not pages:
        return store.dead_letters(project, None, 0, 0)
    return pa.concat_tables(pages)
