"""``secops dlq replay``: move DLQ messages back to the source queue, filtered and rate-limited.

Replay is at least once: a message is sent to the source queue first and deleted from
the DLQ only after SQS accepted the copy, so a crash in between leaves it in both
queues (a duplicate) and never in neither (a loss). Duplicates are harmless: the store
recognizes the event by its key, so a completed event is acknowledged without a model
call or a notification, and a rejected one is rejected again with its recorded reason.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

import worker.platform.clock
from worker.ops.dlq.messages import (
    MAX_STALE_RECEIVES,
    RECEIVE_WAIT_S,
    DlqEntry,
    DlqMessage,
    DlqReader,
    ProgressCallback,
    remember,
)
from worker.settings import SQS_MAX_BATCH
from worker.store.dynamodb import EventStore

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

log = structlog.get_logger("worker.dlq")

# A replayed batch is hidden for the time the rate limit needs to send it plus this
# margin for the store lookup and the SQS calls themselves.
REPLAY_VISIBILITY_MARGIN_S = 30
SQS_MAX_VISIBILITY_S = 12 * 3600


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; time through injected seams."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than 0")
        self.rate = rate
        # One second's worth, and at least one token, or a slow rate could never send.
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.clock = clock
        self.sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()

    def acquire(self, tokens: int = 1) -> float:
        """Take ``tokens``, sleeping until they are there; returns the seconds slept."""
        if tokens > self.capacity:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self.capacity}")
        slept = 0.0
        while True:
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            # A float refill can land a hair below a whole token; that is a whole token.
            if self._tokens >= tokens - 1e-9:
                self._tokens = max(0.0, self._tokens - tokens)
                return slept
            wait = (tokens - self._tokens) / self.rate
            self.sleep(wait)
            slept += wait

    @property
    def max_batch(self) -> int:
        """The largest batch one acquire can cover."""
        return max(1, min(SQS_MAX_BATCH, int(self.capacity)))


@dataclass(frozen=True)
class ReplayFilter:
    """Which DLQ messages to replay; an empty filter takes everything."""

    reasons: frozenset[str] = frozenset()
    event_keys: frozenset[str] = frozenset()
    max_age_s: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.reasons or self.event_keys or self.max_age_s is not None)

    def matches(self, entry: DlqEntry, now_epoch: float) -> bool:
        if self.reasons and entry.reason not in self.reasons:
            return False
        if self.event_keys and entry.message.event_key not in self.event_keys:
            return False
        if self.max_age_s is not None:
            age = entry.message.age_s(now_epoch)
            if age is None or age > self.max_age_s:
                return False
        return True


@dataclass
class ReplaySummary:
    """What a replay did (or, with ``dry_run``, would do)."""

    mode: str  # "move", "dry-run" or "native"
    scanned: int = 0
    matched: int = 0
    moved: int = 0
    # Sent to the source but still in the DLQ (its delete failed): a duplicate, not a loss.
    duplicated: int = 0
    # SQS refused the copy; the message stays in the DLQ.
    failed: int = 0
    skipped: int = 0
    limit_reached: bool = False
    release_failed: int = 0
    elapsed_s: float = 0.0
    by_reason: Counter[str] = field(default_factory=Counter)
    event_keys: list[str] = field(default_factory=list)
    native_status: str | None = None
    native_failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "scanned": self.scanned,
            "matched": self.matched,
            "moved": self.moved,
            "duplicated": self.duplicated,
            "failed": self.failed,
            "skipped": self.skipped,
            "limit_reached": self.limit_reached,
            "release_failed": self.release_failed,
            "elapsed_s": round(self.elapsed_s, 2),
            "by_reason": dict(self.by_reason),
            "event_keys": self.event_keys,
            "native_status": self.native_status,
            "native_failure": self.native_failure,
        }


class DlqReplayer:
    """Moves DLQ messages back to the source queue, at least once and rate-limited."""

    def __init__(
        self,
        *,
        sqs: SQSClient,
        store: EventStore,
        dlq_url: str,
        source_url: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = worker.platform.clock.epoch,
        receive_wait_s: int = RECEIVE_WAIT_S,
    ) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.source_url = source_url
        self.reader = DlqReader(sqs=sqs, store=store, dlq_url=dlq_url, receive_wait_s=receive_wait_s)
        self.clock = clock
        self.sleep = sleep
        self._now = now

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) of the DLQ, for a progress total."""
        return self.reader.counts()

    def replay(
        self,
        *,
        rate: float,
        limit: int | None = None,
        where: ReplayFilter | None = None,
        dry_run: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> ReplaySummary:
        """Receive, send to the source, then delete from the DLQ, batch by batch.

        Messages that do not match ``where`` (and, with ``dry_run``, all of them) are
        held until the pass ends and then made visible again: given back at once, SQS
        would hand the same ones over again and the pass would never see the rest.
        """
        if limit is not None and limit <= 0:
            raise ValueError("limit must be greater than 0")
        where = where or ReplayFilter()
        bucket = TokenBucket(rate, clock=self.clock, sleep=self.sleep)
        summary = ReplaySummary(mode="dry-run" if dry_run else "move")
        started = self.clock()
        held: dict[str, DlqMessage] = {}
        # Received and matched, not yet deleted: given back too if the pass dies.
        in_flight: dict[str, DlqMessage] = {}
        done: set[str] = set()
        try:
            stale = 0
            while stale < MAX_STALE_RECEIVES:
                remaining = None if limit is None else limit - summary.matched
                if remaining == 0:
                    summary.limit_reached = True
                    break
                want = bucket.max_batch if remaining is None else min(bucket.max_batch, remaining)
                visibility = min(SQS_MAX_VISIBILITY_S, math.ceil(want / rate) + REPLAY_VISIBILITY_MARGIN_S)
                batch = self.reader.receive(want, visibility_s=visibility)
                if not batch:
                    break
                fresh = [m for m in batch if m.message_id not in held and m.message_id not in done]
                for message in batch:
                    if message.message_id in held:
                        remember(held, message)
                stale = 0 if fresh else stale + 1
                summary.scanned += len(fresh)
                now = self._now()
                chosen: list[DlqEntry] = []
                for entry in self.reader.entries(fresh):
                    if where.matches(entry, now):
                        chosen.append(entry)
                    else:
                        summary.skipped += 1
                        remember(held, entry.message)
                summary.matched += len(chosen)
                for entry in chosen:
                    summary.by_reason[entry.reason] += 1
                    summary.event_keys.append(entry.message.event_key)
                if dry_run:
                    for entry in chosen:
                        remember(held, entry.message)
                elif chosen:
                    for entry in chosen:
                        in_flight[entry.message.message_id] = entry.message
                    bucket.acquire(len(chosen))
                    self._move([e.message for e in chosen], summary, held, in_flight, done)
                if on_progress is not None:
                    on_progress(summary.moved if not dry_run else summary.matched, summary.scanned)
        finally:
            summary.release_failed = self.reader.release([*held.values(), *in_flight.values()])
            summary.elapsed_s = self.clock() - started
        log.info("dlq_replayed", **{k: v for k, v in summary.to_dict().items() if k != "event_keys"})
        return summary

    def _move(
        self,
        messages: list[DlqMessage],
        summary: ReplaySummary,
        held: dict[str, DlqMessage],
        in_flight: dict[str, DlqMessage],
        done: set[str],
    ) -> None:
        """Send a batch to the source, then delete from the DLQ what SQS accepted."""
        entries = [self._send_entry(str(i), m) for i, m in enumerate(messages)]
        response = self.sqs.send_message_batch(QueueUrl=self.source_url, Entries=entries)
        sent = [messages[int(s["Id"])] for s in response.get("Successful", [])]
        for failure in response.get("Failed", []):
            message = messages[int(failure["Id"])]
            log.warning(
                "dlq_replay_send_failed",
                message_id=message.message_id,
                code=failure.get("Code"),
                error=failure.get("Message"),
            )
            summary.failed += 1
            # Left in the DLQ and visible again at the end; not retried in this pass.
            in_flight.pop(message.message_id, None)
            remember(held, message)
        if not sent:
            return
        # The copy is in the source queue now. Only after that may the DLQ's go: a crash
        # here duplicates the message, it never loses it.
        deletes: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(sent)
        ]
        result = self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=deletes)
        refused = {int(f["Id"]) for f in result.get("Failed", [])}
        for i, message in enumerate(sent):
            in_flight.pop(message.message_id, None)
            done.add(message.message_id)
            if i in refused:
                summary.duplicated += 1
                log.warning("dlq_replay_delete_failed", message_id=message.message_id)
            else:
                summary.moved += 1

    def _send_entry(self, entry_id: str, message: DlqMessage) -> SendMessageBatchRequestEntryTypeDef:
        entry: SendMessageBatchRequestEntryTypeDef = {"Id": entry_id, "MessageBody": message.body}
        attributes = sendable_attributes(message.message_attributes)
        if attributes:
            entry["MessageAttributes"] = attributes
        if self.source_url.endswith(".fifo"):
            entry["MessageGroupId"] = message.group_id or "dlq-replay"
            # The DLQ's MessageId: a second replay of the same copy within SQS's
            # five-minute window is deduplicated instead of doubled.
            entry["MessageDeduplicationId"] = message.message_id
        return entry

    def queue_arn(self, url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])


def sendable_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Message attributes as SendMessage takes them back.

    ReceiveMessage may add the reserved, unimplemented list fields; sending those back
    is refused, so only the type and the value travel.
    """
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        kept = {k: value[k] for k in ("DataType", "StringValue", "BinaryValue") if k in value}
        if "DataType" in kept:
            out[name] = kept
    return out
