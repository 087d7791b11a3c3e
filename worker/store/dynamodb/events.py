"""Event records in DynamoDB: each step of the state machine is one conditional write.

The steps and their rules are in :mod:`worker.store.records`. A step that finds its
work already done returns the record as it is, so a redelivered message resumes where
the last one stopped; a step that finds someone else's lease raises, so two consumers
never both act on one event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import structlog

from secops_core.contract import Analysis, TriageDecision, WafEvent
from worker.errors import AlreadyInProgress, PermanentError, RetryableError
from worker.store.dynamodb.table import ConditionFailed, DynamoTable, Item, Update, from_item, to_attr
from worker.store.keys import (
    BATCH_GET_MAX_KEYS,
    BATCH_GET_MAX_ROUNDS,
    MAX_EVENT_JSON_BYTES,
    MAX_EXCERPT_BYTES,
    MAX_REJECTION_REASON_CHARS,
    MONITORING_INDEX,
    MONITORING_PK,
    TRIAGE_STATUSES,
    monitoring_range,
    monitoring_sort_key,
    ttl_after,
)
from worker.store.records import (
    REJECTABLE,
    Decided,
    EventRecord,
    analysis_attributes,
    analysis_entry,
    decided_item,
    finished_actions,
    link_entry,
    restarted_episode,
    step_result,
    triage_entry,
    truncate_utf8,
)

log = structlog.get_logger("worker.store")


class EventOps(DynamoTable):
    """Event records: claim, the steps of the state machine, rejection, reads."""

    def _touch(self, update: Update, now: float) -> Update:
        """Every write refreshes updated_at and the TTL."""
        return update.set("updated_at", self._now_iso(now)).set("ttl", ttl_after(now, self.ttl_days))

    def claim(
        self,
        event: WafEvent,
        *,
        owner: str,
        lease_s: int,
        message_id: str,
        episode_gap_s: float | None = None,
    ) -> EventRecord:
        """Take the lease on an event (creating its record), or raise AlreadyInProgress.

        A terminal record can be claimed too, so a redelivery can be acknowledged:
        the caller looks at ``status`` and resumes from the last completed step. A
        finished one (terminal, nothing to notify) held by someone else is returned as
        is, without our lease or this message id. A claim more than ``episode_gap_s``
        after the previous one starts a new retry episode (one more write, rare).
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
        # Right-hand sides read the item as it was, so prev gets the previous claim's time.
        update.set_expr(
            "prev_claim_at", f"if_not_exists({update.name('last_claim_at')}, {update.value(now, 'now')})"
        )
        update.set("last_claim_at", now)
        self._set_event(update, event, event_json)
        update.set_if_absent("created_at", self._now_iso(now)).add_to_set("message_ids", message_id)
        self._touch(update, now)
        condition = (
            "attribute_not_exists(pk) OR "
            f"{update.name('lease_expires_at')} < {update.value(now, 'now')} OR "
            f"{update.name('lease_owner')} = {update.value(owner, 'owner')}"
        )
        try:
            claimed = _record(self._update(event.event_key, update, condition=condition))
        except ConditionFailed as lost:
            holder = _record(lost.old) if lost.old else None
            if holder is not None and holder.is_terminal and not holder.needs_notification:
                # Nothing is left to do, so no lease is needed: a duplicate is acknowledged
                # now instead of waiting out a lease another duplicate holds.
                return holder
            remaining = max(0.0, holder.lease_expires_at - now) if holder else None
            raise AlreadyInProgress(
                f"event {event.event_key} is leased by {holder.lease_owner if holder else '?'} "
                f"for another {remaining or 0:.0f} s",
                lease_expires_in_s=remaining,
                message_ids=holder.message_ids if holder else (),
            ) from None
        base = restarted_episode(claimed, gap_s=episode_gap_s)
        if base is None:
            return claimed
        restart = Update().set("episode_base", base)
        # Only while this claim's lease is ours: a later claim has its own episode.
        condition = (
            f"{restart.name('lease_owner')} = {restart.value(owner, 'owner')} AND "
            f"{restart.name('attempts')} = {restart.value(claimed.attempts, 'attempts')}"
        )
        try:
            return _record(self._update(event.event_key, restart, condition=condition))
        except ConditionFailed:
            return claimed

    def decide(self, decided: Decided, *, message_id: str) -> EventRecord | None:
        """The fast path: absent → terminal status in one conditional put, for an event
        decided without a model call. None when the event has a record already (the
        caller takes the full state machine, which knows what to do with it).
        """
        now = self._clock()
        item = decided_item(decided, message_id=message_id, now_iso=self._now_iso(now))
        item["ttl"] = ttl_after(now, self.ttl_days)
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item={k: to_attr(v) for k, v in item.items() if v is not None},
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="NONE",
            )
        except ConditionFailed:
            return None
        return EventRecord.from_dict(item)

    @staticmethod
    def _set_event(update: Update, event: WafEvent, event_json: str) -> None:
        # The event never changes once stored: the first delivery's copy is the record.
        update.set_if_absent("event", event_json)
        update.set_if_absent("event_sk", monitoring_sort_key(event.timestamp, event.event_key))
        update.set_if_absent("source_ip", event.source_ip).set_if_absent("rule_name", event.rule_name)

    def save_analysis(self, key: str, *, owner: str, analysis: Analysis) -> EventRecord:
        """processing → analyzed. Idempotent: an event already past it is returned as is."""
        now = self._clock()
        at = self._now_iso(now)
        update = _set_analysis(Update().set("status", "analyzed"), analysis, at)
        update.append("backend_actions", analysis_entry(analysis, at))
        return self._step(key, owner=owner, expect="processing", update=self._touch(update, now))

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
        """processing → its terminal status in one write (save, triage and link at once)."""
        if decision.status not in TRIAGE_STATUSES:
            raise ValueError(f"not a triage status: {decision.status}")
        now = self._clock()
        at = self._now_iso(now)
        update = _set_triage(_set_analysis(Update(), analysis, at), decision, at).set("lease_expires_at", 0)
        update.append("backend_actions", *finished_actions(analysis, decision, at, incident_id, owner))
        if incident_id is not None:
            update.set("incident_id", incident_id).set("notified_at", at)
            update.set("notification_id", notification_id or f"incident:{incident_id}")
        return self._step(key, owner=owner, expect="processing", update=self._touch(update, now))

    def add_model_calls(self, key: str, *, owner: str, calls: int) -> EventRecord:
        """Count model requests of an answer that is not saved (the worker waits for an outage).

        Counted whoever holds the lease now: the requests were made either way, and the
        budget bounds requests, not leases.
        """
        now = self._clock()
        update = Update().increment("model_calls", calls)
        update.append(
            "backend_actions",
            {"action": "model_calls_unsaved", "at": self._now_iso(now), "calls": calls, "by": owner},
        )
        self._touch(update, now)
        try:
            return _record(self._update(key, update, condition="attribute_exists(pk)"))
        except ConditionFailed:
            raise RetryableError(f"event {key} has no record", reason="lease_lost") from None

    def extend_lease(self, key: str, *, owner: str, lease_s: int) -> bool:
        """Move the lease to ``lease_s`` from now while ``owner`` still holds a live one."""
        now = self._clock()
        update = Update().set("lease_expires_at", now + lease_s)
        condition = (
            f"{update.name('lease_owner')} = {update.value(owner, 'owner')} AND "
            f"{update.name('lease_expires_at')} > {update.value(now, 'now')}"
        )
        try:
            self._update(key, update, condition=condition, returns="NONE")
        except ConditionFailed:
            return False
        return True

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
        at = self._now_iso(now)
        update = _set_triage(Update(), decision, at)
        update.append("backend_actions", triage_entry(decision, at))
        if release:
            update.set("lease_expires_at", 0)
        return self._step(key, owner=owner, expect="analyzed", update=self._touch(update, now))

    def _step(self, key: str, *, owner: str, expect: str, update: Update) -> EventRecord:
        condition = (
            f"{update.name('lease_owner')} = {update.value(owner, 'owner')} AND "
            f"{update.name('status')} = {update.value(expect, 'expect')}"
        )
        try:
            return _record(self._update(key, update, condition=condition))
        except ConditionFailed as lost:
            if lost.old is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost") from None
            current = _record(lost.old)
        return step_result(current, owner=owner, expect=expect)

    def link_incident(self, key: str, *, owner: str, incident_id: str, notification_id: str) -> bool:
        """Record the incident an escalation joined, giving our lease back in the same
        write; False if it was linked already.

        The link is the escalation's last step: a redelivery of a linked event is a
        duplicate, one of an unlinked event joins again (the join counts it once).
        """
        try:
            # The usual case, one write: still our lease, so it is freed with the link.
            self._link(key, owner=owner, incident_id=incident_id, notification_id=notification_id, ours=True)
            return True
        except ConditionFailed as lost:
            if lost.old is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost") from None
            current = _record(lost.old)
            if current.status != "escalated" or current.incident_id is not None:
                return False
        # Our lease moved on (it expired mid-join): link without touching the new holder's.
        try:
            self._link(key, owner=owner, incident_id=incident_id, notification_id=notification_id, ours=False)
        except ConditionFailed:
            return False
        return True

    def _link(self, key: str, *, owner: str, incident_id: str, notification_id: str, ours: bool) -> None:
        now = self._clock()
        update = Update().set("incident_id", incident_id).set("notified_at", self._now_iso(now))
        update.set("notification_id", notification_id)
        update.append("backend_actions", link_entry(incident_id, self._now_iso(now), owner))
        condition = (
            f"{update.name('status')} = {update.value('escalated', 'escalated')} "
            f"AND attribute_not_exists({update.name('incident_id')})"
        )
        if ours:
            update.set("lease_expires_at", 0)
            condition += f" AND {update.name('lease_owner')} = {update.value(owner, 'owner')}"
        self._update(key, self._touch(update, now), condition=condition, returns="NONE")

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
            update.set("excerpt", truncate_utf8(excerpt, MAX_EXCERPT_BYTES))
        if event is not None:
            event_json = event.model_dump_json()
            if len(event_json.encode()) <= MAX_EVENT_JSON_BYTES:
                self._set_event(update, event, event_json)
        update.add_to_set("message_ids", message_id).increment("attempts")
        update.set("lease_expires_at", 0).set_if_absent("created_at", self._now_iso(now))
        update.append("backend_actions", {"action": "rejected", "at": self._now_iso(now), "code": code})
        self._touch(update, now)
        status = update.name("status")
        allowed = ", ".join(update.value(s, s) for s in sorted(REJECTABLE))
        condition = f"attribute_not_exists(pk) OR {status} IN ({allowed})"
        try:
            record = _record(self._update(key, update, condition=condition))
        except ConditionFailed as lost:
            assert lost.old is not None  # the condition passes for an absent item
            return _record(lost.old)
        log.info("event_rejected", key=key, code=code, message_id=message_id)
        return record

    def escalate_from_pattern(
        self, key: str, *, pattern_key: str, decision: TriageDecision, incident_id: str
    ) -> bool:
        """monitoring → escalated because its pattern crossed the threshold, linked to
        the incident the monitor joined it to.

        False when the event is no longer in `monitoring` (escalated already, say).
        """
        now = self._clock()
        update = Update().set("status", "escalated").set("triage", decision.model_dump_json())
        update.set("triage_action", decision.action).set("triaged_at", self._now_iso(now))
        update.set("pattern_key", pattern_key).remove("mon_pk", "mon_sk")
        # The incident's milestones speak for its members: a later redelivery of one of
        # them must not join or notify again.
        update.set("incident_id", incident_id)
        update.set("notified_at", self._now_iso(now)).set("notification_id", f"pattern:{pattern_key}")
        update.append(
            "backend_actions",
            {
                "action": "escalated_by_pattern",
                "at": self._now_iso(now),
                "pattern_key": pattern_key,
                "incident_id": incident_id,
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
        return _record(item) if item else None

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
                    record = _record(item)
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
                yield _record(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last


def _set_analysis(update: Update, analysis: Analysis, at: str) -> Update:
    """The fields a saved analysis sets, with top-level copies the console and ad-hoc
    queries read, and the model calls it adds."""
    update.set("analysis", analysis.model_dump_json())
    for name, value in analysis_attributes(analysis).items():
        update.set(name, value)
    return update.set("analyzed_at", at).increment("model_calls", analysis.model_calls)


def _set_triage(update: Update, decision: TriageDecision, at: str) -> Update:
    """The fields a triage sets; only `monitoring` is in the monitoring index (event_sk
    was written by the claim, so copying it keeps this one write)."""
    update.set("status", decision.status).set("triage", decision.model_dump_json())
    update.set("triage_action", decision.action).set("triaged_at", at)
    if decision.status == "monitoring":
        return update.set("mon_pk", MONITORING_PK).set_expr("mon_sk", update.name("event_sk"))
    return update.remove("mon_pk", "mon_sk")


def _record(item: Item) -> EventRecord:
    return EventRecord.from_dict(from_item(item))
