"""Incidents in process memory: for tests, the demo and single-process runs.

Same semantics as the DynamoDB repository (the contract tests run against both): one
lock stands in for DynamoDB's per-item conditional writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import worker.platform.clock
from worker.incidents.grouping import GroupKey
from worker.incidents.keys import incident_id
from worker.incidents.milestones import DEFAULT_GROWTH_FACTOR
from worker.incidents.records import (
    ChannelResult,
    IncidentRecord,
    IncidentStatus,
    Notice,
    StatusChange,
    cut_note,
)
from worker.incidents.repo import DEFAULT_CLAIM_STALE_S, STATUS_TARGETS, JoiningRepo
from worker.incidents.results import IncidentNotFound, StatusConflict, VersionConflict
from worker.store.keys import iso_from_epoch


def _without(record: IncidentRecord, milestone: str) -> dict[str, float]:
    return {m: at for m, at in record.pending_claims.items() if m != milestone}


class MemoryIncidentRepo(JoiningRepo):
    """``MemoryIncidentRepo(quiet_s=3600, growth_factor=10.0, claim_stale_s=300,
    clock=worker.platform.clock.epoch)``.
    """

    def __init__(
        self,
        *,
        quiet_s: float,
        growth_factor: float = DEFAULT_GROWTH_FACTOR,
        claim_stale_s: float = DEFAULT_CLAIM_STALE_S,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        super().__init__(
            quiet_s=quiet_s, growth_factor=growth_factor, claim_stale_s=claim_stale_s, clock=clock
        )
        self._lock = threading.Lock()
        self._pointers: dict[str, int] = {}
        self._items: dict[str, IncidentRecord] = {}

    def _seq(self, group_hash: str) -> int:
        """The group's current seq: its pointer, else 1 once its first incident exists."""
        if group_hash in self._pointers:
            return self._pointers[group_hash]
        return 1 if incident_id(group_hash, 1) in self._items else 0

    def _current(self, group: GroupKey) -> tuple[int, IncidentRecord | None]:
        with self._lock:
            seq = self._seq(group.hash)
            return seq, self._items.get(incident_id(group.hash, seq)) if seq else None

    def _advance(self, group: GroupKey, seq: int) -> int:
        with self._lock:
            current = self._seq(group.hash)
            if current == seq:
                self._pointers[group.hash] = current = seq + 1
            return current

    def _remember(self, group: GroupKey, seq: int, record: IncidentRecord) -> None:
        """Nothing to remember: every read is already from memory."""

    def _load(self, incident: str) -> IncidentRecord | None:
        with self._lock:
            return self._items.get(incident)

    def _write(
        self, before: IncidentRecord | None, after: IncidentRecord, *, claims: Sequence[str] = ()
    ) -> IncidentRecord:
        now = self._clock()
        with self._lock:
            stored = self._items.get(after.id)
            if (stored is None) != (before is None) or (
                stored is not None and before is not None and stored.version != before.version
            ):
                raise VersionConflict(stored)
            kept = stored if stored is not None else after
            after = replace(
                after,
                claimed=kept.claimed | frozenset(claims),
                pending_claims={**kept.pending_claims, **dict.fromkeys(claims, now)},
                notices=kept.notices,
                last_failure=kept.last_failure,
                status_history=kept.status_history,
            )
            self._items[after.id] = after
            return after

    def get(self, incident: str) -> IncidentRecord | None:
        return self._load(incident)

    def list(
        self,
        *,
        status: IncidentStatus | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[IncidentRecord]:
        with self._lock:
            records = list(self._items.values())
        chosen = [
            r
            for r in records
            if (status is None or r.status == status) and (since is None or r.last_seen >= since)
        ]
        chosen.sort(key=lambda r: (r.last_seen, r.id), reverse=True)
        return chosen[:limit]

    def _stored(self, incident: str) -> IncidentRecord:
        stored = self._items.get(incident)
        if stored is None:
            raise IncidentNotFound(incident)
        return stored

    def claim_milestone(self, incident: str, milestone: str) -> bool:
        with self._lock:
            stored = self._stored(incident)
            now = self._clock()
            if milestone in stored.claimed and milestone not in stored.stale_claims(now, self.claim_stale_s):
                return False
            self._items[incident] = replace(
                stored,
                claimed=stored.claimed | {milestone},
                pending_claims={**stored.pending_claims, milestone: now},
            )
            return True

    def release_milestone(
        self, incident: str, milestone: str, *, failed: Sequence[ChannelResult] = ()
    ) -> bool:
        with self._lock:
            stored = self._stored(incident)
            if milestone not in stored.claimed:
                return False
            failure = (
                Notice(milestone, iso_from_epoch(self._clock()), None, tuple(failed)) if failed else None
            )
            self._items[incident] = replace(
                stored,
                claimed=stored.claimed - {milestone},
                pending_claims=_without(stored, milestone),
                last_failure=failure or stored.last_failure,
            )
            return True

    def record_notice(
        self,
        incident: str,
        milestone: str,
        message_id: str | None,
        *,
        channels: Sequence[ChannelResult] = (),
    ) -> None:
        with self._lock:
            stored = self._stored(incident)
            notice = Notice(milestone, iso_from_epoch(self._clock()), message_id, tuple(channels))
            self._items[incident] = replace(
                stored, notices=(*stored.notices, notice), pending_claims=_without(stored, milestone)
            )

    def set_status(
        self,
        incident: str,
        status: IncidentStatus,
        *,
        note: str = "",
        by: str = "",
        expected_status: IncidentStatus | None = None,
    ) -> IncidentRecord:
        with self._lock:
            stored = self._stored(incident)
            if status not in STATUS_TARGETS[stored.status] or (
                expected_status is not None and stored.status != expected_status
            ):
                raise StatusConflict(stored, status)
            stamp = iso_from_epoch(self._clock())
            change = StatusChange(status, stamp, by, cut_note(note))
            updated = replace(
                stored,
                status=status,
                status_history=(*stored.status_history, change),
                version=stored.version + 1,
                updated_at=stamp,
            )
            self._items[incident] = updated
            return updated
