"""The EventBridge channel against moto's server over HTTP: a bus made by setup, a rule
routing `source: secops-worker` to an SQS queue, and one incident's milestones read
back from the queue and validated against the published JSON Schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from tenacity import wait_none

from tests.fixtures.incident_records import contribution, grow, incident_schema, waf_event
from worker.cli.app import main
from worker.incidents.milestones import OPENED, RESOLVED, crossed
from worker.incidents.records import StatusChange
from worker.notify.eventbridge import EventBridgeChannel, EventBridgeRejected
from worker.platform.aws import client as aws_client
from worker.platform.resources import ensure_event_bus, setup_resources
from worker.settings import Settings
from worker.store.dynamodb import EventStore

VALIDATOR = Draft202012Validator(incident_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture
def events(aws_endpoint: str) -> Any:
    return aws_client("events", max_attempts=1)


@pytest.fixture
def sqs(aws_endpoint: str) -> Any:
    return aws_client("sqs")


@pytest.fixture
def routed(events: Any, sqs: Any, unique: str) -> tuple[str, str]:
    """A bus made by setup and a rule sending every secops-worker event to a queue."""
    bus = f"secops-incidents-{unique}"
    assert ensure_event_bus(events, bus) == "created"
    queue_url = sqs.create_queue(QueueName=f"incidents-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=f"secops-to-sqs-{unique}",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["secops-worker"]}),
    )
    events.put_targets(
        Rule=f"secops-to-sqs-{unique}", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return bus, queue_url


def drain(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    """Every message on the queue, until ``expected`` arrived or a long poll comes back empty."""
    bodies: list[dict[str, Any]] = []
    while len(bodies) < expected:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = received.get("Messages", [])
        if not messages:
            break
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def channel_for(bus: str) -> Callable[[Any], EventBridgeChannel]:
    def build(client: Any) -> EventBridgeChannel:
        settings = Settings(eventbridge_bus=bus, notify_max_attempts=2)
        return EventBridgeChannel.from_settings(settings, client=client, wait=wait_none())

    return build


def test_one_incident_opened_updated_resolved_arrives_on_the_queue(
    events: Any, sqs: Any, routed: tuple[str, str]
) -> None:
    bus, queue_url = routed
    channel = channel_for(bus)(events)

    # GIVEN an incident that opens, grows past 10 events with a severity rise, and is resolved
    opened = grow(None, contribution(1))
    grown = grow(opened, *(contribution(i, minutes=i, severity=5) for i in range(2, 12)))
    updates = crossed(opened, grown)
    resolved = replace(
        grown,
        status="resolved",
        status_history=(StatusChange("resolved", "2026-11-25T12:00:00+00:00", "ana", ""),),
    )

    # WHEN each milestone is published (the opening with the WAF event that opened it)
    ids = [channel.publish_incident(opened, OPENED, event=waf_event())]
    ids += [channel.publish_incident(grown, updates[0])]
    ids += [channel.publish_incident(resolved, RESOLVED)]

    # THEN the rule delivered the three events, in order, each valid against the schema
    received = drain(sqs, queue_url, expected=3)
    assert [body["detail-type"] for body in received] == [
        "Incident Opened",
        "Incident Updated",
        "Incident Resolved",
    ]
    assert [body["id"] for body in received] == ids
    for body in received:
        assert body["source"] == "secops-worker"
        VALIDATOR.validate(body["detail"])
        assert body["detail"]["incident_id"] == opened.id
    assert [body["detail"]["milestone"]["kind"] for body in received] == ["opened", "growth", "resolved"]
    assert [body["detail"]["count"] for body in received] == [1, 11, 11]
    assert received[1]["detail"]["max_severity"] == 5
    assert received[2]["detail"]["status"] == "resolved"
    assert received[0]["resources"] == [waf_event().web_acl]


def test_a_missing_bus_is_a_configuration_error_naming_setup(events: Any, unique: str) -> None:
    # GIVEN a bus that was never created
    channel = channel_for(f"nobody-made-{unique}")(events)

    # WHEN a milestone is published  THEN it is refused at once, with what to run
    with pytest.raises(EventBridgeRejected) as raised:
        channel.publish_incident(grow(None, contribution(1)), OPENED)
    assert raised.value.reason == "eventbridge_bus_not_found"
    assert "secops setup" in raised.value.message


def test_ensure_event_bus_is_idempotent_and_leaves_default_and_arns_alone(events: Any, unique: str) -> None:
    # GIVEN a bus name  WHEN ensured twice  THEN it is created once, then found
    assert ensure_event_bus(events, f"bus-{unique}") == "created"
    assert ensure_event_bus(events, f"bus-{unique}") == "exists"
    assert events.describe_event_bus(Name=f"bus-{unique}")["Name"] == f"bus-{unique}"
    # AND the default bus and a bus given by ARN are never created
    assert ensure_event_bus(events, "default") == "default"
    arn = f"arn:aws:events:us-east-1:111122223333:event-bus/other-{unique}"
    assert ensure_event_bus(events, arn) == "given"
    names = [b["Name"] for b in events.list_event_buses()["EventBuses"]]
    assert f"other-{unique}" not in names


def test_setup_creates_the_bus_of_an_enabled_channel(events: Any, sqs: Any, unique: str) -> None:
    # GIVEN settings naming a bus of their own, and setup given an events client
    settings = Settings(
        queue_name=f"q-{unique}",
        dlq_name=f"dlq-{unique}",
        table_name=f"t-{unique}",
        critical_topic_name=f"critical-{unique}",
        monitoring_topic_name=f"monitoring-{unique}",
        eventbridge_bus=f"secops-incidents-{unique}",
    )
    store = EventStore(settings.table_name, client=aws_client("dynamodb"))

    # WHEN setup runs twice
    reports = [
        setup_resources(settings, sqs=sqs, sns=aws_client("sns"), store=store, events=events)[1]
        for _ in range(2)
    ]

    # THEN the bus is created once and found the second time
    key = f"event bus secops-incidents-{unique}"
    assert [report[key] for report in reports] == ["created", "exists"]


@pytest.mark.parametrize(("channels", "made"), [("sns,eventbridge", True), ("sns", False)])
def test_secops_setup_creates_the_bus_only_when_the_channel_is_enabled(
    events: Any,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    channels: str,
    made: bool,
) -> None:
    # GIVEN the environment of a deployment, with or without the eventbridge channel
    names = {
        "QUEUE_NAME": f"q-{unique}",
        "DLQ_NAME": f"dlq-{unique}",
        "TABLE_NAME": f"t-{unique}",
        "CRITICAL_TOPIC_NAME": f"critical-{unique}",
        "MONITORING_TOPIC_NAME": f"monitoring-{unique}",
        "EVENTBRIDGE_BUS": f"secops-incidents-{unique}",
        "CHANNELS": channels,
    }
    for name, value in names.items():
        monkeypatch.setenv(f"SECOPS_{name}", value)

    # WHEN `secops setup` runs
    assert main(["setup"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]

    # THEN the bus exists (and is reported) exactly when the channel is enabled
    buses = {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}
    assert (f"secops-incidents-{unique}" in buses) is made
    assert (report.get(f"event bus secops-incidents-{unique}") == "created") is made
