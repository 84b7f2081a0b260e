"""What the PyFlink job emits to its sinks, and how events arrive from Kafka.

Outputs are upserts keyed the way the stores key them, so a sink that writes each one as
it comes (and a replay from a checkpoint that writes some again) ends with the same rows:

- :class:`EnrichedEvent` — an event with its session id, keyed by ``(project, insert_id)``.
  Sent again (``moved=True``) when a late event moves it to another session. ``index`` is
  its position among its session's steps when it arrived in order (it was the session's
  last event), else -1: the re-built session's ``SessionUpsert.steps`` place it.
- :class:`SessionUpsert` — a session's row, keyed by ``(project, session_id)``, sent on every
  change; ``final=True`` once the watermark passed its inactivity timeout (late events can
  still change it until the allowed lateness has passed too), or once the store took the
  key's sessions over (a too-late event next to them). A session a late event
  re-built carries its whole ordered ``steps`` (event name, url), and ``replaced_start``
  when its start time moved (a producer session keeps its id): the journey graph and
  the stores' by-start rows are rewritten from them.
- :class:`SessionDeleted` — a session that a late event merged into another (with the start
  time it had, which the stores key it by).
- :class:`DeviceTie` — a device tied to a user at ``time``; the latest time wins.
- :class:`CampaignFiring` — a campaign fired for a user (not a session output: the
  ``stores`` sink hands it to the gateway's delivery worker through Redis).
- :class:`TooLate` — an event that may belong to a session already dropped from state (see
  :mod:`stream.flink.keyed` for the bound): handed to the sinks unsessionized, never
  dropped. The ``stores`` sink places it against the stored sessions that start at or
  before ``horizon`` (:mod:`stream.refold`, as the embedded runner places late events).

Kafka values on ``raw.<category>`` are one :class:`~stream.contract.event.Event` each, in
msgpack (the local log's encoding: ``array_like``, no field names) — or JSON (the same
array) with ``--format json``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from stream.contract.event import Event
from stream.operators.enrich import Enrichment
from stream.operators.sessionize import SessionRow

WireFormat = Literal["msgpack", "json"]


class EnrichedEvent(msgspec.Struct, tag="event", omit_defaults=True):
    event: Event
    session_id: str
    session_key: str
    enrichment: Enrichment
    moved: bool = False
    index: int = -1


class SessionUpsert(msgspec.Struct, tag="session", omit_defaults=True):
    row: SessionRow
    enrichment: Enrichment
    final: bool = False
    steps: list[tuple[str, str | None]] | None = None
    replaced_start: int | None = None


class SessionDeleted(msgspec.Struct, tag="session_deleted", omit_defaults=True):
    project: str
    session_id: str
    session_key: str
    start_time: int | None = None


class DeviceTie(msgspec.Struct, tag="tie"):
    project: str
    device_id: str
    user_id: str
    time: int


class TooLate(msgspec.Struct, tag="too_late"):
    event: Event
    reason: str
    horizon: int | None = None  # sessions of the key starting after it are held in state


class CampaignFiring(msgspec.Struct, tag="firing", omit_defaults=True):
    """A campaign trigger fired for a user (``stream.flink.campaigns``): keyed by ``(project,
    campaign, user, firing)``, the message's idempotency key."""

    project: str
    campaign: str
    user: str
    firing: str
    at: int
    event_name: str | None = None


Output = EnrichedEvent | SessionUpsert | SessionDeleted | DeviceTie | TooLate | CampaignFiring


class DeadSettled(msgspec.Struct, array_like=True):
    """A replayed dead letter's settlement: the ``[project, id]`` value on ``events.dead``."""

    project: str
    letter_id: int

_json_out = msgspec.json.Encoder()
_json_in = msgspec.json.Decoder(Output)
_event_msgpack = msgspec.msgpack.Decoder(Event)
_event_json = msgspec.json.Decoder(Event)


def output_to_json(output: Output) -> bytes:
    return _json_out.encode(output)


def output_from_json(line: bytes | str) -> Output:
    output: Output = _json_in.decode(line)
    return output


def event_decoder(fmt: WireFormat) -> msgspec.msgpack.Decoder[Event] | msgspec.json.Decoder[Event]:
    """The decoder of one Kafka value (or one line of an events file, always JSON)."""
    return _event_msgpack if fmt == "msgpack" else _event_json
