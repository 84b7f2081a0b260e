"""Forgotten identities: what the pipeline drops after a user's data was erased.

``cep project delete`` (right to be forgotten) erases a user from every store, but the event
log (the embedded log's segments, Kafka's topics) still holds what they sent until its
retention passes, and a replay of it would write them back. So an erasure also records the
user and the devices tied to them as *forgotten*, and both runners drop, before
de-duplication, every record that belongs to them: replays and late arrivals alike.

Ownership follows the identity rule (``stream.operators.identify``): an event belongs to its
own ``distinct_user_id`` when it carries one, else to its device. So an event of another
user on a forgotten device is kept (a shared device), and a device-only event of a forgotten
device is dropped. A dead letter (a raw rejected record) is judged the same way from the
ids its JSON names (``letter_ids``).

Forgetting is permanent for those ids in that project, like Segment's "suppress with
delete": a user who asked to be forgotten is not collected again under the same id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter

# Fields of a raw record (CEP's envelope and the SDK-compatible shapes) naming its user or
# its device; looked for at the top level and under the usual property objects.
USER_FIELDS = ("distinct_user_id", "distinct_id", "user_id", "userId", "$user_id")
DEVICE_FIELDS = ("device_id", "anonymousId", "$device_id")
_NESTED = ("default_properties", "properties", "context")


@dataclass(frozen=True, slots=True)
class Forgotten:
    """One project's forgotten users and devices."""

    users: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()

    def owns(self, user: str | None, device: str | None) -> bool:
        """Whether a record with this user and device belongs to a forgotten identity."""
        if user:
            return user in self.users
        return device is not None and device in self.devices

    def to_json(self) -> bytes:
        return orjson.dumps({"users": sorted(self.users), "devices": sorted(self.devices)})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Forgotten:
        value = orjson.loads(raw)
        return cls(frozenset(map(str, value.get("users", ()))),
                   frozenset(map(str, value.get("devices", ()))))


class Suppressions:
    """Every project's ``Forgotten``; falsy when nothing is forgotten (the runners' fast
    path: no record is looked at)."""

    __slots__ = ("_by_project",)

    def __init__(self, by_project: Mapping[str, Forgotten] | None = None) -> None:
        self._by_project = {p: f for p, f in (by_project or {}).items()
                            if f.users or f.devices}

    def __bool__(self) -> bool:
        return bool(self._by_project)

    def of(self, project: str) -> Forgotten | None:
        return self._by_project.get(project)

    def owns(self, project: str, user: str | None, device: str | None) -> bool:
        f = self._by_project.get(project)
        return f is not None and f.owns(user, device)

    def drops_event(self, e: Event) -> bool:
        return self.owns(e.project, e.distinct_user_id, e.device_id)

    def drops_profile(self, p: Profile) -> bool:
        """A forgotten user's traits, or an alias tying a device to them."""
        return self.owns(p.project, p.distinct_user_id, p.device_id)

    def drops_letter(self, d: DeadLetter) -> bool:
        f = self._by_project.get(d.project)
        if f is None:
            return False
        users, devices = letter_ids(d.payload)
        if users:
            return not users.isdisjoint(f.users)
        return not devices.isdisjoint(f.devices)

    def events(self, events: Iterable[Event]) -> list[Event]:
        """``events`` without the forgotten ones."""
        return [e for e in events if not self.drops_event(e)]


def letter_ids(payload: bytes | str) -> tuple[set[str], set[str]]:
    """The user ids and device ids a raw record names (empty when it is not a JSON object:
    a record rejected for being unreadable names nobody)."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return set(), set()
    if not isinstance(value, dict):
        return set(), set()
    places = [value, *(value[k] for k in _NESTED if isinstance(value.get(k), dict))]
    users = {str(v) for place in places for k in USER_FIELDS
             if isinstance(v := place.get(k), str | int) and not isinstance(v, bool) and v != ""}
    devices = {str(v) for place in places for k in DEVICE_FIELDS
               if isinstance(v := place.get(k), str | int) and not isinstance(v, bool)
               and v != ""}
    return users, devices
