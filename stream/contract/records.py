"""What one log record holds: everything one request produced, made durable together."""

from __future__ import annotations

import msgspec

from stream.contract.event import Event, Profile


class DeadLetter(msgspec.Struct, array_like=True, omit_defaults=True):
    """A rejected record: kept with its reason so it can be inspected and replayed."""

    project: str
    kind: str  # "event" | "profile"
    index: int
    reason: str
    payload: bytes
    received_at: int
    source: str = "api"


class LogRecord(msgspec.Struct, array_like=True, omit_defaults=True):
    events: list[Event] = []
    profiles: list[Profile] = []
    dead: list[DeadLetter] = []
    replayed: list[tuple[str, int]] = []  # (project, dead-letter id) this record settles

    @property
    def items(self) -> int:
        return len(self.events) + len(self.profiles) + len(self.dead)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(LogRecord)


def encode_record(record: LogRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(payload: bytes) -> LogRecord:
    return _decoder.decode(payload)


def count_items(payload: bytes) -> int:
    return decode_record(payload).items
