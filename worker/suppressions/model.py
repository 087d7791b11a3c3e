"""A suppression: an operator's explicit, scoped, audited, expiring word that some events
are expected (docs/architecture.md, "Suppressions").

Pure domain code (the standard library and ``secops_core`` only): the repositories,
the worker's cache and the CLI all build and read these.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from secops_core.contract import SeverityFloorInfo
from secops_core.patterns import normalize_uri
from secops_core.waf.names import clean, group_name, key
from worker.suppressions.keys import ID_HEX_CHARS, MAX_REASON_CHARS, MAX_WHO_CHARS

SuppressionStatus = Literal["active", "removed"]
EndHow = Literal["expired", "removed"]

# The fields of a scope besides its rule or label; at least one must narrow it, or a
# suppression would silence a rule everywhere (that is a WAF change: `secops tune`).
NARROWING = ("uri_template", "method", "host", "source_cidr")
SCOPE_FIELDS = ("rule", "label", *NARROWING, "web_acl")


class ScopeError(ValueError):
    """A scope an operator wrote that cannot be a suppression's; the message says why."""


@dataclass(frozen=True)
class Scope:
    """What a suppression covers: a rule (``[group:]rule id``) or a WAF label, plus at
    least one of URI template, method, host, source CIDR; optionally one web ACL.

    ``uri_template`` is compared with the event's URI template (ids collapsed, as
    incidents show them); a trailing ``*`` makes it a prefix. ``host`` may start with
    ``*.`` for every subdomain. Everything but the URI is compared case-insensitively.
    """

    rule: str | None = None
    label: str | None = None
    uri_template: str | None = None
    method: str | None = None
    host: str | None = None
    source_cidr: str | None = None
    web_acl: str | None = None

    @classmethod
    def build(cls, **values: str | None) -> Scope:
        """A validated, normalized scope; raises :class:`ScopeError` with the reason."""
        unknown = set(values) - set(SCOPE_FIELDS)
        if unknown:
            raise ScopeError(f"unknown scope field(s): {', '.join(sorted(unknown))}")
        given = {name: clean(value) or None for name, value in values.items() if value is not None}
        if not (given.get("rule") or given.get("label")):
            raise ScopeError("a suppression needs a rule or a label")
        if not any(given.get(name) for name in NARROWING):
            raise ScopeError(
                "a suppression needs at least one of URI template, method, host or source CIDR "
                "besides its rule or label (to silence a rule everywhere, change the web ACL: see "
                "`secops tune`)"
            )
        label = given.get("label")
        if label is not None and not label.lower().startswith("awswaf:"):
            raise ScopeError(f"not a WAF label: {label!r} (labels start with 'awswaf:')")
        uri = given.get("uri_template")
        if uri is not None:
            if uri.endswith("*"):
                base = normalize_uri(uri.rstrip("*"))
                uri = "/*" if base == "/" else base + "/*"
            else:
                uri = normalize_uri(uri)
        cidr = given.get("source_cidr")
        if cidr is not None:
            try:
                cidr = str(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                raise ScopeError(f"not an IP network: {cidr!r}") from None
        method = given.get("method")
        host = given.get("host")
        return cls(
            rule=given.get("rule"),
            label=label,
            uri_template=uri,
            method=method.upper() if method else None,
            host=host.lower() if host else None,
            source_cidr=cidr,
            web_acl=given.get("web_acl"),
        )

    # ---- parts of the rule --------------------------------------------------------

    @property
    def rule_key(self) -> str | None:
        """The rule id's key (case and separators ignored), or None for a label scope."""
        return key(self.rule.rsplit(":", 1)[-1]) if self.rule else None

    @property
    def group_key(self) -> str | None:
        """The managed group's key when the rule was written ``group:rule``."""
        if not self.rule or ":" not in self.rule:
            return None
        return key(group_name(self.rule.rsplit(":", 1)[0]) or "") or None

    @property
    def label_rule_key(self) -> str | None:
        """The key of the rule a managed label names (its last part), for a label scope."""
        return key(self.label.rsplit(":", 1)[-1]) if self.label else None

    # ---- the request's side -------------------------------------------------------

    def matches_request(
        self, *, uri: str, method: str | None, host: str | None, source_ip: str, web_acl: str | None
    ) -> bool:
        """Whether a request's URI, method, host, source and web ACL are all within scope."""
        if self.uri_template is not None and not _uri_matches(self.uri_template, normalize_uri(uri)):
            return False
        if self.method is not None and (method or "").upper() != self.method:
            return False
        if self.host is not None and not _host_matches(self.host, (host or "").lower()):
            return False
        if self.source_cidr is not None and not _in_network(source_ip, self.source_cidr):
            return False
        return self.web_acl is None or self.web_acl in {web_acl or "", web_acl_name(web_acl)}

    @property
    def text(self) -> str:
        """``rule=SQLi_BODY uri=/api/upload method=POST`` for tables and logs."""
        short = {"uri_template": "uri", "source_cidr": "source"}
        return " ".join(f"{short.get(name, name)}={value}" for name, value in self.to_dict().items())

    def to_dict(self) -> dict[str, str]:
        return {name: value for name in SCOPE_FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        return cls(**{name: data[name] for name in SCOPE_FIELDS if data.get(name)})


def web_acl_name(value: str | None) -> str:
    """The web ACL's name from the ARN a WAF log names it by (``.../webacl/<name>/<id>``)."""
    text = value or ""
    if "webacl/" in text:
        return text.split("webacl/", 1)[1].split("/", 1)[0]
    return text


def _uri_matches(template: str, uri: str) -> bool:
    if template.endswith("/*"):
        base = template[:-2]
        return uri == (base or "/") or uri.startswith(base + "/")
    return uri == template


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip()) in ipaddress.ip_network(network)
    except ValueError:
        return False


@dataclass(frozen=True)
class Suppression:
    """One suppression as stored, with its audit trail and (when read so) its hits."""

    id: str
    scope: Scope
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None  # None: only when created with --no-expiry
    status: SuppressionStatus = "active"
    # Created over the refusal for severity-5 or reached-app events of another class.
    forced: bool = False
    # The incident it was created from (`secops incidents resolve --false-positive`).
    incident_id: str | None = None
    # How it ended early: expired or removed, by whom, when.
    ended_by: str | None = None
    ended_at: datetime | None = None
    hits: int = 0
    last_hit_at: datetime | None = None

    @classmethod
    def new(
        cls,
        scope: Scope,
        *,
        reason: str,
        created_by: str,
        now: datetime,
        expires_in: timedelta | None,
        forced: bool = False,
        incident_id: str | None = None,
    ) -> Suppression:
        """A fresh suppression; ``expires_in`` None means it never expires (explicitly)."""
        why = clean(reason, MAX_REASON_CHARS)
        if not why:
            raise ScopeError("a suppression needs a reason (--reason): the audit says why")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ScopeError("a suppression must expire in the future")
        return cls(
            id=f"sup-{secrets.token_hex(ID_HEX_CHARS // 2)}",
            scope=scope,
            reason=why,
            created_by=clean(created_by, MAX_WHO_CHARS) or "unknown",
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            forced=forced,
            incident_id=incident_id,
        )

    def active(self, now: datetime) -> bool:
        """In force at ``now``: not removed and not past its expiry (compared here, never
        trusting the table's TTL to have deleted it)."""
        return self.status == "active" and (self.expires_at is None or now < self.expires_at)

    def state(self, now: datetime) -> str:
        if self.status == "removed":
            return "removed"
        return "active" if self.active(now) else "expired"

    def ended(self, how: EndHow, *, by: str, at: datetime) -> Suppression:
        """This suppression ended now: expired (its expiry moved to now) or removed."""
        ended = replace(self, ended_by=clean(by, MAX_WHO_CHARS) or "unknown", ended_at=at)
        if how == "removed":
            return replace(ended, status="removed")
        expires = at if self.expires_at is None else min(self.expires_at, at)
        return replace(ended, expires_at=expires)

    def to_dict(self) -> dict[str, Any]:
        """Stored attributes and the CLI's JSON (times as ISO-8601 UTC)."""
        return {
            "id": self.id,
            "scope": self.scope.to_dict(),
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "status": self.status,
            "forced": self.forced,
            "incident_id": self.incident_id,
            "ended_by": self.ended_by,
            "ended_at": _iso(self.ended_at),
            "hits": self.hits,
            "last_hit_at": _iso(self.last_hit_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suppression:
        return cls(
            id=data["id"],
            scope=Scope.from_dict(data["scope"]),
            reason=data.get("reason", ""),
            created_by=data.get("created_by", "unknown"),
            created_at=datetime.fromisoformat(data["created_at"]),
            expires_at=_instant(data.get("expires_at")),
            status="removed" if data.get("status") == "removed" else "active",
            forced=bool(data.get("forced", False)),
            incident_id=data.get("incident_id"),
            ended_by=data.get("ended_by"),
            ended_at=_instant(data.get("ended_at")),
            hits=int(data.get("hits", 0)),
            last_hit_at=_instant(data.get("last_hit_at")),
        )


@dataclass(frozen=True)
class SuppressionMatch:
    """The suppression an event falls under, and the event's floor (still recorded)."""

    suppression: Suppression
    floor: SeverityFloorInfo


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
