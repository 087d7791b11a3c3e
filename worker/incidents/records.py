"""Incident records and how a batch of escalated events folds into one (pure).

An incident stays open while its events keep coming: ``open_until`` is the last
event's time plus the quiet period, and an event after it (or any event once the
incident is resolved) opens the group's next incident. Events count once: the record
keeps 8-byte digests of the keys it counted, so a redelivered event, or one re-joined
after a crash between the join and the event's own write, is recognized.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from secops_core.contract import Analysis, WafEvent
from secops_core.patterns import normalize_uri
from worker.incidents.grouping import GroupBy, GroupKey, attack_class_key, group_key
from worker.incidents.keys import (
    DIGEST_BYTES,
    MAX_DIGESTS,
    MAX_NOTE_CHARS,
    MAX_TOP_ENTRIES,
    OTHER,
    SAMPLE_FIRST,
    SAMPLE_LATEST,
    incident_id,
)
from worker.store.keys import event_digest, iso_from_epoch, sort_time

IncidentStatus = Literal["open", "acknowledged", "resolved"]
INCIDENT_STATUSES: tuple[str, ...] = get_args(IncidentStatus)

# The WAF actions after which the request reached the application (see the severity
# floor: COUNT is a match that was only counted).
_REACHED_ACTIONS = frozenset({"ALLOW", "COUNT"})


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one escalated event brings to its incident."""

    event_key: str
    at: datetime  # event time, timezone-aware
    severity: int
    attack_class: str
    source_ip: str
    reached_app: bool
    rule: str
    uri_template: str
    host: str | None = None
    country: str | None = None

    @classmethod
    def from_event(cls, event: WafEvent, analysis: Analysis) -> Contribution:
        """The contribution of an analyzed event; the floor's class names the attack."""
        attack_class = analysis.floor.attack_class if analysis.floor else analysis.attack_type
        return cls(
            event_key=event.event_key,
            at=event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC),
            severity=int(analysis.severity_rating),
            attack_class=attack_class_key(attack_class),
            source_ip=event.source_ip,
            reached_app=event.action.strip().upper() in _REACHED_ACTIONS,
            rule=event.rule_name,
            uri_template=normalize_uri(event.uri),
            host=event.host,
            country=event.country,
        )

    def group(self, group_by: GroupBy) -> GroupKey:
        """This event's grouping key under ``group_by``."""
        return group_key(
            group_by,
            source_ip=self.source_ip,
            attack_class=self.attack_class,
            host=self.host,
            uri=self.uri_template,
        )


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """What one output channel did with one milestone (:mod:`worker.notify.channel`)."""

    channel: str
    ok: bool
    id: str | None = None  # the channel's id when ok
    reason: str | None = None  # the error's reason code when not ok
    error: str | None = None  # one line for an operator when not ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ok": self.ok,
            "id": self.id,
            "reason": self.reason,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelResult:
        return cls(
            channel=str(data["channel"]),
            ok=bool(data["ok"]),
            id=data.get("id"),
            reason=data.get("reason"),
            error=data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification sent about an incident, and what each channel did with it.

    ``channels`` is empty in notices written before there were several channels: those
    went to SNS alone, and ``message_id`` is SNS's.
    """

    milestone: str
    at: str
    message_id: str | None
    channels: tuple[ChannelResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "milestone": self.milestone,
            "at": self.at,
            "message_id": self.message_id,
            "channels": [c.to_dict() for c in self.channels],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notice:
        return cls(
            milestone=data["milestone"],
            at=data["at"],
            message_id=data.get("message_id"),
            channels=tuple(ChannelResult.from_dict(c) for c in data.get("channels") or ()),
        )


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One acknowledgement or resolution: who, when, why."""

    status: IncidentStatus
    at: str
    by: str
    note: str


@dataclass(frozen=True)
class IncidentRecord:
    """One incident as stored."""

    id: str
    group_hash: str
    seq: int
    group_by: GroupBy
    source: str
    attack_class: str
    target: str | None
    status: IncidentStatus
    first_seen: datetime
    last_seen: datetime
    open_until: datetime
    count: int  # distinct events
    max_severity: int
    reached_app: int  # events that reached the application (allowed or counted)
    classes: Mapping[str, int]
    rules: Mapping[str, int]
    uri_templates: Mapping[str, int]
    countries: Mapping[str, int]
    source_ips: Mapping[str, int]
    first_events: tuple[str, ...]
    latest_events: tuple[str, ...]
    notices: tuple[Notice, ...] = ()
    # The latest milestone no channel took (every enabled one failed): its claim was
    # given back and it is retried; kept, overwritten, so an operator sees why.
    last_failure: Notice | None = None
    status_history: tuple[StatusChange, ...] = ()
    claimed: frozenset[str] = frozenset()  # milestone ids claimed for notification
    # Claims whose notice is not recorded yet: milestone id -> epoch it was claimed. A
    # worker killed between its claim and its publish leaves one here; once stale it
    # may be claimed again.
    pending_claims: Mapping[str, float] = field(default_factory=dict)
    version: int = 0
    created_at: str = ""
    updated_at: str = ""
    seen: bytes = field(default=b"", repr=False)  # digests of the counted event keys

    @property
    def group(self) -> GroupKey:
        return GroupKey(self.group_by, self.source, self.attack_class, self.target)

    def accepts(self, at: datetime) -> bool:
        """Whether an event at ``at`` joins this incident rather than opening the next."""
        return self.status != "resolved" and at <= self.open_until

    def stale_claims(self, now: float, stale_s: float) -> tuple[str, ...]:
        """The milestones claimed more than ``stale_s`` before ``now`` and still not
        notified: their claimer died before publishing, so they may be claimed again.
        """
        return tuple(sorted(m for m, at in self.pending_claims.items() if at < now - stale_s))

    def claim_wait(self, now: float, stale_s: float, *, besides: Collection[str] = ()) -> float | None:
        """Seconds until the first claim that is neither notified nor stale yet (other
        than ``besides``) goes stale; None if there is none."""
        live = [
            at + stale_s - now
            for milestone, at in self.pending_claims.items()
            if at >= now - stale_s and milestone not in besides
        ]
        return max(0.0, min(live)) if live else None

    def counted(self, event_key: str) -> bool:
        """Whether this incident already counted ``event_key``."""
        return event_digest(event_key) in self.digests()

    def digests(self) -> set[bytes]:
        """The digests of the events this incident counted (the newest MAX_DIGESTS)."""
        return set(_digests(self.seen))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view for the CLI, the demo and messages (without the digests)."""
        return {
            "id": self.id,
            "group_by": self.group_by,
            "group": self.group.text,
            "source": self.source,
            "attack_class": self.attack_class,
            "target": self.target,
            "status": self.status,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "open_until": self.open_until.isoformat(),
            "count": self.count,
            "max_severity": self.max_severity,
            "reached_app": self.reached_app,
            "classes": dict(self.classes),
            "rules": dict(self.rules),
            "uri_templates": dict(self.uri_templates),
            "countries": dict(self.countries),
            "source_ips": dict(self.source_ips),
            "first_events": list(self.first_events),
            "latest_events": list(self.latest_events),
            "notices": [n.to_dict() for n in self.notices],
            "last_failure": None if self.last_failure is None else self.last_failure.to_dict(),
            "status_history": [
                {"status": s.status, "at": s.at, "by": s.by, "note": s.note} for s in self.status_history
            ],
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def to_fields(self) -> dict[str, Any]:
        """Plain values for a store: times as fixed-width UTC text, digests as bytes."""
        fields = self.to_dict()
        for name in ("group", "notices", "last_failure", "status_history"):
            fields.pop(name)
        fields.update(
            seq=self.seq,
            group_hash=self.group_hash,
            first_seen=sort_time(self.first_seen),
            last_seen=sort_time(self.last_seen),
            open_until=sort_time(self.open_until),
            notices=[n.to_dict() for n in self.notices],
            last_failure=None if self.last_failure is None else self.last_failure.to_dict(),
            status_history=[
                {"status": s.status, "at": s.at, "by": s.by, "note": s.note} for s in self.status_history
            ],
            claimed=sorted(self.claimed),
            pending_claims=dict(self.pending_claims),
            seen=self.seen,
        )
        return fields

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> IncidentRecord:
        """The inverse of :meth:`to_fields` (extra attributes of a store are ignored)."""
        return cls(
            id=data["id"],
            group_hash=data["group_hash"],
            seq=int(data["seq"]),
            group_by=data["group_by"],
            source=data["source"],
            attack_class=data["attack_class"],
            target=data.get("target"),
            status=data["status"],
            first_seen=datetime.fromisoformat(data["first_seen"]),
            last_seen=datetime.fromisoformat(data["last_seen"]),
            open_until=datetime.fromisoformat(data["open_until"]),
            count=int(data["count"]),
            max_severity=int(data["max_severity"]),
            reached_app=int(data["reached_app"]),
            classes=_counts(data.get("classes")),
            rules=_counts(data.get("rules")),
            uri_templates=_counts(data.get("uri_templates")),
            countries=_counts(data.get("countries")),
            source_ips=_counts(data.get("source_ips")),
            first_events=tuple(data.get("first_events", ())),
            latest_events=tuple(data.get("latest_events", ())),
            notices=tuple(Notice.from_dict(n) for n in data.get("notices", ())),
            last_failure=Notice.from_dict(data["last_failure"]) if data.get("last_failure") else None,
            status_history=tuple(
                StatusChange(s["status"], s["at"], s["by"], s["note"]) for s in data.get("status_history", ())
            ),
            claimed=frozenset(data.get("claimed", ())),
            pending_claims={str(k): float(v) for k, v in (data.get("pending_claims") or {}).items()},
            version=int(data.get("version", 0)),
            created_at=data.get("created_at", ""),
            updated_at=data.get("updated_at", ""),
            seen=bytes(data.get("seen", b"")),
        )


def _counts(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in (value or {}).items()}


def _digests(seen: bytes) -> list[bytes]:
    return [seen[i : i + DIGEST_BYTES] for i in range(0, len(seen), DIGEST_BYTES)]


def bump_counts(counts: Mapping[str, int], additions: Iterable[str]) -> dict[str, int]:
    """``counts`` plus one per addition, keeping the MAX_TOP_ENTRIES largest entries.

    The rest are summed under OTHER, so totals stay exact while the map stays small; a
    name folded into OTHER that comes back starts a new entry (a top-N, not a census).
    """
    merged = dict(counts)
    for name in additions:
        merged[name] = merged.get(name, 0) + 1
    other = merged.pop(OTHER, 0)
    if len(merged) > MAX_TOP_ENTRIES:
        ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
        merged = dict(ranked[:MAX_TOP_ENTRIES])
        other += sum(count for _, count in ranked[MAX_TOP_ENTRIES:])
    if other:
        merged[OTHER] = other
    return merged


def cut_note(note: str) -> str:
    """A status note as stored: bounded."""
    return note[:MAX_NOTE_CHARS]


@dataclass(frozen=True, slots=True)
class Fold:
    """What folding a batch into an incident produced."""

    after: IncidentRecord
    new: tuple[str, ...]  # event keys counted by this fold
    duplicate: tuple[str, ...]  # event keys the incident had already counted
    rest: tuple[Contribution, ...]  # contributions this incident does not accept


def fold(
    record: IncidentRecord | None,
    contributions: Sequence[Contribution],
    *,
    group: GroupKey,
    seq: int,
    quiet_s: float,
    now: float,
) -> Fold:
    """Fold ``contributions`` (in event-time order) into ``record``, or into a new
    incident number ``seq`` of ``group`` when ``record`` is None.

    The incident takes contributions while each is within its (growing) open window
    and it is not resolved; the first it refuses and all after it are ``rest``.
    """
    if not contributions:
        raise ValueError("nothing to fold")
    quiet = timedelta(seconds=quiet_s)
    stamp = iso_from_epoch(now)
    if record is None:
        head = contributions[0]
        record = IncidentRecord(
            id=incident_id(group.hash, seq),
            group_hash=group.hash,
            seq=seq,
            group_by=group.group_by,
            source=group.source,
            attack_class=group.attack_class,
            target=group.target,
            status="open",
            first_seen=head.at,
            last_seen=head.at,
            open_until=head.at + quiet,
            count=0,
            max_severity=0,
            reached_app=0,
            classes={},
            rules={},
            uri_templates={},
            countries={},
            source_ips={},
            first_events=(),
            latest_events=(),
            created_at=stamp,
        )
    digests = _digests(record.seen)
    seen = set(digests)
    taken: list[Contribution] = []
    duplicate: list[str] = []
    open_until = record.open_until
    index = 0
    for index, contribution in enumerate(contributions):  # noqa: B007 - index is the split point
        if record.status == "resolved" or contribution.at > open_until:
            break
        digest = event_digest(contribution.event_key)
        if digest in seen:
            duplicate.append(contribution.event_key)
            continue
        seen.add(digest)
        digests.append(digest)
        taken.append(contribution)
        open_until = max(open_until, contribution.at + quiet)
    else:
        index = len(contributions)
    rest = tuple(contributions[index:])
    if not taken:
        return Fold(record, (), tuple(duplicate), rest)
    new_keys = [c.event_key for c in taken]
    first_events = (record.first_events + tuple(new_keys))[:SAMPLE_FIRST]
    latest_events = (record.latest_events + tuple(new_keys))[-SAMPLE_LATEST:]
    after = replace(
        record,
        first_seen=min([record.first_seen, *(c.at for c in taken)]),
        last_seen=max([record.last_seen, *(c.at for c in taken)]),
        open_until=open_until,
        count=record.count + len(taken),
        max_severity=max([record.max_severity, *(c.severity for c in taken)]),
        reached_app=record.reached_app + sum(1 for c in taken if c.reached_app),
        classes=bump_counts(record.classes, (c.attack_class for c in taken)),
        rules=bump_counts(record.rules, (c.rule for c in taken)),
        uri_templates=bump_counts(record.uri_templates, (c.uri_template for c in taken)),
        countries=bump_counts(record.countries, (c.country for c in taken if c.country)),
        source_ips=bump_counts(record.source_ips, (c.source_ip for c in taken)),
        first_events=first_events,
        latest_events=latest_events,
        version=record.version + 1,
        updated_at=stamp,
        seen=b"".join(digests[-MAX_DIGESTS:]),
    )
    return Fold(after, tuple(new_keys), tuple(duplicate), rest)
