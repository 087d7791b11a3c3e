"""Per-window aggregates in the events table (``agg#…`` items), saved with the checkpoint.

One TransactWriteItems carries the object's checkpoint (conditioned on our lease, as
``save_object``) and a Put of each changed shard of the segment's window counts, so the counts and the
progress they describe are stored together or not at all (docs/architecture.md,
"Relevance"). The items of one hour share ``mon_pk = agg#<hour>`` in the sparse index,
so a reader queries an hour at a time instead of scanning.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from worker.errors import RetryableError, StoreUnavailable
from worker.store.aggregates import (
    AGGREGATE_INDEX_PREFIX,
    MAX_COUNTS_PER_SAVE,
    WindowCount,
    WindowShard,
    hours_between,
    merge_counts,
)
from worker.store.checkpoints import ObjectCheckpoint
from worker.store.dynamodb.checkpoints import CheckpointOps
from worker.store.dynamodb.table import TransactionCancelled, from_item, to_attr
from worker.store.keys import MONITORING_INDEX, ttl_after

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import QueryInputTypeDef, TransactWriteItemTypeDef

log = structlog.get_logger("worker.store")


class WindowCountOps(CheckpointOps):
    """save_object_counted / window_counts (the WindowCountRepo port)."""

    def save_object_counted(
        self,
        checkpoint: ObjectCheckpoint,
        shards: Sequence[WindowShard],
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        if not shards:
            return self.save_object(
                checkpoint, owner=owner, lease_s=lease_s, complete=complete, release=release
            )
        if len(shards) > MAX_COUNTS_PER_SAVE:
            raise ValueError(f"at most {MAX_COUNTS_PER_SAVE} shards per save, got {len(shards)}")
        now = self._clock()
        update, condition = self._save_update(
            checkpoint, owner=owner, lease_s=lease_s, complete=complete, release=release, now=now
        )
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": {"S": checkpoint.pk}},
                    "ConditionExpression": condition,
                    "UpdateExpression": update.expression(),
                    "ExpressionAttributeNames": update.names,
                    "ExpressionAttributeValues": update.values,
                }
            }
        ]
        ttl = ttl_after(now, self.ttl_days)
        for shard in shards:
            item = {"pk": shard.pk, **_index(shard), **shard.to_item(), "ttl": ttl}
            actions.append(
                {"Put": {"TableName": self.table_name, "Item": {k: to_attr(v) for k, v in item.items()}}}
            )
        try:
            with self._translated("transact_write_items"):
                self._client.transact_write_items(TransactItems=actions)
        except TransactionCancelled as cancelled:
            if cancelled.reasons and cancelled.reasons[0] == "ConditionalCheckFailed":
                log.warning("object_lease_lost", bucket=checkpoint.bucket, key=checkpoint.key)
                raise RetryableError(
                    f"lease on {checkpoint.bucket}/{checkpoint.key} lost to another reader",
                    reason="lease_lost",
                ) from None
            raise StoreUnavailable(
                f"DynamoDB TransactWriteItems was cancelled: {cancelled.reasons}"
            ) from None
        return checkpoint.saved(owner=owner, lease_s=lease_s, complete=complete, release=release, now=now)

    def window_counts(self, *, since: datetime, until: datetime) -> list[WindowCount]:
        return merge_counts(
            window
            for hour in hours_between(since, until)
            for item in self._hour_items(hour)
            for window in WindowShard.from_item(from_item(item)).windows
        )

    def _hour_items(self, hour: str) -> Iterator[dict[str, Any]]:
        params: QueryInputTypeDef = {
            "TableName": self.table_name,
            "IndexName": MONITORING_INDEX,
            "KeyConditionExpression": "mon_pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": AGGREGATE_INDEX_PREFIX + hour}},
        }
        while True:
            with self._translated("query"):
                page = self._client.query(**params)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last


def _index(shard: WindowShard) -> dict[str, str]:
    """Where an item sits in the sparse index: its hour, then its segment and shard."""
    return {"mon_pk": AGGREGATE_INDEX_PREFIX + shard.hour, "mon_sk": shard.pk}
