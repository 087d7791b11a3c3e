"""``secops send``: enqueue events, up to ten to a SendMessageBatch call."""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING, Any

import structlog

from worker.ops import timeshift
from worker.ops.inputs import InputRecord, read_records
from worker.platform import clock
from worker.settings import SQS_MAX_BATCH, SQS_MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

log = structlog.get_logger("worker.send")


def send_records(
    sqs: SQSClient, queue_url: str, stream: IO[str], *, raw: bool = False, shift_to_now: bool = False
) -> dict[str, Any]:
    """Send each record as one message body; lines that are not JSON are skipped unless ``raw``.

    ``shift_to_now`` moves every timestamp by the same amount so the newest record
    is now (see :mod:`worker.ops.timeshift`): stale samples land in the monitor's window.

    A batch holds at most ten messages and, like one message, at most 1 MiB in all
    (SQS refuses the whole call otherwise), so big events go out in smaller batches.
    Returns counts (sent, skipped, failed) and the line numbers behind the last two.
    """
    sent = 0
    skipped: list[int] = []
    failed: list[dict[str, Any]] = []
    batch: list[tuple[int, str]] = []
    batch_bytes = 0

    def flush() -> None:
        nonlocal sent, batch, batch_bytes
        if not batch:
            return
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)
        ]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        sent += len(response.get("Successful", []))
        for failure in response.get("Failed", []):
            line = batch[int(failure["Id"])][0]
            failed.append({"line": line, "code": failure.get("Code"), "message": failure.get("Message")})
        batch, batch_bytes = [], 0

    def skip(line: int, why: str) -> None:
        sys.stderr.write(f"secops: line {line} skipped: {why}\n")
        skipped.append(line)

    records: list[InputRecord] = list(read_records(stream))
    delta = (
        timeshift.delta_to((r.value for r in records if r.error is None), clock.now())
        if shift_to_now
        else None
    )
    for record in records:
        if record.oversize:
            # Even --raw cannot send it: SQS refuses a body over its limit.
            skip(record.line, record.error or "too large")
            continue
        if record.error is not None and not raw:
            skip(record.line, record.error)
            continue
        body = (
            record.text
            if raw or record.error is not None
            else json.dumps(
                record.value if delta is None else timeshift.shift(record.value, delta), separators=(",", ":")
            )
        )
        size = len(body.encode("utf-8", "surrogatepass"))
        if size > SQS_MAX_MESSAGE_BYTES:
            skip(record.line, f"message exceeds {SQS_MAX_MESSAGE_BYTES} bytes")
            continue
        if batch_bytes + size > SQS_MAX_MESSAGE_BYTES:
            flush()
        batch.append((record.line, body))
        batch_bytes += size
        if len(batch) == SQS_MAX_BATCH:
            flush()
    flush()
    log.info("events_sent", sent=sent, skipped=len(skipped), failed=len(failed))
    return {
        "sent": sent,
        "skipped": len(skipped),
        "failed": len(failed),
        "skipped_lines": skipped,
        "failures": failed,
    }
