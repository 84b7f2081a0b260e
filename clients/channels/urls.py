"""Webhook URL checks, including the server-side request forgery (SSRF) guard.

A campaign's webhook URL is chosen by whoever holds the admin key, and the gateway POSTs to
it from inside the deployment's network: pointed at ``http://169.254.169.254/`` or an
internal service it would make CEP a proxy into that network. Blocking non-public
addresses is opt-in (``allow_private_urls=False`` in the channel settings) because the
default deployment is one machine where receivers on localhost are normal (and the tests
use them). With the guard on, a URL naming a non-public IP literal or ``localhost`` is
refused when the campaign is created, and the webhook channel resolves the host before
every send and refuses when any address is not public. A DNS answer can still change
between that check and the connection (DNS rebinding); a deployment that needs a hard
guarantee routes webhooks through an egress proxy or firewall that enforces it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx


def url_problem(url: str, *, allow_private: bool = True) -> str | None:
    """Why ``url`` cannot be a webhook URL, or None when it can (no I/O)."""
    if len(url) > 2048:
        return "must be at most 2048 characters"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        return f"is not a valid URL ({exc})"
    if parsed.scheme not in ("http", "https"):
        return "must be http(s)"
    if not parsed.host:
        return "must name a host"
    if parsed.userinfo:
        return "must not embed credentials (send them in channel.headers)"
    if not allow_private and _private_name(parsed.host):
        return "must not point to a private, loopback or link-local address"
    return None


def _private_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    try:  # the resolver also reads IPv4 in short, decimal and hex forms (127.1, 0x7f000001)
        return not ipaddress.ip_address(socket.inet_aton(host)).is_global
    except OSError:
        return False  # a DNS name: checked when sending, see private_address


async def private_address(host: str, port: int) -> str | None:
    """The first non-public address ``host`` resolves to, or None when all are public.
    A name that does not resolve returns None: the request then fails on its own."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for info in infos:
        address = str(info[4][0])
        if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
            return address
    return None
