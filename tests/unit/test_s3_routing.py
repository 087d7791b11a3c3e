"""The router in front of the event processor, and how S3 errors become outcomes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from secops_core.ingest.s3_notifications import S3Notification
from worker.consumers.router import MessageRouter
from worker.consumers.s3_objects import (
    LogObjectHandler,
    ObjectUnreadable,
    _unreadable_or_retry,
    bucket_allowed,
)
from worker.errors import RetryableError
from worker.pipeline.outcome import Outcome
from worker.store.memory import MemoryCheckpoints, MemoryStore


class RecordingHandler(LogObjectHandler):
    """The real handler with S3 out of reach: it records the notifications it is handed."""

    def __init__(self) -> None:
        super().__init__(
            s3=None,
            sqs=None,
            queue_url="q",
            checkpoints=MemoryCheckpoints(),
            events=MemoryStore(),
            owner="o",
            lease_s=30,
        )
        self.seen: list[S3Notification] = []

    def handle(self, notification: S3Notification, body: str, message_id: str) -> Outcome:
        self.seen.append(notification)
        return super().handle(notification, body, message_id)


def route(body: str, attributes: dict[str, str] | None = None) -> tuple[Outcome, list[str], RecordingHandler]:
    events: list[str] = []

    def process(text: str, _message_id: str) -> Outcome:
        events.append(text)
        return Outcome("done", "evt#x")

    handler = RecordingHandler()
    return (
        MessageRouter(events=process, log_objects=handler).process(body, "m-1", attributes),
        events,
        handler,
    )


def test_events_go_to_the_processor() -> None:
    # GIVEN a WAF record WHEN routed THEN the processor gets it untouched
    body = '{"action":"BLOCK","httpRequest":{"clientIp":"192.0.2.1"}}'
    outcome, events, handler = route(body)
    assert events == [body] and handler.seen == [] and outcome.event_key == "evt#x"


def s3_notification(bucket: str = "other-bucket", key: str = "secret/object") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": "e"}},
            }
        ]
    }


def test_a_fanned_out_record_is_never_read_as_a_notification() -> None:
    # GIVEN a body that is an S3 notification, marked as an event by the fan-out
    body = json.dumps(s3_notification())
    # WHEN routed THEN the processor gets it; the handler never sees it
    _, events, handler = route(body, {"secops.kind": "event"})
    assert events == [body] and handler.seen == []


def test_a_waf_record_carrying_s3_records_is_an_event_even_unmarked() -> None:
    # GIVEN a WAF record that also carries `Records[].eventSource = aws:s3`
    body = json.dumps({"action": "BLOCK", "httpRequest": {"clientIp": "192.0.2.1"}, **s3_notification()})
    _, events, handler = route(body)
    assert events == [body] and handler.seen == []


def test_a_notification_of_a_bucket_outside_the_allow_list_is_rejected_unread() -> None:
    # GIVEN a notification naming a bucket SECOPS_LOG_BUCKETS does not list
    outcome, events, handler = route(json.dumps(s3_notification()))
    # THEN it is rejected with its reason (S3 is never called: the handler has no client)
    assert events == [] and len(handler.seen) == 1
    assert (outcome.kind, outcome.reason) == ("rejected", "s3_bucket_not_allowed")


@pytest.mark.parametrize(
    ("rules", "bucket", "key", "allowed"),
    [
        ((("aws-waf-logs-*", ""),), "aws-waf-logs-shop", "AWSLogs/1/x.gz", True),
        ((("aws-waf-logs-*", ""),), "logs-shop", "AWSLogs/1/x.gz", False),
        ((("firehose-out", "waf/"),), "firehose-out", "waf/2026/x.gz", True),
        ((("firehose-out", "waf/"),), "firehose-out", "other/x.gz", False),
    ],
)
def test_the_bucket_allow_list(rules: Any, bucket: str, key: str, allowed: bool) -> None:
    assert bucket_allowed(rules, bucket, key) is allowed


def test_a_test_event_goes_to_the_handler_and_is_acknowledged() -> None:
    outcome, events, handler = route(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    assert events == [] and len(handler.seen) == 1
    assert outcome.kind == "done" and outcome.reason == "s3_test_event"


def test_an_sns_message_that_is_no_s3_notification_is_an_event_body() -> None:
    # GIVEN an SNS envelope around something else: the processor decides (and rejects it)
    body = json.dumps({"Type": "Notification", "Message": "hello"})
    _, events, handler = route(body)
    assert events == [body] and handler.seen == []


def test_a_broken_s3_notification_is_rejected_by_the_processor() -> None:
    # GIVEN a notification without an object key THEN the processor records it as bad input
    body = json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]})
    _, events, _ = route(body)
    assert events == [body]


def test_without_a_handler_everything_is_an_event() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    seen: list[str] = []
    MessageRouter(events=lambda b, _m: seen.append(b) or Outcome("done"), log_objects=None).process(body, "m")
    assert seen == [body]


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("NoSuchKey", status=404), "s3_object_missing"),
        (client_error("AccessDenied", "Access Denied", 403), "s3_access_denied"),
        (
            client_error("AccessDenied", "User is not authorized to perform: kms:Decrypt", 403),
            "s3_kms_denied",
        ),
        (client_error("KMS.DisabledException", "key disabled"), "s3_kms_denied"),
        (client_error("PreconditionFailed", status=412), "s3_object_replaced"),
        (client_error("InvalidObjectState", "archived", 403), "s3_access_denied"),
    ],
)
def test_unreadable_objects_name_their_reason(error: ClientError, expected: str) -> None:
    mapped = _unreadable_or_retry(error)
    assert isinstance(mapped, ObjectUnreadable) and mapped.code == expected


@pytest.mark.parametrize(
    "error", [client_error("SlowDown", status=503), client_error("InternalError", status=500)]
)
def test_s3_outages_are_retried(error: ClientError) -> None:
    assert isinstance(_unreadable_or_retry(error), RetryableError)
