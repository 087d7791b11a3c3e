"""Block records in the store's DynamoDB table (the BlockRepo port).

Opening a block is one transaction: the block item (conditional on its network not
being in force in that set), this hour's counter (conditional on the hourly cap) and
the count of blocks in force (conditional on the total cap). Two replicas deciding the
same block open it once; a cap is never passed, whatever the number of replicas.
Removal is two conditional writes on the item, ``removing`` (before the IP set is
written) and ``removed`` with its audit entry (after), the second in a transaction that
gives the count back.

Blocks in force carry ``mon_pk = "block"`` and ``mon_sk = <expires>#<key>`` in the
table's sparse time index, so the expiry pass reads exactly the expired ones; removed
blocks move to ``mon_pk = "block#removed"`` sorted by removal time and keep their audit
trail until the table's TTL (``SECOPS_EVENT_TTL_DAYS``) takes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from worker.response.keys import (
    ACTIVE_COUNT_KEY,
    ACTIVE_INDEX_PK,
    HOUR_CAP_RETENTION_S,
    REMOVED_INDEX_PK,
    hour_key,
)
from worker.response.records import AuditAction, BlockCaps, BlockOpening, BlockRecord
from worker.store.dynamodb.table import (
    ConditionFailed,
    DynamoTable,
    Item,
    TransactionCancelled,
    Update,
    from_item,
    to_attr,
)
from worker.store.keys import MONITORING_INDEX, sort_time, ttl_after

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import (
        PutTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
        UpdateTypeDef,
    )

log = structlog.get_logger("worker.response")

# A lost race on the block item (another replica opened or closed it meanwhile) is read
# again; a third loss in a row means a storm of decisions on one network: it is in force.
_OPEN_ATTEMPTS = 3
_PAGE = 500
# TransactWriteItems takes 100 items: 99 blocks and the count of blocks in force.
_TRANSACTION_BLOCKS = 99


def _moment(epoch: float) -> str:
    return sort_time(datetime.fromtimestamp(epoch, UTC))


def _index_fields(record: BlockRecord) -> dict[str, Any]:
    if record.in_set:
        return {"mon_pk": ACTIVE_INDEX_PK, "mon_sk": f"{_moment(record.expires_at)}#{record.key}"}
    return {"mon_pk": REMOVED_INDEX_PK, "mon_sk": f"{_moment(record.removed_at or 0)}#{record.key}"}


def _record(item: Item) -> BlockRecord:
    return BlockRecord.from_dict(from_item(item))


class DynamoBlockRepo(DynamoTable):
    """``DynamoBlockRepo(table_name, client=None, ttl_days=30, clock=worker.platform.clock.epoch)``;
    the table is the store's (``secops setup`` creates it)."""

    # ---- writes ---------------------------------------------------------------------------

    def _item(self, record: BlockRecord) -> dict[str, Any]:
        fields = record.to_dict()
        fields.pop("key")
        item = {"pk": record.key, "kind": "block", **fields, **_index_fields(record)}
        if not record.in_set:
            item["ttl"] = ttl_after(record.removed_at or self._clock(), self.ttl_days)
        return {name: to_attr(value) for name, value in item.items() if value is not None}

    def open_block(self, block: BlockRecord, *, caps: BlockCaps) -> BlockOpening:
        for _ in range(_OPEN_ATTEMPTS):
            found = self._get_item(block.key)
            existing = _record(found) if found is not None else None
            if existing is not None and existing.in_set:
                return BlockOpening(existing, opened=False)
            record = block.opened(existing)
            put: PutTypeDef = {"TableName": self.table_name, "Item": self._item(record)}
            if existing is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                put["ConditionExpression"] = "#generation = :generation AND #status = :removed"
                put["ExpressionAttributeNames"] = {"#generation": "generation", "#status": "status"}
                put["ExpressionAttributeValues"] = {
                    ":generation": to_attr(existing.generation),
                    ":removed": to_attr("removed"),
                }
            hour = hour_key(record.created_at)
            try:
                self._transact(
                    [
                        {"Put": put},
                        self._count(
                            hour, +1, cap=caps.per_hour, ttl=int(record.created_at) + HOUR_CAP_RETENTION_S
                        ),
                        self._count(ACTIVE_COUNT_KEY, +1, cap=caps.total),
                    ]
                )
            except _Cancelled as exc:
                if exc.failed(0):
                    continue  # another writer moved the item first: look again
                refused = "hourly_cap" if exc.failed(1) else "total_cap"
                return BlockOpening(None, opened=False, refused=refused)
            log.info(
                "block_recorded", key=record.key, generation=record.generation, expires_at=record.expires_at
            )
            return BlockOpening(record, opened=True)
        found = self._get_item(block.key)
        return BlockOpening(_record(found) if found is not None else None, opened=False)

    def begin_removal(self, key: str, *, generation: int) -> BlockRecord | None:
        update = Update().set("status", "removing")
        condition = (
            f"{update.name('generation')} = {update.value(generation, 'generation')} AND "
            f"{update.name('status')} IN "
            f"({update.value('active', 'active')}, {update.value('removing', 'removing')})"
        )
        try:
            return _record(self._update(key, update, condition=condition))
        except ConditionFailed:
            return None

    def finish_removal(
        self,
        key: str,
        *,
        generation: int,
        action: AuditAction,
        by: str,
        reason: str,
        current: BlockRecord | None = None,
    ) -> BlockRecord | None:
        if current is None or current.key != key:
            found = self._get_item(key)
            if found is None:
                return None
            current = _record(found)
        # The put below is conditional on the generation and status: a `current` that is
        # stale (another remover finished it) makes it fail, never overwrite.
        if not current.in_set or current.generation != generation:
            return None
        closed = current.closed(now=self._clock(), action=action, by=by, reason=reason)
        try:
            self._transact([self._close(closed), self._count(ACTIVE_COUNT_KEY, -1)])
        except _Cancelled:
            return None  # another remover finished it first
        log.info("block_removed", key=key, generation=generation, action=action, by=by)
        return closed

    def finish_removals(
        self, records: Sequence[BlockRecord], *, action: AuditAction, by: str, reason: str
    ) -> list[BlockRecord]:
        """:meth:`finish_removal` of many ``removing`` records in one transaction (a pass
        of the expiry job is then one write, not one per block); if any of them was
        finished by someone else meanwhile, each is done on its own."""
        now = self._clock()
        closed = [r.closed(now=now, action=action, by=by, reason=reason) for r in records if r.in_set]
        done: list[BlockRecord] = []
        for start in range(0, len(closed), _TRANSACTION_BLOCKS):
            chunk = closed[start : start + _TRANSACTION_BLOCKS]
            try:
                self._transact([*map(self._close, chunk), self._count(ACTIVE_COUNT_KEY, -len(chunk))])
                done += chunk
            except _Cancelled:
                for one in chunk:
                    finished = self.finish_removal(
                        one.key, generation=one.generation, action=action, by=by, reason=reason
                    )
                    if finished is not None:
                        done.append(finished)
        return done

    def _close(self, closed: BlockRecord) -> TransactWriteItemTypeDef:
        """The conditional put of a closed record: only over the same generation in force."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": self._item(closed),
                "ConditionExpression": "#generation = :generation AND #status IN (:active, :removing)",
                "ExpressionAttributeNames": {"#generation": "generation", "#status": "status"},
                "ExpressionAttributeValues": {
                    ":generation": to_attr(closed.generation),
                    ":active": to_attr("active"),
                    ":removing": to_attr("removing"),
                },
            }
        }

    def _count(
        self, key: str, delta: int, *, cap: int | None = None, ttl: int | None = None
    ) -> TransactWriteItemTypeDef:
        update = Update().increment("n", delta)
        if ttl is not None:
            update.set("ttl", ttl)
        if cap is not None:
            update.value(cap, "cap")
        entry: UpdateTypeDef = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": update.expression(),
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": update.values,
        }
        if cap is not None:
            entry["ConditionExpression"] = "attribute_not_exists(#n) OR #n < :cap"
        return {"Update": entry}

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> None:
        try:
            with self._translated("transact_write_items"):
                self._client.transact_write_items(TransactItems=items)
        except TransactionCancelled as cancelled:
            raise _Cancelled(cancelled.reasons) from None

    # ---- reads ----------------------------------------------------------------------------

    def get_block(self, key: str) -> BlockRecord | None:
        found = self._get_item(key)
        return _record(found) if found is not None else None

    def blocks_in_force(self) -> list[BlockRecord]:
        return list(self._query(ACTIVE_INDEX_PK))

    def expired_blocks(self, *, now: float, limit: int = 500) -> list[BlockRecord]:
        found: list[BlockRecord] = []
        for record in self._query(ACTIVE_INDEX_PK, until=_moment(now) + "$"):
            found.append(record)
            if len(found) >= limit:
                break
        return found

    def removed_blocks(self, *, since: float) -> list[BlockRecord]:
        return list(self._query(REMOVED_INDEX_PK, since=_moment(since)))

    def _query(
        self, partition: str, *, since: str | None = None, until: str | None = None
    ) -> Iterator[BlockRecord]:
        condition = "mon_pk = :pk"
        values: dict[str, Any] = {":pk": {"S": partition}}
        if since is not None:
            condition += " AND mon_sk >= :since"
            values[":since"] = {"S": since}
        if until is not None:
            condition += " AND mon_sk <= :until"
            values[":until"] = {"S": until}
        params: QueryInputTypeDef = {
            "TableName": self.table_name,
            "IndexName": MONITORING_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": _PAGE,
        }
        while True:
            with self._translated("query"):
                page = self._client.query(**params)
            # The index is eventually consistent: an item read there is read again from
            # the table before anyone acts on it (the expiry pass does).
            for item in page.get("Items", []):
                yield _record(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last


class _Cancelled(Exception):
    """A transaction was cancelled; ``reasons`` holds each item's code, in order."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"
