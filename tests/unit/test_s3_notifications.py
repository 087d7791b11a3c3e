"""S3 notification shapes: direct, test event, SNS-wrapped, EventBridge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secops_core.ingest.s3_notifications import may_be_s3_notification, parse_s3_notification


def direct(
    key: str = "AWSLogs/1/WAFLogs/us-east-1/acl/2026/11/30/10/05/a+b%2Bc.log.gz", **obj: Any
) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "aws-waf-logs-x"},
                    "object": {"key": key, "size": 12, "eTag": "abc", **obj},
                },
            }
        ]
    }


def test_direct_notification_decodes_the_key() -> None:
    # GIVEN an S3 notification whose key has a space (as '+') and a plus (as %2B)
    # WHEN it is parsed
    found = parse_s3_notification(direct())
    # THEN the object is named with its real key
    assert found is not None and found.via == "s3"
    (ref,) = found.objects
    assert ref.bucket == "aws-waf-logs-x"
    assert ref.key.endswith("/a b+c.log.gz")
    assert (ref.size, ref.etag, ref.version) == (12, "abc", "abc")


def test_version_id_names_the_content_when_present() -> None:
    # GIVEN a versioned bucket's notification
    found = parse_s3_notification(direct(versionId="v1"))
    # THEN the version id, not the ETag, pins the object
    assert found is not None and found.objects[0].version == "v1"


def test_test_event_is_recognised_and_names_nothing() -> None:
    # GIVEN the message S3 sends when a notification is configured
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b", "RequestId": "r"}
    found = parse_s3_notification(body)
    # THEN it is a test event with no object to read
    assert found is not None and found.test_event and found.objects == ()
    assert may_be_s3_notification(json.dumps(body))


def test_sns_envelope_unwraps_the_s3_notification() -> None:
    # GIVEN the notification wrapped by SNS (raw message delivery off)
    body = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": json.dumps(direct())}
    # WHEN it is parsed
    found = parse_s3_notification(body)
    # THEN the same object comes out, marked as via SNS
    assert found is not None and found.via == "sns"
    assert found.objects[0].bucket == "aws-waf-logs-x"


def test_sns_envelope_of_a_test_event() -> None:
    inner = {"Service": "Amazon S3", "Event": "s3:TestEvent"}
    found = parse_s3_notification({"Type": "Notification", "Message": json.dumps(inner)})
    assert found is not None and found.test_event


def test_sns_envelope_of_something_else_is_not_a_notification() -> None:
    assert parse_s3_notification({"Type": "Notification", "Message": '{"id": "e1"}'}) is None


def test_eventbridge_object_created() -> None:
    # GIVEN EventBridge's Object Created event
    body = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": "logs"},
            "object": {"key": "k%20x.log", "size": 5, "etag": "e1", "version-id": "v9"},
        },
    }
    found = parse_s3_notification(body)
    # THEN it names the object, key decoded, version pinned
    assert found is not None and found.via == "eventbridge"
    assert (found.objects[0].key, found.objects[0].version) == ("k x.log", "v9")


def test_sns_envelope_of_an_eventbridge_object_created() -> None:
    # GIVEN EventBridge's Object Created event, routed by a rule to an SNS topic that
    # the events queue subscribes to (raw message delivery off)
    inner = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "logs"}, "object": {"key": "a/b.log.gz", "size": 7, "etag": "e2"}},
    }
    body = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": json.dumps(inner)}
    # WHEN it is parsed
    found = parse_s3_notification(body)
    # THEN the object is named, marked as via SNS; a removal through SNS is acknowledged
    assert found is not None and found.via == "sns"
    assert [(o.bucket, o.key, o.etag) for o in found.objects] == [("logs", "a/b.log.gz", "e2")]
    deleted = {"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}}
    removal = parse_s3_notification({"Type": "Notification", "Message": json.dumps(deleted)})
    assert removal is not None and removal.objects == () and removal.ignored == 1


def test_other_s3_events_are_acknowledged_without_a_read() -> None:
    # GIVEN a removal, by S3 directly and by EventBridge
    removal = direct()
    removal["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    deleted = {"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}}
    # THEN both are notifications with nothing to read
    for body in (removal, deleted):
        found = parse_s3_notification(body)
        assert found is not None and found.objects == () and found.ignored == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "e1", "action": "BLOCK"},
        {"Records": [{"eventSource": "aws:sqs"}]},
        [1, 2],
        "text",
        {"Records": []},
    ],
)
def test_events_and_other_payloads_are_not_notifications(payload: Any) -> None:
    assert parse_s3_notification(payload) is None


def test_a_notification_without_a_key_is_bad_input() -> None:
    broken = direct()
    del broken["Records"][0]["s3"]["object"]["key"]
    with pytest.raises(ValueError, match="bucket name or an object key"):
        parse_s3_notification(broken)


def test_waf_records_are_not_suspected() -> None:
    # A WAF record never holds the markers, so it is not parsed twice on its way.
    assert not may_be_s3_notification('{"action":"BLOCK","httpRequest":{"uri":"/"}}')
