"""The store in memory: the EventRepo, PatternRepo, SlotLock and SignatureRepo ports with DynamoDB's
semantics, for millisecond tests of the pipeline.

Each method does under one lock what the DynamoDB backend does in one conditional
write: the same conditions, leases that expire by comparing timestamps, the same
errors, the same records. ``tests/integration/test_store.py`` runs one set of tests
against both backends to keep it so.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

import worker.clock
from secops_core.contract import Analysis, Pattern, TriageDecision, WafEvent
from worker.errors import AlreadyInProgress, PermanentError, RetryableError, WorkerError
from worker.store.checkpoints import ObjectCheckpoint, checkpoint_key
from worker.store.keys import (
    LOCK_RETENTION_S,
    MAX_EVENT_JSON_BYTES,
    MAX_EXCERPT_BYTES,
    MAX_REJECTION_REASON_CHARS,
    MONITORING_PK,
    TRIAGE_STATUSES,
    iso_from_epoch,
    monitoring_range,
    monitoring_sort_key,
    signature_key,
    ttl_after,
)
from worker.store.records import (
    REJECTABLE,
    Decided,
    EventRecord,
    PatternRecord,
    SavedAnalysis,
    analysis_attributes,
    analysis_entry,
    decided_item,
    finished_actions,
    link_entry,
    merged_pattern,
    most_notified_for,
    pattern_adds_events,
    restarted_episode,
    step_result,
    triage_entry,
    truncate_utf8,
)

log = structlog.get_logger("worker.store")

Item = dict[str, Any]


def _analysis_changes(analysis: Analysis, at: str) -> Item:
    """The fields a saved analysis sets (its model calls are added apart)."""
    return {"analysis": analysis.model_dump_json(), **analysis_attributes(analysis), "analyzed_at": at}


def _triage_changes(decision: TriageDecision, at: str) -> Item:
    return {
        "status": decision.status,
        "triage": decision.model_dump_json(),
        "triage_action": decision.action,
        "triaged_at": at,
    }


def _index(item: Item, decision: TriageDecision) -> None:
    """Only `monitoring` events are in the monitoring index."""
    if decision.status == "monitoring":
        item["mon_pk"], item["mon_sk"] = MONITORING_PK, item["event_sk"]
    else:
        item.pop("mon_pk", None)
        item.pop("mon_sk", None)


class MemoryStore:
    """Events, patterns and slot locks in a dict; thread-safe, so races can be tested."""

    def __init__(self, *, ttl_days: int = 30, clock: Callable[[], float] = worker.clock.epoch) -> None:
        self.ttl_days = ttl_days
        self._clock = clock
        self._items: dict[str, Item] = {}
        self._lock = threading.Lock()

    # ---- helpers ------------------------------------------------------------------------

    def _touch(self, item: Item, now: float) -> None:
        item["updated_at"] = iso_from_epoch(now)
        item["ttl"] = ttl_after(now, self.ttl_days)

    @staticmethod
    def _append(item: Item, entry: dict[str, Any]) -> None:
        item["backend_actions"] = [*item.get("backend_actions", ()), entry]

    @staticmethod
    def _record(item: Item) -> EventRecord:
        return EventRecord.from_dict(copy.deepcopy(item))

    @staticmethod
    def _set_event(item: Item, event: WafEvent, event_json: str) -> None:
        # The event never changes once stored: the first delivery's copy is the record.
        item.setdefault("event", event_json)
        item.setdefault("event_sk", monitoring_sort_key(event.timestamp, event.event_key))
        item.setdefault("source_ip", event.source_ip)
        item.setdefault("rule_name", event.rule_name)

    # ---- EventRepo ----------------------------------------------------------------------

    def claim(
        self,
        event: WafEvent,
        *,
        owner: str,
        lease_s: int,
        message_id: str,
        episode_gap_s: float | None = None,
    ) -> EventRecord:
        event_json = event.model_dump_json()
        if len(event_json.encode()) > MAX_EVENT_JSON_BYTES:
            raise PermanentError(
                f"event {event.event_key} is {len(event_json.encode())} bytes as JSON; "
                f"the store keeps events up to {MAX_EVENT_JSON_BYTES}",
                reason="event_too_large",
            )
        now = self._clock()
        with self._lock:
            item = self._items.get(event.event_key)
            if item is not None and not (
                item.get("lease_expires_at", now) < now or item.get("lease_owner") == owner
            ):
                holder = self._record(item)
                if holder.is_terminal and not holder.needs_notification:
                    return holder
                remaining = max(0.0, holder.lease_expires_at - now)
                raise AlreadyInProgress(
                    f"event {event.event_key} is leased by {holder.lease_owner} "
                    f"for another {remaining:.0f} s",
                    lease_expires_in_s=remaining,
                    message_ids=holder.message_ids,
                )
            item = self._items.setdefault(event.event_key, {"pk": event.event_key})
            item["lease_owner"] = owner
            item["lease_expires_at"] = now + lease_s
            item["attempts"] = item.get("attempts", 0) + 1
            item["prev_claim_at"] = item.get("last_claim_at", now)
            item["last_claim_at"] = now
            item.setdefault("status", "processing")
            self._set_event(item, event, event_json)
            item.setdefault("created_at", iso_from_epoch(now))
            item["message_ids"] = {*item.get("message_ids", ()), message_id}
            self._touch(item, now)
            base = restarted_episode(self._record(item), gap_s=episode_gap_s)
            if base is not None:
                item["episode_base"] = base
            return self._record(item)

    def decide(self, decided: Decided, *, message_id: str) -> EventRecord | None:
        now = self._clock()
        item = decided_item(decided, message_id=message_id, now_iso=iso_from_epoch(now))
        item["ttl"] = ttl_after(now, self.ttl_days)
        with self._lock:
            if decided.event.event_key in self._items:
                return None
            self._items[decided.event.event_key] = item
            return self._record(item)

    def _step(self, key: str, *, owner: str, expect: str, changes: Item, entry: dict[str, Any]) -> Item:
        item = self._items.get(key)
        if item is None:
            raise RetryableError(f"event {key} has no record", reason="lease_lost")
        if item.get("lease_owner") != owner or item.get("status") != expect:
            raise _StepLost(step_result(self._record(item), owner=owner, expect=expect))
        item.update(changes)
        self._append(item, entry)
        return item

    def save_analysis(self, key: str, *, owner: str, analysis: Analysis) -> EventRecord:
        now = self._clock()
        at = iso_from_epoch(now)
        changes = {"status": "analyzed", **_analysis_changes(analysis, at)}
        with self._lock:
            try:
                item = self._step(
                    key, owner=owner, expect="processing", changes=changes, entry=analysis_entry(analysis, at)
                )
            except _StepLost as lost:
                return lost.record
            item["model_calls"] = item.get("model_calls", 0) + analysis.model_calls
            self._touch(item, now)
            return self._record(item)

    def finish(
        self,
        key: str,
        *,
        owner: str,
        analysis: Analysis,
        decision: TriageDecision,
        incident_id: str | None = None,
        notification_id: str | None = None,
    ) -> EventRecord:
        if decision.status not in TRIAGE_STATUSES:
            raise ValueError(f"not a triage status: {decision.status}")
        now = self._clock()
        at = iso_from_epoch(now)
        changes = {**_analysis_changes(analysis, at), **_triage_changes(decision, at), "lease_expires_at": 0}
        if incident_id is not None:
            changes["incident_id"] = incident_id
            changes["notified_at"] = at
            changes["notification_id"] = notification_id or f"incident:{incident_id}"
        first, *rest = finished_actions(analysis, decision, at, incident_id, owner)
        with self._lock:
            try:
                item = self._step(key, owner=owner, expect="processing", changes=changes, entry=first)
            except _StepLost as lost:
                return lost.record
            for entry in rest:
                self._append(item, entry)
            item["model_calls"] = item.get("model_calls", 0) + analysis.model_calls
            _index(item, decision)
            self._touch(item, now)
            return self._record(item)

    def add_model_calls(self, key: str, *, owner: str, calls: int) -> EventRecord:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost")
            item["model_calls"] = item.get("model_calls", 0) + calls
            self._append(
                item,
                {"action": "model_calls_unsaved", "at": iso_from_epoch(now), "calls": calls, "by": owner},
            )
            self._touch(item, now)
            return self._record(item)

    def extend_lease(self, key: str, *, owner: str, lease_s: int) -> bool:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None or item.get("lease_owner") != owner or item.get("lease_expires_at", 0) <= now:
                return False
            item["lease_expires_at"] = now + lease_s
            return True

    def apply_triage(
        self, key: str, *, owner: str, decision: TriageDecision, release: bool = False
    ) -> EventRecord:
        if decision.status not in TRIAGE_STATUSES:
            raise ValueError(f"not a triage status: {decision.status}")
        now = self._clock()
        at = iso_from_epoch(now)
        changes = _triage_changes(decision, at)
        if release:
            changes["lease_expires_at"] = 0
        with self._lock:
            try:
                item = self._step(
                    key, owner=owner, expect="analyzed", changes=changes, entry=triage_entry(decision, at)
                )
            except _StepLost as lost:
                return lost.record
            _index(item, decision)
            self._touch(item, now)
            return self._record(item)

    def link_incident(self, key: str, *, owner: str, incident_id: str, notification_id: str) -> bool:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost")
            if item.get("status") != "escalated" or "incident_id" in item:
                return False
            item["incident_id"] = incident_id
            item["notified_at"], item["notification_id"] = iso_from_epoch(now), notification_id
            if item.get("lease_owner") == owner:
                item["lease_expires_at"] = 0
            self._append(item, link_entry(incident_id, iso_from_epoch(now), owner))
            self._touch(item, now)
            return True

    def release(self, key: str, *, owner: str) -> None:
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.get("lease_owner") == owner:
                item["lease_expires_at"] = 0

    def reject(
        self,
        key: str,
        *,
        code: str,
        reason: str,
        message_id: str,
        event: WafEvent | None = None,
        excerpt: str | None = None,
    ) -> EventRecord:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.get("status") not in REJECTABLE:
                return self._record(item)
            item = self._items.setdefault(key, {"pk": key})
            item["status"], item["rejection_code"] = "rejected", code
            item["rejection_reason"] = reason[:MAX_REJECTION_REASON_CHARS]
            if excerpt is not None:
                item["excerpt"] = truncate_utf8(excerpt, MAX_EXCERPT_BYTES)
            if event is not None:
                event_json = event.model_dump_json()
                if len(event_json.encode()) <= MAX_EVENT_JSON_BYTES:
                    self._set_event(item, event, event_json)
            item["message_ids"] = {*item.get("message_ids", ()), message_id}
            item["attempts"] = item.get("attempts", 0) + 1
            item["lease_expires_at"] = 0
            item.setdefault("created_at", iso_from_epoch(now))
            self._append(item, {"action": "rejected", "at": iso_from_epoch(now), "code": code})
            self._touch(item, now)
            log.info("event_rejected", key=key, code=code, message_id=message_id)
            return self._record(item)

    def escalate_from_pattern(
        self, key: str, *, pattern_key: str, decision: TriageDecision, incident_id: str
    ) -> bool:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None or item.get("status") != "monitoring":
                return False
            item.update(
                status="escalated",
                triage=decision.model_dump_json(),
                triage_action=decision.action,
                triaged_at=iso_from_epoch(now),
                pattern_key=pattern_key,
                # The incident's milestones speak for its members (see the DynamoDB backend).
                incident_id=incident_id,
                notified_at=iso_from_epoch(now),
                notification_id=f"pattern:{pattern_key}",
            )
            item.pop("mon_pk", None)
            item.pop("mon_sk", None)
            self._append(
                item,
                {
                    "action": "escalated_by_pattern",
                    "at": iso_from_epoch(now),
                    "pattern_key": pattern_key,
                    "incident_id": incident_id,
                },
            )
            self._touch(item, now)
            return True

    def get(self, key: str) -> EventRecord | None:
        with self._lock:
            item = self._items.get(key)
            return self._record(item) if item is not None else None

    def get_many(self, keys: list[str]) -> dict[str, EventRecord]:
        with self._lock:
            return {k: self._record(self._items[k]) for k in dict.fromkeys(keys) if k in self._items}

    def iter_monitoring(
        self, *, since: datetime, until: datetime, page_size: int = 500
    ) -> Iterator[EventRecord]:
        low, high = monitoring_range(since, until)
        with self._lock:
            found = sorted(
                (item["mon_sk"], self._record(item))
                for item in self._items.values()
                if item.get("mon_pk") == MONITORING_PK and low <= item["mon_sk"] <= high
            )
        return iter([record for _, record in found])

    # ---- PatternRepo --------------------------------------------------------------------

    def upsert_pattern(self, pattern: Pattern, *, slot: str) -> PatternRecord:
        now = self._clock()
        with self._lock:
            item = self._items.get(pattern.pattern_key)
            if item is not None and not pattern_adds_events(item, pattern):
                return PatternRecord.from_dict(item)
            merged, trimmed = merged_pattern(item, pattern, slot)
            if trimmed:
                log.warning("pattern_digests_trimmed", key=pattern.pattern_key)
            item = self._items.setdefault(pattern.pattern_key, {"pk": pattern.pattern_key})
            item.update(merged)
            item.setdefault("created_at", iso_from_epoch(now))
            self._touch(item, now)
            return PatternRecord.from_dict(item)

    def claim_pattern_notification(self, key: str, *, count: int, growth_factor: float) -> bool:
        most_notified = most_notified_for(count, growth_factor)
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                raise WorkerError(f"pattern {key} has no record: upsert it first", reason="pattern_missing")
            if "notified_count" in item and item["notified_count"] > most_notified:
                return False
            item["notified_count"], item["notified_at"] = count, iso_from_epoch(now)
            return True

    def release_pattern_notification(self, key: str, *, count: int, previous: int) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.get("notified_count") != count:
                return False
            if previous:
                item["notified_count"] = previous
            else:
                item.pop("notified_count", None)
                item.pop("notified_at", None)
            return True

    def get_pattern(self, key: str) -> PatternRecord | None:
        with self._lock:
            item = self._items.get(key)
            return PatternRecord.from_dict(item) if item is not None else None

    # ---- SignatureRepo ------------------------------------------------------------------

    def get_signature(self, signature: str) -> SavedAnalysis | None:
        with self._lock:
            item = self._items.get(signature_key(signature))
            return SavedAnalysis.from_dict(item) if item is not None else None

    def put_signature(self, saved: SavedAnalysis, *, ttl_s: float) -> None:
        with self._lock:
            key = signature_key(saved.signature)
            self._items[key] = {"pk": key, **saved.to_dict(), "ttl": int(saved.saved_at + ttl_s)}

    # ---- SlotLock -----------------------------------------------------------------------

    def acquire_lock(self, name: str, *, owner: str, ttl_s: int) -> bool:
        now = self._clock()
        with self._lock:
            item = self._items.get(name)
            if item is not None and not (item["expires_at"] < now and "completed_at" not in item):
                return False
            self._items[name] = {
                "pk": name,
                "owner": owner,
                "acquired_at": iso_from_epoch(now),
                "expires_at": now + ttl_s,
                "ttl": int(now + ttl_s + LOCK_RETENTION_S),
            }
            return True

    def complete_lock(self, name: str, *, owner: str) -> None:
        with self._lock:
            item = self._items.get(name)
            if item is None or item.get("owner") != owner:
                log.warning("lock_not_ours", lock=name, owner=owner)
                return
            item["completed_at"] = iso_from_epoch(self._clock())


class _StepLost(Exception):
    """A step's condition failed; ``record`` is what the step returns instead."""

    def __init__(self, record: EventRecord) -> None:
        super().__init__("step condition failed")
        self.record = record


if TYPE_CHECKING:
    # mypy proves the memory store fills the same ports as the DynamoDB one.
    from worker.ports import MonitorStore, SignatureRepo

    _PORTS: MonitorStore = MemoryStore()
    _SIGNATURES: SignatureRepo = MemoryStore()


class MemoryCheckpoints:
    """The CheckpointRepo port in a dict, with the DynamoDB backend's conditions."""

    def __init__(self, *, clock: Callable[[], float] = worker.clock.epoch) -> None:
        self._clock = clock
        self._items: dict[str, ObjectCheckpoint] = {}
        self._lock = threading.Lock()

    def claim_object(
        self, bucket: str, key: str, version: str, *, owner: str, lease_s: int
    ) -> ObjectCheckpoint:
        now = self._clock()
        pk = checkpoint_key(bucket, key, version)
        with self._lock:
            old = self._items.get(pk) or ObjectCheckpoint(
                bucket, key, version, started_at=iso_from_epoch(now)
            )
            if old.complete:
                return old
            if old.lease_owner not in (None, owner) and old.lease_expires_at >= now:
                raise AlreadyInProgress(
                    f"{bucket}/{key} is being read by another consumer",
                    lease_expires_in_s=max(0.0, old.lease_expires_at - now),
                )
            claimed = replace(
                old, lease_owner=owner, lease_expires_at=now + lease_s, attempts=old.attempts + 1
            )
            self._items[pk] = claimed
            return claimed

    def save_object(
        self,
        checkpoint: ObjectCheckpoint,
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        now = self._clock()
        with self._lock:
            old = self._items.get(checkpoint.pk)
            if old is None or old.lease_owner != owner:
                raise RetryableError(
                    f"lease on {checkpoint.bucket}/{checkpoint.key} lost to another reader",
                    reason="lease_lost",
                )
            saved = replace(
                checkpoint,
                status=old.status,
                attempts=old.attempts,
                started_at=old.started_at,
                lease_owner=owner,
                lease_expires_at=0.0 if release else now + lease_s,
            )
            if complete:
                saved = replace(
                    saved,
                    status="complete",
                    completed_at=iso_from_epoch(now),
                    lease_owner=None,
                    lease_expires_at=0.0,
                )
            self._items[checkpoint.pk] = saved
            return saved

    def get_object(self, bucket: str, key: str, version: str) -> ObjectCheckpoint | None:
        with self._lock:
            return self._items.get(checkpoint_key(bucket, key, version))
