"""Where a queue message goes: an S3 notification to the log-object handler, anything else
to the event processor (docs/architecture.md, "Consumers").

The events queue carries both: WAF's S3 logging notifies it of new log files, and the
records kept from those files come back on it as ordinary events. A body is only parsed
here when it holds a marker of an S3 notification, so events pay one substring scan.

A record the fan-out sent carries the event mark (``secops.kind = event``) and is never
parsed as a notification, whatever it holds: a log line written to look like an S3
notification (``Records[].eventSource = "aws:s3"``) must not make the worker read
another object. A WAF record (a top-level ``httpRequest`` object) is never a
notification either, marked or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import structlog

from secops_core.ingest.s3_logs import is_waf_record
from secops_core.ingest.s3_notifications import may_be_s3_notification, parse_s3_notification
from worker.consumers.s3_objects import LogObjectHandler
from worker.consumers.source import EVENT_KIND, KIND_ATTRIBUTE
from worker.pipeline.outcome import Outcome

log = structlog.get_logger("worker.consumer")

Process = Callable[[str, str], Outcome]


class MessageRouter:
    """``process(body, message_id, attributes)`` for the dispatcher, in front of the event
    processor."""

    def __init__(self, *, events: Process, log_objects: LogObjectHandler | None) -> None:
        self.events = events
        self.log_objects = log_objects

    def process(self, body: str, message_id: str, attributes: Mapping[str, str] | None = None) -> Outcome:
        if (
            self.log_objects is None
            or (attributes or {}).get(KIND_ATTRIBUTE) == EVENT_KIND
            or not may_be_s3_notification(body)
        ):
            return self.events(body, message_id)
        try:
            payload = json.loads(body)
            notification = None if is_waf_record(payload) else parse_s3_notification(payload)
        except (ValueError, RecursionError):
            # Not JSON, or an S3 notification without a bucket or key: the processor
            # rejects it with the reason every bad message gets.
            notification = None
        if notification is None:
            return self.events(body, message_id)
        with structlog.contextvars.bound_contextvars(via=notification.via):
            return self.log_objects.handle(notification, body, message_id)
