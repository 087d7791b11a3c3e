"""Pattern records for the monitor job: merged across runs, notified when they grow."""

from __future__ import annotations

import random
import time
from typing import Any

import structlog

from secops_core.contract import Pattern
from worker.errors import RetryableError, WorkerError
from worker.store.dynamodb.table import ConditionFailed, DynamoTable, Item, Update, from_item
from worker.store.keys import PATTERN_UPSERT_ATTEMPTS, ttl_after
from worker.store.records import PatternRecord, merged_pattern, most_notified_for, pattern_adds_events

log = structlog.get_logger("worker.store")


class PatternOps(DynamoTable):
    """Pattern upserts (optimistic, versioned) and their notification claims."""

    def upsert_pattern(self, pattern: Pattern, *, slot: str) -> PatternRecord:
        """Merge one run's pattern into its record and return the merged record.

        ``count`` is the number of distinct event keys ever seen: a window that
        overlaps the last run's does not count the same events twice. The merge is a
        read then a write conditional on the version read, retried on a conflict.
        """
        for attempt in range(PATTERN_UPSERT_ATTEMPTS):
            item = self._get_item(pattern.pattern_key)
            if item is not None and not pattern_adds_events(from_item(item), pattern):
                # Every slot re-reads the whole window; a pattern with nothing new needs
                # no write (and no write that a throttle could fail).
                return _record(item)
            update, condition = self._merge(from_item(item) if item else None, pattern, slot)
            try:
                return _record(self._update(pattern.pattern_key, update, condition=condition))
            except ConditionFailed:
                log.info("pattern_upsert_conflict", key=pattern.pattern_key, attempt=attempt)
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
        raise RetryableError(
            f"pattern {pattern.pattern_key}: too many concurrent updates",
            reason="store_contended",
        )

    def _merge(self, current: dict[str, Any] | None, pattern: Pattern, slot: str) -> tuple[Update, str]:
        now = self._clock()
        merged, trimmed = merged_pattern(current, pattern, slot)
        if trimmed:
            # From here on a very old event seen again would count twice; say so.
            log.warning("pattern_digests_trimmed", key=pattern.pattern_key)
        update = Update()
        for name, value in merged.items():
            update.set(name, value)
        update.set_if_absent("created_at", self._now_iso(now))
        update.set("updated_at", self._now_iso(now)).set("ttl", ttl_after(now, self.ttl_days))
        if not current:
            return update, "attribute_not_exists(pk)"
        read_version = int(current.get("version", 0))
        return update, f"{update.name('version')} = {update.value(read_version, 'read_version')}"

    def claim_pattern_notification(self, key: str, *, count: int, growth_factor: float) -> bool:
        """Claim the right to notify about a pattern at ``count`` events.

        True (the caller must publish) if it was never notified, or has grown to at
        least ``notified_count * growth_factor``; ``notified_count`` becomes ``count``
        in the same conditional write, so only one caller gets True for a growth step.
        """
        most_notified = most_notified_for(count, growth_factor)
        now = self._clock()
        update = Update().set("notified_count", count).set("notified_at", self._now_iso(now))
        notified = update.name("notified_count")
        condition = (
            f"attribute_exists(pk) AND (attribute_not_exists({notified}) OR "
            f"{notified} <= {update.value(most_notified, 'most')})"
        )
        try:
            self._update(key, update, condition=condition, returns="NONE")
        except ConditionFailed as lost:
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
        update = Update()
        if previous:
            update.set("notified_count", previous)
        else:
            update.remove("notified_count", "notified_at")
        notified = update.name("notified_count")
        try:
            self._update(
                key,
                update,
                condition=f"{notified} = {update.value(count, 'claimed')}",
                returns="NONE",
            )
        except ConditionFailed:
            return False
        log.info("pattern_notification_released", key=key, count=count, previous=previous)
        return True

    def get_pattern(self, key: str) -> PatternRecord | None:
        """One pattern record (a strongly consistent read), or None."""
        item = self._get_item(key)
        return _record(item) if item else None


def _record(item: Item) -> PatternRecord:
    return PatternRecord.from_dict(from_item(item))
