"""Functional tests of SNS publishing (incident milestones and patterns): request shape and
error handling, via botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber
from structlog.testing import capture_logs
from tenacity import wait_none

from secops_core.contract import WafEvent
from tests.fixtures.moto_server import free_port
from tests.unit.test_notifier_sanitize import (
    FIFO_ARN,
    STANDARD_ARN,
    make_analysis,
    make_event,
    make_incident,
    make_pattern,
)
from worker.errors import ConfigurationError, RetryableError, WorkerError
from worker.incidents.milestones import OPENED
from worker.notify.sns import NotificationRejected, SnsChannel, SnsNotifier
from worker.platform.resources import create_topic

PUBLISHED = {"MessageId": "11111111-2222-3333-4444-555555555555"}


@pytest.fixture
def sns() -> Any:
    # No endpoint is ever contacted: every call is answered by the Stubber.
    return boto3.client("sns", region_name="us-east-1")


@pytest.fixture
def stubber(sns: Any) -> Iterator[Stubber]:
    with Stubber(sns) as stub:
        yield stub
        stub.assert_no_pending_responses()


def notifier(sns: Any, topic_arn: str = STANDARD_ARN, max_attempts: int = 3) -> SnsNotifier:
    return SnsNotifier(
        monitoring_topic_arn=topic_arn,
        client=sns,
        max_attempts=max_attempts,
        wait=wait_none(),
    )


def notify_opening(notifier: SnsNotifier, event: WafEvent | None = None) -> str:
    """Publish the opening milestone of the incident ``event`` opens, on the notifier's
    topic and through its publisher, as the ``sns`` incident channel does."""
    event = event or make_event()
    channel = SnsChannel(topic_arn=notifier.monitoring_topic_arn, publisher=notifier.publisher)
    return channel.publish_incident(make_incident(event), OPENED, event=event, analysis=make_analysis())


def attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def test_standard_topic_request_has_no_fifo_ids(sns: Any, stubber: Stubber) -> None:
    # GIVEN SNS expects exactly this request for a standard topic
    stubber.add_response(
        "publish",
        PUBLISHED,
        {
            "TopicArn": STANDARD_ARN,
            "Subject": "[SecOps] INCIDENT opened sev 5 sqli from 198.51.100.23 (1 events)",
            "Message": ANY,
            "MessageAttributes": {
                "event_key": attribute(make_incident().id),
                "incident_id": attribute(make_incident().id),
                "milestone": attribute("opened"),
                "severity": attribute("5"),
                "workflow": attribute("incident"),
                "action": attribute("escalate"),
                "source_ip": attribute("198.51.100.23"),
            },
        },
    )

    # WHEN an incident milestone is notified  THEN the MessageId comes back
    message_id = notify_opening(notifier(sns))
    assert message_id == PUBLISHED["MessageId"]


def test_fifo_topic_request_carries_dedup_and_group_ids(sns: Any, stubber: Stubber) -> None:
    stubber.add_response(
        "publish",
        PUBLISHED,
        {
            "TopicArn": FIFO_ARN,
            "Subject": ANY,
            "Message": ANY,
            "MessageAttributes": ANY,
            "MessageDeduplicationId": ANY,
            "MessageGroupId": "203.0.113.7",
        },
    )

    notifier(sns, FIFO_ARN).notify_pattern(make_pattern(), escalated_keys=["evt#1"], grown_from=4)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttling", 400),
        ("Throttled", 400),
        ("ThrottlingException", 400),
        ("KMSThrottling", 400),
        ("InternalError", 500),
        ("InternalFailure", 500),
        ("SomethingNew", 503),
    ],
)
def test_transient_errors_are_retried(sns: Any, stubber: Stubber, code: str, status: int) -> None:
    # GIVEN one transient failure before success
    stubber.add_client_error("publish", service_error_code=code, http_status_code=status)
    stubber.add_response("publish", PUBLISHED)

    # WHEN published  THEN the retry succeeds and both answers were consumed
    with capture_logs() as logs:
        message_id = notify_opening(notifier(sns))

    assert message_id == PUBLISHED["MessageId"]
    retries = [entry for entry in logs if entry["event"] == "sns.publish_retry"]
    assert len(retries) == 1
    assert retries[0]["error_code"] == code
    assert retries[0]["event_key"] == make_incident().id
    published = [entry for entry in logs if entry["event"] == "sns.published"]
    assert published[0]["attempts"] == 2
    assert published[0]["message_id"] == PUBLISHED["MessageId"]


def test_exhausted_retries_raise_retryable_notify_failed(sns: Any, stubber: Stubber) -> None:
    # GIVEN throttling on every one of the three attempts
    for _ in range(3):
        stubber.add_client_error("publish", service_error_code="Throttling", http_status_code=400)

    # WHEN published  THEN the consumer is told to redeliver later
    with pytest.raises(RetryableError) as raised:
        notify_opening(notifier(sns, max_attempts=3))

    assert raised.value.reason == "notify_failed"
    assert "3 attempt" in raised.value.message


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("NotFound", 404, "notify_topic_not_found"),
        ("AuthorizationError", 403, "notify_not_authorized"),
        ("InvalidParameter", 400, "notify_invalid_parameter"),
        ("KMSDisabled", 400, "notify_rejected"),
    ],
)
def test_permanent_errors_are_not_retried(
    sns: Any, stubber: Stubber, code: str, status: int, reason: str
) -> None:
    # GIVEN a single permanent failure queued (a retry would hit an unstubbed call)
    stubber.add_client_error(
        "publish", service_error_code=code, service_message="nope", http_status_code=status
    )

    # WHEN published  THEN it fails at once with a clear, typed error
    with pytest.raises(NotificationRejected) as raised:
        notify_opening(notifier(sns))

    error = raised.value
    assert isinstance(error, ConfigurationError)
    assert isinstance(error, WorkerError)
    assert error.reason == reason
    assert error.code == code
    assert STANDARD_ARN in error.message
    assert code in error.message


def test_connection_errors_are_retried_then_reported_retryable() -> None:
    # GIVEN a client pointed at a closed port, with botocore's own retries off
    sns = boto3.client(
        "sns",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
    )

    # WHEN published  THEN every attempt is made and the error is retryable
    with capture_logs() as logs, pytest.raises(RetryableError) as raised:
        notify_opening(notifier(sns, max_attempts=2))

    assert raised.value.reason == "notify_failed"
    assert [entry["event"] for entry in logs].count("sns.publish_retry") == 1


def test_create_topic_marks_fifo_names(sns: Any, stubber: Stubber) -> None:
    stubber.add_response(
        "create_topic",
        {"TopicArn": STANDARD_ARN},
        {"Name": "secops-critical", "Attributes": {}},
    )
    stubber.add_response(
        "create_topic",
        {"TopicArn": FIFO_ARN},
        {"Name": "secops-critical.fifo", "Attributes": {"FifoTopic": "true"}},
    )

    arns = {name: create_topic(sns, name) for name in ["secops-critical", "secops-critical.fifo"]}

    assert arns == {"secops-critical": STANDARD_ARN, "secops-critical.fifo": FIFO_ARN}


def test_max_attempts_must_be_positive(sns: Any) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        notifier(sns, max_attempts=0)
