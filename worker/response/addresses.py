"""Which addresses may be blocked, and what exactly is written to an IP set (pure).

An automatic block must never lock out the operator's own networks or addresses that
cannot be an attacker on the internet. The allowlist is therefore the operator's CIDRs
plus reserved ranges that are always in it: private, loopback, link-local and the
documentation ranges (each category may be released explicitly, e.g. the documentation
ranges for a demo), and the ranges that are never a source host at all (unspecified,
multicast, reserved, broadcast), which nothing releases. A block target (the address,
or its /24 or /64 when the policy asks) is refused when it *overlaps* the allowlist, so a
/24 holding one allowlisted address is not written either (docs/architecture.md,
"Response actions").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IpVersion = Literal["IPV4", "IPV6"]
BlockPrefix = Literal["address", "network"]
BLOCK_PREFIXES: tuple[str, ...] = get_args(BlockPrefix)
ReservedCategory = Literal["private", "loopback", "link_local", "documentation", "benchmarking"]
RESERVED_CATEGORIES: tuple[str, ...] = get_args(ReservedCategory)

# The network a `network` block covers: the /24 of an IPv4 address (one customer's
# allocation at most ISPs) and the /64 of an IPv6 one (the smallest subnet a host gets;
# an attacker rotates addresses inside it at will).
NETWORK_PREFIX = {"IPV4": 24, "IPV6": 64}

_RESERVED: dict[str, tuple[str, ...]] = {
    # RFC 1918, RFC 6598 (carrier-grade NAT), RFC 4193 (unique local).
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    "loopback": ("127.0.0.0/8", "::1/128"),
    "link_local": ("169.254.0.0/16", "fe80::/10"),
    # RFC 5737, RFC 3849, RFC 9637.
    "documentation": ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
    # RFC 2544 (benchmarking networks; load tests and the chaos run send from there).
    "benchmarking": ("198.18.0.0/15", "2001:2::/48"),
}
# Never a source host on the internet: blocking them is meaningless or harmful, and no
# setting releases them.
_NEVER: tuple[str, ...] = (
    "0.0.0.0/8",
    "192.0.0.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "ff00::/8",
)


class AddressRefused(ValueError):
    """The address may not be blocked; ``reason`` is a short code, the message a sentence."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_network(value: str) -> Network:
    """An address or CIDR as a network (host bits must be zero); ValueError otherwise."""
    return ipaddress.ip_network(value.strip(), strict=True)


def version_of(network: Network) -> IpVersion:
    return "IPV4" if network.version == 4 else "IPV6"


def _host(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise AddressRefused(f"{address!r} is not an IP address", reason="not_an_address") from None
    # An IPv4 client seen through a dual-stack listener: it is the IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def canonical(cidr: str) -> str:
    """One spelling per network (WAF may echo ``2001:DB8::1/128`` as it was sent)."""
    return str(ipaddress.ip_network(cidr.strip(), strict=False))


@dataclass(frozen=True)
class Allowlist:
    """The networks never blocked: the operator's plus the reserved ranges not released."""

    networks: tuple[Network, ...]

    @classmethod
    def build(cls, cidrs: Iterable[str] = (), *, release: Iterable[str] = ()) -> Allowlist:
        """The operator's ``cidrs`` plus every reserved category not in ``release``.

        Raises ValueError naming a bad CIDR or an unknown category.
        """
        released = {name.strip() for name in release if name.strip()}
        unknown = released - set(RESERVED_CATEGORIES)
        if unknown:
            raise ValueError(
                f"unknown reserved range(s) {', '.join(sorted(unknown))}: "
                f"choose from {', '.join(RESERVED_CATEGORIES)}"
            )
        networks: list[Network] = []
        for cidr in cidrs:
            if not cidr.strip():
                continue
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{cidr.strip()!r} is not a CIDR (e.g. 198.51.100.0/24)") from None
        for category, ranges in _RESERVED.items():
            if category not in released:
                networks.extend(ipaddress.ip_network(r) for r in ranges)
        networks.extend(ipaddress.ip_network(r) for r in _NEVER)
        return cls(tuple(networks))

    def covering(self, network: Network) -> Network | None:
        """The first allowlisted network overlapping ``network``, or None."""
        for allowed in self.networks:
            if allowed.version == network.version and allowed.overlaps(network):
                return allowed
        return None


def block_target(address: str, *, prefix: BlockPrefix, allowlist: Allowlist) -> Network:
    """The network to write for ``address``: itself, or its /24 or /64 under ``network``.

    Raises :class:`AddressRefused` when it is not an address or overlaps the allowlist.
    """
    host = _host(address)
    bits: int = host.max_prefixlen
    if prefix == "network":
        bits = NETWORK_PREFIX["IPV4" if host.version == 4 else "IPV6"]
    target = ipaddress.ip_network(f"{host}/{bits}", strict=False)
    check_allowed(target, allowlist)
    return target


def check_allowed(target: Network, allowlist: Allowlist) -> None:
    """Raise :class:`AddressRefused` when ``target`` overlaps the allowlist."""
    allowed = allowlist.covering(target)
    if allowed is not None:
        raise AddressRefused(
            f"{target} overlaps the allowlisted {allowed}: never blocked", reason="allowlisted"
        )
