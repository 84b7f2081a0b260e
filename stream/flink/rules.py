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
from collections.abc import Mapping
from typing import Any

from stream.operators.sessionize import (
    DEFAULT_CONVERSION_EVENTS,
    DEFAULT_END_EVENTS,
    DEFAULT_START_EVENTS,
    SessionRules,
    session_rules,
)

log = logging.getLogger("cep.flink.rules")

SETTINGS_KEY = "cep:project-settings"


def rules_of(settings: Mapping[str, Any]) -> SessionRules:
    """Settings over the catalogue's defaults (``gateway.platform.project_rules``)."""
    return session_rules(settings, DEFAULT_START_EVENTS, DEFAULT_END_EVENTS,
                         DEFAULT_CONVERSION_EVENTS)


class ProjectRules:
    """Picklable: holds settings only until ``open`` (called on the task manager)."""

    def __init__(self, fallback: Mapping[str, SessionRules], redis_url: str | None = None,
                 refresh_s: float = 5.0) -> None:
        self._fallback = dict(fallback)
        self._url = redis_url
        self._refresh_s = refresh_s
        self._client: Any = None
        self._settings: dict[str, SessionRules] = {}
        self._read_at = float("-inf")

    def open(self) -> None:
        if self._url:
            import redis

            self._client = redis.Redis.from_url(self._url, socket_timeout=2.0,
                                                socket_connect_timeout=2.0)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def rules(self, project: str) -> SessionRules:
        if self._client is not None and time.monotonic() - self._read_at >= self._refresh_s:
            self._read()
        found = self._settings.get(project)
        if found is not None:
            return found
        return self._fallback.get(project) or self._fallback.get("*") or SessionRules()

    def _read(self) -> None:
        self._read_at = time.monotonic()
        try:
            raw: dict[bytes, bytes] = self._client.hgetall(SETTINGS_KEY)
        except Exception as exc:  # noqa: BLE001 - any Redis failure keeps the last rules
            log.warning("cannot read %s from Redis (keeping the last rules): %r",
                        SETTINGS_KEY, exc)
            return
        settings = {}
        for field, value in raw.items():
            project = field.decode()
            try:
                settings[project] = rules_of(json.loads(value))
            except (ValueError, TypeError) as exc:
                log.warning("bad settings of project %r in %s: %r", project, SETTINGS_KEY, exc)
                if project in self._settings:
                    settings[project] = self._settings[project]
        self._settings = settings
