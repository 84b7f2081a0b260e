"""Project keys on requests: ``Authorization: Bearer <key>`` or HTTP Basic (key as user)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from typing import Any

from storage.control import ControlStore, KeyInfo

CACHE_SECONDS = 5.0


def credentials(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, or None."""
    value = headers.get("authorization", "")
    scheme, _, rest = value.partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return rest
    if scheme.lower() == "basic" and rest:
        try:
            user = base64.b64decode(rest, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return None


class Authenticator:
    """Key → (project, kind), cached briefly so a revoked key stops within seconds."""

    def __init__(self, control: ControlStore, ttl: float = CACHE_SECONDS) -> None:
        self._control = control
        self._ttl = ttl
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop every cached answer (a key was revoked here)."""
        with self._lock:
            self._cache.clear()

    def check(self, key: str) -> KeyInfo | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        info = self._control.authenticate(key) if len(key) < 200 else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, info)
        return info


class KeyAdmin:
    """Key management for the admin key's GraphQL fields and the CLI's ``project keys``: the
    control store, and this process's cache dropped as soon as a key is revoked (other
    processes stop accepting it within ``CACHE_SECONDS``)."""

    def __init__(self, control: ControlStore, auth: Authenticator | None = None) -> None:
        self._control = control
        self._auth = auth

    def list(self, project: str) -> list[dict[str, Any]]:
        return self._control.keys(project)

    def create(self, project: str, kind: str) -> str:
        return self._control.create_key(project, kind)

    def rotate(self, project: str, kind: str) -> str:
        key = self._control.rotate_key(project, kind)
        self._forget()
        return key

    def revoke(self, project: str, prefix: str) -> int:
        n = self._control.revoke_key(project, prefix)
        self._forget()
        return n

    def _forget(self) -> None:
        if self._auth is not None:
            self._auth.forget()
