"""The storage operations of :class:`worker.store.steps.StoreSteps` in DynamoDB: each is
one request, a change and its condition rendered as one UpdateItem's expressions, so
every step of the state machine is one conditional write, with
``ReturnValuesOnConditionCheckFailure`` handing back the item that won.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from worker.errors import StoreUnavailable
from worker.store.dynamodb.table import ConditionFailed, DynamoTable, Update, from_item, to_attr
from worker.store.keys import BATCH_GET_MAX_KEYS, BATCH_GET_MAX_ROUNDS, MONITORING_INDEX, MONITORING_PK
from worker.store.steps import StoreSteps
from worker.store.writes import (
    Absent,
    AllOf,
    AnyOf,
    Change,
    Compare,
    Condition,
    ConditionLost,
    Exists,
    Item,
    Missing,
    OneOf,
)

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import (
        KeysAndAttributesUnionTypeDef,
        PutItemInputTypeDef,
        QueryInputTypeDef,
    )


class DynamoStorage(DynamoTable, StoreSteps):
    """Events, patterns, slot locks and saved analyses in the one table."""

    def _write(
        self, key: str, change: Change, *, when: Condition | None = None, read_back: bool = True
    ) -> Item:
        update = _update(change)
        condition = _expression(when, update) if when is not None else None
        try:
            item = self._update(key, update, condition=condition, returns="ALL_NEW" if read_back else "NONE")
        except ConditionFailed as lost:
            raise ConditionLost(from_item(lost.old) if lost.old else None) from None
        return from_item(item)

    def _put(self, item: Item, *, when: Condition | None = None) -> None:
        params: PutItemInputTypeDef = {
            "TableName": self.table_name,
            "Item": {k: to_attr(v) for k, v in item.items() if v is not None},
        }
        if when is not None:
            expressions = Update()
            params["ConditionExpression"] = _expression(when, expressions)
            if expressions.names:
                params["ExpressionAttributeNames"] = expressions.names
            if expressions.values:
                params["ExpressionAttributeValues"] = expressions.values
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            with self._translated("put_item"):
                self._client.put_item(**params)
        except ConditionFailed as lost:
            raise ConditionLost(from_item(lost.old) if lost.old else None) from None

    def _read(self, key: str, *, consistent: bool = True) -> Item | None:
        with self._translated("get_item"):
            response = self._client.get_item(
                TableName=self.table_name, Key={"pk": {"S": key}}, ConsistentRead=consistent
            )
        item = response.get("Item")
        return from_item(item) if item else None

    def _read_many(self, keys: list[str]) -> list[Item]:
        """In BatchGetItem chunks of 100, asking again for the keys it left unprocessed."""
        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
            chunk = keys[start : start + BATCH_GET_MAX_KEYS]
            request: Mapping[str, KeysAndAttributesUnionTypeDef] = {
                self.table_name: {"Keys": [{"pk": {"S": k}} for k in chunk], "ConsistentRead": True}
            }
            for attempt in range(BATCH_GET_MAX_ROUNDS):
                with self._translated("batch_get_item"):
                    response = self._client.batch_get_item(RequestItems=request)
                found.extend(
                    from_item(item) for item in response.get("Responses", {}).get(self.table_name, [])
                )
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                # Unprocessed keys mean throttling: back off before asking again.
                time.sleep(0.05 * 2**attempt)
            else:
                raise StoreUnavailable("DynamoDB kept keys unprocessed in BatchGetItem")
        return found

    def _read_monitoring(self, low: str, high: str, *, page_size: int) -> Iterator[Item]:
        """The sparse index, page by page."""
        params: QueryInputTypeDef = {
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
            with self._translated("query"):
                page = self._client.query(**params)
            for item in page.get("Items", []):
                yield from_item(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last


def _update(change: Change) -> Update:
    update = Update()
    for name, value in change.set.items():
        update.set(name, value)
    for name, value in change.set_if_absent.items():
        update.set_if_absent(name, value)
    for name, (source, default) in change.copy.items():
        # Right-hand sides read the item as it was.
        expression = update.name(source)
        if default is not None:
            expression = f"if_not_exists({expression}, {update.value(default)})"
        update.set_expr(name, expression)
    for name, by in change.increment.items():
        update.increment(name, by)
    for name, entries in change.append.items():
        update.append(name, *entries)
    for name, members in change.add.items():
        update.add_to_set(name, *members)
    if change.remove:
        update.remove(*change.remove)
    return update


def _expression(condition: Condition, update: Update) -> str:
    """A condition as a ConditionExpression, its names and values in ``update``'s."""
    if isinstance(condition, Absent):
        return f"attribute_not_exists({update.name('pk')})"
    if isinstance(condition, Exists):
        return f"attribute_exists({update.name('pk')})"
    if isinstance(condition, Missing):
        return f"attribute_not_exists({update.name(condition.name)})"
    if isinstance(condition, Compare):
        return f"{update.name(condition.name)} {condition.op} {update.value(condition.value)}"
    if isinstance(condition, OneOf):
        values = ", ".join(update.value(v) for v in condition.values)
        return f"{update.name(condition.name)} IN ({values})"
    if isinstance(condition, AnyOf | AllOf):
        joint = " OR " if isinstance(condition, AnyOf) else " AND "
        return "(" + joint.join(_expression(part, update) for part in condition.parts) + ")"
    raise TypeError(f"no expression for {condition!r}")
