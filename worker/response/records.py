"""Block records: what was blocked where, why, by whom, until when, and its audit trail (pure).

One record per (IP set, network): blocking the same network again after it was removed
reopens the record as its next ``generation``, so the record's ``history`` is the whole
audit trail of that network in that set (docs/architecture.md, "Response actions").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from worker.response.addresses import IpVersion
from worker.response.keys import MAX_HISTORY, block_key

Scope = Literal["REGIONAL", "CLOUDFRONT"]
SCOPES: tuple[str, ...] = get_args(Scope)
BlockStatus = Literal["active", "removing", "removed"]
# `blocked`, `unblocked` (a person, or a false positive), `expired` (the scheduler),
# `abandoned` (recorded, but the IP set could not be written).
AuditAction = Literal["blocked", "unblocked", "expired", "abandoned"]
# What one decision did: written (`blocked`), found in force (`already`), refused by a
# guard, only shown (`dry_run`), recorded with the IP set write still to happen (`pending`).
Outcome = Literal["blocked", "already", "refused", "dry_run", "pending"]
POLICY = "policy"


def person(name: str) -> str:
    """``decided_by`` of a person's decision."""
    return f"person:{name}"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hhmm(epoch: float) -> str:
    """``14:05 UTC``: how a person reads an expiry in a notification."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


@dataclass(frozen=True, slots=True)
class IpSetRef:
    """One WAF IP set: what WAFv2's GetIPSet/UpdateIPSet need (name, id, scope), its version."""

    name: str
    id: str
    scope: Scope
    version: IpVersion
    arn: str = ""

    @property
    def label(self) -> str:
        """How a person names it: ``secops-blocked-v4 (REGIONAL)``."""
        return f"{self.name} ({self.scope})"

    @classmethod
    def from_arn(cls, arn: str, *, version: IpVersion) -> IpSetRef:
        """``arn:aws:wafv2:<region>:<account>:regional|global/ipset/<name>/<id>``; ValueError otherwise."""
        parts = arn.strip().split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "wafv2":
            raise ValueError(f"{arn!r} is not a WAFv2 IP set ARN")
        resource = parts[5].split("/")
        if len(resource) != 4 or resource[1] != "ipset" or resource[0] not in ("regional", "global"):
            raise ValueError(f"{arn!r} is not a WAFv2 IP set ARN (…:regional/ipset/<name>/<id>)")
        scope: Scope = "REGIONAL" if resource[0] == "regional" else "CLOUDFRONT"
        return cls(name=resource[2], id=resource[3], scope=scope, version=version, arn=arn.strip())

    @property
    def region(self) -> str | None:
        """The region of its ARN (a CLOUDFRONT set is always managed in us-east-1)."""
        if self.scope == "CLOUDFRONT":
            return "us-east-1"
        parts = self.arn.split(":")
        return parts[3] if len(parts) > 3 and parts[3] else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "scope": self.scope,
            "version": self.version,
            "arn": self.arn,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IpSetRef:
        return cls(
            name=str(data["name"]),
            id=str(data["id"]),
            scope=data["scope"],
            version=data["version"],
            arn=str(data.get("arn", "")),
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One decision about a block: what, when, who or what decided it, and why."""

    action: AuditAction
    at: float
    by: str
    reason: str
    incident_id: str | None = None
    expires_at: float | None = None
    generation: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "at": self.at,
            "by": self.by,
            "reason": self.reason,
            "incident_id": self.incident_id,
            "expires_at": self.expires_at,
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        expires = data.get("expires_at")
        return cls(
            action=data["action"],
            at=float(data["at"]),
            by=str(data["by"]),
            reason=str(data.get("reason", "")),
            incident_id=data.get("incident_id"),
            expires_at=float(expires) if expires is not None else None,
            generation=int(data.get("generation", 0)),
        )


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """One network in one IP set. ``active`` and ``removing`` blocks are (or may be) in
    the set; a ``removing`` one is being taken out (a crash there is finished by the
    next expiry pass); a ``removed`` one is not in it and keeps its history.
    """

    network: str  # canonical CIDR, as written to the set
    address: str  # the source address that was decided on
    ip_set: IpSetRef
    incident_id: str | None
    reason: str
    decided_by: str
    created_at: float
    expires_at: float
    status: BlockStatus = "active"
    generation: int = 1
    removed_at: float | None = None
    removed_by: str | None = None
    removed_reason: str | None = None
    history: tuple[AuditEntry, ...] = field(default=())

    @property
    def key(self) -> str:
        return block_key(self.ip_set.id, self.network)

    @property
    def target(self) -> str:
        """How a person names it: the address for a single host, else the CIDR."""
        return self.address if self.network.endswith(("/32", "/128")) else self.network

    @property
    def undo_command(self) -> str:
        return f"secops block remove {self.network}"

    @property
    def line(self) -> str:
        """``blocked 203.0.113.9 in ipset X until 14:05 UTC``."""
        return f"blocked {self.target} in ipset {self.ip_set.name} until {hhmm(self.expires_at)}"

    @property
    def in_set(self) -> bool:
        """Whether the set may hold it (active, or removal not finished)."""
        return self.status != "removed"

    def expired(self, now: float) -> bool:
        return self.in_set and self.expires_at <= now

    def with_entry(self, entry: AuditEntry) -> tuple[AuditEntry, ...]:
        """The history with ``entry`` appended, the oldest dropped past ``MAX_HISTORY``."""
        return (*self.history, entry)[-MAX_HISTORY:]

    def reopened(self, fresh: BlockRecord) -> BlockRecord:
        """``fresh`` as the next generation of this (removed) record, its history kept."""
        return replace(fresh, generation=self.generation + 1, history=self.history)

    def opening_entry(self) -> AuditEntry:
        """The audit entry of this generation being opened."""
        return AuditEntry(
            action="blocked",
            at=self.created_at,
            by=self.decided_by,
            reason=self.reason,
            incident_id=self.incident_id,
            expires_at=self.expires_at,
            generation=self.generation,
        )

    def opened(self, previous: BlockRecord | None) -> BlockRecord:
        """This decision as the record to write: the next generation of ``previous`` (a
        removed record of the same network and set) if there is one, with its audit entry."""
        record = previous.reopened(self) if previous is not None else self
        return replace(record, history=record.with_entry(record.opening_entry()))

    def closed(self, *, now: float, action: AuditAction, by: str, reason: str) -> BlockRecord:
        """This block out of its set, with the audit entry saying who or what took it out."""
        entry = AuditEntry(
            action=action,
            at=now,
            by=by,
            reason=reason,
            incident_id=self.incident_id,
            generation=self.generation,
        )
        return replace(
            self,
            status="removed",
            removed_at=now,
            removed_by=by,
            removed_reason=reason,
            history=self.with_entry(entry),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``secops block list --json``, the record's fields in the table)."""
        return {
            "key": self.key,
            "network": self.network,
            "address": self.address,
            "ip_set": self.ip_set.to_dict(),
            "incident_id": self.incident_id,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "generation": self.generation,
            "removed_at": self.removed_at,
            "removed_by": self.removed_by,
            "removed_reason": self.removed_reason,
            "history": [e.to_dict() for e in self.history],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockRecord:
        removed_at = data.get("removed_at")
        history: Sequence[Mapping[str, Any]] = data.get("history") or ()
        return cls(
            network=str(data["network"]),
            address=str(data["address"]),
            ip_set=IpSetRef.from_dict(data["ip_set"]),
            incident_id=data.get("incident_id"),
            reason=str(data.get("reason", "")),
            decided_by=str(data["decided_by"]),
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
            status=data.get("status", "active"),
            generation=int(data.get("generation", 1)),
            removed_at=float(removed_at) if removed_at is not None else None,
            removed_by=data.get("removed_by"),
            removed_reason=data.get("removed_reason"),
            history=tuple(AuditEntry.from_dict(e) for e in history),
        )


@dataclass(frozen=True, slots=True)
class BlockCaps:
    """How many blocks may be opened per clock hour, and how many may be in force at once."""

    per_hour: int
    total: int


@dataclass(frozen=True, slots=True)
class BlockOpening:
    """What :meth:`BlockRepo.open_block` did: ``opened`` a new generation, or found the
    network blocked already (``record`` is that block), or was ``refused`` by a cap."""

    record: BlockRecord | None
    opened: bool
    refused: str | None = None  # "hourly_cap" | "total_cap"


@dataclass(frozen=True, slots=True)
class IpSetChange:
    """What one merge into (or out of) an IP set changed, as read back afterwards."""

    ip_set: IpSetRef
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    size: int = 0  # addresses in the set after the change
    attempts: int = 1  # writes tried (more than one: lost to another writer's LockToken)


@dataclass(frozen=True)
class BlockResult:
    """What one decision did to one network."""

    outcome: Outcome
    address: str
    network: str | None = None
    ip_set: IpSetRef | None = None
    record: BlockRecord | None = None
    reason: str = ""  # why it was refused, or why it is pending

    @property
    def line(self) -> str:
        """One sentence for a person: ``blocked 203.0.113.9 in ipset X until 14:05 UTC``."""
        where = f" in ipset {self.ip_set.name}" if self.ip_set else ""
        target = self.network if self.network and not self.network.endswith(("/32", "/128")) else self.address
        if self.outcome in ("blocked", "already", "pending", "dry_run") and self.record is not None:
            verb = {
                "blocked": "blocked",
                "already": "already blocked",
                "pending": "blocking (IP set write pending)",
                "dry_run": "would block",
            }[self.outcome]
            return f"{verb} {target}{where} until {hhmm(self.record.expires_at)}"
        return f"not blocked {self.address}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``secops block add --json``): the outcome on top, the block below.

        ``outcome_reason`` says why the outcome is ``refused`` or ``pending`` and is null
        otherwise; why the network is blocked is the block's own ``reason``, the one its
        audit trail keeps (for ``already``, the reason of the block in force).
        """
        return {
            "outcome": self.outcome,
            "outcome_reason": self.reason or None,
            "line": self.line,
            "address": self.address,
            "network": self.network,
            "ip_set": self.ip_set.to_dict() if self.ip_set else None,
            "block": self.record.to_dict() if self.record else None,
        }
