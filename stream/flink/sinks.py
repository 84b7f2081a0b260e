"""Where the PyFlink job's outputs go: a small interface and the built-in sinks.

A sink is built on the task manager by a picklable zero-argument factory (a class with its
settings, or a module-level function), opened once per parallel subtask, and given every
:data:`~stream.flink.records.Output` of that subtask in order. Outputs are upserts (see
:mod:`stream.flink.records`), so a sink that writes each one idempotently stays correct
when a restart from a checkpoint replays some of them. ``write`` must finish its writes
before it returns: PyFlink has no checkpoint hook for Python functions, so anything still
buffered when a checkpoint completes would be lost on failure.

Built in: ``print`` (JSON lines on stdout), ``jsonl:DIR`` (one JSON-lines file per subtask
and attempt, for tests and debugging), ``discard`` (benchmarks) and ``stores`` (Cassandra,
Neo4j and Redis: :mod:`stream.flink.store_sink`, settings from ``CEP_*`` environment
variables); ``module:attribute`` names any other factory.

The job hands sinks batches (see ``stream.flink.functions.BufferOutputs``): outputs, and
also the ``Profile``, ``DeadLetter`` and ``DeadSettled`` values of the profile and dead-letter
topics, which only the ``stores`` sink writes (the others record session outputs).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from stream.flink.records import (
    CampaignFiring,
    DeviceTie,
    EnrichedEvent,
    Output,
    SessionDeleted,
    SessionUpsert,
    TooLate,
    output_to_json,
)

OUTPUT_TYPES = (EnrichedEvent, SessionUpsert, SessionDeleted, DeviceTie, TooLate,
                CampaignFiring)


class Sink(Protocol):
    def open(self, subtask: int, attempt: int) -> None:
        """Connect; ``subtask`` is 0-based, ``attempt`` counts restarts from 0."""
        ...

    def write(self, outputs: Sequence[Any]) -> None:
        """Write ``outputs`` (in order) durably before returning."""
        ...

    def close(self) -> None: ...


SinkFactory = Callable[[], Sink]


class DiscardSink:
    """Drops everything (benchmarks of the job itself)."""

    def open(self, subtask: int, attempt: int) -> None:
        pass

    def write(self, outputs: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass


class PrintSink:
    """Each output as one JSON line on stdout, prefixed by the subtask."""

    def open(self, subtask: int, attempt: int) -> None:
        self._prefix = f"{subtask}> ".encode()

    def write(self, outputs: Sequence[Any]) -> None:
        out = sys.stdout.buffer
        for o in _outputs(outputs):
            out.write(self._prefix + output_to_json(o) + b"\n")
        out.flush()

    def close(self) -> None:
        sys.stdout.flush()


class JsonLinesSink:
    """Appends each output as a JSON line to ``DIR/part-<subtask>-<attempt>.jsonl``.

    One file per subtask keeps each key's outputs in emission order (a key is always
    processed by one subtask), so the last line about an id is its current value.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def open(self, subtask: int, attempt: int) -> None:
        path = Path(self._directory)
        path.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = (path / f"part-{subtask}-{attempt}.jsonl").open("ab")

    def write(self, outputs: Sequence[Any]) -> None:
        self._file.write(b"".join(output_to_json(o) + b"\n" for o in _outputs(outputs)))
        self._file.flush()

    def close(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


def _outputs(items: Sequence[Any]) -> list[Output]:
    """The session outputs among ``items`` (profiles and dead letters are not outputs)."""
    return [o for o in items if isinstance(o, OUTPUT_TYPES)]


class _Named:
    """A factory named ``module:attribute``, imported where the sink is built."""

    def __init__(self, target: str) -> None:
        self._target = target

    def __call__(self) -> Sink:
        module, _, attribute = self._target.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
        sink: Sink = factory()
        return sink


class _JsonLines:
    def __init__(self, directory: str) -> None:
        self._directory = directory

    def __call__(self) -> Sink:
        return JsonLinesSink(self._directory)


def sink_factory(spec: str) -> SinkFactory:
    """``print`` | ``discard`` | ``stores`` | ``jsonl:DIR`` | ``module:attribute`` (a
    zero-argument sink factory)."""
    if spec == "stores":
        from stream.flink.store_sink import StoreSettings, StoresSinkFactory

        return StoresSinkFactory(StoreSettings.from_env())
    if spec == "print":
        return PrintSink
    if spec == "discard":
        return DiscardSink
    if spec.startswith("jsonl:"):
        directory = spec[len("jsonl:"):]
        if not directory:
            raise ValueError("jsonl sink needs a directory: jsonl:DIR")
        return _JsonLines(str(Path(directory).resolve()))
    module, sep, attribute = spec.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"unknown sink {spec!r}: use print, stores, jsonl:DIR or "
                         "module:attribute")
    return _Named(spec)
