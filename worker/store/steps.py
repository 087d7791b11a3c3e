"""The store's steps, written once over five storage operations.

Every step of the event state machine (:mod:`worker.store.records` draws it), the
pattern merges, the slot locks and the saved analyses are here, as a change to one item
and the condition it is written under (:mod:`worker.store.writes`). A backend implements
only the storage operations:

- ``_write(key, change, when)``: one conditional update (creating an absent item);
- ``_put(item, when)``: one conditional put of a whole item;
- ``_read(key)``, ``_read_many(keys)``: items by key;
- ``_read_monitoring(low, high, page_size)``: items in the monitoring index, in order.

DynamoDB (:mod:`worker.store.dynamodb`) does each in one request; memory
(:mod:`worker.store.memory`) under one lock. A step that finds its work done already
returns the record as it is, so a redelivered message resumes where the last one
stopped; a step that finds someone else's lease raises, so two consumers never both act
on one event (docs/architecture.md, "Event state machine").
"""

from __future__ import annotations

import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import structlog

from secops_core.contract import Analysis, Pattern, TriageDecision, WafEvent
from worker.errors import AlreadyInProgress, RetryableError, WorkerError
from worker.store.keys import (
    LOCK_RETENTION_S,
    MAX_EXCERPT_BYTES,
    MAX_REJECTION_REASON_CHARS,
    MONITORING_PK,
    PATTERN_UPSERT_ATTEMPTS,
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
    keepable_event_json,
    link_entry,
    merged_pattern,
    most_notified_for,
    pattern_adds_events,
    restarted_episode,
    step_result,
    stored_event_json,
    triage_entry,
    truncate_utf8,
)
from worker.store.writes import (
    Absent,
    Change,
    Condition,
    ConditionLost,
    Exists,
    Item,
    Missing,
    all_of,
    any_of,
    eq,
    gt,
    le,
    lt,
    one_of,
)

log = structlog.get_logger("worker.store")


class StoreSteps(ABC):
    """The EventRepo, PatternRepo, SlotLock and SignatureRepo ports over a backend's
    storage operations."""

    ttl_days: int
    _clock: Callable[[], float]

    # ---- storage operations ----------------------------------------------------------

    @abstractmethod
    def _write(
        self, key: str, change: Change, *, when: Condition | None = None, read_back: bool = True
    ) -> Item:
        """Apply ``change`` to the item ``key`` (created when absent) if ``when`` holds, and
        return the item as it now is (``{}`` when ``read_back`` is False); raise
        :class:`ConditionLost` with the item as it was otherwise."""

    @abstractmethod
    def _put(self, item: Item, *, when: Condition | None = None) -> None:
        """Write the whole ``item`` if ``when`` holds; raise :class:`ConditionLost` otherwise."""

    @abstractmethod
    def _read(self, key: str, *, consistent: bool = True) -> Item | None: ...

    @abstractmethod
    def _read_many(self, keys: list[str]) -> list[Item]:
        """The items of ``keys`` (distinct) that exist, strongly consistent."""

    @abstractmethod
    def _read_monitoring(self, low: str, high: str, *, page_size: int) -> Iterator[Item]:
        """Items of the monitoring index with ``low <= mon_sk <= high``, in ``mon_sk`` order."""

    # ---- helpers ---------------------------------------------------------------------

    def _touched(self, change: Change, now: float) -> Change:
        """Every write of an event or pattern refreshes updated_at and the TTL."""
        change.set["updated_at"] = iso_from_epoch(now)
        change.set["ttl"] = ttl_after(now, self.ttl_days)
        return change

    @staticmethod
    def _event_fields(event: WafEvent, event_json: str) -> dict[str, Any]:
        # The event never changes once stored: the first delivery's copy is the record.
        return {
            "event": event_json,
            "event_sk": monitoring_sort_key(event.timestamp, event.event_key),
            "source_ip": event.source_ip,
            "rule_name": event.rule_name,
        }

    # ---- EventRepo -------------------------------------------------------------------

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
        event_json = stored_event_json(event)
        now = self._clock()
        change = Change(
            set={"lease_owner": owner, "lease_expires_at": now + lease_s, "last_claim_at": now},
            set_if_absent={
                "status": "processing",
                **self._event_fields(event, event_json),
                "created_at": iso_from_epoch(now),
            },
            # Reads the item as it was, so prev gets the previous claim's time.
            copy={"prev_claim_at": ("last_claim_at", now)},
            increment={"attempts": 1},
            add={"message_ids": {message_id}},
        )
        when = any_of(Absent(), lt("lease_expires_at", now), eq("lease_owner", owner))
        try:
            claimed = EventRecord.from_dict(
                self._write(event.event_key, self._touched(change, now), when=when)
            )
        except ConditionLost as lost:
            holder = EventRecord.from_dict(lost.old) if lost.old else None
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
        # Only while this claim's lease is ours: a later claim has its own episode.
        mine = all_of(eq("lease_owner", owner), eq("attempts", claimed.attempts))
        try:
            return EventRecord.from_dict(
                self._write(event.event_key, Change(set={"episode_base": base}), when=mine)
            )
        except ConditionLost:
            return claimed

    def decide(self, decided: Decided, *, message_id: str) -> EventRecord | None:
        """The fast path: absent → terminal status in one conditional put, for an event
        decided without a model call. None when the event has a record already (the
        caller takes the full state machine, which knows what to do with it).
        """
        now = self._clock()
        item = decided_item(decided, message_id=message_id, now_iso=iso_from_epoch(now))
        item["ttl"] = ttl_after(now, self.ttl_days)
        try:
            self._put(item, when=Absent())
        except ConditionLost:
            return None
        return EventRecord.from_dict(item)

    def save_analysis(self, key: str, *, owner: str, analysis: Analysis) -> EventRecord:
        """processing → analyzed. Idempotent: an event already past it is returned as is."""
        now = self._clock()
        at = iso_from_epoch(now)
        change = _analysis_change(analysis, at)
        change.set["status"] = "analyzed"
        change.append["backend_actions"] = [analysis_entry(analysis, at)]
        return self._step(key, owner=owner, expect="processing", change=self._touched(change, now))

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
        _check_triage(decision)
        now = self._clock()
        at = iso_from_epoch(now)
        change = _triage_change(decision, at, base=_analysis_change(analysis, at))
        change.set["lease_expires_at"] = 0
        change.append["backend_actions"] = finished_actions(analysis, decision, at, incident_id, owner)
        if incident_id is not None:
            change.set["incident_id"] = incident_id
            change.set["notified_at"] = at
            change.set["notification_id"] = notification_id or f"incident:{incident_id}"
        return self._step(key, owner=owner, expect="processing", change=self._touched(change, now))

    def add_model_calls(self, key: str, *, owner: str, calls: int) -> EventRecord:
        """Count model requests of an answer that is not saved (the worker waits for an outage).

        Counted whoever holds the lease now: the requests were made either way, and the
        budget bounds requests, not leases.
        """
        now = self._clock()
        entry = {"action": "model_calls_unsaved", "at": iso_from_epoch(now), "calls": calls, "by": owner}
        change = Change(increment={"model_calls": calls}, append={"backend_actions": [entry]})
        try:
            return EventRecord.from_dict(self._write(key, self._touched(change, now), when=Exists()))
        except ConditionLost:
            raise RetryableError(f"event {key} has no record", reason="lease_lost") from None

    def extend_lease(self, key: str, *, owner: str, lease_s: int) -> bool:
        """Move the lease to ``lease_s`` from now while ``owner`` still holds a live one."""
        now = self._clock()
        change = Change(set={"lease_expires_at": now + lease_s})
        try:
            self._write(
                key,
                change,
                when=all_of(eq("lease_owner", owner), gt("lease_expires_at", now)),
                read_back=False,
            )
        except ConditionLost:
            return False
        return True

    def apply_triage(
        self, key: str, *, owner: str, decision: TriageDecision, release: bool = False
    ) -> EventRecord:
        """analyzed → closed | monitoring | escalated; only `monitoring` is in the index.

        ``release`` gives the lease back in the same write, for a triage that is the last
        step (anything but an escalation, which still has a notification to send).
        """
        _check_triage(decision)
        now = self._clock()
        at = iso_from_epoch(now)
        change = _triage_change(decision, at, base=Change())
        change.append["backend_actions"] = [triage_entry(decision, at)]
        if release:
            change.set["lease_expires_at"] = 0
        return self._step(key, owner=owner, expect="analyzed", change=self._touched(change, now))

    def _step(self, key: str, *, owner: str, expect: str, change: Change) -> EventRecord:
        try:
            return EventRecord.from_dict(
                self._write(key, change, when=all_of(eq("lease_owner", owner), eq("status", expect)))
            )
        except ConditionLost as lost:
            if lost.old is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost") from None
            current = EventRecord.from_dict(lost.old)
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
        except ConditionLost as lost:
            if lost.old is None:
                raise RetryableError(f"event {key} has no record", reason="lease_lost") from None
            current = EventRecord.from_dict(lost.old)
            if current.status != "escalated" or current.incident_id is not None:
                return False
        # Our lease moved on (it expired mid-join): link without touching the new holder's.
        try:
            self._link(key, owner=owner, incident_id=incident_id, notification_id=notification_id, ours=False)
        except ConditionLost:
            return False
        return True

    def _link(self, key: str, *, owner: str, incident_id: str, notification_id: str, ours: bool) -> None:
        now = self._clock()
        at = iso_from_epoch(now)
        change = Change(
            set={"incident_id": incident_id, "notified_at": at, "notification_id": notification_id},
            append={"backend_actions": [link_entry(incident_id, at, owner)]},
        )
        when: Condition = all_of(eq("status", "escalated"), Missing("incident_id"))
        if ours:
            change.set["lease_expires_at"] = 0
            when = all_of(eq("status", "escalated"), Missing("incident_id"), eq("lease_owner", owner))
        self._write(key, self._touched(change, now), when=when, read_back=False)

    def release(self, key: str, *, owner: str) -> None:
        """Give the lease up now (expires_at = 0) if it is still ours; silent otherwise."""
        try:
            self._write(
                key, Change(set={"lease_expires_at": 0}), when=eq("lease_owner", owner), read_back=False
            )
        except ConditionLost:
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
        at = iso_from_epoch(now)
        change = Change(
            set={
                "status": "rejected",
                "rejection_code": code,
                "rejection_reason": reason[:MAX_REJECTION_REASON_CHARS],
                "lease_expires_at": 0,
            },
            set_if_absent={"created_at": at},
            increment={"attempts": 1},
            add={"message_ids": {message_id}},
            append={"backend_actions": [{"action": "rejected", "at": at, "code": code}]},
        )
        if excerpt is not None:
            change.set["excerpt"] = truncate_utf8(excerpt, MAX_EXCERPT_BYTES)
        event_json = keepable_event_json(event) if event is not None else None
        if event is not None and event_json is not None:
            change.set_if_absent.update(self._event_fields(event, event_json))
        try:
            record = EventRecord.from_dict(
                self._write(
                    key, self._touched(change, now), when=any_of(Absent(), one_of("status", REJECTABLE))
                )
            )
        except ConditionLost as lost:
            assert lost.old is not None  # the condition passes for an absent item
            return EventRecord.from_dict(lost.old)
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
        at = iso_from_epoch(now)
        # One severity per event: the top-level copy follows the triage, and the record
        # says why it differs from the analysis (docs/architecture.md, "Monitor").
        raised = {"to": decision.severity_rating, "by": "monitor", "reason": decision.reason}
        change = Change(
            set={
                "status": "escalated",
                "triage": decision.model_dump_json(),
                "triage_action": decision.action,
                "triaged_at": at,
                "severity_rating": decision.severity_rating,
                "severity_raised": json.dumps({**raised, "pattern_key": pattern_key, "at": at}),
                "pattern_key": pattern_key,
                # The incident's milestones speak for its members: a later redelivery of
                # one of them must not join or notify again.
                "incident_id": incident_id,
                "notified_at": at,
                "notification_id": f"pattern:{pattern_key}",
            },
            remove=("mon_pk", "mon_sk"),
            append={
                "backend_actions": [
                    {
                        "action": "escalated_by_pattern",
                        "at": at,
                        "pattern_key": pattern_key,
                        "incident_id": incident_id,
                        "severity_rating": decision.severity_rating,
                    }
                ]
            },
        )
        try:
            self._write(key, self._touched(change, now), when=eq("status", "monitoring"), read_back=False)
        except ConditionLost:
            return False
        return True

    def get(self, key: str) -> EventRecord | None:
        """The record of one event (a strongly consistent read), or None."""
        item = self._read(key)
        return EventRecord.from_dict(item) if item is not None else None

    def get_many(self, keys: list[str]) -> dict[str, EventRecord]:
        """Records by key (absent keys are left out)."""
        records = (EventRecord.from_dict(item) for item in self._read_many(list(dict.fromkeys(keys))))
        return {record.key: record for record in records}

    def iter_monitoring(
        self, *, since: datetime, until: datetime, page_size: int = 500
    ) -> Iterator[EventRecord]:
        """Events in `monitoring` whose event time is in [since, until], oldest first,
        page by page, so memory stays flat however many there are."""
        low, high = monitoring_range(since, until)
        return (EventRecord.from_dict(item) for item in self._read_monitoring(low, high, page_size=page_size))

    # ---- PatternRepo -----------------------------------------------------------------

    def upsert_pattern(self, pattern: Pattern, *, slot: str) -> PatternRecord:
        """Merge one run's pattern into its record and return the merged record.

        ``count`` is the number of distinct event keys ever seen: a window that
        overlaps the last run's does not count the same events twice. The merge is a
        read then a write conditional on the version read, retried on a conflict.
        """
        for attempt in range(PATTERN_UPSERT_ATTEMPTS):
            current = self._read(pattern.pattern_key)
            if current is not None and not pattern_adds_events(current, pattern):
                # Every slot re-reads the whole window; a pattern with nothing new needs
                # no write (and no write that a throttle could fail).
                return PatternRecord.from_dict(current)
            now = self._clock()
            merged, trimmed = merged_pattern(current, pattern, slot)
            if trimmed:
                # From here on a very old event seen again would count twice; say so.
                log.warning("pattern_digests_trimmed", key=pattern.pattern_key)
            change = Change(set=merged, set_if_absent={"created_at": iso_from_epoch(now)})
            when = Absent() if not current else eq("version", int(current.get("version", 0)))
            try:
                return PatternRecord.from_dict(
                    self._write(pattern.pattern_key, self._touched(change, now), when=when)
                )
            except ConditionLost:
                log.info("pattern_upsert_conflict", key=pattern.pattern_key, attempt=attempt)
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
        raise RetryableError(
            f"pattern {pattern.pattern_key}: too many concurrent updates",
            reason="store_contended",
        )

    def claim_pattern_notification(self, key: str, *, count: int, growth_factor: float) -> bool:
        """Claim the right to notify about a pattern at ``count`` events.

        True (the caller must publish) if it was never notified, or has grown to at
        least ``notified_count * growth_factor``; ``notified_count`` becomes ``count``
        in the same conditional write, so only one caller gets True for a growth step.
        """
        most_notified = most_notified_for(count, growth_factor)
        change = Change(set={"notified_count": count, "notified_at": iso_from_epoch(self._clock())})
        when = all_of(Exists(), any_of(Missing("notified_count"), le("notified_count", most_notified)))
        try:
            self._write(key, change, when=when, read_back=False)
        except ConditionLost as lost:
            if lost.old is None:
                raise WorkerError(
                    f"pattern {key} has no record: upsert it first", reason="pattern_missing"
                ) from None
            return False
        return True

    def release_pattern_notification(self, key: str, *, count: int, previous: int) -> bool:
        """Give back a claim whose publish failed, so a later run notifies instead.

        Only undoes our own claim (``notified_count`` still ``count``): a claim another
        run made since is left alone. ``previous`` is the notified_count before it.
        """
        if previous:
            change = Change(set={"notified_count": previous})
        else:
            change = Change(remove=("notified_count", "notified_at"))
        try:
            self._write(key, change, when=eq("notified_count", count), read_back=False)
        except ConditionLost:
            return False
        log.info("pattern_notification_released", key=key, count=count, previous=previous)
        return True

    def get_pattern(self, key: str) -> PatternRecord | None:
        """One pattern record (a strongly consistent read), or None."""
        item = self._read(key)
        return PatternRecord.from_dict(item) if item is not None else None

    # ---- SignatureRepo ---------------------------------------------------------------
    # A put replaces the item (the newest analysis of a signature is the one worth
    # reusing); a read may be eventually consistent: an analysis a replica saved a moment
    # ago and another does not see yet costs one more model call, no more.

    def get_signature(self, signature: str) -> SavedAnalysis | None:
        item = self._read(signature_key(signature), consistent=False)
        return SavedAnalysis.from_dict(item) if item is not None else None

    def put_signature(self, saved: SavedAnalysis, *, ttl_s: float) -> None:
        # DynamoDB deletes expired items within days; the reader checks saved_at.
        self._put(
            {"pk": signature_key(saved.signature), **saved.to_dict(), "ttl": int(saved.saved_at + ttl_s)}
        )

    # ---- SlotLock --------------------------------------------------------------------
    # Every replica derives the same name for the same slot (``lock#monitor#<slot time>``)
    # and only one conditional put can win it. A lock whose holder died (expired, never
    # completed) can be taken over; a completed one never runs again.

    def acquire_lock(self, name: str, *, owner: str, ttl_s: int) -> bool:
        """Take the lock ``name`` for ``ttl_s`` seconds; False if someone else has it."""
        now = self._clock()
        item = {
            "pk": name,
            "owner": owner,
            "acquired_at": iso_from_epoch(now),
            "expires_at": now + ttl_s,
            "ttl": int(now + ttl_s + LOCK_RETENTION_S),
        }
        try:
            self._put(item, when=any_of(Absent(), all_of(lt("expires_at", now), Missing("completed_at"))))
        except ConditionLost:
            return False
        log.info("lock_acquired", lock=name, owner=owner, ttl_s=ttl_s)
        return True

    def complete_lock(self, name: str, *, owner: str) -> None:
        """Mark the slot done, so no replica runs it again, even after the lock expires."""
        change = Change(set={"completed_at": iso_from_epoch(self._clock())})
        try:
            self._write(name, change, when=eq("owner", owner), read_back=False)
        except ConditionLost:
            # Our lock expired and another replica took the slot over; it completes it.
            log.warning("lock_not_ours", lock=name, owner=owner)


def _check_triage(decision: TriageDecision) -> None:
    if decision.status not in TRIAGE_STATUSES:
        raise ValueError(f"not a triage status: {decision.status}")


def _analysis_change(analysis: Analysis, at: str) -> Change:
    """The fields a saved analysis sets, with top-level copies the console and ad-hoc
    queries read, and the model calls it adds."""
    return Change(
        set={"analysis": analysis.model_dump_json(), **analysis_attributes(analysis), "analyzed_at": at},
        increment={"model_calls": analysis.model_calls},
    )


def _triage_change(decision: TriageDecision, at: str, *, base: Change) -> Change:
    """The fields a triage sets; only `monitoring` is in the monitoring index (event_sk
    was written by the claim, so copying it keeps this one write)."""
    base.set.update(
        status=decision.status,
        triage=decision.model_dump_json(),
        triage_action=decision.action,
        triaged_at=at,
    )
    if decision.status == "monitoring":
        base.set["mon_pk"] = MONITORING_PK
        base.copy["mon_sk"] = ("event_sk", None)
    else:
        base.remove = (*base.remove, "mon_pk", "mon_sk")
    return base
