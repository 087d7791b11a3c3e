"""The log-object fan-out up to the wire: botocore's Stubber on a real SQS client.

SQS refuses a batch whose bodies exceed its size as a whole (``BatchRequestTooLong``) and
refuses single entries it will never take (``SenderFault``); neither may cost the file its
later records. What moto does not inject is injected here, with the request shape checked.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from secops_core.ingest.s3_logs import KeptRecord, ReadCounts
from worker.consumers.s3_objects import _Sender
from worker.errors import RetryableError

QUEUE = "https://sqs.us-east-1.amazonaws.com/000000000000/waf-events"
MARK = {"secops.kind": {"DataType": "String", "StringValue": "event"}}


def sqs() -> Any:
    return boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def sender_of(kept: int) -> tuple[Any, ReadCounts, _Sender]:
    """A real SQS client, the counts of a read that kept ``kept`` records, and its sender."""
    client = sqs()
    counts = ReadCounts(kept=kept)
    return client, counts, _Sender(client, QUEUE, refused=counts.refused)


def entries(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"Id": i, "MessageBody": body, "MessageAttributes": MARK} for i, body in pairs]


def test_every_message_is_marked_as_an_event() -> None:
    # GIVEN two kept records
    client, counts, sender = sender_of(2)
    with Stubber(client) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [
                    {"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"},
                    {"Id": "1", "MessageId": "m1", "MD5OfMessageBody": "x"},
                ],
                "Failed": [],
            },
            {"QueueUrl": QUEUE, "Entries": entries(("0", "{1}"), ("1", "{2}"))},
        )
        # WHEN they are sent
        sender.add(KeptRecord(1, "{1}"))
        sender.add(KeptRecord(2, "{2}"))
        sender.flush()
        stub.assert_no_pending_responses()
    # THEN each carried the event mark and both were sent
    assert sender.sent == 2 and counts.bad == 0


def test_a_batch_too_long_is_sent_one_by_one_and_a_refused_record_is_a_bad_line() -> None:
    # GIVEN three records, the middle one a body the queue will never take
    client, counts, sender = sender_of(3)
    ok = {"MessageId": "m", "MD5OfMessageBody": "x"}
    with Stubber(client) as stub:
        # WHEN the batch is refused as too long, then each record is sent alone
        stub.add_client_error("send_message_batch", "AWS.SimpleQueueService.BatchRequestTooLong")
        stub.add_response("send_message_batch", {"Successful": [{"Id": "0", **ok}], "Failed": []})
        stub.add_client_error(
            "send_message_batch",
            "AWS.SimpleQueueService.BatchRequestTooLong",
            expected_params={"QueueUrl": QUEUE, "Entries": entries(("1", "{big}"))},
        )
        stub.add_response("send_message_batch", {"Successful": [{"Id": "2", **ok}], "Failed": []})
        for line, body in ((1, "{a}"), (2, "{big}"), (3, "{c}")):
            sender.add(KeptRecord(line, body))
        sender.flush()
        stub.assert_no_pending_responses()
    # THEN the two others were sent, and the large one is a bad line with the queue's reason
    assert sender.sent == 2
    assert (counts.kept, counts.bad) == (2, 1)
    assert counts.bad_lines[0].line == 2
    assert counts.bad_lines[0].reason == "queue_refused_AWS.SimpleQueueService.BatchRequestTooLong"


def test_an_entry_refused_for_what_it_is_does_not_hold_back_the_rest() -> None:
    client, counts, sender = sender_of(2)
    with Stubber(client) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "1", "MessageId": "m", "MD5OfMessageBody": "x"}],
                "Failed": [{"Id": "0", "SenderFault": True, "Code": "InvalidMessageContents"}],
            },
            {"QueueUrl": QUEUE, "Entries": ANY},
        )
        sender.add(KeptRecord(7, "{bad}"))
        sender.add(KeptRecord(8, "{good}"))
        sender.flush()
    assert sender.sent == 1 and [(b.line, b.reason) for b in counts.bad_lines] == [
        (7, "queue_refused_InvalidMessageContents")
    ]


def test_a_failure_that_may_pass_stops_the_read_at_its_checkpoint() -> None:
    # GIVEN throttling on every attempt
    client = sqs()
    sender = _Sender(client, QUEUE, refused=ReadCounts().refused)
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response(
                "send_message_batch",
                {
                    "Successful": [],
                    "Failed": [{"Id": "0", "SenderFault": False, "Code": "ThrottlingException"}],
                },
            )
        sender.add(KeptRecord(1, "{x}"))
        # THEN the record is neither sent nor dropped: the read stops to come back later
        with pytest.raises(RetryableError):
            sender.flush()
