"""Inspect and replay the dead-letter queue (``secops dlq inspect|replay``).

Both read the DLQ with ReceiveMessage, which hides what it returns for a visibility
timeout. Nothing an operator only looks at may stay hidden, so every message that is
not moved is made visible again (visibility 0) when the pass ends, also when it ends
with an exception or Ctrl-C; a process killed outright leaves them hidden only for the
short timeout of the receive.

Replay is at least once: a message is sent to the source queue first and deleted from
the DLQ only after SQS accepted the copy, so a crash in between leaves it in both
queues (a duplicate) and never in neither (a loss). Duplicates are harmless: the store
recognizes the event by its key, so a completed event is acknowledged without a model
call or a notification, and a rejected one is rejected again with its recorded reason.

``--native`` hands the whole DLQ to SQS's own redrive (StartMessageMoveTask), which
moves everything and cannot filter.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import ClientError

import worker.clock
from worker.message_keys import event_key_of_body
from worker.settings import SQS_MAX_BATCH as SQS_BATCH
from worker.store import EventRecord, EventStore

log = structlog.get_logger("worker.dlq")

# How long an inspected message stays hidden if the process dies before resetting it:
# long enough to read a batch and look its keys up, short enough not to matter.
PEEK_VISIBILITY_S = 30
# A replayed batch is hidden for the time the rate limit needs to send it plus this
# margin for the store lookup and the SQS calls themselves.
REPLAY_VISIBILITY_MARGIN_S = 30
SQS_MAX_VISIBILITY_S = 12 * 3600
# A long poll of one second asks every SQS server; a short poll samples a few and may
# answer "empty" while messages exist, which would end a pass early.
RECEIVE_WAIT_S = 1
# Receives in a row that return only messages this pass has seen: the DLQ has been
# read through (what reappears is what timed out while we were holding it).
MAX_STALE_RECEIVES = 3
# StartMessageMoveTask's MaxNumberOfMessagesPerSecond is an integer, at most 500.
NATIVE_MAX_RATE = 500
NATIVE_DONE = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
# The group of messages whose event has no rejection recorded in the store.
NOT_RECORDED = "not recorded"
SAMPLE_KEYS = 3
SAMPLE_REASON_TEXTS = 5

# Answers of an endpoint that lacks an action. AWS itself never sends an HTML page;
# moto's server answers an unimplemented action with its HTTP 500 page.
_UNSUPPORTED_CODES = frozenset(
    {
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "InvalidAction",
        "UnknownOperation",
        "UnknownOperationException",
        "NotImplemented",
        "NotImplementedException",
    }
)
_UNSUPPORTED_WORDS = ("not implemented", "not supported", "unknown operation", "unsupported")

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
    def from_sqs(cls, raw: dict[str, Any]) -> DlqMessage:
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
            "oldest_age_s": _round(self.oldest_age_s),
            "newest_age_s": _round(self.newest_age_s),
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


class _DlqReader:
    """Receives from the DLQ, looks keys up in the store, and gives messages back."""

    def __init__(self, *, sqs: Any, store: EventStore, dlq_url: str, receive_wait_s: int) -> None:
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
            MaxNumberOfMessages=max(1, min(SQS_BATCH, count)),
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
        for start in range(0, len(pending), SQS_BATCH):
            chunk = pending[start : start + SQS_BATCH]
            entries = [
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


def _remember(held: dict[str, DlqMessage], message: DlqMessage) -> None:
    """Keep the newest receipt handle: only that one can change the message's visibility."""
    held[message.message_id] = message


# ---- inspect ---------------------------------------------------------------------------


@dataclass
class InspectionReport:
    """What a look at the DLQ found."""

    dlq_url: str
    approximate_visible: int
    approximate_in_flight: int
    inspected: int
    limit: int
    groups: list[ReasonGroup]
    entries: list[DlqEntry]
    release_failed: int
    now_epoch: float

    @property
    def empty(self) -> bool:
        return self.inspected == 0

    @property
    def limit_reached(self) -> bool:
        """The limit ended the look: the DLQ may hold more than was inspected."""
        return self.inspected >= self.limit

    def to_dict(self) -> dict[str, Any]:
        ages = [a for e in self.entries if (a := e.message.age_s(self.now_epoch)) is not None]
        receives = [e.message.receive_count for e in self.entries]
        return {
            "dlq_url": self.dlq_url,
            "approximate_visible": self.approximate_visible,
            "approximate_in_flight": self.approximate_in_flight,
            "inspected": self.inspected,
            "limit": self.limit,
            "limit_reached": self.limit_reached,
            "oldest_age_s": _round(max(ages)) if ages else None,
            "newest_age_s": _round(min(ages)) if ages else None,
            "receive_count": {"min": min(receives), "max": max(receives)} if receives else None,
            "groups": [g.to_dict() for g in self.groups],
            "messages": [e.to_dict(self.now_epoch) for e in self.entries],
            "release_failed": self.release_failed,
        }


class DlqInspector:
    """Looks at the DLQ without consuming it: every message read is given back."""

    def __init__(
        self,
        *,
        sqs: Any,
        store: EventStore,
        dlq_url: str,
        now: Callable[[], float] = worker.clock.epoch,
        receive_wait_s: int = RECEIVE_WAIT_S,
        visibility_s: int = PEEK_VISIBILITY_S,
    ) -> None:
        self._reader = _DlqReader(sqs=sqs, store=store, dlq_url=dlq_url, receive_wait_s=receive_wait_s)
        self._now = now
        self._visibility_s = visibility_s

    def inspect(self, *, limit: int = 1000) -> InspectionReport:
        """Read up to ``limit`` distinct messages, group them by recorded reason, give them back.

        Messages stay hidden while the pass reads on (made visible at once, the same
        ones would come back and the rest would never be seen) and are all made
        visible again before this returns.
        """
        if limit <= 0:
            raise ValueError("limit must be greater than 0")
        visible, in_flight = self._reader.counts()
        held: dict[str, DlqMessage] = {}
        release_failed = 0
        try:
            stale = 0
            while len(held) < limit and stale < MAX_STALE_RECEIVES:
                batch = self._reader.receive(limit - len(held), visibility_s=self._visibility_s)
                if not batch:
                    break
                fresh = [m for m in batch if m.message_id not in held]
                stale = 0 if fresh else stale + 1
                for message in batch:
                    _remember(held, message)
        finally:
            release_failed = self._reader.release(held.values())
        messages = list(held.values())
        entries = self._reader.entries(messages)
        now = self._now()
        log.info("dlq_inspected", inspected=len(entries), release_failed=release_failed)
        return InspectionReport(
            dlq_url=self._reader.dlq_url,
            approximate_visible=visible,
            approximate_in_flight=in_flight,
            inspected=len(entries),
            limit=limit,
            groups=group_by_reason(entries, now),
            entries=entries,
            release_failed=release_failed,
            now_epoch=now,
        )


# ---- replay ----------------------------------------------------------------------------


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
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()

    def acquire(self, tokens: int = 1) -> float:
        """Take ``tokens``, sleeping until they are there; returns the seconds slept."""
        if tokens > self.capacity:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self.capacity}")
        slept = 0.0
        while True:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            # A float refill can land a hair below a whole token; that is a whole token.
            if self._tokens >= tokens - 1e-9:
                self._tokens = max(0.0, self._tokens - tokens)
                return slept
            wait = (tokens - self._tokens) / self.rate
            self._sleep(wait)
            slept += wait

    @property
    def max_batch(self) -> int:
        """The largest batch one acquire can cover."""
        return max(1, min(SQS_BATCH, int(self.capacity)))


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


class NativeMoveUnsupported(Exception):
    """The SQS endpoint does not implement StartMessageMoveTask / ListMessageMoveTasks."""


class DlqReplayer:
    """Moves DLQ messages back to the source queue, at least once and rate-limited."""

    def __init__(
        self,
        *,
        sqs: Any,
        store: EventStore,
        dlq_url: str,
        source_url: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = worker.clock.epoch,
        receive_wait_s: int = RECEIVE_WAIT_S,
    ) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.source_url = source_url
        self._reader = _DlqReader(sqs=sqs, store=store, dlq_url=dlq_url, receive_wait_s=receive_wait_s)
        self._clock = clock
        self._sleep = sleep
        self._now = now

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) of the DLQ, for a progress total."""
        return self._reader.counts()

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
        bucket = TokenBucket(rate, clock=self._clock, sleep=self._sleep)
        summary = ReplaySummary(mode="dry-run" if dry_run else "move")
        started = self._clock()
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
                batch = self._reader.receive(want, visibility_s=visibility)
                if not batch:
                    break
                fresh = [m for m in batch if m.message_id not in held and m.message_id not in done]
                for message in batch:
                    if message.message_id in held:
                        _remember(held, message)
                stale = 0 if fresh else stale + 1
                summary.scanned += len(fresh)
                now = self._now()
                chosen: list[DlqEntry] = []
                for entry in self._reader.entries(fresh):
                    if where.matches(entry, now):
                        chosen.append(entry)
                    else:
                        summary.skipped += 1
                        _remember(held, entry.message)
                summary.matched += len(chosen)
                for entry in chosen:
                    summary.by_reason[entry.reason] += 1
                    summary.event_keys.append(entry.message.event_key)
                if dry_run:
                    for entry in chosen:
                        _remember(held, entry.message)
                elif chosen:
                    for entry in chosen:
                        in_flight[entry.message.message_id] = entry.message
                    bucket.acquire(len(chosen))
                    self._move([e.message for e in chosen], summary, held, in_flight, done)
                if on_progress is not None:
                    on_progress(summary.moved if not dry_run else summary.matched, summary.scanned)
        finally:
            summary.release_failed = self._reader.release([*held.values(), *in_flight.values()])
            summary.elapsed_s = self._clock() - started
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
            _remember(held, message)
        if not sent:
            return
        # The copy is in the source queue now. Only after that may the DLQ's go: a crash
        # here duplicates the message, it never loses it.
        deletes = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(sent)]
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

    def _send_entry(self, entry_id: str, message: DlqMessage) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message.body}
        attributes = _sendable_attributes(message.message_attributes)
        if attributes:
            entry["MessageAttributes"] = attributes
        if self.source_url.endswith(".fifo"):
            entry["MessageGroupId"] = message.group_id or "dlq-replay"
            # The DLQ's MessageId: a second replay of the same copy within SQS's
            # five-minute window is deduplicated instead of doubled.
            entry["MessageDeduplicationId"] = message.message_id
        return entry

    # ---- native -------------------------------------------------------------------------

    def native_move(
        self,
        *,
        rate: float,
        dry_run: bool = False,
        poll_interval_s: float = 2.0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ReplaySummary:
        """Move the whole DLQ with StartMessageMoveTask and follow it until it ends.

        Raises :class:`NativeMoveUnsupported` when the endpoint lacks the action.
        """
        summary = ReplaySummary(mode="native")
        started = self._clock()
        visible, _ = self._reader.counts()
        if dry_run:
            summary.mode = "dry-run"
            summary.scanned = summary.matched = visible
            return summary
        dlq_arn = self._arn(self.dlq_url)
        source_arn = self._arn(self.source_url)
        per_second = max(1, min(NATIVE_MAX_RATE, round(rate)))
        try:
            self.sqs.start_message_move_task(
                SourceArn=dlq_arn, DestinationArn=source_arn, MaxNumberOfMessagesPerSecond=per_second
            )
        except ClientError as exc:
            if _unsupported(exc):
                raise NativeMoveUnsupported(_describe(exc)) from None
            raise
        log.info("dlq_move_task_started", source=dlq_arn, destination=source_arn, rate=per_second)
        while True:
            try:
                tasks = self.sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
            except ClientError as exc:
                if _unsupported(exc):
                    raise NativeMoveUnsupported(_describe(exc)) from None
                raise
            task = tasks[0] if tasks else {}
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            total = int(task.get("ApproximateNumberOfMessagesToMove", visible) or visible)
            if on_progress is not None:
                on_progress(moved, total)
            status = str(task.get("Status", "COMPLETED"))
            if status in NATIVE_DONE:
                summary.moved = summary.matched = summary.scanned = moved
                summary.native_status = status
                summary.native_failure = task.get("FailureReason")
                break
            self._sleep(poll_interval_s)
        summary.elapsed_s = self._clock() - started
        log.info("dlq_move_task_ended", status=summary.native_status, moved=summary.moved)
        return summary

    def _arn(self, url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])


def _sendable_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
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


def _unsupported(exc: ClientError) -> bool:
    """True when the endpoint lacks the action (an emulator), not for a real failure."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")).strip().lower()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _UNSUPPORTED_CODES or status == 501:
        return True
    if message.startswith(("<!doctype html", "<html")):
        return True
    return status in {400, 404, 500} and any(word in message for word in _UNSUPPORTED_WORDS)


def _describe(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    message = str(error.get("Message", "")).strip()
    if message.lower().startswith(("<!doctype html", "<html")):
        message = "an HTML error page"
    code = str(error.get("Code", ""))
    # moto's page has the status as its code; saying it twice says nothing more.
    label = f"HTTP {status}" if code in {"", str(status)} else f"HTTP {status} {code}"
    return f"{label}: {message}" if message else label


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
