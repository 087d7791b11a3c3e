"""``secops dlq inspect``: what is in the DLQ, grouped by recorded reason, consuming nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

import worker.platform.clock
from worker.ops.dlq.messages import (
    MAX_STALE_RECEIVES,
    PEEK_VISIBILITY_S,
    RECEIVE_WAIT_S,
    DlqEntry,
    DlqMessage,
    DlqReader,
    ReasonGroup,
    group_by_reason,
    remember,
    round1,
)
from worker.store.dynamodb import EventStore

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

log = structlog.get_logger("worker.dlq")


@dataclass
class InspectionReport:
    """What a look at the DLQ found."""

    dlq_url: str
    approximate_visible: int
    approximate_in_flight: int
    inspected: int
    limit: int
    groups: list[ReasonGroup]
    entries: list[DlqEntry]
    release_failed: int
    now_epoch: float

    @property
    def empty(self) -> bool:
        return self.inspected == 0

    @property
    def limit_reached(self) -> bool:
        """The limit ended the look: the DLQ may hold more than was inspected."""
        return self.inspected >= self.limit

    def to_dict(self) -> dict[str, Any]:
        ages = [a for e in self.entries if (a := e.message.age_s(self.now_epoch)) is not None]
        receives = [e.message.receive_count for e in self.entries]
        return {
            "dlq_url": self.dlq_url,
            "approximate_visible": self.approximate_visible,
            "approximate_in_flight": self.approximate_in_flight,
            "inspected": self.inspected,
            "limit": self.limit,
            "limit_reached": self.limit_reached,
            "oldest_age_s": round1(max(ages)) if ages else None,
            "newest_age_s": round1(min(ages)) if ages else None,
            "receive_count": {"min": min(receives), "max": max(receives)} if receives else None,
            "groups": [g.to_dict() for g in self.groups],
            "messages": [e.to_dict(self.now_epoch) for e in self.entries],
            "release_failed": self.release_failed,
        }


class DlqInspector:
    """Looks at the DLQ without consuming it: every message read is given back."""

    def __init__(
        self,
        *,
        sqs: SQSClient,
        store: EventStore,
        dlq_url: str,
        now: Callable[[], float] = worker.platform.clock.epoch,
        receive_wait_s: int = RECEIVE_WAIT_S,
        visibility_s: int = PEEK_VISIBILITY_S,
    ) -> None:
        self._reader = DlqReader(sqs=sqs, store=store, dlq_url=dlq_url, receive_wait_s=receive_wait_s)
        self._now = now
        self._visibility_s = visibility_s

    def inspect(self, *, limit: int = 1000) -> InspectionReport:
        """Read up to ``limit`` distinct messages, group them by recorded reason, give them back.

        Messages stay hidden while the pass reads on (made visible at once, the same
        ones would come back and the rest would never be seen) and are all made
        visible again before this returns.
        """
        if limit <= 0:
            raise ValueError("limit must be greater than 0")
        visible, in_flight = self._reader.counts()
        held: dict[str, DlqMessage] = {}
        release_failed = 0
        try:
            stale = 0
            while len(held) < limit and stale < MAX_STALE_RECEIVES:
                batch = self._reader.receive(limit - len(held), visibility_s=self._visibility_s)
                if not batch:
                    break
                fresh = [m for m in batch if m.message_id not in held]
                stale = 0 if fresh else stale + 1
                for message in batch:
                    remember(held, message)
        finally:
            release_failed = self._reader.release(held.values())
        messages = list(held.values())
        entries = self._reader.entries(messages)
        now = self._now()
        log.info("dlq_inspected", inspected=len(entries), release_failed=release_failed)
        return InspectionReport(
            dlq_url=self._reader.dlq_url,
            approximate_visible=visible,
            approximate_in_flight=in_flight,
            inspected=len(entries),
            limit=limit,
            groups=group_by_reason(entries, now),
            entries=entries,
            release_failed=release_failed,
            now_epoch=now,
        )
