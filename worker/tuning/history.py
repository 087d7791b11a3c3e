"""Stored events by event time (the :class:`worker.ports.EventHistory` port).

DynamoDB has no index of every event by time (only the monitored ones are indexed), so
this is a scan of the table filtered to events in the window: a report an operator runs,
never the pipeline. It reads only the attributes a report needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import worker.platform.clock
from worker.store.dynamodb.table import DynamoTable, from_item
from worker.store.keys import monitoring_range
from worker.store.records import EventRecord

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import ScanInputTypeDef

_PAGE = 500
_ATTRIBUTES = ("pk", "status", "event", "analysis", "triage", "incident_id", "suppressed_by", "created_at")


class DynamoEventHistory:
    """``DynamoEventHistory(table_name, client=None)``."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        self.table = DynamoTable(table_name, client=client, clock=clock)

    def iter_events(self, *, since: datetime, until: datetime) -> Iterator[EventRecord]:
        low, high = monitoring_range(since, until)
        names = {f"#a{i}": name for i, name in enumerate(_ATTRIBUTES)}
        names["#sk"] = "event_sk"
        params: ScanInputTypeDef = {
            "TableName": self.table.table_name,
            "FilterExpression": "begins_with(#a0, :evt) AND #sk BETWEEN :low AND :high",
            "ProjectionExpression": ", ".join(f"#a{i}" for i in range(len(_ATTRIBUTES))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":evt": {"S": "evt#"}, ":low": {"S": low}, ":high": {"S": high}},
            "Limit": _PAGE,
        }
        while True:
            with self.table._translated("scan"):
                page = self.table._client.scan(**params)
            for item in page.get("Items", []):
                yield EventRecord.from_dict(from_item(item))
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class RecordsHistory:
    """Events already in hand (tests, the demo's in-memory runs)."""

    def __init__(self, records: Iterable[EventRecord]) -> None:
        self.records = list(records)

    def iter_events(self, *, since: datetime, until: datetime) -> Iterator[EventRecord]:
        for record in self.records:
            if record.event is not None and since <= record.event.timestamp <= until:
                yield record
