"""``secops dlq replay --native``: SQS's own redrive (StartMessageMoveTask) of the whole DLQ.

It moves everything and cannot filter; an emulator that lacks the action is told apart
from a real failure so the CLI can point at the default mode.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from botocore.exceptions import ClientError

from worker.ops.dlq.replay import DlqReplayer, ReplaySummary

log = structlog.get_logger("worker.dlq")

# StartMessageMoveTask's MaxNumberOfMessagesPerSecond is an integer, at most 500.
NATIVE_MAX_RATE = 500
NATIVE_DONE = frozenset({"COMPLETED", "CANCELLED", "FAILED"})

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


class NativeMoveUnsupported(Exception):
    """The SQS endpoint does not implement StartMessageMoveTask / ListMessageMoveTasks."""


def native_move(
    replayer: DlqReplayer,
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
    started = replayer.clock()
    visible, _ = replayer.counts()
    if dry_run:
        summary.mode = "dry-run"
        summary.scanned = summary.matched = visible
        return summary
    dlq_arn = replayer.queue_arn(replayer.dlq_url)
    source_arn = replayer.queue_arn(replayer.source_url)
    per_second = max(1, min(NATIVE_MAX_RATE, round(rate)))
    try:
        replayer.sqs.start_message_move_task(
            SourceArn=dlq_arn, DestinationArn=source_arn, MaxNumberOfMessagesPerSecond=per_second
        )
    except ClientError as exc:
        if _unsupported(exc):
            raise NativeMoveUnsupported(_describe(exc)) from None
        raise
    log.info("dlq_move_task_started", source=dlq_arn, destination=source_arn, rate=per_second)
    while True:
        try:
            tasks = replayer.sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
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
        replayer.sleep(poll_interval_s)
    summary.elapsed_s = replayer.clock() - started
    log.info("dlq_move_task_ended", status=summary.native_status, moved=summary.moved)
    return summary


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
