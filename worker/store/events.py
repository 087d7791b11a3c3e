"""The per-event state machine (DESIGN section 6), one conditional write per step.

    absent ─claim─► processing ─save_analysis─► analyzed ─apply_triage─► closed
                                                                       | monitoring
                                                                       | escalated ─► notified once

A step that finds its work already done returns the record as it is, so a redelivered
message resumes where the last one stopped; a step that finds someone else's lease
raises, so two consumers never both act on one event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from secops_core.contract import Analysis, TriageDecision, WafEvent
from worker.errors import AlreadyInProgress, PermanentError, RetryableError, WorkerError
from worker.store._dynamo import ConditionFailed, DynamoTable, Item, Update, from_item
from worker.store.keys import (
    BATCH_GET_MAX_KEYS,
    BATCH_GET_MAX_ROUNDS,
    MAX_EVENT_JSON_BYTES,
    MAX_EXCERPT_BYTES,
    MAX_REJECTION_REASON_CHARS,
    MONITORING_INDEX,
    MONITORING_PK,
    TERMINAL,
    TRIAGE_STATUSES,
    monitoring_range,
    monitoring_sort_key,
    ttl_after,
)

log = structlog.get_logger("worker.store")

# How far along the happy path each status is; a step whose target is behind the
# record's status has already happened.
_PROGRESS = {"processing": 0, "analyzed": 1, "closed": 2, "monitoring": 2, "escalated": 2}


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

    def lease_live(self, now_epoch: float) -> bool:
        """True while someone holds an unexpired lease."""
        return self.lease_expires_at > now_epoch

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def needs_notification(self) -> bool:
        """An escalation whose critical notification has not been recorded yet."""
        return self.status == "escalated" and self.notified_at is None

    @classmethod
    def from_item(cls, item: Item) -> EventRecord:
        data = from_item(item)
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
            message_ids=tuple(data.get("message_ids", ())),
            pattern_key=data.get("pattern_key"),
            created_at=data.get("created_at", ""),
            updated_at=data.get("updated_at", ""),
            backend_actions=tuple(data.get("backend_actions", ())),
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
        }


def _model(model: Any, raw: str | None) -> Any:
    # Models are stored as JSON strings: no float/Decimal or empty-string quirks.
    return model.model_validate_json(raw) if raw else None


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")


class EventOps(DynamoTable):
    """Event records: claim, the steps of the state machine, rejection, reads."""

    def _touch(self, update: Update, now: float) -> Update:
        """Every write refreshes updated_at and the TTL."""
        return update.set("updated_at", self._now_iso(now)).set("ttl", ttl_after(now, self.ttl_days))

    def claim(self, event: WafEvent, *, owner: str, lease_s: int, message_id: str) -> EventRecord:
        """Take the lease on an event (creating its record), or raise AlreadyInProgress.

        A terminal record can be claimed too, so a redelivery can be acknowledged:
        the caller looks at ``status`` and resumes from the last completed step. A
        finished one (terminal, nothing to notify) held by someone else is returned as
        is, without our lease or this message id.
        """
        event_json = event.model_dump_json()
        if len(event_json.encode()) > MAX_EVENT_JSON_BYTES:
            raise PermanentError(
                f"event {event.event_key} is {len(event_json.encode())} bytes as JSON; "
                f"the store keeps events up to {MAX_EVENT_JSON_BYTES}",
                reason="event_too_large",
            )
        now = self._clock()
        update = Update()
        update.set("lease_owner", owner).set("lease_expires_at", now + lease_s)
        update.increment("attempts").set_if_absent("status", "processing")
        self._set_event(update, event, event_json)
        update.set_if_absent("created_at", self._now_iso(now)).add_to_set("message_ids", message_id)
        self._touch(update, now)
        condition = (
            "attribute_not_exists(pk) OR "
            f"{update.name('lease_expires_at')} < {update.value(now, 'now')} OR "
            f"{update.name('lease_owner')} = {update.value(owner, 'owner')}"
        )
        try:
            return EventRecord.from_item(self._update(event.event_key, update, condition=condition))
        except ConditionFailed as lost:
            holder = EventRecord.from_item(lost.old) if lost.old else None
            if holder is not None and holder.is_terminal and not holder.needs_notification:
                # Nothing is left to do, so no lease is needed: a duplicate is acknowledged
                # now instead of waiting out a lease another duplicate holds.
                return holder
            remaining = max(0.0, holder.lease_expires_at - now) if holder else None
            raise AlreadyInProgress(
                f"event {event.event_key} is leased by {holder.lease_owner if holder else '?'} "
                f"for another {remaining or 0:.0f} s",
                lease_expires_in_s=remaining,
            ) from None

    @staticmethod
    def _set_event(update: Update, event: WafEvent, event_json: str) -> None:
        # The event never changes once stored: the first delivery's copy is the record.
        update.set_if_absent("event", event_json)
        update.set_if_absent("event_sk", monitoring_sort_key(event.timestamp, event.event_key))
        update.set_if_absent("source_ip", event.source_ip).set_if_absent("rule_name", event.rule_name)

    def save_analysis(self, key: str, *, owner: str, analysis: Analysis) -> EventRecord:
        """processing → analyzed. Idempotent: an event already past it is returned as is."""
        now = self._clock()
        update = Update().set("status", "analyzed").set("analysis", analysis.model_dump_json())
        # Top-level copies so the console and ad-hoc queries can read them.
        update.set("severity_rating", analysis.severity_rating)
        update.set("severity_floor", analysis.severity_floor)
        update.set("model_severity", analysis.model_severity)
        update.set("analyzed_by", analysis.analyzed_by).set("degraded", analysis.degraded)
        update.set("analyzed_at", self._now_iso(now))
        update.append(
            "backend_actions",
            {
                "action": "stored_analysis",
                "at": self._now_iso(now),
                "severity_rating": analysis.severity_rating,
                "analyzed_by": analysis.analyzed_by,
            },
        )
        return self._step(key, owner=owner, expect="processing", update=self._touch(update, now))

    def apply_triage(
        self, key: str, *, owner: str, decision: TriageDecision, release: bool = False
    ) -> EventRecord:
        """analyzed → closed | monitoring | escalated; only `monitoring` is in the index.

        ``release`` gives the lease back in the same write, for a triage that is the last
        step (anything but an escalation, which still has a notification to send).
        """
        if decision.status not in TRIAGE_STATUSES:
            raise ValueError(f"not a triage status: {decision.status}")
        now = self._clock()
        update = Update().set("status", decision.status).set("triage", decision.model_dump_json())
        update.set("triage_action", decision.action).set("triaged_at", self._now_iso(now))
        if decision.status == "monitoring":
            # event_sk was written by the claim; copying it keeps this one write.
            update.set("mon_pk", MONITORING_PK).set_expr("mon_sk", update.name("event_sk"))
        else:
            update.remove("mon_pk", "mon_sk")
        update.append(
            "backend_actions",
            {"action": "triaged", "at": self._now_iso(now), "status": decision.status},
        )
        if release:
            update.set("lease_expires_at", 0)
        return self._step(key, owner=owner, expect="analyzed", update=self._touch(update, now))

    def _step(self, key: str, *, owner: str, expect: str, update: Update) -> EventRecord:
        condition = (
            f"{update.name('lease_owner')} = {update.value(owner, 'owner')} AND "
            f"{update.name('status')} = {update.value(expect, 'expect')}"
        )
        try:
            return EventRecord.from_item(self._update(key, update, condition=condition))
        except ConditionFailed as lost:
            if lost.old is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost") from None
            current = EventRecord.from_item(lost.old)
        progress = _PROGRESS.get(current.status)
        if progress is None or progress > _PROGRESS[expect]:
            # Done already (by us on an earlier delivery, or by the last lease holder),
            # or rejected meanwhile: the caller reads the status.
            return current
        if current.lease_owner != owner:
            raise RetryableError(f"event {key}: lease now held by {current.lease_owner}", reason="lease_lost")
        raise WorkerError(
            f"event {key} is {current.status}, not {expect}: steps out of order",
            reason="invalid_transition",
        )

    def mark_notified(self, key: str, *, owner: str, topic: str, message_id: str) -> bool:
        """Record a published notification; False if one was recorded already."""
        now = self._clock()
        update = Update().set("notified_at", self._now_iso(now)).set("notification_id", message_id)
        update.append(
            "backend_actions",
            {
                "action": "notified",
                "at": self._now_iso(now),
                "topic": topic,
                "message_id": message_id,
                "by": owner,
            },
        )
        self._touch(update, now)
        condition = f"attribute_exists(pk) AND attribute_not_exists({update.name('notified_at')})"
        try:
            self._update(key, update, condition=condition, returns="NONE")
        except ConditionFailed as lost:
            if lost.old is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost") from None
            return False
        return True

    def extend_lease(self, key: str, *, owner: str, lease_s: int) -> bool:
        """Push our lease out by ``lease_s`` from now; False if it is no longer ours."""
        now = self._clock()
        update = Update().set("lease_expires_at", now + lease_s)
        condition = f"{update.name('lease_owner')} = {update.value(owner, 'owner')}"
        try:
            self._update(key, update, condition=condition, returns="NONE")
        except ConditionFailed:
            return False
        return True

    def release(self, key: str, *, owner: str) -> None:
        """Give the lease up now (expires_at = 0) if it is still ours; silent otherwise."""
        update = Update().set("lease_expires_at", 0)
        condition = f"{update.name('lease_owner')} = {update.value(owner, 'owner')}"
        try:
            self._update(key, update, condition=condition, returns="NONE")
        except ConditionFailed:
            log.debug("release_not_ours", key=key, owner=owner)

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
        """Record bad input as `rejected` and release the lease.

        Never overwrites an event that reached closed/monitoring/escalated: that record
        is returned unchanged.
        """
        now = self._clock()
        update = Update().set("status", "rejected").set("rejection_code", code)
        update.set("rejection_reason", reason[:MAX_REJECTION_REASON_CHARS])
        if excerpt is not None:
            update.set("excerpt", _truncate_utf8(excerpt, MAX_EXCERPT_BYTES))
        if event is not None:
            event_json = event.model_dump_json()
            if len(event_json.encode()) <= MAX_EVENT_JSON_BYTES:
                self._set_event(update, event, event_json)
        update.add_to_set("message_ids", message_id).increment("attempts")
        update.set("lease_expires_at", 0).set_if_absent("created_at", self._now_iso(now))
        update.append("backend_actions", {"action": "rejected", "at": self._now_iso(now), "code": code})
        self._touch(update, now)
        status = update.name("status")
        condition = (
            f"attribute_not_exists(pk) OR {status} IN "
            f"({update.value('processing', 'processing')}, {update.value('analyzed', 'analyzed')}, "
            f"{update.value('rejected', 'rejected')})"
        )
        try:
            record = EventRecord.from_item(self._update(key, update, condition=condition))
        except ConditionFailed as lost:
            assert lost.old is not None  # the condition passes for an absent item
            return EventRecord.from_item(lost.old)
        log.info("event_rejected", key=key, code=code, message_id=message_id)
        return record

    def escalate_from_pattern(self, key: str, *, pattern_key: str, decision: TriageDecision) -> bool:
        """monitoring → escalated because its pattern crossed the threshold.

        False when the event is no longer in `monitoring` (escalated already, say).
        """
        now = self._clock()
        update = Update().set("status", "escalated").set("triage", decision.model_dump_json())
        update.set("triage_action", decision.action).set("triaged_at", self._now_iso(now))
        update.set("pattern_key", pattern_key).remove("mon_pk", "mon_sk")
        # The pattern's monitoring notification speaks for its members: a later
        # redelivery of one of them must not send a critical notice of its own.
        update.set("notified_at", self._now_iso(now)).set("notification_id", f"pattern:{pattern_key}")
        update.append(
            "backend_actions",
            {
                "action": "escalated_by_pattern",
                "at": self._now_iso(now),
                "pattern_key": pattern_key,
            },
        )
        self._touch(update, now)
        condition = f"{update.name('status')} = {update.value('monitoring', 'monitoring')}"
        try:
            self._update(key, update, condition=condition, returns="NONE")
        except ConditionFailed:
            return False
        return True

    def get(self, key: str) -> EventRecord | None:
        """The record of one event (a strongly consistent read), or None."""
        item = self._get_item(key)
        return EventRecord.from_item(item) if item else None

    def get_many(self, keys: list[str]) -> dict[str, EventRecord]:
        """Records by key (absent keys are left out), in BatchGetItem chunks of 100."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, EventRecord] = {}
        for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
            chunk = unique[start : start + BATCH_GET_MAX_KEYS]
            request: dict[str, Any] = {
                self.table_name: {"Keys": [{"pk": {"S": k}} for k in chunk], "ConsistentRead": True}
            }
            for attempt in range(BATCH_GET_MAX_ROUNDS):
                response = self._call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    record = EventRecord.from_item(item)
                    found[record.key] = record
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                # Unprocessed keys mean throttling: back off before asking again.
                time.sleep(0.05 * 2**attempt)
            else:
                raise RetryableError(
                    "DynamoDB kept keys unprocessed in BatchGetItem", reason="store_unavailable"
                )
        return found

    def iter_monitoring(
        self, *, since: datetime, until: datetime, page_size: int = 500
    ) -> Iterator[EventRecord]:
        """Events in `monitoring` whose event time is in [since, until], oldest first.

        Reads the sparse index page by page, so memory stays flat however many there are.
        """
        low, high = monitoring_range(since, until)
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": MONITORING_INDEX,
            "KeyConditionExpression": "mon_pk = :pk AND mon_sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": MONITORING_PK},
                ":low": {"S": low},
                ":high": {"S": high},
            },
            "Limit": page_size,
        }
        while True:
            page = self._call("query", **params)
            for item in page.get("Items", []):
                yield EventRecord.from_item(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last
