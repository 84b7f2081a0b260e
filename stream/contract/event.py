"""The internal event record: what the gateway writes to the event log once a record passed
validation, and what every operator and store reads.

Times are ``int`` milliseconds since the Unix epoch, UTC. ``time`` is the event time the
producer sent; ``ingest_time`` is when the gateway accepted it. Both are kept forever.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Event(msgspec.Struct, array_like=True, omit_defaults=True):
    """One accepted event. ``array_like`` keeps the log encoding compact (no field names)."""

    project: str
    insert_id: str
    event_name: str
    category: str
    time: int
    ingest_time: int
    distinct_user_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    source_id: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    properties: str = "{}"  # custom_properties as JSON text: stored as sent, never re-parsed
    app_version: str | None = None  # from custom_properties.app_version, used by sessions

    def props(self) -> dict[str, Any]:
        """``custom_properties`` decoded (for the rare code that needs them as values)."""
        return dict(msgspec.json.decode(self.properties)) if self.properties != "{}" else {}

    @property
    def identity(self) -> str:
        """The identity the event was sent with: the user when known, else the device."""
        return self.distinct_user_id or self.device_id or ""

    @property
    def session_key(self) -> str:
        """Sessions are kept per device; events without a device (servers) per user."""
        if self.device_id:
            return "d:" + self.device_id
        return "u:" + (self.distinct_user_id or "")


class Profile(msgspec.Struct, array_like=True, omit_defaults=True):
    """An accepted ``identify`` call: traits for one user, set at ``ingest_time``."""

    project: str
    distinct_user_id: str
    ingest_time: int
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    device_id: str | None = None
