"""The order service: what happens to an order after Purchase, as server events.

Confirmed within minutes; then dispatched, out for delivery and delivered (or, rarely,
cancelled by the store). Server events carry ``distinct_user_id`` only: no device, URL,
IP or user agent.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

MINUTE_MS = 60_000
_CANCEL_REASONS = ("out_of_stock", "store_closed", "address_unserviceable")


def order_events(
    rng: random.Random,
    order_id: str,
    city: str,
    currency: str,
    placed: int,
    amount: float,
    item_count: int,
) -> list[tuple[str, int, dict[str, Any]]]:
    """(event name, time in ms, properties) for one order placed at ``placed``."""
    code = city[:3].upper()
    t = placed + rng.randint(40_000, 180_000)
    promised = placed + rng.choice((60, 90, 120, 180)) * MINUTE_MS
    confirmed = {
        "order_id": order_id,
        "amount": amount,
        "currency": currency,
        "store_id": f"ST-{code}-{rng.randint(1, 40):03d}",
        "estimated_delivery_time": _iso(promised),
    }
    steps: list[tuple[str, int, dict[str, Any]]] = [("Order Confirmed", t, confirmed)]
    if rng.random() < 0.025:
        t += rng.randint(5, 40) * MINUTE_MS
        cancelled = {
            "order_id": order_id,
            "reason": rng.choice(_CANCEL_REASONS),
            "cancelled_by": "store",
            "refund_amount": amount,
            "currency": currency,
        }
        steps.append(("Order Cancelled", t, cancelled))
        return steps
    rider = f"RD{rng.randrange(10**5):05d}"
    t += rng.randint(20, 110) * MINUTE_MS
    dispatched = {
        "order_id": order_id,
        "warehouse_id": f"WH-{code}-{rng.randint(1, 6):02d}",
        "carrier": "MoreExpress",
        "tracking_id": f"TRK{rng.randrange(10**9):09d}",
        "item_count": item_count,
    }
    steps.append(("Order Dispatched", t, dispatched))
    t += rng.randint(5, 30) * MINUTE_MS
    eta = rng.randint(10, 40)
    out = {"order_id": order_id, "rider_id": rider, "eta_minutes": eta}
    steps.append(("Out for Delivery", t, out))
    t += (eta + rng.randint(-8, 15)) * MINUTE_MS
    delivered = {
        "order_id": order_id,
        "rider_id": rider,
        "delivery_time_minutes": (t - placed) // MINUTE_MS,
        "on_time": t <= promised,
    }
    steps.append(("Order Delivered", t, delivered))
    return steps


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
