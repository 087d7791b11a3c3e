"""``secops send``: enqueue events, ten to a SendMessageBatch call."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import structlog

from worker.inputs import read_records

log = structlog.get_logger("worker.send")
_BATCH = 10


def send_records(sqs: Any, queue_url: str, stream: IO[str], *, raw: bool = False) -> dict[str, Any]:
    """Send each record as one message body; malformed lines are skipped unless ``raw``.

    Returns counts: sent, skipped (not JSON), failed (SQS refused), with line numbers.
    """
    sent = 0
    skipped: list[int] = []
    failed: list[dict[str, Any]] = []
    batch: list[tuple[int, str]] = []

    def flush() -> None:
        nonlocal sent, batch
        if not batch:
            return
        entries = [{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        sent += len(response.get("Successful", []))
        for failure in response.get("Failed", []):
            line = batch[int(failure["Id"])][0]
            failed.append({"line": line, "code": failure.get("Code"), "message": failure.get("Message")})
        batch = []

    for record in read_records(stream):
        if record.error is not None and not raw:
            sys.stderr.write(f"secops: line {record.line} skipped: {record.error}\n")
            skipped.append(record.line)
            continue
        body = (
            record.text
            if raw or record.error is not None
            else json.dumps(record.value, separators=(",", ":"))
        )
        batch.append((record.line, body))
        if len(batch) == _BATCH:
            flush()
    flush()
    log.info("events_sent", sent=sent, skipped=len(skipped), failed=len(failed))
    return {"sent": sent, "skipped": skipped, "failed": failed}
