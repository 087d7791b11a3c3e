"""SnsNotifier and the ``sns`` incident channel against moto's server over HTTP: SNS topics
delivering to SQS queues."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs
from tenacity import wait_fixed

from secops_core.contract import WafEvent
from tests.unit.test_notifier_sanitize import (
    make_analysis,
    make_event,
    make_incident,
    make_pattern,
)
from worker.errors import RetryableError
from worker.incidents.milestones import OPENED
from worker.notify.render import JSON_SEPARATOR, Notification
from worker.notify.sns import NotificationRejected, SnsChannel, SnsNotifier
from worker.platform.aws import client as aws_client
from worker.platform.resources import create_topic

ATTRIBUTE_NAMES = {"event_key", "incident_id", "milestone", "severity", "workflow", "action", "source_ip"}


@dataclass(frozen=True)
class Subscribed:
    """A topic with an SQS queue subscribed to it (raw delivery off)."""

    topic_arn: str
    queue_url: str


@pytest.fixture
def sns(aws_endpoint: str) -> Any:
    return aws_client("sns")


@pytest.fixture
def sqs(aws_endpoint: str) -> Any:
    return aws_client("sqs")


@pytest.fixture
def topics(sns: Any, sqs: Any, unique: str) -> dict[str, Subscribed]:
    """A standard and a FIFO topic, each delivering to a queue of the matching kind."""
    standard, fifo = f"secops-critical-{unique}", f"secops-monitoring-{unique}.fifo"
    arns = {name: create_topic(sns, name) for name in (standard, fifo)}
    subscribed = {}
    for name, arn in arns.items():
        queue_attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        queue_url = sqs.create_queue(QueueName=f"q-{name}", Attributes=queue_attributes)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        # Raw delivery off: the SNS envelope carries Subject and MessageAttributes.
        sns.subscribe(
            TopicArn=arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "false"},
        )
        subscribed["fifo" if name.endswith(".fifo") else "standard"] = Subscribed(arn, queue_url)
    return subscribed


def make_notifier(sns: Any, topic_arn: str, **kwargs: Any) -> SnsNotifier:
    return SnsNotifier(
        monitoring_topic_arn=topic_arn,
        client=sns,
        wait=wait_fixed(0.01),
        **kwargs,
    )


def notify_opening(notifier: SnsNotifier, event: WafEvent | None = None) -> str:
    """Publish the opening milestone of the incident ``event`` opens, on the notifier's
    topic and through its publisher, as the ``sns`` incident channel does."""
    event = event or make_event()
    channel = SnsChannel(topic_arn=notifier.monitoring_topic_arn, publisher=notifier.publisher)
    return channel.publish_incident(make_incident(event), OPENED, event=event, analysis=make_analysis())


def drain(sqs: Any, queue_url: str, expected: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Receive and delete SNS envelopes until ``expected`` arrived and one more poll is empty."""
    envelopes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        for message in messages:
            envelopes.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not messages and len(envelopes) >= expected:
            break
        if not messages:
            time.sleep(0.05)
    return envelopes


def attributes_of(envelope: dict[str, Any]) -> dict[str, str]:
    attributes = envelope["MessageAttributes"]
    assert all(value["Type"] == "String" for value in attributes.values())
    return {name: value["Value"] for name, value in attributes.items()}


def document_of(envelope: dict[str, Any]) -> dict[str, Any]:
    _, _, document = envelope["Message"].partition(f"\n{JSON_SEPARATOR}\n")
    return json.loads(document)


def throttle_first_publish(sns: Any, code: str = "Throttling") -> list[str]:
    """Make the first Publish fail with ``code`` at the botocore layer; record every call."""
    calls: list[str] = []

    def before_call(**_: Any) -> None:
        calls.append("publish")
        if len(calls) == 1:
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "Publish",
            )

    sns.meta.events.register("before-call.sns.Publish", before_call)
    return calls


def count_publishes(sns: Any) -> list[str]:
    calls: list[str] = []
    sns.meta.events.register("before-call.sns.Publish", lambda **_: calls.append("publish"))
    return calls


def test_incident_milestone_and_pattern_reach_a_standard_topic(
    sns: Any, sqs: Any, topics: dict[str, Subscribed]
) -> None:
    # GIVEN a standard topic with a queue subscribed
    target = topics["standard"]
    notifier = make_notifier(sns, target.topic_arn)
    pattern = make_pattern()

    # WHEN an incident opening and a pattern are notified
    escalation_id = notify_opening(notifier)
    pattern_id = notifier.notify_pattern(pattern, escalated_keys=pattern.event_keys)

    # THEN both envelopes arrive with subject, attributes and a parsable body
    envelopes = {envelope["MessageId"]: envelope for envelope in drain(sqs, target.queue_url, 2)}
    assert set(envelopes) == {escalation_id, pattern_id}

    escalation = envelopes[escalation_id]
    assert escalation["TopicArn"] == target.topic_arn
    assert escalation["Subject"] == "[SecOps] INCIDENT opened sev 5 sqli from 198.51.100.23 (1 events)"
    incident_id = make_incident().id
    assert attributes_of(escalation) == {
        "event_key": incident_id,
        "incident_id": incident_id,
        "milestone": "opened",
        "severity": "5",
        "workflow": "incident",
        "action": "escalate",
        "source_ip": "198.51.100.23",
    }
    assert "Request:      POST shop.example.com/login.php" in escalation["Message"]
    assert document_of(escalation)["milestone"]["kind"] == "opened"

    notified_pattern = envelopes[pattern_id]
    assert notified_pattern["Subject"] == ("[SecOps] PATTERN 12 events sev 3 from 203.0.113.7 /wp-login.php")
    assert attributes_of(notified_pattern)["action"] == "pattern"
    assert attributes_of(notified_pattern)["workflow"] == "monitor"
    assert document_of(notified_pattern)["escalated_total"] == 12


def test_fifo_topic_deduplicates_a_retried_publish(sns: Any, sqs: Any, topics: dict[str, Subscribed]) -> None:
    # GIVEN a FIFO topic delivering to a FIFO queue
    target = topics["fifo"]
    notifier = make_notifier(sns, target.topic_arn)
    pattern = make_pattern()

    # WHEN the same milestone is published twice (a redelivered message) and a pattern once
    notify_opening(notifier)
    notify_opening(notifier)
    notifier.notify_pattern(pattern, escalated_keys=pattern.event_keys, grown_from=6)

    # THEN the duplicate is dropped within the deduplication window
    envelopes = drain(sqs, target.queue_url, 2)
    assert len(envelopes) == 2
    by_action = {attributes_of(envelope)["action"]: envelope for envelope in envelopes}
    assert set(by_action) == {"escalate", "pattern"}
    assert by_action["escalate"]["Subject"].startswith("[SecOps] INCIDENT opened sev 5 sqli")
    assert by_action["pattern"]["Subject"].startswith("[SecOps] PATTERN grew 6->12 events")
    assert set(attributes_of(by_action["escalate"])) == ATTRIBUTE_NAMES


def test_hostile_event_is_delivered_sanitized(sns: Any, sqs: Any, topics: dict[str, Subscribed]) -> None:
    # GIVEN an event whose URI and user agent are 60 KB of newlines, unicode and controls
    hostile = "/a\r\nSubject: forged\n\x00攻撃\u202e\U0001f600" * 3000
    event = make_event(uri=hostile, user_agent=hostile, rule_name="Rule\nX-Evil: 1")
    target = topics["standard"]

    # WHEN the incident it opens is notified
    message_id = notify_opening(make_notifier(sns, target.topic_arn), event)

    # THEN SNS accepts it and the subscriber gets a valid subject and a parsable body
    (envelope,) = drain(sqs, target.queue_url, 1)
    assert envelope["MessageId"] == message_id
    subject = envelope["Subject"]
    assert 1 <= len(subject) < 100
    assert all(0x20 <= ord(ch) <= 0x7E for ch in subject)
    assert subject == "[SecOps] INCIDENT opened sev 5 sqli from 198.51.100.23 (1 events)"
    document = document_of(envelope)
    assert document["truncated"] is True
    assert document["event"]["rule_name"] == "Rule\nX-Evil: 1"


def test_throttling_once_is_retried_and_published_once(
    sns: Any, sqs: Any, topics: dict[str, Subscribed]
) -> None:
    # GIVEN the first Publish call is throttled at the botocore layer
    target = topics["standard"]
    calls = throttle_first_publish(sns)

    # WHEN an incident milestone is notified
    with capture_logs() as logs:
        message_id = notify_opening(make_notifier(sns, target.topic_arn))

    # THEN it was retried once and delivered exactly once
    assert len(calls) == 2
    envelopes = drain(sqs, target.queue_url, 1)
    assert [envelope["MessageId"] for envelope in envelopes] == [message_id]
    events = [entry["event"] for entry in logs]
    assert events.count("sns.publish_retry") == 1
    assert events.count("sns.published") == 1
    assert all(entry["event_key"] == make_incident().id for entry in logs)


def test_missing_topic_is_a_permanent_error_without_retry(sns: Any, unique: str) -> None:
    # GIVEN a topic ARN that does not exist
    calls = count_publishes(sns)
    missing = f"arn:aws:sns:us-east-1:123456789012:missing-{unique}"

    # WHEN notified  THEN it fails at once with a clear reason
    with pytest.raises(NotificationRejected) as raised:
        notify_opening(make_notifier(sns, missing))

    assert len(calls) == 1
    assert raised.value.reason == "notify_topic_not_found"
    assert missing in raised.value.message


@pytest.mark.parametrize(
    "broken",
    [
        # A FIFO topic needs a group id ...
        lambda arn, _: Notification(arn, "s", "m", {"event_key": "k"}, "dedup", None),
        # ... and a standard topic refuses a deduplication id.
        lambda _, arn: Notification(arn, "s", "m", {"event_key": "k"}, "dedup", None),
    ],
    ids=["fifo-without-group", "standard-with-dedup"],
)
def test_invalid_parameters_are_not_retried(
    sns: Any,
    topics: dict[str, Subscribed],
    broken: Callable[[str, str], Notification],
) -> None:
    calls = count_publishes(sns)
    notification = broken(topics["fifo"].topic_arn, topics["standard"].topic_arn)

    with pytest.raises(NotificationRejected) as raised:
        make_notifier(sns, notification.topic_arn).publish(notification)

    assert len(calls) == 1
    assert raised.value.reason == "notify_invalid_parameter"


def test_throttling_on_every_attempt_asks_for_redelivery(sns: Any, topics: dict[str, Subscribed]) -> None:
    calls: list[str] = []

    def always_throttled(**_: Any) -> None:
        calls.append("publish")
        raise ClientError(
            {"Error": {"Code": "Throttled", "Message": "slow down"}, "ResponseMetadata": {}},
            "Publish",
        )

    sns.meta.events.register("before-call.sns.Publish", always_throttled)

    with pytest.raises(RetryableError) as raised:
        notify_opening(make_notifier(sns, topics["standard"].topic_arn, max_attempts=3))

    assert len(calls) == 3
    assert raised.value.reason == "notify_failed"


def test_create_topic_is_idempotent_and_marks_fifo(sns: Any, unique: str) -> None:
    names = [f"idem-{unique}", f"idem-{unique}.fifo"]

    first = {name: create_topic(sns, name) for name in names}
    second = {name: create_topic(sns, name) for name in names}

    assert first == second
    assert set(first) == set(names)
    attributes = sns.get_topic_attributes(TopicArn=first[names[1]])["Attributes"]
    assert attributes["FifoTopic"] == "true"
