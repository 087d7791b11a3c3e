"""Pattern records for the monitor job: merged across runs, notified when they grow."""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from math import floor
from typing import Any

import structlog

from secops_core.contract import Pattern
from worker.errors import RetryableError, WorkerError
from worker.store._dynamo import ConditionFailed, DynamoTable, Item, Update, from_item
from worker.store.keys import (
    MAX_PATTERN_DIGESTS,
    MAX_PATTERN_EVENT_KEYS,
    PATTERN_DIGEST_BYTES,
    PATTERN_UPSERT_ATTEMPTS,
    sort_time,
    ttl_after,
)

log = structlog.get_logger("worker.store")


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
    def from_item(cls, item: Item) -> PatternRecord:
        data = from_item(item)
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


def _digest(event_key: str) -> bytes:
    return hashlib.blake2b(event_key.encode(), digest_size=PATTERN_DIGEST_BYTES).digest()


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
            if item is not None and not self._adds_events(from_item(item), pattern):
                # Every slot re-reads the whole window; a pattern with nothing new needs
                # no write (and no write that a throttle could fail).
                return PatternRecord.from_item(item)
            update, condition = self._merge(from_item(item) if item else None, pattern, slot)
            try:
                return PatternRecord.from_item(self._update(pattern.pattern_key, update, condition=condition))
            except ConditionFailed:
                log.info("pattern_upsert_conflict", key=pattern.pattern_key, attempt=attempt)
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
        raise RetryableError(
            f"pattern {pattern.pattern_key}: too many concurrent updates",
            reason="store_contended",
        )

    @staticmethod
    def _adds_events(current: dict[str, Any], pattern: Pattern) -> bool:
        stored: bytes = current.get("seen", b"")
        seen = {stored[i : i + PATTERN_DIGEST_BYTES] for i in range(0, len(stored), PATTERN_DIGEST_BYTES)}
        return any(_digest(key) not in seen for key in pattern.event_keys)

    def _merge(self, current: dict[str, Any] | None, pattern: Pattern, slot: str) -> tuple[Update, str]:
        now = self._clock()
        current = current or {}
        stored: bytes = current.get("seen", b"")
        digests = [stored[i : i + PATTERN_DIGEST_BYTES] for i in range(0, len(stored), PATTERN_DIGEST_BYTES)]
        seen = set(digests)
        new_keys = []
        for key in dict.fromkeys(pattern.event_keys):
            digest = _digest(key)
            if digest not in seen:
                seen.add(digest)
                digests.append(digest)
                new_keys.append(key)
        if len(digests) > MAX_PATTERN_DIGESTS:
            # From here on a very old event seen again would count twice; say so.
            log.warning("pattern_digests_trimmed", key=pattern.pattern_key, seen=len(digests))
            digests = digests[-MAX_PATTERN_DIGESTS:]
        kept = list(current.get("event_keys", ()))
        kept_set = set(kept)
        kept += [k for k in dict.fromkeys(pattern.event_keys) if k not in kept_set]
        first = sort_time(pattern.first_seen)
        last = sort_time(pattern.last_seen)
        version = int(current.get("version", 0))

        update = Update().set("source_ip", pattern.source_ip)
        update.set("normalized_uri", pattern.normalized_uri)
        update.set("count", int(current.get("count", 0)) + len(new_keys))
        update.set("first_seen", min(first, current.get("first_seen", first)))
        update.set("last_seen", max(last, current.get("last_seen", last)))
        update.set("rules", sorted(set(current.get("rules", ())) | set(pattern.rules)))
        update.set("event_keys", kept[-MAX_PATTERN_EVENT_KEYS:])
        update.set("seen", b"".join(digests))
        update.set("max_severity", max(pattern.max_severity, int(current.get("max_severity", 0))))
        # The latest run's view of the threshold and its narrative.
        update.set("threshold", pattern.threshold).set("threshold_met", pattern.threshold_met)
        update.set("narrative", pattern.narrative).set("last_slot", slot)
        update.set("version", version + 1)
        update.set_if_absent("created_at", self._now_iso(now))
        update.set("updated_at", self._now_iso(now)).set("ttl", ttl_after(now, self.ttl_days))
        if not current:
            return update, "attribute_not_exists(pk)"
        return update, f"{update.name('version')} = {update.value(version, 'read_version')}"

    def claim_pattern_notification(self, key: str, *, count: int, growth_factor: float) -> bool:
        """Claim the right to notify about a pattern at ``count`` events.

        True (the caller must publish) if it was never notified, or has grown to at
        least ``notified_count * growth_factor``; ``notified_count`` becomes ``count``
        in the same conditional write, so only one caller gets True for a growth step.
        """
        if growth_factor <= 1:
            raise ValueError("growth_factor must be above 1, or the same count notifies again")
        # count >= n * g  <=>  n <= count / g  <=>  n <= floor(count / g) for integer n;
        # DynamoDB cannot multiply in a condition, and Fraction keeps 1.1 exact.
        most_notified = floor(Fraction(count) / Fraction(str(growth_factor)))
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
        return PatternRecord.from_item(item) if item else None
