"""Which addresses can be located at all: a fast "is this a public unicast address" test.

``ipaddress``'s ``is_global`` walks a list of networks in Python (≈3 µs, a third of an
uncached lookup); here the IANA special-purpose ranges are int intervals found by bisection.
IPv4: RFC 6890 ranges not marked globally reachable, plus multicast and 240/4. IPv6: only
global unicast 2000::/3, minus documentation (2001:db8::/32, 3fff::/20), the IETF protocol
block 2001::/23 (Teredo included) and 6to4 2002::/16, whose embedded IPv4 we don't unwrap.
"""

from __future__ import annotations

from bisect import bisect_right
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

__all__ = ["is_locatable"]

_IPV4_NOT_GLOBAL: Final = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
)  # fmt: skip
_IPV6_GLOBAL_UNICAST: Final = IPv6Network("2000::/3")
_IPV6_NOT_GLOBAL: Final = ("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")


def _intervals(cidrs: tuple[str, ...], version: int) -> tuple[list[int], list[int]]:
    networks = sorted(IPv4Network(c) if version == 4 else IPv6Network(c) for c in cidrs)
    starts = [int(n.network_address) for n in networks]
    ends = [int(n.broadcast_address) for n in networks]
    return starts, ends


_V4_STARTS, _V4_ENDS = _intervals(_IPV4_NOT_GLOBAL, 4)
_V6_STARTS, _V6_ENDS = _intervals(_IPV6_NOT_GLOBAL, 6)
_V6_GLOBAL_FIRST: Final = int(_IPV6_GLOBAL_UNICAST.network_address)
_V6_GLOBAL_LAST: Final = int(_IPV6_GLOBAL_UNICAST.broadcast_address)


def is_locatable(address: IPv4Address | IPv6Address) -> bool:
    """True for public unicast addresses; False for private, loopback, link-local, CGNAT,
    documentation, multicast and reserved ones. IPv4-mapped IPv6 should be unwrapped first
    (it is outside 2000::/3, so it reads as not locatable)."""
    value = int(address)
    if address.version == 4:
        starts, ends = _V4_STARTS, _V4_ENDS
    else:
        if not _V6_GLOBAL_FIRST <= value <= _V6_GLOBAL_LAST:
            return False
        starts, ends = _V6_STARTS, _V6_ENDS
    index = bisect_right(starts, value) - 1
    return index < 0 or value > ends[index]
