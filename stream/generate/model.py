"""What ``generate`` returns: the records in send order, the profiles, and the truth.

Records are plain dicts in the wire envelope of DESIGN.md (absent fields are left out,
never ``null``), so they can be posted or written as they are. The ground truth
(sessions, stats) is what the generator meant to produce; tests of the platform can
compare their answers with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DAY_MS = 86_400_000

# Event name -> catalogue category (stream/contract/catalogue).
CATEGORIES: dict[str, str] = {
    "App Launch": "User Actions",
    "App Close": "User Actions",
    "Login": "User Actions",
    "Sign Up": "User Actions",
    "Search": "User Actions",
    "Product View": "User Actions",
    "Add to Cart": "User Actions",
    "Remove from Cart": "User Actions",
    "Begin Checkout": "User Actions",
    "Purchase": "User Actions",
    "Screen View": "User Engagement",
    "Page View": "User Engagement",
    "App Install": "System Events",
    "App Crash": "System Events",
    "Push Opened": "System Events",
    "Payment Failed": "Analytics and Monitoring",
    "Order Confirmed": "Delivery and Fulfillment",
    "Order Dispatched": "Delivery and Fulfillment",
    "Out for Delivery": "Delivery and Fulfillment",
    "Order Delivered": "Delivery and Fulfillment",
    "Order Cancelled": "Delivery and Fulfillment",
}

ORDER_SERVICE = "order-service"


@dataclass(frozen=True, slots=True)
class SessionTruth:
    """One session as generated, on one device.

    ``end`` is ``"close"`` (ended by App Close), ``"crash"`` (App Crash, no close) or
    ``"timeout"`` (the last event is followed by silence; web sessions always end so).
    Times are event times in ms; ``events`` counts records without retried copies.
    """

    device_id: str
    user_id: str | None  # the device's owner, even while it was logged out
    source_id: str
    start_ms: int
    end_ms: int
    events: int
    end: str
    purchase: bool


@dataclass(frozen=True, slots=True)
class Stats:
    """What the stream contains. Counted while generating; the tests recount them on the
    stream itself. "Unique" and "late" follow the platform's rules: the first copy of an
    insert_id wins; an event is late when a newer event of its device was sent before it.
    """

    records: int  # everything in ``events``, retried copies and invalid records included
    valid_records: int
    unique_insert_ids: int  # over valid records: what de-duplication keeps
    duplicates: int  # valid records whose insert_id was already sent
    late_events: int  # sent after a newer event of the same device
    invalid: int
    users: int  # profiles
    devices: int
    anonymous_devices: int  # never tied to a user in the stream
    logged_out_then_login: int  # devices with device-only events followed by a Login
    sessions: int
    sessions_closed: int
    sessions_crashed: int
    purchases: int
    server_events: int
    first_time_ms: int
    last_time_ms: int
    by_event: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Dataset:
    """A generated stream: ``events`` in arrival (send) order, ``profiles`` for identify.

    ``devices`` describes every device that appears in ``events`` (its owner, type, OS,
    model, app version, user agent, home IP and city): the truth that enrichment from
    user agent and IP should recover. ``invalid_indexes`` are positions in ``events`` of
    the records made invalid on purpose (``invalid_rate``); a conforming gateway rejects
    exactly those.
    """

    seed: int
    start_ms: int
    end_ms: int
    events: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    devices: list[dict[str, Any]]
    sessions: list[SessionTruth]
    invalid_indexes: list[int]
    stats: Stats
