"""Errors of the dev stack."""

from __future__ import annotations


class DevStackError(RuntimeError):
    """A service could not be started, reached or stopped; the message says why."""


class ServiceUnavailable(DevStackError):
    """A prerequisite is absent on this machine (a supported JDK, Maven, redis-server)."""
