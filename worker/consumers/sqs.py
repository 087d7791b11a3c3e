"""The SQS source: long-polled receives, visibility as the lease, batched deletes.

The dispatcher (``worker/consumers/dispatcher.py``) decides what happens to a message;
this adapter only speaks SQS: a receive hides messages for ``visibility_timeout_s``, a
heartbeat pushes that out, an ack is a batch delete, and a release or a retry delay is a
visibility change (docs/architecture.md, "Consumers").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.consumers.source import KIND_ATTRIBUTE, Delivery, ExtendResult, SourceError
from worker.settings import SQS_MAX_BATCH

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.literals import MessageSystemAttributeNameType
    from types_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
    )

log = structlog.get_logger("worker.consumer")

# SQS answers these for a receipt handle that no longer leases the message: it was
# deleted, its visibility ran out (and maybe someone else received it), or it is past
# the 12-hour ceiling. Extending it again can only fail again.
_LEASE_LOST_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "AWS.SimpleQueueService.MessageNotInflight",
        "MessageNotInflight",
        "InvalidParameterValue",
    }
)
_SYSTEM_ATTRIBUTES: list[MessageSystemAttributeNameType] = ["ApproximateReceiveCount", "SentTimestamp"]


class SqsSource:
    """One SQS queue as a ``Source``; the receipt handle is the delivery's handle."""

    max_batch = SQS_MAX_BATCH

    def __init__(self, *, sqs: SQSClient, queue_url: str, visibility_timeout_s: int = 120) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.visibility_timeout_s = visibility_timeout_s

    @property
    def name(self) -> str:
        return self.queue_url

    def receive(self, max_messages: int, wait_s: float) -> list[Delivery]:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(max_messages, self.max_batch),
                WaitTimeSeconds=int(wait_s),
                VisibilityTimeout=self.visibility_timeout_s,
                MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
                MessageAttributeNames=[KIND_ATTRIBUTE],
            )
        except (BotoCoreError, ClientError) as exc:
            raise SourceError(str(exc)) from exc
        deliveries = []
        for raw in response.get("Messages", []):
            attributes: dict[str, str] = dict(raw.get("Attributes", {}).items())
            kinds = raw.get("MessageAttributes", {})
            kind = kinds[KIND_ATTRIBUTE].get("StringValue") if KIND_ATTRIBUTE in kinds else None
            if kind is not None:
                attributes[KIND_ATTRIBUTE] = str(kind)
            deliveries.append(
                Delivery(
                    message_id=raw["MessageId"],
                    handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                    attributes=attributes,
                )
            )
        return deliveries

    def extend(self, messages: Sequence[Delivery]) -> ExtendResult:
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m.handle, "VisibilityTimeout": self.visibility_timeout_s}
            for i, m in enumerate(messages)
        ]
        try:
            response = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            log.warning("heartbeat_failed", error=str(exc), count=len(messages))
            return ExtendResult(extended=0)
        failures = response.get("Failed", [])
        lost = set()
        for failure in failures:
            message = messages[int(failure["Id"])]
            code = str(failure.get("Code", ""))
            if code in _LEASE_LOST_CODES:
                lost.add(message.handle)
                log.warning("heartbeat_lease_lost", message_id=message.message_id, code=code)
            else:
                log.warning("heartbeat_entry_failed", message_id=message.message_id, code=code)
        return ExtendResult(extended=len(messages) - len(failures), lost=frozenset(lost))

    def ack(self, messages: Sequence[Delivery]) -> int:
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m.handle} for i, m in enumerate(messages)
        ]
        try:
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = {int(f["Id"]): f.get("Code") for f in response.get("Failed", [])}
        except (BotoCoreError, ClientError) as exc:
            # The state is durable: a redelivery is acknowledged as a duplicate.
            log.warning("delete_failed", error=str(exc), count=len(messages))
            return 0
        for index, code in failed.items():
            log.warning("delete_entry_failed", message_id=messages[index].message_id, code=code)
        return len(messages) - len(failed)

    def release(self, message: Delivery, delay_s: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message.handle,
                VisibilityTimeout=max(0, delay_s),
            )
        except (BotoCoreError, ClientError) as exc:
            # Not fatal: the message reappears when its visibility timeout runs out.
            log.warning("visibility_change_failed", message_id=message.message_id, error=str(exc))
