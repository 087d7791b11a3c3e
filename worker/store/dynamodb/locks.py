"""Slot locks: each scheduled run happens once across every replica.

Every replica derives the same name for the same slot (``lock#monitor#<slot time>``),
and only one conditional put can win it. A lock whose holder died (expired, never
completed) can be taken over; a completed one never runs again.
"""

from __future__ import annotations

import structlog

from worker.store.dynamodb.table import ConditionFailed, DynamoTable, Update, to_attr
from worker.store.keys import LOCK_RETENTION_S

log = structlog.get_logger("worker.store")


class LockOps(DynamoTable):
    """acquire_lock / complete_lock."""

    def acquire_lock(self, name: str, *, owner: str, ttl_s: int) -> bool:
        """Take the lock ``name`` for ``ttl_s`` seconds; False if someone else has it."""
        now = self._clock()
        item = {
            "pk": name,
            "owner": owner,
            "acquired_at": self._now_iso(now),
            "expires_at": now + ttl_s,
            "ttl": int(now + ttl_s + LOCK_RETENTION_S),
        }
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item={k: to_attr(v) for k, v in item.items()},
                ConditionExpression=(
                    "attribute_not_exists(pk) OR (expires_at < :now AND attribute_not_exists(completed_at))"
                ),
                ExpressionAttributeValues={":now": to_attr(now)},
            )
        except ConditionFailed:
            return False
        log.info("lock_acquired", lock=name, owner=owner, ttl_s=ttl_s)
        return True

    def complete_lock(self, name: str, *, owner: str) -> None:
        """Mark the slot done, so no replica runs it again, even after the lock expires."""
        update = Update().set("completed_at", self._now_iso())
        condition = f"{update.name('owner')} = {update.value(owner, 'owner')}"
        try:
            self._update(name, update, condition=condition, returns="NONE")
        except ConditionFailed:
            # Our lock expired and another replica took the slot over; it completes it.
            log.warning("lock_not_ours", lock=name, owner=owner)
