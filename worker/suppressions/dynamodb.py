"""Suppressions in the store's DynamoDB table (docs/architecture.md, "Suppressions").

- ``sup#<id>``: the suppression as JSON (``record``), in the table's sparse time index
  under ``mon_pk = "suppression"`` so every replica lists them with one query;
- ``supcnt#<id>``: its hits and last hit, outside the index;
- ``suphit#<id>#<event key>``: one counted event. A hit is one transaction: the mark,
  put only if absent, and the counter's increment; a redelivered event finds its mark
  and counts nothing.

An ended suppression keeps its item (the audit) until its TTL, ``AUDIT_RETENTION_DAYS``
after it ended or expired.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import worker.platform.clock
from worker.errors import RetryableError
from worker.store.dynamodb.table import (
    ConditionFailed,
    DynamoTable,
    Item,
    TransactionCancelled,
    from_attr,
    to_attr,
)
from worker.store.keys import BATCH_GET_MAX_KEYS, BATCH_GET_MAX_ROUNDS, MONITORING_INDEX, sort_time, ttl_after
from worker.suppressions.keys import (
    AUDIT_RETENTION_DAYS,
    HIT_MARK_DAYS,
    INDEX_PK,
    counter_key,
    hit_key,
    suppression_key,
)
from worker.suppressions.model import EndHow, Suppression
from worker.suppressions.repo import DuplicateSuppression, SuppressionConflict

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import (
        KeysAndAttributesUnionTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )

_LIST_PAGE = 100


def _ttl(suppression: Suppression) -> int | None:
    """Deleted by DynamoDB's TTL this long after it ended; never while it may apply."""
    ends = [t for t in (suppression.expires_at, suppression.ended_at) if t is not None]
    if suppression.status == "active" and suppression.expires_at is None:
        return None
    return ttl_after(min(ends).timestamp(), AUDIT_RETENTION_DAYS) if ends else None


def _record_json(suppression: Suppression) -> str:
    data = suppression.to_dict()
    # Hits live in the counter item; the record holds the decision and its audit.
    data.pop("hits"), data.pop("last_hit_at")
    return json.dumps(data, sort_keys=True)


class DynamoSuppressionRepo:
    """``DynamoSuppressionRepo(table_name, client=None, clock=worker.platform.clock.epoch)``."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        self.table = DynamoTable(table_name, client=client, clock=clock)

    # ---- the decisions ---------------------------------------------------------------

    def create(self, suppression: Suppression) -> Suppression:
        item: dict[str, Any] = {
            "pk": suppression_key(suppression.id),
            "kind": "suppression",
            "record": _record_json(suppression),
            "mon_pk": INDEX_PK,
            "mon_sk": f"{sort_time(suppression.created_at)}#{suppression.id}",
        }
        ttl = _ttl(suppression)
        if ttl is not None:
            item["ttl"] = ttl
        try:
            with self.table._translated("put_item"):
                self.table._client.put_item(
                    TableName=self.table.table_name,
                    Item={k: to_attr(v) for k, v in item.items()},
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ConditionFailed:
            raise DuplicateSuppression(suppression.id) from None
        return suppression

    def get(self, suppression_id: str) -> Suppression | None:
        item = self.table._get_item(suppression_key(suppression_id))
        if item is None:
            return None
        return self._with_hits([_suppression(item)])[0]

    def list(self, *, with_hits: bool = True) -> list[Suppression]:
        """Every kept suppression, oldest first (through the index: eventually consistent)."""
        params: QueryInputTypeDef = {
            "TableName": self.table.table_name,
            "IndexName": MONITORING_INDEX,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "mon_pk"},
            "ExpressionAttributeValues": {":pk": {"S": INDEX_PK}},
            "Limit": _LIST_PAGE,
        }
        found: list[Suppression] = []
        while True:
            with self.table._translated("query"):
                page = self.table._client.query(**params)
            found.extend(_suppression(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return self._with_hits(found) if with_hits else found

    def end(self, suppression_id: str, how: EndHow, *, by: str, at: datetime) -> Suppression | None:
        """Expire or remove it now (kept for the audit); None if there is no such one."""
        item = self.table._get_item(suppression_key(suppression_id))
        if item is None:
            return None
        current = _suppression(item)
        ended = current.ended(how, by=by, at=at)
        names = {"#record": "record", "#ttl": "ttl"}
        values = {":old": item["record"], ":new": to_attr(_record_json(ended))}
        expression = "SET #record = :new"
        ttl = _ttl(ended)
        if ttl is not None:
            values[":ttl"] = to_attr(ttl)
            expression += ", #ttl = :ttl"
        try:
            with self.table._translated("update_item"):
                self.table._client.update_item(
                    TableName=self.table.table_name,
                    Key={"pk": {"S": suppression_key(suppression_id)}},
                    UpdateExpression=expression,
                    ConditionExpression="#record = :old",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except ConditionFailed:
            raise SuppressionConflict(suppression_id) from None
        return self._with_hits([ended])[0]

    # ---- hits ------------------------------------------------------------------------

    def count_hit(self, suppression_id: str, event_key: str, *, at: datetime) -> bool:
        """Count ``event_key`` once for the suppression; False if it was counted before."""
        mark = {
            "pk": {"S": hit_key(suppression_id, event_key)},
            "ttl": to_attr(ttl_after(at.timestamp(), HIT_MARK_DAYS)),
        }
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table.table_name,
                    "Item": mark,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self.table.table_name,
                    "Key": {"pk": {"S": counter_key(suppression_id)}},
                    "UpdateExpression": "SET #hits = if_not_exists(#hits, :zero) + :one, #last = :at",
                    "ExpressionAttributeNames": {"#hits": "hits", "#last": "last_hit_at"},
                    "ExpressionAttributeValues": {
                        ":zero": to_attr(0),
                        ":one": to_attr(1),
                        ":at": to_attr(at.astimezone(UTC).isoformat()),
                    },
                }
            },
        ]
        try:
            with self.table._translated("transact_write_items"):
                self.table._client.transact_write_items(TransactItems=writes)
        except TransactionCancelled as exc:
            reasons = exc.reasons
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            raise RetryableError(
                f"counting a suppression hit was cancelled: {reasons}", reason="store_unavailable"
            ) from exc
        return True

    def _with_hits(self, suppressions: Sequence[Suppression]) -> builtins.list[Suppression]:
        counters = self._counters([s.id for s in suppressions])
        out: builtins.list[Suppression] = []
        for suppression in suppressions:
            counter = counters.get(counter_key(suppression.id), {})
            last = counter.get("last_hit_at")
            out.append(
                replace(
                    suppression,
                    hits=int(counter.get("hits", 0)),
                    last_hit_at=datetime.fromisoformat(last) if last else None,
                )
            )
        return out

    def _counters(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        keys = [counter_key(i) for i in dict.fromkeys(ids)]
        found: dict[str, dict[str, Any]] = {}
        name = self.table.table_name
        for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
            chunk = keys[start : start + BATCH_GET_MAX_KEYS]
            request: Mapping[str, KeysAndAttributesUnionTypeDef] = {
                name: {"Keys": [{"pk": {"S": k}} for k in chunk]}
            }
            for attempt in range(BATCH_GET_MAX_ROUNDS):
                with self.table._translated("batch_get_item"):
                    response = self.table._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(name, []):
                    found[item["pk"]["S"]] = {k: from_attr(v) for k, v in item.items()}
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise RetryableError(
                    "DynamoDB kept keys unprocessed in BatchGetItem", reason="store_unavailable"
                )
        return found


def _suppression(item: Item) -> Suppression:
    return Suppression.from_dict(json.loads(from_attr(item["record"])))
