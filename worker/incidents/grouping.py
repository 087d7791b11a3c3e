"""Which escalated events belong to the same attack: the grouping key of an incident.

``source`` (the default) groups one source IP's attack class; ``source_net`` widens the
source to its IPv4 /24 or IPv6 /64, for a scanner rotating addresses in one range;
``signature`` groups one attack class against one target (host and URI template)
across every source, for a distributed attack from many IPs.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import get_args

from secops_core.patterns import normalize_uri
from worker.incidents.keys import GROUP_HASH_CHARS
from worker.settings import IncidentGroupBy

# The choices of SECOPS_INCIDENT_GROUP_BY; the settings module holds them, as it does
# every setting's choices.
GroupBy = IncidentGroupBy

GROUP_BY_CHOICES: tuple[str, ...] = get_args(GroupBy)

# The network widths of `source_net`: one customer's or provider's typical allocation.
IPV4_NET_BITS = 24
IPV6_NET_BITS = 64
ANY_SOURCE = "*"


@dataclass(frozen=True, slots=True)
class GroupKey:
    """The identity of an incident's group; ``hash`` names it in keys."""

    group_by: GroupBy
    source: str  # an IP, a network, or ANY_SOURCE under `signature`
    attack_class: str
    target: str | None  # "host uri-template" under `signature`, else None

    @property
    def text(self) -> str:
        """The key as one readable line (what the hash is taken of)."""
        parts = [self.group_by, self.source, self.attack_class]
        if self.target is not None:
            parts.append(self.target)
        return "|".join(parts)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:GROUP_HASH_CHARS]


def attack_class_key(attack_class: str) -> str:
    """Attack classes compare case- and space-insensitively; empty is `unknown`."""
    return attack_class.strip().lower() or "unknown"


def network_of(source_ip: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) holding ``source_ip``; a non-IP is kept as it is."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return source_ip.strip()
    bits = IPV4_NET_BITS if address.version == 4 else IPV6_NET_BITS
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def target_of(host: str | None, uri: str) -> str:
    """The target of a `signature` group: host (lower case) and URI template."""
    return f"{(host or '').strip().lower()} {normalize_uri(uri)}".strip()


def group_key(
    group_by: GroupBy, *, source_ip: str, attack_class: str, host: str | None, uri: str
) -> GroupKey:
    """The grouping key of one event under ``group_by``."""
    cls = attack_class_key(attack_class)
    if group_by == "source":
        return GroupKey(group_by, source_ip.strip(), cls, None)
    if group_by == "source_net":
        return GroupKey(group_by, network_of(source_ip), cls, None)
    if group_by == "signature":
        return GroupKey(group_by, ANY_SOURCE, cls, target_of(host, uri))
    raise ValueError(f"unknown grouping {group_by!r}; one of {', '.join(GROUP_BY_CHOICES)}")
