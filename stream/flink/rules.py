"""Each project's session rules for the PyFlink job: the gateway's settings, read from Redis.

The gateway writes hash ``cep:project-settings`` (field: project id, value: the JSON object
``ControlStore.settings(project)`` returns). A project found there gets those settings over
the catalogue's defaults, exactly as ``gateway.platform.project_rules`` merges them; any
other project gets the ``--rules`` file's entry, else its ``"*"`` entry, else the defaults.
The hash is read whole, at most every ``refresh_s`` seconds per subtask, when a project's
rules are asked for; when Redis cannot be reached the last rules read stay in force.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from stream.operators.sessionize import (
    DEFAULT_CONVERSION_EVENTS,
    DEFAULT_END_EVENTS,
    DEFAULT_START_EVENTS,
    SessionRules,
    session_rules,
)

log = logging.getLogger("cep.flink.rules")

SETTINGS_KEY = "cep:project-settings"
T = TypeVar("T")


def rules_of(settings: Mapping[str, Any]) -> SessionRules:
    """Settings over the catalogue's defaults (``gateway.platform.project_rules``)."""
    return session_rules(settings, DEFAULT_START_EVENTS, DEFAULT_END_EVENTS,
                         DEFAULT_CONVERSION_EVENTS)


class RedisHash(Generic[T]):
    """A Redis hash read whole at most every ``refresh_s`` seconds, each field parsed by
    ``parse`` (a module-level function: this object is pickled to the task managers with
    its settings only and connects in ``open``). A field that does not parse keeps its last
    value; when Redis cannot be reached every last value stays in force."""

    def __init__(self, url: str | None, key: str, parse: Callable[[bytes], T],
                 refresh_s: float) -> None:
        self._url = url
        self._key = key
        self._parse = parse
        self._refresh_s = refresh_s
        self._client: Any = None
        self._values: dict[str, T] = {}
        self._read_at = float("-inf")

    def open(self) -> None:
        if self._url:
            import redis

            self._client = redis.Redis.from_url(self._url, socket_timeout=2.0,
                                                socket_connect_timeout=2.0)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def values(self) -> dict[str, T]:
        if self._client is not None and time.monotonic() - self._read_at >= self._refresh_s:
            self._read()
        return self._values

    def _read(self) -> None:
        self._read_at = time.monotonic()
        try:
            raw: dict[bytes, bytes] = self._client.hgetall(self._key)
        except Exception as exc:  # noqa: BLE001 - any Redis failure keeps the last values
            log.warning("cannot read %s from Redis (keeping the last values): %r",
                        self._key, exc)
            return
        values = {}
        for field, value in raw.items():
            name = field.decode()
            try:
                values[name] = self._parse(value)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("bad value of %r in %s: %r", name, self._key, exc)
                if name in self._values:
                    values[name] = self._values[name]
        self._values = values


def _parse_rules(value: bytes) -> SessionRules:
    return rules_of(json.loads(value))


class ProjectRules:
    """Picklable: holds settings only until ``open`` (called on the task manager)."""

    def __init__(self, fallback: Mapping[str, SessionRules], redis_url: str | None = None,
                 refresh_s: float = 5.0) -> None:
        self._fallback = dict(fallback)
        self._settings = RedisHash(redis_url, SETTINGS_KEY, _parse_rules, refresh_s)

    def open(self) -> None:
        self._settings.open()

    def close(self) -> None:
        self._settings.close()

    def rules(self, project: str) -> SessionRules:
        found = self._settings.values().get(project)
        if found is not None:
            return found
        return self._fallback.get(project) or self._fallback.get("*") or SessionRules()
