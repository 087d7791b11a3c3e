"""Per-object checkpoints of S3 log files in the events table (``obj#sha256:…`` items).

Each step is one conditional UpdateItem, like the event state machine: a claim wins only
on an absent item, an expired lease or our own lease, and a lost condition hands back the
item that won (``ReturnValuesOnConditionCheckFailure``), so no second read is needed.
"""

from __future__ import annotations

import structlog

from worker.errors import AlreadyInProgress, RetryableError
from worker.store.checkpoints import CHECKPOINT_TTL_DAYS, ObjectCheckpoint, checkpoint_key
from worker.store.dynamodb.table import ConditionFailed, DynamoTable, Update, from_item
from worker.store.keys import ttl_after

log = structlog.get_logger("worker.store")


class CheckpointOps(DynamoTable):
    """claim_object / save_object / get_object (the CheckpointRepo port)."""

    def claim_object(
        self, bucket: str, key: str, version: str, *, owner: str, lease_s: int
    ) -> ObjectCheckpoint:
        now = self._clock()
        fresh = ObjectCheckpoint(bucket, key, version)
        update = Update()
        for attr, value in fresh.to_item().items():
            update.set_if_absent(attr, value)
        update.set("lease_owner", owner).set("lease_expires_at", now + lease_s).increment("attempts")
        update.set_if_absent("started_at", self._now_iso(now))
        update.set("ttl", ttl_after(now, CHECKPOINT_TTL_DAYS))
        condition = (
            "attribute_not_exists(pk) OR (#status <> :complete AND "
            "(#lease_expires_at < :now OR #lease_owner = :owner))"
        )
        update.value("complete", "complete")
        update.value(now, "now")
        update.value(owner, "owner")
        try:
            item = self._update(checkpoint_key(bucket, key, version), update, condition=condition)
        except ConditionFailed as lost:
            old = ObjectCheckpoint.from_item(from_item(lost.old or {}))
            if old.complete:
                return old
            raise AlreadyInProgress(
                f"{bucket}/{key} is being read by another consumer",
                lease_expires_in_s=max(0.0, old.lease_expires_at - now),
            ) from None
        return ObjectCheckpoint.from_item(from_item(item))

    def save_object(
        self,
        checkpoint: ObjectCheckpoint,
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        update, condition = self._save_update(
            checkpoint, owner=owner, lease_s=lease_s, complete=complete, release=release, now=self._clock()
        )
        try:
            item = self._update(checkpoint.pk, update, condition=condition)
        except ConditionFailed:
            log.warning("object_lease_lost", bucket=checkpoint.bucket, key=checkpoint.key)
            raise RetryableError(
                f"lease on {checkpoint.bucket}/{checkpoint.key} lost to another reader", reason="lease_lost"
            ) from None
        return ObjectCheckpoint.from_item(from_item(item))

    def _save_update(
        self,
        checkpoint: ObjectCheckpoint,
        *,
        owner: str,
        lease_s: int,
        complete: bool,
        release: bool,
        now: float,
    ) -> tuple[Update, str]:
        """The UpdateItem of a save and its condition (the lease is still ours)."""
        update = Update()
        for attr, value in checkpoint.to_item().items():
            if attr not in {"bucket", "object_key", "version", "status"}:
                update.set(attr, value)
        if complete:
            update.set("status", "complete").set("completed_at", self._now_iso(now))
            update.remove("lease_owner", "lease_expires_at")
        elif release:
            update.set("lease_expires_at", 0)
        else:
            update.set("lease_expires_at", now + lease_s)
        condition = f"#lease_owner = {update.value(owner, 'owner')}"
        update.name("lease_owner")
        return update, condition

    def get_object(self, bucket: str, key: str, version: str) -> ObjectCheckpoint | None:
        item = self._get_item(checkpoint_key(bucket, key, version))
        return ObjectCheckpoint.from_item(from_item(item)) if item else None
