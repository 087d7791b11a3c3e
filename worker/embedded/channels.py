"""The demo's output channels: Security Hub, EventBridge and chat on moto, and what each received.

The demo enables every incident channel (README, "Output channels"), so each incident
milestone goes to SNS, to a chat topic, to Security Hub and to an EventBridge bus. What
they received is read back the way a person or a system downstream would see it:
the findings through ``GetFindings``, the events through a rule on the bus that targets
an SQS queue (``source: secops-worker``), the chat cards through a raw SQS subscription
of the chat topic (the message as Amazon Q Developer in chat applications reads it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from secops_core.text import sanitize_text
from worker.notify.eventbridge import SOURCE
from worker.platform import aws
from worker.platform.resources import Resources
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_securityhub.client import SecurityHubClient
    from types_boto3_securityhub.type_defs import (
        AwsSecurityFindingOutputTypeDef,
        GetFindingsRequestTypeDef,
    )
    from types_boto3_sqs.client import SQSClient

    from worker.daemon import Clients

# Every channel, so the demo shows each one; SNS first, as a deployment names it.
DEMO_CHANNELS = "sns,chat,securityhub,eventbridge"
RULE_NAME = "demo-secops-to-queue"
EVENTS_QUEUE = "demo-incident-events"
CHAT_TAP = "demo-chat-tap"
# A cell's text is cleaned and bounded, then wrapped by the table: long enough for a whole
# finding or card title, so the demo never shows one cut.
_CELL_CHARS = 256


@dataclass(frozen=True)
class ChannelTaps:
    """Where the demo reads back what the channels received."""

    securityhub: SecurityHubClient
    events_queue_url: str
    chat_tap_url: str


def events_client(settings: Settings) -> EventBridgeClient:
    return aws.client("events", region=settings.aws_region, localstack=settings.localstack)


def connect_channels(
    settings: Settings, clients: Clients, resources: Resources, events: EventBridgeClient
) -> ChannelTaps:
    """Enable Security Hub, route the bus's events to a queue and tap the chat topic.

    The bus and the chat topic exist already (``setup_resources`` made them, as
    ``secops setup`` does); Security Hub is the one thing an operator turns on by hand.
    """
    securityhub = aws.client("securityhub", region=settings.aws_region, localstack=settings.localstack)
    securityhub.enable_security_hub(EnableDefaultStandards=False)

    queue_url: str = clients.sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
    events.put_rule(
        Name=RULE_NAME,
        EventBusName=settings.eventbridge_bus,
        EventPattern=json.dumps({"source": [SOURCE]}),
    )
    events.put_targets(
        Rule=RULE_NAME,
        EventBusName=settings.eventbridge_bus,
        Targets=[{"Id": "queue", "Arn": _queue_arn(clients.sqs, queue_url)}],
    )

    if resources.chat_topic_arn is None:
        raise ValueError("the demo enables chat: setup_resources must have made its topic")
    chat_url: str = clients.sqs.create_queue(QueueName=CHAT_TAP)["QueueUrl"]
    clients.sns.subscribe(
        TopicArn=resources.chat_topic_arn,
        Protocol="sqs",
        Endpoint=_queue_arn(clients.sqs, chat_url),
        # Raw: the body is the card itself, as chat receives it, not an SNS envelope.
        Attributes={"RawMessageDelivery": "true"},
    )
    return ChannelTaps(securityhub=securityhub, events_queue_url=queue_url, chat_tap_url=chat_url)


def read_channels(sqs: SQSClient, taps: ChannelTaps, *, incident_order: Sequence[str]) -> dict[str, Any]:
    """What each channel received, as JSON, grouped in the order of ``incident_order``
    and, within an incident, in the order of its milestones (their totals only grow).
    """
    rank = {incident: index for index, incident in enumerate(incident_order)}

    def order(incident: str, count: int = 0) -> tuple[int, str, int]:
        return rank.get(incident, len(rank)), incident, count

    findings = [_finding(f) for f in _findings(taps.securityhub)]
    events = [_event(body) for body in _bodies(sqs, taps.events_queue_url)]
    cards = [_card(body) for body in _bodies(sqs, taps.chat_tap_url)]
    return {
        "securityhub_findings": sorted(findings, key=lambda f: order(f["incident"])),
        "eventbridge_events": sorted(events, key=lambda e: order(e["incident"], e["count"])),
        "chat_cards": sorted(cards, key=lambda c: order(c["thread_id"], c["count"])),
    }


def _queue_arn(sqs: SQSClient, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _findings(securityhub: SecurityHubClient) -> list[AwsSecurityFindingOutputTypeDef]:
    """Every finding of ours (the demo's Security Hub holds nothing else, but say so)."""
    found: list[AwsSecurityFindingOutputTypeDef] = []
    kwargs: GetFindingsRequestTypeDef = {"MaxResults": 100}
    while True:
        page = securityhub.get_findings(**kwargs)
        found += [f for f in page["Findings"] if str(f.get("GeneratorId", "")).startswith(f"{SOURCE}/")]
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def _bodies(sqs: SQSClient, url: str) -> list[dict[str, Any]]:
    """Every message on the queue, consumed: EventBridge and SNS delivered them already."""
    bodies: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        bodies += [json.loads(message["Body"]) for message in batch]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return bodies


def _finding(finding: AwsSecurityFindingOutputTypeDef) -> dict[str, Any]:
    fields = finding.get("ProductFields", {})
    return {
        "id": finding["Id"],
        "incident": fields.get("secops/incident_id", ""),
        "severity": finding.get("Severity", {}).get("Label", ""),
        "title": finding.get("Title", ""),
        "types": list(finding.get("Types", [])),
        "count": int(fields.get("secops/event_count", 0)),
        "milestone": fields.get("secops/milestone", ""),
        "workflow": finding.get("Workflow", {}).get("Status", ""),
        "updated_at": finding.get("UpdatedAt", ""),
    }


def _event(body: dict[str, Any]) -> dict[str, Any]:
    detail = body.get("detail", {})
    return {
        "source": body.get("source", ""),
        "detail_type": body.get("detail-type", ""),
        "incident": detail.get("incident_id", ""),
        "milestone": detail.get("milestone", {}).get("id", ""),
        "count": int(detail.get("count", 0)),
        "max_severity": detail.get("max_severity"),
        "schema_version": detail.get("schema_version", ""),
    }


def _card(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata", {})
    context = metadata.get("additionalContext", {})
    return {
        "thread_id": metadata.get("threadId", ""),
        "milestone": context.get("milestone", ""),
        "count": int(context.get("events", 0)),
        "title": body.get("content", {}).get("title", ""),
    }


def _cell(value: object, limit: int = _CELL_CHARS) -> Text:
    """Attacker-influenced text (a source, a host) as a plain cell, never console markup."""
    return Text(sanitize_text("" if value is None else str(value), limit))


def print_channels(console: Console, summary: dict[str, Any]) -> None:
    findings = summary["securityhub_findings"]
    table = Table(
        title=f"Security Hub: {len(findings)} findings, one per incident, with the totals of its latest "
        "milestone (read back with GetFindings)",
        title_justify="left",
    )
    for column in ("incident", "severity", "title", "types", "count", "updated"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for finding in findings:
        table.add_row(
            Text(finding["incident"], no_wrap=True),
            finding["severity"],
            _cell(finding["title"]),
            Text("\n".join(sanitize_text(t, _CELL_CHARS) for t in finding["types"])),
            str(finding["count"]),
            _time(finding["updated_at"]),
        )
    console.print(table)

    events = summary["eventbridge_events"]
    table = Table(
        title=f"EventBridge: {len(events)} events (a rule on source {SOURCE} → an SQS queue)",
        title_justify="left",
    )
    for column in ("detail-type", "incident", "milestone", "count", "sev."):
        table.add_column(column, justify="right" if column in {"count", "sev."} else "left")
    for event in events:
        table.add_row(
            event["detail_type"],
            Text(event["incident"], no_wrap=True),
            _cell(event["milestone"], 30),
            str(event["count"]),
            str(event["max_severity"]),
        )
    console.print(table)

    cards = summary["chat_cards"]
    threads = len({card["thread_id"] for card in cards})
    table = Table(
        title=f"Chat: {len(cards)} cards in {threads} threads, one per incident "
        "(the chat topic, read as Amazon Q Developer reads it)",
        title_justify="left",
    )
    for column in ("thread", "milestone", "title"):
        table.add_column(column)
    for card in cards:
        table.add_row(
            Text(card["thread_id"], no_wrap=True), _cell(card["milestone"], 30), _cell(card["title"])
        )
    console.print(table)


def _time(text: str) -> str:
    """``UpdatedAt`` as the time of day: the demo's findings are all from today."""
    return text[11:19] if len(text) >= 19 else text
