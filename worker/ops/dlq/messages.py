"""DLQ messages as the operator tools see them, and the reader both tools share.

Both tools read the DLQ with ReceiveMessage, which hides what it returns for a
visibility timeout. Nothing an operator only looks at may stay hidden, so every message
that is not moved is made visible again (visibility 0) when the pass ends, also when it
ends with an exception or Ctrl-C; a process killed outright leaves them hidden only for
the short timeout of the receive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from worker.ops.message_keys import event_key_of_body
from worker.settings import SQS_MAX_BATCH
from worker.store import EventRecord
from worker.store.dynamodb import EventStore

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef, MessageTypeDef

log = structlog.get_logger("worker.dlq")

# How long an inspected message stays hidden if the process dies before resetting it:
# long enough to read a batch and look its keys up, short enough not to matter.
PEEK_VISIBILITY_S = 30
# A long poll of one second asks every SQS server; a short poll samples a few and may
# answer "empty" while messages exist, which would end a pass early.
RECEIVE_WAIT_S = 1
# Receives in a row that return only messages this pass has seen: the DLQ has been
# read through (what reappears is what timed out while we were holding it).
MAX_STALE_RECEIVES = 3
# The group of messages whose event has no rejection recorded in the store.
NOT_RECORDED = "not recorded"
SAMPLE_KEYS = 3
SAMPLE_REASON_TEXTS = 5

ProgressCallback = Callable[[int, int], None]


# ---- messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class DlqMessage:
    """One message received from the DLQ, with the event key its body maps to."""

    message_id: str
    receipt_handle: str
    body: str
    event_key: str
    # Epoch seconds; a standard queue keeps the original enqueue time after a redrive.
    sent_at: float | None
    # As SQS reports it, so it includes this receive.
    receive_count: int
    message_attributes: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None

    @classmethod
    def from_sqs(cls, raw: MessageTypeDef) -> DlqMessage:
        """Build from one entry of a ReceiveMessage answer."""
        attributes = raw.get("Attributes", {})
        sent = attributes.get("SentTimestamp")
        body = raw.get("Body", "")
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=body,
            event_key=event_key_of_body(body),
            sent_at=int(sent) / 1000 if sent else None,
            receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
            message_attributes=raw.get("MessageAttributes", {}),
            group_id=attributes.get("MessageGroupId"),
        )

    def age_s(self, now_epoch: float) -> float | None:
        """Seconds since the message was first enqueued; None if SQS did not say."""
        return None if self.sent_at is None else max(0.0, now_epoch - self.sent_at)


@dataclass(frozen=True)
class DlqEntry:
    """A DLQ message together with what the store recorded for its event."""

    message: DlqMessage
    record: EventRecord | None

    @property
    def reason(self) -> str:
        """The recorded rejection code, or ``not recorded``: the grouping key."""
        if self.record is not None and self.record.rejection_code:
            return self.record.rejection_code
        return NOT_RECORDED

    @property
    def reason_text(self) -> str | None:
        return self.record.rejection_reason if self.record is not None else None

    @property
    def status(self) -> str:
        return self.record.status if self.record is not None else "absent"

    def to_dict(self, now_epoch: float) -> dict[str, Any]:
        age = self.message.age_s(now_epoch)
        return {
            "message_id": self.message.message_id,
            "event_key": self.message.event_key,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "status": self.status,
            "age_s": None if age is None else round(age, 1),
            "receive_count": self.message.receive_count,
        }


@dataclass
class ReasonGroup:
    """DLQ messages that share a recorded rejection code (or have none)."""

    reason: str
    count: int = 0
    # One code can carry different sentences (which field was bad, say).
    reason_texts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    oldest_age_s: float | None = None
    newest_age_s: float | None = None
    min_receive_count: int | None = None
    max_receive_count: int | None = None
    sample_event_keys: list[str] = field(default_factory=list)

    def add(self, entry: DlqEntry, now_epoch: float) -> None:
        self.count += 1
        if entry.reason_text:
            self.reason_texts[entry.reason_text] += 1
        self.statuses[entry.status] += 1
        age = entry.message.age_s(now_epoch)
        if age is not None:
            self.oldest_age_s = age if self.oldest_age_s is None else max(self.oldest_age_s, age)
            self.newest_age_s = age if self.newest_age_s is None else min(self.newest_age_s, age)
        received = entry.message.receive_count
        if self.min_receive_count is None or received < self.min_receive_count:
            self.min_receive_count = received
        if self.max_receive_count is None or received > self.max_receive_count:
            self.max_receive_count = received
        key = entry.message.event_key
        if len(self.sample_event_keys) < SAMPLE_KEYS and key not in self.sample_event_keys:
            self.sample_event_keys.append(key)

    @property
    def reason_text(self) -> str | None:
        """The most frequent recorded sentence of this group."""
        common = self.reason_texts.most_common(1)
        return common[0][0] if common else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "reason_text": self.reason_text,
            "reason_texts": dict(self.reason_texts.most_common(SAMPLE_REASON_TEXTS)),
            "statuses": dict(self.statuses),
            "oldest_age_s": round1(self.oldest_age_s),
            "newest_age_s": round1(self.newest_age_s),
            "receive_count": {"min": self.min_receive_count, "max": self.max_receive_count},
            "sample_event_keys": self.sample_event_keys,
        }


def group_by_reason(entries: Iterable[DlqEntry], now_epoch: float) -> list[ReasonGroup]:
    """Groups, largest first (then by name, so the order is stable)."""
    groups: dict[str, ReasonGroup] = {}
    for entry in entries:
        groups.setdefault(entry.reason, ReasonGroup(entry.reason)).add(entry, now_epoch)
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason))


# ---- the shared reader ----------------------------------------------------------------


class DlqReader:
    """Receives from the DLQ, looks keys up in the store, and gives messages back."""

    def __init__(self, *, sqs: SQSClient, store: EventStore, dlq_url: str, receive_wait_s: int) -> None:
        self.sqs = sqs
        self.store = store
        self.dlq_url = dlq_url
        self.receive_wait_s = receive_wait_s

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) as SQS approximates them."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )

    def receive(self, count: int, *, visibility_s: int) -> list[DlqMessage]:
        response = self.sqs.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=max(1, min(SQS_MAX_BATCH, count)),
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=self.receive_wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [DlqMessage.from_sqs(raw) for raw in response.get("Messages", [])]

    def entries(self, messages: list[DlqMessage]) -> list[DlqEntry]:
        records = self.store.get_many([m.event_key for m in messages]) if messages else {}
        return [DlqEntry(m, records.get(m.event_key)) for m in messages]

    def release(self, messages: Iterable[DlqMessage]) -> int:
        """Make messages visible again now; returns how many SQS refused (they reappear
        on their own when their timeout ends). Never raises: it runs in ``finally``."""
        pending = list(messages)
        failed = 0
        for start in range(0, len(pending), SQS_MAX_BATCH):
            chunk = pending[start : start + SQS_MAX_BATCH]
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ]
            try:
                response = self.sqs.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=entries)
            except Exception as exc:
                log.warning("dlq_release_failed", count=len(chunk), error=str(exc))
                failed += len(chunk)
                continue
            for failure in response.get("Failed", []):
                failed += 1
                log.warning("dlq_release_refused", code=failure.get("Code"), message=failure.get("Message"))
        return failed


def remember(held: dict[str, DlqMessage], message: DlqMessage) -> None:
    """Keep the newest receipt handle: only that one can change the message's visibility."""
    held[message.message_id] = message


def round1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
