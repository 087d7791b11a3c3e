"""DynamoDB plumbing shared by the DynamoDB backend: attribute (de)serialization, an update
expression builder, the one place botocore errors become worker errors (a lost condition,
StoreUnavailable, StoreError, ConfigurationError: nothing botocore's leaves), and the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import structlog
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

import worker.platform.aws
import worker.platform.clock
from worker.errors import ConfigurationError, StoreError, StoreUnavailable
from worker.store.keys import MONITORING_INDEX, iso_from_epoch

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.literals import ReturnValueType
    from types_boto3_dynamodb.type_defs import AttributeDefinitionTypeDef, UpdateItemInputTypeDef

log = structlog.get_logger("worker.store")

Item = dict[str, Any]  # an item in DynamoDB's wire format: {"attr": {"S": "..."}}

# Codes that say "not now": capacity, throttling, a server hiccup, a transaction in
# the way. botocore already retried them; the message goes back to the queue.
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)
# Named for the reader; the two base classes catch their siblings too (proxy errors,
# a connection closed mid-response).
_NETWORK_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    BotoConnectionError,
    HTTPClientError,
)


class ConditionFailed(Exception):
    """A conditional write lost; ``old`` is the item as it was (None if absent)."""

    def __init__(self, old: Item | None) -> None:
        super().__init__("conditional check failed")
        self.old = old


class TransactionCancelled(Exception):
    """A TransactWriteItems was cancelled; ``reasons`` are the code of each item's
    cancellation, in order (``"None"`` for an item that was not the cause)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


# ---- attribute values ----------------------------------------------------------------
# boto3's own (de)serializers do the wire format; around them, numbers cross as
# Decimal (boto3 refuses floats, which lose precision) and come back as int or float,
# binary comes back as bytes and sets as sorted tuples, the shapes the records expect.

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_wire(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): _to_wire(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_to_wire(v) for v in value]
    return value


def _from_wire(value: Any) -> Any:
    if isinstance(value, Decimal):
        # "5" is an int and "5.0" a float, as they were written.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, Binary):
        return value.value  # type: ignore[attr-defined]  # the stubs omit Binary.value
    if isinstance(value, dict):
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, set | frozenset):
        return tuple(sorted(_from_wire(v) for v in value))
    return value


def to_attr(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value."""
    # The stubs' TypedDict of one attribute value, read as the plain dict the callers build on.
    return cast("dict[str, Any]", _serializer.serialize(_to_wire(value)))


def from_attr(attr: Mapping[str, Any]) -> Any:
    """The inverse of :func:`to_attr`; string sets come back as sorted tuples."""
    return _from_wire(_deserializer.deserialize(cast("Any", dict(attr))))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A whole item as plain Python values."""
    return {name: from_attr(attr) for name, attr in item.items()}


# ---- expressions ---------------------------------------------------------------------


class Update:
    """Builds one UpdateItem's expressions; every attribute goes through a name
    placeholder because ``status``, ``ttl`` and friends are reserved words.
    """

    def __init__(self) -> None:
        self._set: list[str] = []
        self._remove: list[str] = []
        self._add: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        placeholder = f"#{attr}"
        self.names[placeholder] = attr
        return placeholder

    def value(self, value: Any, label: str | None = None) -> str:
        placeholder = f":{label}" if label else f":v{len(self.values)}"
        self.values[placeholder] = to_attr(value)
        return placeholder

    def set(self, attr: str, value: Any) -> Update:
        self._set.append(f"{self.name(attr)} = {self.value(value)}")
        return self

    def set_if_absent(self, attr: str, value: Any) -> Update:
        name = self.name(attr)
        self._set.append(f"{name} = if_not_exists({name}, {self.value(value)})")
        return self

    def set_expr(self, attr: str, expression: str) -> Update:
        """SET with a raw right-hand side (another attribute, arithmetic)."""
        self._set.append(f"{self.name(attr)} = {expression}")
        return self

    def increment(self, attr: str, by: int = 1) -> Update:
        name = self.name(attr)
        self._set.append(f"{name} = if_not_exists({name}, {self.value(0)}) + {self.value(by)}")
        return self

    def append(self, attr: str, *entries: Any) -> Update:
        name = self.name(attr)
        self._set.append(
            f"{name} = list_append(if_not_exists({name}, {self.value([])}), {self.value(list(entries))})"
        )
        return self

    def add_to_set(self, attr: str, *members: str) -> Update:
        self._add.append(f"{self.name(attr)} {self.value(set(members))}")
        return self

    def remove(self, *attrs: str) -> Update:
        self._remove.extend(self.name(a) for a in attrs)
        return self

    def expression(self) -> str:
        """The UpdateExpression; its placeholders are in ``names`` and ``values``."""
        clauses = []
        if self._set:
            clauses.append("SET " + ", ".join(self._set))
        if self._remove:
            clauses.append("REMOVE " + ", ".join(self._remove))
        if self._add:
            clauses.append("ADD " + ", ".join(self._add))
        return " ".join(clauses)


# ---- the table -----------------------------------------------------------------------


class DynamoTable:
    """The client, the table and the clock, and the one place errors are mapped."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        ttl_days: int = 30,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        self.table_name = table_name
        self.ttl_days = ttl_days
        self._client = client if client is not None else worker.platform.aws.client("dynamodb")
        self._clock = clock

    def _now_iso(self, now: float | None = None) -> str:
        return iso_from_epoch(self._clock() if now is None else now)

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        """Around one DynamoDB call: its failures become the worker's error family."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(cast("dict[str, Any] | None", exc.response.get("Item"))) from None
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                raise TransactionCancelled([str(r.get("Code", "None")) for r in reasons]) from exc
            if code == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"DynamoDB table {self.table_name!r} does not exist (or is not reachable "
                    "with these credentials and region): run `secops setup` to create it",
                    reason="store_misconfigured",
                ) from exc
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            failed = f"DynamoDB {operation} failed: {code}: {error.get('Message', '')}"
            if code in _RETRYABLE_CODES or status >= 500:
                log.warning("store_unavailable", operation=operation, code=code)
                raise StoreUnavailable(failed) from exc
            raise StoreError(failed) from exc
        except _NETWORK_ERRORS as exc:
            log.warning("store_unreachable", operation=operation, error=str(exc))
            raise StoreUnavailable(f"DynamoDB {operation} failed: {exc}") from exc

    def _update(
        self, key: str, update: Update, *, condition: str | None = None, returns: ReturnValueType = "ALL_NEW"
    ) -> Item:
        """One conditional UpdateItem; a lost condition raises :class:`ConditionFailed`."""
        params: UpdateItemInputTypeDef = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": key}},
            "ReturnValues": returns,
            "UpdateExpression": update.expression(),
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": update.values,
        }
        if condition:
            params["ConditionExpression"] = condition
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with self._translated("update_item"):
            response = self._client.update_item(**params)
        return response.get("Attributes", {})

    def _get_item(self, key: str) -> Item | None:
        with self._translated("get_item"):
            response = self._client.get_item(
                TableName=self.table_name, Key={"pk": {"S": key}}, ConsistentRead=True
            )
        return response.get("Item")

    def create_table(self) -> bool:
        """Create the table if it is absent, wait until it is ACTIVE, enable TTL.

        Idempotent (and safe when two replicas run setup at once); True if it created it.
        """
        created = False
        try:
            self._client.describe_table(TableName=self.table_name)
        except self._client.exceptions.ResourceNotFoundException:
            created = self._create()
        self._client.get_waiter("table_exists").wait(
            TableName=self.table_name, WaiterConfig={"Delay": 2, "MaxAttempts": 90}
        )
        self._check_index()
        self._enable_ttl()
        return created

    def _create(self) -> bool:
        strings: list[AttributeDefinitionTypeDef] = [
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "mon_pk", "mon_sk")
        ]
        try:
            self._client.create_table(
                TableName=self.table_name,
                AttributeDefinitions=strings,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": MONITORING_INDEX,
                        "KeySchema": [
                            {"AttributeName": "mon_pk", "KeyType": "HASH"},
                            {"AttributeName": "mon_sk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            )
        except self._client.exceptions.ResourceInUseException:
            return False  # another replica's setup won the race
        log.info("table_created", table=self.table_name)
        return True

    def _check_index(self) -> None:
        table = self._client.describe_table(TableName=self.table_name)["Table"]
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        if MONITORING_INDEX not in indexes:
            raise ConfigurationError(
                f"DynamoDB table {self.table_name!r} exists without the {MONITORING_INDEX!r} "
                "index: it was not created by `secops setup`; use another table name",
                reason="store_misconfigured",
            )

    def _enable_ttl(self) -> None:
        described = self._client.describe_time_to_live(TableName=self.table_name)
        status = described.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if status in ("ENABLED", "ENABLING"):
            return
        self._client.update_time_to_live(
            TableName=self.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
