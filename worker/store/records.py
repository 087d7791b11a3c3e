"""Records and the rules of the per-event state machine, apart from any database.

    absent ─claim─► processing ─save_analysis─► analyzed ─apply_triage─► closed
                                                                       | monitoring
                                                                       | escalated ─► joins its incident

An event decided without a model call (reused analysis, rules, skipped) takes the fast
path instead: absent ─decide─► closed | monitoring | escalated, one conditional put.

Pure code (no boto3): the DynamoDB backend (:mod:`worker.store.dynamodb`) and the
in-memory one (:mod:`worker.store.memory`) both build these records and apply these
rules, so they cannot disagree on what a step means (docs/architecture.md, "Event
state machine").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from math import floor
from typing import Any, TypeVar

from pydantic import BaseModel

from secops_core.contract import Analysis, Pattern, TriageDecision, WafEvent
from worker.errors import PermanentError, RetryableError, WorkerError
from worker.store.keys import (
    MAX_EVENT_JSON_BYTES,
    MAX_PATTERN_DIGESTS,
    MAX_PATTERN_EVENT_KEYS,
    MONITORING_PK,
    PATTERN_DIGEST_BYTES,
    TERMINAL,
    TRIAGE_STATUSES,
    event_digest,
    monitoring_sort_key,
    sort_time,
)

# How far along the happy path each status is; a step whose target is behind the
# record's status has already happened.
PROGRESS = {"processing": 0, "analyzed": 1, "closed": 2, "monitoring": 2, "escalated": 2}
# Statuses a rejection may overwrite: anything that has not reached a triage status.
REJECTABLE = frozenset({"processing", "analyzed", "rejected"})

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class EventRecord:
    """One event as the store holds it."""

    key: str
    status: str
    attempts: int
    lease_owner: str | None
    lease_expires_at: float  # epoch seconds; 0 = released
    event: WafEvent | None
    analysis: Analysis | None
    triage: TriageDecision | None
    notified_at: str | None
    notification_id: str | None
    rejection_code: str | None
    rejection_reason: str | None
    message_ids: tuple[str, ...]
    pattern_key: str | None
    created_at: str
    updated_at: str
    backend_actions: tuple[dict[str, Any], ...]
    # Model requests the runtime reported for this event over every delivery, saved
    # answers or not: what is left of the budget is what the next request may spend.
    model_calls: int = 0
    # The incident an escalation joined; its milestones are what gets notified.
    incident_id: str | None = None
    # For ``analyzed_by: reuse``: the event whose saved analysis this one took.
    reused_from: str | None = None
    # The retry episode: claims before it (``attempts`` never resets) and when the last
    # two claims were made (epoch seconds), so a claim after a long gap starts a new one.
    episode_base: int = 0
    prev_claim_at: float = 0.0
    last_claim_at: float = 0.0
    # The operator's suppression that closed this event above its floor, if one did.
    suppressed_by: str | None = None
    # Why the event's severity is not its analysis's: the monitor escalated it (``to``,
    # ``by``, ``reason``, ``pattern_key``, ``at``), stored as JSON.
    severity_raised: Mapping[str, Any] | None = None

    @property
    def severity(self) -> int | None:
        """The event's one severity: its triage's (the monitor may have raised it since
        the analysis), else its analysis's; None before it was analyzed."""
        if self.triage is not None:
            return self.triage.severity_rating
        return self.analysis.severity_rating if self.analysis is not None else None

    @property
    def severity_change(self) -> dict[str, Any] | None:
        """How the severity came to differ from the analysis's, or None when it did not:
        ``from`` (the analysis), ``to``, ``by`` (``monitor`` or ``suppression``) and why."""
        if self.analysis is None or self.severity is None or self.severity == self.analysis.severity_rating:
            return None
        change: dict[str, Any] = {"from": self.analysis.severity_rating, "to": self.severity}
        if self.severity_raised is not None:
            return {**change, **self.severity_raised, "to": self.severity}
        by = "suppression" if self.suppressed_by else "monitor" if self.pattern_key else "triage"
        return {**change, "by": by, "reason": self.triage.reason if self.triage else ""}

    @property
    def episode_attempts(self) -> int:
        """Claims in the current retry episode: what a retry backs off by, so an event
        replayed long after it last failed starts from the base delay again."""
        return self.attempts - self.episode_base

    def lease_live(self, now_epoch: float) -> bool:
        """True while someone holds an unexpired lease."""
        return self.lease_expires_at > now_epoch

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def needs_notification(self) -> bool:
        """An escalation not yet linked to its incident: joining it is what notifies
        (per incident milestone), so a redelivery of it re-joins (the join is idempotent).
        """
        return self.status == "escalated" and self.incident_id is None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventRecord:
        """A record from its stored attributes (plain Python values, models as JSON)."""
        return cls(
            key=data["pk"],
            status=data.get("status", "processing"),
            attempts=int(data.get("attempts", 0)),
            lease_owner=data.get("lease_owner"),
            lease_expires_at=float(data.get("lease_expires_at", 0)),
            event=_model(WafEvent, data.get("event")),
            analysis=_model(Analysis, data.get("analysis")),
            triage=_model(TriageDecision, data.get("triage")),
            notified_at=data.get("notified_at"),
            notification_id=data.get("notification_id"),
            rejection_code=data.get("rejection_code"),
            rejection_reason=data.get("rejection_reason"),
            message_ids=tuple(sorted(data.get("message_ids", ()))),
            pattern_key=data.get("pattern_key"),
            created_at=data.get("created_at", ""),
            updated_at=data.get("updated_at", ""),
            backend_actions=tuple(data.get("backend_actions", ())),
            model_calls=int(data.get("model_calls", 0)),
            incident_id=data.get("incident_id"),
            reused_from=data.get("reused_from"),
            episode_base=int(data.get("episode_base", 0)),
            prev_claim_at=float(data.get("prev_claim_at", 0)),
            last_claim_at=float(data.get("last_claim_at", 0)),
            suppressed_by=data.get("suppressed_by"),
            severity_raised=json.loads(data["severity_raised"]) if data.get("severity_raised") else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view for the CLI and the demo summary."""
        return {
            "key": self.key,
            "status": self.status,
            "attempts": self.attempts,
            "lease_owner": self.lease_owner,
            "lease_expires_at": self.lease_expires_at,
            "event": self.event.model_dump(mode="json") if self.event else None,
            "analysis": self.analysis.model_dump(mode="json") if self.analysis else None,
            "triage": self.triage.model_dump(mode="json") if self.triage else None,
            "notified_at": self.notified_at,
            "notification_id": self.notification_id,
            "rejection_code": self.rejection_code,
            "rejection_reason": self.rejection_reason,
            "message_ids": list(self.message_ids),
            "pattern_key": self.pattern_key,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "backend_actions": [dict(a) for a in self.backend_actions],
            "model_calls": self.model_calls,
            "incident_id": self.incident_id,
            "reused_from": self.reused_from,
            "suppressed_by": self.suppressed_by,
            "severity": self.severity,
            "severity_change": self.severity_change,
        }


def _model(model: type[M], raw: str | None) -> M | None:
    # Models are stored as JSON strings: no float/Decimal or empty-string quirks.
    return model.model_validate_json(raw) if raw else None


def step_result(current: EventRecord, *, owner: str, expect: str) -> EventRecord:
    """What a step that lost its condition (owner + expected status) comes to.

    The record is returned when the step is done already (by us on an earlier
    delivery, or by the last lease holder) or the event was rejected meanwhile: the
    caller reads its status. Raises when the lease moved on, or the steps ran out of order.
    """
    progress = PROGRESS.get(current.status)
    if progress is None or progress > PROGRESS[expect]:
        return current
    if current.lease_owner != owner:
        raise RetryableError(
            f"event {current.key}: lease now held by {current.lease_owner}", reason="lease_lost"
        )
    # A bug, not the deployment or the event: it must be loud.
    raise WorkerError(
        f"event {current.key} is {current.status}, not {expect}: steps out of order",
        reason="invalid_transition",
    )


def keepable_event_json(event: WafEvent) -> str | None:
    """The event as the store keeps it (JSON), or None when it is too large to keep."""
    event_json = event.model_dump_json()
    return event_json if len(event_json.encode()) <= MAX_EVENT_JSON_BYTES else None


def stored_event_json(event: WafEvent) -> str:
    """The event as the store keeps it; PermanentError for an event too large to keep
    (DynamoDB caps an item at 400 KB, shared with the analysis and the history)."""
    event_json = keepable_event_json(event)
    if event_json is None:
        size = len(event.model_dump_json().encode())
        raise PermanentError(
            f"event {event.event_key} is {size} bytes as JSON; "
            f"the store keeps events up to {MAX_EVENT_JSON_BYTES}",
            reason="event_too_large",
        )
    return event_json


def restarted_episode(claimed: EventRecord, *, gap_s: float | None) -> int | None:
    """The episode base a claim sets when it came longer than ``gap_s`` after the one
    before (longer than any retry waits, so not a retry: a replay), else None.
    """
    if gap_s is None or claimed.last_claim_at - claimed.prev_claim_at <= gap_s:
        return None
    base = claimed.attempts - 1
    return base if base > claimed.episode_base else None


def truncate_utf8(text: str, limit: int) -> str:
    """At most ``limit`` bytes of ``text`` as UTF-8, never half a character."""
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")


# ---- patterns ------------------------------------------------------------------------


@dataclass(frozen=True)
class PatternRecord:
    """One pattern as stored: counts and times merged over every monitor run."""

    key: str
    source_ip: str
    normalized_uri: str
    count: int  # distinct events ever seen in this pattern
    first_seen: datetime
    last_seen: datetime
    rules: tuple[str, ...]
    event_keys: tuple[str, ...]  # the most recent ones, at most MAX_PATTERN_EVENT_KEYS
    notified_count: int  # the count last notified; 0 = never
    notified_at: str | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PatternRecord:
        return cls(
            key=data["pk"],
            source_ip=data["source_ip"],
            normalized_uri=data["normalized_uri"],
            count=int(data["count"]),
            first_seen=datetime.fromisoformat(data["first_seen"]),
            last_seen=datetime.fromisoformat(data["last_seen"]),
            rules=tuple(data.get("rules", ())),
            event_keys=tuple(data.get("event_keys", ())),
            notified_count=int(data.get("notified_count", 0)),
            notified_at=data.get("notified_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view for the CLI and the demo summary."""
        return {
            "key": self.key,
            "source_ip": self.source_ip,
            "normalized_uri": self.normalized_uri,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "rules": list(self.rules),
            "event_keys": list(self.event_keys),
            "notified_count": self.notified_count,
            "notified_at": self.notified_at,
        }


def _digests(current: Mapping[str, Any]) -> list[bytes]:
    stored: bytes = current.get("seen", b"")
    return [stored[i : i + PATTERN_DIGEST_BYTES] for i in range(0, len(stored), PATTERN_DIGEST_BYTES)]


def pattern_adds_events(current: Mapping[str, Any], pattern: Pattern) -> bool:
    """True if ``pattern`` holds an event key the stored pattern has not counted."""
    seen = set(_digests(current))
    return any(event_digest(key) not in seen for key in pattern.event_keys)


def merged_pattern(
    current: Mapping[str, Any] | None, pattern: Pattern, slot: str
) -> tuple[dict[str, Any], bool]:
    """The attributes a pattern record takes after merging one run's ``pattern``.

    ``count`` is the number of distinct event keys ever seen (through 8-byte digests),
    so a window that overlaps the last run's does not count the same events twice.
    The second value is True when the digests had to be trimmed: from then on a very
    old event seen again would count twice. Timestamps and the TTL are the backend's.
    """
    current = current or {}
    digests = _digests(current)
    seen = set(digests)
    new_keys = []
    for key in dict.fromkeys(pattern.event_keys):
        digest = event_digest(key)
        if digest not in seen:
            seen.add(digest)
            digests.append(digest)
            new_keys.append(key)
    trimmed = len(digests) > MAX_PATTERN_DIGESTS
    if trimmed:
        digests = digests[-MAX_PATTERN_DIGESTS:]
    kept = list(current.get("event_keys", ()))
    kept_set = set(kept)
    kept += [k for k in dict.fromkeys(pattern.event_keys) if k not in kept_set]
    first = sort_time(pattern.first_seen)
    last = sort_time(pattern.last_seen)
    merged = {
        "source_ip": pattern.source_ip,
        "normalized_uri": pattern.normalized_uri,
        "count": int(current.get("count", 0)) + len(new_keys),
        "first_seen": min(first, current.get("first_seen", first)),
        "last_seen": max(last, current.get("last_seen", last)),
        "rules": sorted(set(current.get("rules", ())) | set(pattern.rules)),
        "event_keys": kept[-MAX_PATTERN_EVENT_KEYS:],
        "seen": b"".join(digests),
        "max_severity": max(pattern.max_severity, int(current.get("max_severity", 0))),
        # The latest run's view of the threshold and its narrative.
        "threshold": pattern.threshold,
        "threshold_met": pattern.threshold_met,
        "narrative": pattern.narrative,
        "last_slot": slot,
        "version": int(current.get("version", 0)) + 1,
    }
    return merged, trimmed


def most_notified_for(count: int, growth_factor: float) -> int:
    """The largest ``notified_count`` from which ``count`` is a growth step.

    count >= n * g  <=>  n <= floor(count / g) for integer n; DynamoDB cannot multiply
    in a condition, and Fraction keeps 1.1 exact.
    """
    if growth_factor <= 1:
        raise ValueError("growth_factor must be above 1, or the same count notifies again")
    return floor(Fraction(count) / Fraction(str(growth_factor)))


# ---- history entries -----------------------------------------------------------------


def analysis_attributes(analysis: Analysis) -> dict[str, Any]:
    """Top-level copies of an analysis so the console and ad-hoc queries can read them."""
    return {
        "severity_rating": analysis.severity_rating,
        "severity_floor": analysis.severity_floor,
        "model_severity": analysis.model_severity,
        "analyzed_by": analysis.analyzed_by,
        "degraded": analysis.degraded,
    }


# ---- saved analyses (reuse) ----------------------------------------------------------


@dataclass(frozen=True)
class SavedAnalysis:
    """A model's analysis kept for the events of its signature (``sig#<hash>``)."""

    signature: str
    analysis: Analysis
    origin: str  # the key of the event the model analyzed
    # That event's own values its text may name (key, id, request id, URI, host, IP,
    # country), so the text can be rendered for another event.
    fields: tuple[str | None, ...]
    saved_at: float  # epoch seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "analysis": self.analysis.model_dump_json(),
            "origin": self.origin,
            "fields": ["" if f is None else f for f in self.fields],
            "saved_at": self.saved_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SavedAnalysis:
        return cls(
            signature=data["signature"],
            analysis=Analysis.model_validate_json(data["analysis"]),
            origin=data["origin"],
            fields=tuple(f or None for f in data.get("fields", ())),
            saved_at=float(data["saved_at"]),
        )


# ---- the fast path -------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """An event decided without a model call, ready for its one write."""

    event: WafEvent
    analysis: Analysis
    decision: TriageDecision
    incident_id: str | None = None  # an escalation's incident, joined before the write
    notification_id: str | None = None
    reused_from: str | None = None
    # An operator's suppression closed it (docs/architecture.md, "Suppressions").
    suppressed_by: str | None = None


def analysis_entry(analysis: Analysis, at: str) -> dict[str, Any]:
    """The audit entry of a saved analysis."""
    return {
        "action": "stored_analysis",
        "at": at,
        "severity_rating": analysis.severity_rating,
        "analyzed_by": analysis.analyzed_by,
    }


def triage_entry(decision: TriageDecision, at: str) -> dict[str, Any]:
    """The audit entry of an applied triage."""
    return {"action": "triaged", "at": at, "status": decision.status}


def link_entry(incident_id: str, at: str, owner: str) -> dict[str, Any]:
    """The audit entry of an escalation linked to its incident."""
    return {"action": "linked_incident", "at": at, "incident_id": incident_id, "by": owner}


def finished_actions(
    analysis: Analysis, decision: TriageDecision, at: str, incident_id: str | None, owner: str
) -> list[dict[str, Any]]:
    """The audit entries of a finish: the same three the separate steps append."""
    actions = [analysis_entry(analysis, at), triage_entry(decision, at)]
    if incident_id is not None:
        actions.append(link_entry(incident_id, at, owner))
    return actions


def decided_item(decided: Decided, *, message_id: str, now_iso: str) -> dict[str, Any]:
    """The whole record of a decided event, as the full state machine would have left it
    (the TTL is the backend's). Raises PermanentError for an event too large to keep.
    """
    event, analysis, decision = decided.event, decided.analysis, decided.decision
    if decision.status not in TRIAGE_STATUSES:
        raise ValueError(f"not a triage status: {decision.status}")
    if decision.status == "escalated" and decided.incident_id is None:
        raise ValueError("an escalation is written with its incident")
    event_json = stored_event_json(event)
    event_sk = monitoring_sort_key(event.timestamp, event.event_key)
    item: dict[str, Any] = {
        "pk": event.event_key,
        "status": decision.status,
        "attempts": 1,
        "lease_expires_at": 0,
        "event": event_json,
        "event_sk": event_sk,
        "source_ip": event.source_ip,
        "rule_name": event.rule_name,
        "created_at": now_iso,
        "updated_at": now_iso,
        "message_ids": {message_id},
        "analysis": analysis.model_dump_json(),
        **analysis_attributes(analysis),
        "analyzed_at": now_iso,
        "triage": decision.model_dump_json(),
        "triage_action": decision.action,
        "triaged_at": now_iso,
        "incident_id": decided.incident_id,
        "notified_at": now_iso if decided.incident_id else None,
        "notification_id": decided.notification_id if decided.incident_id else None,
        "reused_from": decided.reused_from,
        "suppressed_by": decided.suppressed_by,
        "backend_actions": [
            {
                "action": "decided",
                "at": now_iso,
                "status": decision.status,
                "severity_rating": analysis.severity_rating,
                "analyzed_by": analysis.analyzed_by,
                **({"suppressed_by": decided.suppressed_by} if decided.suppressed_by else {}),
            }
        ],
    }
    if decision.status == "monitoring":
        item["mon_pk"], item["mon_sk"] = MONITORING_PK, event_sk
    return {k: v for k, v in item.items() if v is not None}
