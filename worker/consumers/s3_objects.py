"""WAF log objects in S3: stream one, keep what matters, fan the records out, checkpoint.

Why fan out through the events queue (docs/architecture.md, "Consumers"): each kept
record becomes an ordinary message, so it meets the same per-event state machine, the
same concurrency limit, retries, circuit breaker and DLQ as every other event, on any
replica; its key is the hash of the record, so re-reading a file is harmless. The read
itself stays cheap (a decompress and a byte filter) and never waits on a model.

A per-object checkpoint (:mod:`worker.store.checkpoints`) records how far the read got,
saved only after the records before that point are on the queue: a crash or a stop
resumes there, re-sending at most the batch that was in flight (absorbed by the keys).
The notification's lease is kept by the dispatcher's heartbeat while a long file is
read, and a stop ends the read at the next checkpoint and gives the message back.

Hostile objects (docs/architecture.md, "Consumers"): only the buckets and prefixes of
``SECOPS_LOG_BUCKETS`` are read; every read is bounded (:class:`ReadLimits`); the lease is
per read, so a second delivery of one object backs off even inside one process; and
every fanned-out record carries the ``secops.kind = event`` message attribute, so the
router never takes a record for a notification.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from secops_core.ingest.s3_logs import (
    KeepMode,
    KeptRecord,
    Loads,
    LogObjectReader,
    ReadLimits,
    open_log_stream,
)
from secops_core.ingest.s3_notifications import S3Notification, S3ObjectRef
from worker.consumers.source import EVENT_KIND, KIND_ATTRIBUTE
from worker.errors import AlreadyInProgress, RetryableError
from worker.pipeline.outcome import Outcome
from worker.platform import clock
from worker.platform.metrics import Metrics as EmfMetrics
from worker.ports import CheckpointRepo, EventRepo, Metrics, WindowCountRepo
from worker.settings import SQS_MAX_BATCH, Settings
from worker.store.aggregates import MAX_COUNTS_PER_SAVE, WindowCounter
from worker.store.checkpoints import ObjectCheckpoint
from worker.store.keys import MAX_EXCERPT_BYTES, iso_from_epoch, rejection_key

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import GetObjectRequestTypeDef
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

log = structlog.get_logger("worker.s3")

# One SendMessageBatch carries at most this many bytes of bodies: the SQS limit of queues
# created before the 1 MiB raise (and moto's), which every queue accepts.
FANOUT_BATCH_BYTES = 256 * 1024
# A failed batch entry (throttling, a hiccup) is sent again this many times before the
# read stops at its checkpoint and the notification comes back later.
_SEND_ATTEMPTS = 3
# S3 answers for an object that is gone or was never readable by us.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchVersion"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidObjectState"})
_REPLACED = frozenset({"PreconditionFailed", "412"})
# SendMessageBatch refusing the whole call for its size: each record is then sent alone.
_TOO_LONG = frozenset({"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong"})
# The attribute every fanned-out record carries, and what it adds to a message's size.
_EVENT_ATTRIBUTES: dict[str, MessageAttributeValueTypeDef] = {
    KIND_ATTRIBUTE: {"DataType": "String", "StringValue": EVENT_KIND}
}
_ATTRIBUTE_BYTES = len(KIND_ATTRIBUTE) + len("String") + len(EVENT_KIND)
# A read saves its checkpoint early once this many shards of window counts changed, so
# a save never needs more than one transaction (MAX_COUNTS_PER_SAVE shards).
_SAVE_AT_SHARDS = MAX_COUNTS_PER_SAVE - 9
# Tells reads apart: the object lease belongs to one read, not to the process.
_READS = itertools.count(1)


def read_limits(settings: Settings) -> ReadLimits:
    """The bounds of one object's read, from ``SECOPS_LOG_MAX_*``."""
    return ReadLimits(
        max_inflated_bytes=settings.log_max_inflated_mib * 1024 * 1024,
        max_inflation_ratio=settings.log_max_inflation_ratio,
        max_read_s=settings.log_max_read_s,
        max_kept=settings.log_max_kept_per_object,
        max_kept_per_envelope=settings.log_max_kept_per_envelope,
        max_kept_record_bytes=settings.log_max_record_kib * 1024,
    )


def bucket_allowed(rules: Sequence[tuple[str, str]], bucket: str, key: str) -> bool:
    """Whether ``SECOPS_LOG_BUCKETS`` (as ``(bucket pattern, key prefix)`` pairs) lets the
    worker read ``bucket/key``."""
    return any(fnmatchcase(bucket, name) and key.startswith(prefix) for name, prefix in rules)


class ObjectUnreadable(Exception):
    """The object cannot be read at all; ``code`` is the rejection's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ObjectResult:
    checkpoint: ObjectCheckpoint
    # Already complete before this read: nothing was read or sent.
    skipped: bool = False
    # The read stopped at a checkpoint for a shutdown; the rest comes on redelivery.
    stopped: bool = False
    # The object changed since the notification (another version has its own).
    replaced: bool = False
    sent: int = 0


class LogObjectHandler:
    """Reads the objects an S3 notification names and fans their kept records out."""

    def __init__(
        self,
        *,
        s3: S3Client,
        sqs: SQSClient,
        queue_url: str,
        checkpoints: CheckpointRepo,
        events: EventRepo,
        owner: str,
        lease_s: int,
        keep: KeepMode = "matched",
        checkpoint_every_s: float = 5.0,
        stopping: Callable[[], bool] = lambda: False,
        metrics: Metrics | None = None,
        loads: Loads = json.loads,
        limits: ReadLimits | None = None,
        buckets: Sequence[tuple[str, str]] = (("aws-waf-logs-*", ""),),
        progress: Callable[[str], None] = lambda _activity: None,
        counts: WindowCountRepo | None = None,
    ) -> None:
        self.s3 = s3
        self.sqs = sqs
        self.queue_url = queue_url
        self.checkpoints = checkpoints
        self.events = events
        self.owner = owner
        self.lease_s = lease_s
        self.keep = keep
        self.checkpoint_every_s = checkpoint_every_s
        self.stopping = stopping
        self.metrics: Metrics = metrics or EmfMetrics(enabled=False)
        self.loads = loads
        self.limits = limits or ReadLimits()
        self.buckets = tuple(buckets)
        # Tells the dispatcher (and so `secops health`) that this slot's read advances.
        self.progress = progress
        # Where counted records go, saved with the checkpoint (docs/architecture.md,
        # "Relevance"); the `relevant` filter needs it.
        if keep == "relevant" and counts is None:
            raise ValueError("SECOPS_LOG_FILTER=relevant needs a WindowCountRepo for the counted records")
        self.counts = counts

    # ---- a notification -----------------------------------------------------------------

    def handle(self, notification: S3Notification, body: str, message_id: str) -> Outcome:
        """Every object of the notification; the outcome of the message that carried it."""
        if notification.test_event or not notification.objects:
            log.info("s3_notification_ignored", via=notification.via, test_event=notification.test_event)
            return Outcome("done", reason="s3_test_event" if notification.test_event else "s3_other_event")
        unreadable: list[tuple[S3ObjectRef, ObjectUnreadable]] = []
        for ref in notification.objects:
            with structlog.contextvars.bound_contextvars(s3_uri=ref.uri):
                try:
                    result = self.read_object(ref)
                except ObjectUnreadable as exc:
                    log.warning("s3_object_unreadable", reason=exc.code, error=exc.message)
                    unreadable.append((ref, exc))
                    continue
                except AlreadyInProgress as exc:
                    return Outcome("in_progress", reason="object_in_progress", delay_s=exc.lease_expires_in_s)
                except RetryableError as exc:
                    return Outcome("retry", reason=exc.reason, delay_s=exc.delay_s)
                if result.stopped:
                    # Seen again at once by whoever runs next; it resumes at the checkpoint.
                    return Outcome("retry", reason="shutdown", delay_s=0)
        if unreadable:
            return self._reject(body, message_id, unreadable)
        return Outcome("done", reason="s3_objects")

    def _reject(
        self, body: str, message_id: str, unreadable: Sequence[tuple[S3ObjectRef, ObjectUnreadable]]
    ) -> Outcome:
        """Record why, under the body's rejection key, and let the redrive take it to the DLQ."""
        key = rejection_key(body)
        code = unreadable[0][1].code
        reason = "; ".join(f"{ref.uri}: {exc.message}" for ref, exc in unreadable)
        excerpt = body.encode("utf-8", "replace")[:MAX_EXCERPT_BYTES].decode("utf-8", "replace")
        try:
            self.events.reject(key, code=code, reason=reason, message_id=message_id, excerpt=excerpt)
        except RetryableError as exc:
            return Outcome("retry", key, reason=exc.reason)
        self.metrics.count("Rejections", dimensions={"Reason": code})
        return Outcome("rejected", key, status="rejected", reason=code)

    # ---- one object -----------------------------------------------------------------------

    def read_object(self, ref: S3ObjectRef) -> ObjectResult:
        """Read one object from its checkpoint to the end (or to a stop).

        Raises :class:`ObjectUnreadable`, :class:`AlreadyInProgress` or
        :class:`RetryableError` (progress is saved first, when there is any).
        """
        if not bucket_allowed(self.buckets, ref.bucket, ref.key):
            raise ObjectUnreadable(
                "s3_bucket_not_allowed", f"{ref.uri} is outside SECOPS_LOG_BUCKETS; it was not read"
            )
        # The lease names this read: a second delivery of the object backs off, even on
        # another slot of this process.
        owner = f"{self.owner}/read-{next(_READS)}"
        checkpoint = self.checkpoints.claim_object(
            ref.bucket, ref.key, ref.version, owner=owner, lease_s=self.lease_s
        )
        if checkpoint.complete:
            log.info("s3_object_already_complete", kept=checkpoint.kept)
            return ObjectResult(checkpoint, skipped=True)
        try:
            body = self._open(ref)
        except ObjectUnreadable as exc:
            if exc.code == "s3_object_replaced":
                done = self._save(checkpoint, owner, complete=True)
                log.warning("s3_object_replaced", error=exc.message)
                return ObjectResult(done, replaced=True)
            self._save(checkpoint, owner, release=True)
            raise
        except RetryableError:
            self._save(checkpoint, owner, release=True)
            raise
        try:
            return self._read(ref, checkpoint, body, owner)
        finally:
            body.close()

    def _read(
        self, ref: S3ObjectRef, checkpoint: ObjectCheckpoint, body: StreamingBody, owner: str
    ) -> ObjectResult:
        limits = self.limits
        spent_before = checkpoint.read_s
        budget = None if limits.max_read_s is None else max(0.0, limits.max_read_s - spent_before)
        stream = open_log_stream(
            body, max_inflated_bytes=limits.max_inflated_bytes, max_ratio=limits.max_inflation_ratio
        )
        reader = LogObjectReader(
            stream,
            keep=self.keep,
            start_after=checkpoint.position,
            loads=self.loads,
            limits=limits,
            time_budget_s=budget,
        )
        reader.counts = checkpoint.counts()
        sender = _Sender(self.sqs, self.queue_url, refused=reader.counts.refused)
        # This read's counts: a segment from where it resumed, saved with each checkpoint.
        counter = WindowCounter(f"{checkpoint.pk}@{checkpoint.position}")
        resumed_at, read_before = checkpoint.position, checkpoint.read
        started = time.monotonic()
        next_save = started + self.checkpoint_every_s

        def progressed() -> ObjectCheckpoint:
            return checkpoint.advanced(
                reader.done,
                reader.counts,
                activity=reader.activity,
                compressed_bytes=reader.compressed_bytes,
                inflated_bytes=reader.inflated_bytes,
                read_s=spent_before + time.monotonic() - started,
                updated_at=iso_from_epoch(clock.epoch()),
            )

        try:
            for kept in reader:
                for record in kept:
                    if record.counted is not None:
                        counter.add(record.counted.event, record.counted.verdict)
                    else:
                        sender.add(record)
                self.progress(f"reading {ref.uri}: {reader.activity}, frame {reader.done}")
                # Saved before the shards changed could outgrow one transaction: a frame
                # (even a CloudWatch envelope of one batch) changes a few shards at most.
                full = counter.dirty() >= _SAVE_AT_SHARDS
                if time.monotonic() < next_save and not full and not self.stopping():
                    continue
                sender.flush()
                stop = self.stopping()
                checkpoint = self._save(progressed(), owner, release=stop, counter=counter)
                next_save = time.monotonic() + self.checkpoint_every_s
                if stop:
                    log.info("s3_object_read_stopped", position=checkpoint.position, sent=sender.sent)
                    return ObjectResult(checkpoint, stopped=True, sent=sender.sent)
            sender.flush()
        except (BotoCoreError, OSError, RetryableError) as exc:
            # The stream broke or the queue refused: keep what is durable, come back later.
            self._save_what_is_sent(checkpoint, owner, release=True)
            raise RetryableError(f"reading {ref.uri} stopped: {exc}", reason="s3_read_interrupted") from exc
        done = self._save(progressed(), owner, complete=True, counter=counter)
        counts = reader.counts
        self.metrics.count("LogRecordsRead", counts.read - read_before)
        self.metrics.count("LogRecordsKept", sender.sent)
        self.metrics.count("LogRecordsCounted", counter.added)
        for name in counts.limits:
            self.metrics.count("LogObjectLimits", dimensions={"Limit": name})
        if counts.limits:
            log.warning(
                "s3_object_limit_reached",
                limits=list(counts.limits),
                capped=counts.capped,
                inflated_bytes=reader.inflated_bytes,
                compressed_bytes=reader.compressed_bytes,
                read_s=round(done.read_s, 3),
            )
        log.info(
            "s3_object_read",
            read=counts.read,
            kept=counts.kept,
            counted=counts.counted,
            skipped=counts.skipped,
            bad=counts.bad,
            duplicates=counts.duplicates,
            capped=counts.capped,
            sent=sender.sent,
            resumed_at=resumed_at,
            attempts=done.attempts,
        )
        return ObjectResult(done, sent=sender.sent)

    def _save_what_is_sent(self, checkpoint: ObjectCheckpoint, owner: str, *, release: bool) -> None:
        """After a failure: the last checkpoint stands (what came after it may be unsent)."""
        try:
            self._save(checkpoint, owner, release=release)
        except RetryableError as exc:
            log.warning("checkpoint_save_failed", error=exc.message)

    def _save(
        self,
        checkpoint: ObjectCheckpoint,
        owner: str,
        *,
        complete: bool = False,
        release: bool = False,
        counter: WindowCounter | None = None,
    ) -> ObjectCheckpoint:
        """The checkpoint, with the windows this read changed since its last save, in one
        atomic step: a record is counted exactly when the checkpoint says it was read."""
        if counter is not None and counter.dirty() and self.counts is not None:
            return self.counts.save_object_counted(
                checkpoint,
                counter.take_dirty(),
                owner=owner,
                lease_s=self.lease_s,
                complete=complete,
                release=release,
            )
        return self.checkpoints.save_object(
            checkpoint, owner=owner, lease_s=self.lease_s, complete=complete, release=release
        )

    def _open(self, ref: S3ObjectRef) -> Any:
        """The object's streaming body, pinned to the version or ETag the notification named."""
        params: GetObjectRequestTypeDef = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        elif ref.etag:
            params["IfMatch"] = f'"{ref.etag}"'
        try:
            return self.s3.get_object(**params)["Body"]
        except ClientError as exc:
            raise _unreadable_or_retry(exc) from exc
        except BotoCoreError as exc:
            raise RetryableError(f"S3 GetObject {ref.uri} failed: {exc}", reason="s3_unavailable") from exc


def _unreadable_or_retry(exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code.startswith("KMS") or "kms" in message.lower():
        return ObjectUnreadable("s3_kms_denied", f"the object's KMS key cannot be used: {code}: {message}")
    if code in _MISSING:
        return ObjectUnreadable("s3_object_missing", f"the object is gone: {code}")
    if code in _DENIED:
        return ObjectUnreadable("s3_access_denied", f"access denied: {code}: {message}")
    if code in _REPLACED:
        return ObjectUnreadable("s3_object_replaced", "the object changed since the notification")
    if status >= 500 or code in {"SlowDown", "Throttling", "RequestTimeout"}:
        return RetryableError(f"S3 GetObject failed: {code}", reason="s3_unavailable")
    return ObjectUnreadable("s3_object_unreadable", f"{code}: {message}")


class _Sender:
    """Kept records to the events queue in SendMessageBatch calls (10 entries, 256 KiB).

    Each message carries the event mark (``secops.kind = event``). A record the queue
    refuses for what it is (too large, characters SQS does not take) is ``refused``: a bad
    line of the object with the queue's reason, and the records after it go on. Only a
    failure that may pass (throttling, a network error) stops the read at its checkpoint.
    """

    def __init__(self, sqs: SQSClient, queue_url: str, *, refused: Callable[[int, str], None]) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.refused = refused
        self.sent = 0
        self._records: list[KeptRecord] = []
        self._bytes = 0

    def add(self, record: KeptRecord) -> None:
        size = len(record.body.encode("utf-8")) + _ATTRIBUTE_BYTES
        if self._records and (len(self._records) >= SQS_MAX_BATCH or self._bytes + size > FANOUT_BATCH_BYTES):
            self.flush()
        self._records.append(record)
        self._bytes += size

    def flush(self) -> None:
        pending = dict(enumerate(self._records))
        for _ in range(_SEND_ATTEMPTS):
            if not pending:
                break
            for index, code, sender_fault in self._send(pending):
                if code is None:
                    pending.pop(index)
                    self.sent += 1
                elif sender_fault:
                    # The queue will never take this body: resending cannot help.
                    self._refuse(pending.pop(index), code)
        if pending:
            raise RetryableError(
                f"{len(pending)} records not accepted by the events queue", reason="fanout_failed"
            )
        self._records, self._bytes = [], 0

    def _send(self, pending: dict[int, KeptRecord]) -> list[tuple[int, str | None, bool]]:
        """(index, error code or None, sender's fault) for each record sent."""
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "MessageBody": r.body, "MessageAttributes": _EVENT_ATTRIBUTES}
            for i, r in pending.items()
        ]
        try:
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in _TOO_LONG:
                raise RetryableError(f"SendMessageBatch failed: {exc}", reason="fanout_failed") from exc
            if len(pending) == 1:
                return [(index, code, True) for index in pending]
            # Too long together: each alone, so one large record cannot hold back the rest.
            return [result for i, r in pending.items() for result in self._send({i: r})]
        results: list[tuple[int, str | None, bool]] = [
            (int(ok["Id"]), None, False) for ok in response.get("Successful", [])
        ]
        results += [
            (int(f["Id"]), str(f.get("Code") or "refused"), bool(f.get("SenderFault")))
            for f in response.get("Failed", [])
        ]
        return results

    def _refuse(self, record: KeptRecord, code: str) -> None:
        size = len(record.body.encode("utf-8"))
        log.warning("fanout_record_refused", line=record.line, code=code, bytes=size)
        self.refused(record.line, f"queue_refused_{code}")
