"""What a person and a system see when a source is blocked or unblocked: a line on the
SNS topic, a chat card, an EventBridge event (detail-types ``Source Blocked`` and
``Source Unblocked``, the versioned document ``docs/schemas/source-block-event.v1.json``)
and a ``Note`` on the incident's Security Hub finding (docs/architecture.md,
"Response actions").

Each is sent by the replica whose conditional write made the change, so once; a channel
that fails is logged and counted and never undoes or repeats the block. The reason
text may carry an attack class a model named, so every value is cleaned like any
other notification's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog

from worker.incidents.keys import parse_incident_id
from worker.notify.asff import finding_id_of
from worker.notify.render import Notification
from worker.notify.sanitize import (
    ascii_token,
    chat_code,
    chat_prose,
    clean,
    dedup_id,
    is_fifo,
    sanitize_attributes,
    sanitize_subject,
)
from worker.notify.sns import SnsPublisher
from worker.platform.resources import Resources
from worker.ports import Metrics
from worker.response.records import BlockRecord, iso
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from types_boto3_securityhub.type_defs import NoteUpdateTypeDef
    from types_boto3_sns.client import SNSClient

log = structlog.get_logger("worker.notify.blocks")

Change = Literal["blocked", "unblocked"]
SOURCE = "secops-worker"
DETAIL_TYPES: Mapping[Change, str] = {"blocked": "Source Blocked", "unblocked": "Source Unblocked"}
SCHEMA_VERSION = "1"
SCHEMA_FILE = "docs/schemas/source-block-event.v1.json"
CHAT_HEADLINES = (":no_entry: Source blocked", ":white_check_mark: Source unblocked")
_REASON_CHARS = 300
_BY_CHARS = 128


def summary(record: BlockRecord, change: Change) -> str:
    """``blocked 203.0.113.9 in ipset X until 14:05 UTC`` or ``unblocked … (expired)``."""
    if change == "blocked":
        return record.line
    how = (record.history[-1].action if record.history else "unblocked").replace("_", " ")
    by = clean(record.removed_by or "", _BY_CHARS)
    return f"unblocked {record.target} from ipset {record.ip_set.name} ({how} by {by})"


def undo(record: BlockRecord, change: Change) -> str:
    """The command that reverses ``change``."""
    if change == "blocked":
        return record.undo_command
    return f"secops block add {record.target} --for 4h --reason '...'"


def detail(record: BlockRecord, change: Change) -> dict[str, Any]:
    """The EventBridge ``detail`` (the schema in ``SCHEMA_FILE``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "change": change,
        "action": record.history[-1].action if record.history else change,
        "address": record.address,
        "network": record.network,
        "ip_set": {
            "name": record.ip_set.name,
            "id": record.ip_set.id,
            "scope": record.ip_set.scope,
            "version": record.ip_set.version,
            "arn": record.ip_set.arn,
        },
        "incident_id": record.incident_id,
        "reason": clean(record.reason, _REASON_CHARS),
        "decided_by": clean(record.decided_by, _BY_CHARS),
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "removed_at": iso(record.removed_at) if record.removed_at is not None else None,
        "removed_by": clean(record.removed_by, _BY_CHARS) if record.removed_by else None,
        "generation": record.generation,
        "summary": clean(summary(record, change), 500),
        "undo": undo(record, change),
    }


def event_entry(record: BlockRecord, change: Change, *, bus: str) -> PutEventsRequestEntryTypeDef:
    """The ``PutEvents`` entry of one change."""
    at = record.created_at if change == "blocked" else (record.removed_at or record.created_at)
    return {
        "EventBusName": bus,
        "Source": SOURCE,
        "DetailType": DETAIL_TYPES[change],
        "Time": datetime.fromtimestamp(at, UTC),
        "Detail": json.dumps(detail(record, change), separators=(",", ":"), ensure_ascii=True),
    }


def text_notification(topic_arn: str, record: BlockRecord, change: Change) -> Notification:
    """The SNS text (e-mail) of one change."""
    lines = [
        summary(record, change) + ".",
        f"Reason: {clean(record.reason, _REASON_CHARS)}",
        f"Decided by: {clean(record.decided_by, _BY_CHARS)}",
        f"Incident: {record.incident_id or '-'}",
        f"IP set: {record.ip_set.label} {record.ip_set.arn}".rstrip(),
        f"Undo: {undo(record, change)}",
    ]
    subject = sanitize_subject(f"SecOps {change} {record.target} ({record.ip_set.name})")
    return _notification(topic_arn, record, change, subject=subject, message="\n".join(lines))


def chat_notification(topic_arn: str, record: BlockRecord, change: Change) -> Notification:
    """The Amazon Q Developer custom notification of one change, threaded with its incident."""
    headline = CHAT_HEADLINES[0] if change == "blocked" else CHAT_HEADLINES[1]
    message = {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": f"{headline}: {chat_code(record.target, 50)}",
            "description": f"{chat_prose(summary(record, change), 300)}. "
            f"Reason: {chat_prose(record.reason, _REASON_CHARS)}.",
            "nextSteps": [f"Undo: {chat_code(undo(record, change), 120)}"],
        },
        "metadata": {
            "threadId": ascii_token(record.incident_id or record.key, 128),
            "summary": sanitize_subject(summary(record, change))[:100],
            "additionalContext": {
                "ipSet": ascii_token(record.ip_set.name, 128),
                "network": ascii_token(record.network, 64),
                "decidedBy": ascii_token(record.decided_by, 128),
            },
        },
    }
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    return _notification(topic_arn, record, change, subject=message["metadata"]["summary"], message=body)  # type: ignore[index]


def _notification(
    topic_arn: str, record: BlockRecord, change: Change, *, subject: str, message: str
) -> Notification:
    fifo = is_fifo(topic_arn)
    return Notification(
        topic_arn=topic_arn,
        subject=subject,
        message=message,
        attributes=sanitize_attributes({"block": record.key, "change": change}),
        dedup_id=dedup_id("incident", "block", record.key, record.generation, change) if fifo else None,
        group_id=ascii_token(record.network, 128) if fifo else None,
    )


def securityhub_note(record: BlockRecord, change: Change) -> NoteUpdateTypeDef:
    """The ``Note`` set on the incident's finding (``BatchUpdateFindings``)."""
    return {
        "Text": clean(f"{summary(record, change)}. Undo: {undo(record, change)}", 512),
        "UpdatedBy": SOURCE,
    }


def finding_of(record: BlockRecord) -> str | None:
    """The id of the incident's finding, or None for a block without an incident."""
    if record.incident_id is None:
        return None
    try:
        group_hash, seq = parse_incident_id(record.incident_id)
    except ValueError:
        return None
    return finding_id_of(group_hash, seq)


Publish = Callable[[BlockRecord, Change], str | None]


class BlockAnnouncer:
    """The blocker's listener: each change to every enabled channel, failures counted."""

    def __init__(self, publishers: Mapping[str, Publish], *, metrics: Metrics | None = None) -> None:
        self.publishers = dict(publishers)
        self.metrics = metrics

    def blocked(self, record: BlockRecord) -> None:
        self._announce(record, "blocked")

    def unblocked(self, record: BlockRecord) -> None:
        self._announce(record, "unblocked")

    def _announce(self, record: BlockRecord, change: Change) -> None:
        for channel, publish in self.publishers.items():
            try:
                publish(record, change)
            except Exception as exc:
                log.warning(
                    "block_notice_failed", channel=channel, key=record.key, change=change, error=str(exc)
                )
                if self.metrics is not None:
                    self.metrics.count("BlockNoticeFailed", dimensions={"Channel": channel})


def build_block_announcer(
    settings: Settings, *, sns_client: SNSClient, resources: Resources, metrics: Metrics | None = None
) -> BlockAnnouncer:
    """The announcer over the channels of ``SECOPS_CHANNELS``, the same ones incidents use."""
    publisher = SnsPublisher(client=sns_client, max_attempts=settings.notify_max_attempts)
    publishers: dict[str, Publish] = {}
    for name in settings.enabled_channels:
        if name == "sns":
            publishers[name] = _on_topic(publisher, text_notification, resources.critical_topic_arn)
        elif name == "chat" and resources.chat_topic_arn is not None:
            publishers[name] = _on_topic(publisher, chat_notification, resources.chat_topic_arn)
        elif name == "eventbridge":
            from worker.notify.eventbridge import EventBridgeChannel

            bus = EventBridgeChannel.from_settings(settings)

            def put(record: BlockRecord, change: Change, bus: EventBridgeChannel = bus) -> str:
                return bus.publish_entry(event_entry(record, change, bus=bus.bus), what=record.key)

            publishers[name] = put
        elif name == "securityhub":
            from worker.notify.securityhub import SecurityHubChannel

            hub = SecurityHubChannel.from_settings(settings)

            def note(record: BlockRecord, change: Change, hub: SecurityHubChannel = hub) -> str | None:
                finding = finding_of(record)
                if finding is None:
                    return None
                hub.note_finding(finding, securityhub_note(record, change))
                return finding

            publishers[name] = note
    return BlockAnnouncer(publishers, metrics=metrics)


def _on_topic(
    publisher: SnsPublisher, render: Callable[[str, BlockRecord, Change], Notification], topic_arn: str
) -> Publish:
    def publish(record: BlockRecord, change: Change) -> str:
        return publisher.publish(render(topic_arn, record, change))

    return publish
