"""Every request the output channels send, checked field by field against botocore's
service models (type, required, min/max, pattern, enum) and the limits the AWS
documentation adds, for a worst-case incident built from hostile input: a long Host
header, emoji, control and invisible characters, in every attacker-fed field.

The clients are real boto3 clients; botocore's Stubber answers them, so what is checked
is exactly what would go over the wire.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from tenacity import wait_none

from tests.fixtures.aws_shapes import recorded_client, shape_errors
from tests.unit.test_asff import strings
from tests.unit.test_incident_rules import T0, contribution, opened
from tests.unit.test_notifier_sanitize import make_analysis, make_event, make_pattern
from worker.incidents.milestones import OPENED, RESOLVED, Milestone
from worker.incidents.records import ChannelResult, IncidentRecord, Notice, StatusChange
from worker.notify.chat import ChatChannel
from worker.notify.eventbridge import EventBridgeChannel
from worker.notify.securityhub import SecurityHubChannel
from worker.notify.sns import SnsChannel, SnsNotifier, SnsPublisher

ACCOUNT = "111122223333"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:secops-critical"
# Control characters, bidi overrides, zero-width and line separators, emoji, a NUL,
# an ANSI escape and markup: what an attacker puts in a Host header, a URI or a rule name.
NASTY = "\u202e\x00\x1b[31m\U0001f600\U0001f4a5\u200b\r\n\u2028<script>\x07\ufeff"
LONG_HOST = NASTY + "a" * 300 + "." + "b" * 300 + ".example.com" + NASTY
HOSTILE = NASTY + "A" * 3000 + NASTY + "/%00../" * 400
# Java's `.` (the services apply the model's patterns with it) stops at these.
JAVA_LINE_TERMINATORS = frozenset("\n\r\u0085\u2028\u2029")

# Limits the ASFF documentation states and botocore's model does not carry
# (AwsSecurityFinding, Resource, Note in the Security Hub API reference).
ASFF_STRING_LIMITS = {
    "Id": 512,
    "GeneratorId": 512,
    "Title": 256,
    "Description": 1024,
    "ProductName": 128,
}
ASFF_TYPE_MAX, ASFF_TYPES_MAX = 128, 50
ASFF_PRODUCT_FIELDS_MAX, ASFF_FIELD_KEY_MAX, ASFF_FIELD_VALUE_MAX = 50, 128, 2048
ASFF_RESOURCES_MAX, ASFF_RESOURCE_ID_MAX, ASFF_RESOURCE_TYPE_MAX = 32, 512, 256
ASFF_OTHER_DETAILS_MAX, ASFF_OTHER_KEY_MAX, ASFF_OTHER_VALUE_MAX = 50, 128, 1024
ASFF_NOTE_MAX = 512
ASFF_FINDING_BYTES = 240 * 1024
# SNS (Publish API reference): a subject under 100 printable ASCII characters, a
# message of at most 256 KiB; EventBridge: an entry of at most 256 KiB.
SNS_SUBJECT_BELOW = 100
SNS_MESSAGE_BYTES = 256 * 1024
EVENTBRIDGE_ENTRY_BYTES = 256 * 1024


def hostile_incident() -> IncidentRecord:
    """An incident whose every attacker-fed field is long and full of nasty characters."""
    record = opened(contribution(1, uri="/x" + HOSTILE, country="DE"), contribution(2, reached=True))
    counts = {f"{HOSTILE}{i}": 1 for i in range(25)}
    return replace(
        record,
        rules=counts,
        uri_templates=counts,
        countries={HOSTILE: 3, "de": 1},
        source_ips={**counts, "203.0.113.7": 30},
        target=f"{LONG_HOST} /x{HOSTILE}",
        attack_class=HOSTILE.lower(),
        classes={HOSTILE: 2},
    )


def hostile_event() -> Any:
    return make_event(
        host=LONG_HOST,
        uri="/" + HOSTILE,
        user_agent=HOSTILE,
        rule_name=HOSTILE,
        web_acl=HOSTILE,
        country=HOSTILE,
        args=HOSTILE,
    )


def hostile_analysis() -> Any:
    return make_analysis(
        security_analysis=HOSTILE, follow_up_suggestion=HOSTILE, attack_type=HOSTILE, analyzed_by=HOSTILE
    )


HOSTILE_MILESTONE = Milestone("class:x", "new_class", HOSTILE)


def asff_limit_errors(finding: dict[str, Any]) -> list[str]:
    """What the ASFF documentation limits and the model does not say."""
    errors = [
        f"{name}: {len(finding[name])} > {limit}"
        for name, limit in ASFF_STRING_LIMITS.items()
        if name in finding and len(finding[name]) > limit
    ]
    types = [*finding["Types"], *finding.get("FindingProviderFields", {}).get("Types", [])]
    errors += [f"Types: {t[:40]!r} > {ASFF_TYPE_MAX}" for t in types if len(t) > ASFF_TYPE_MAX]
    if len(finding["Types"]) > ASFF_TYPES_MAX:
        errors.append("Types: too many")
    fields = finding.get("ProductFields", {})
    if len(fields) > ASFF_PRODUCT_FIELDS_MAX - 10:  # Security Hub adds its own
        errors.append(f"ProductFields: {len(fields)} entries")
    errors += [f"ProductFields key {k[:40]!r}" for k in fields if len(k) > ASFF_FIELD_KEY_MAX]
    errors += [f"ProductFields[{k}]" for k, v in fields.items() if len(v) > ASFF_FIELD_VALUE_MAX]
    resources = finding["Resources"]
    if not 1 <= len(resources) <= ASFF_RESOURCES_MAX:
        errors.append(f"Resources: {len(resources)}")
    for resource in resources:
        if len(resource["Id"]) > ASFF_RESOURCE_ID_MAX or len(resource["Type"]) > ASFF_RESOURCE_TYPE_MAX:
            errors.append(f"Resource {resource['Id'][:40]!r}")
        other = resource.get("Details", {}).get("Other", {})
        if len(other) > ASFF_OTHER_DETAILS_MAX:
            errors.append("Resource Details.Other: too many")
        errors += [
            f"Resource Details.Other[{k[:40]!r}]"
            for k, v in other.items()
            if len(k) > ASFF_OTHER_KEY_MAX or len(v) > ASFF_OTHER_VALUE_MAX
        ]
    if len(json.dumps(finding).encode()) > ASFF_FINDING_BYTES:
        errors.append("finding over 240 KB")
    return errors


def one_line_errors(document: Any) -> list[str]:
    """Strings that a service's `.*\\S.*` would refuse or a reader would be fooled by."""
    return [
        repr(text[:60])
        for text in strings(document)
        if not text.strip()
        or any(ch in JAVA_LINE_TERMINATORS or ch in "\x00\x1b\u202e\u200b\ufeff" for ch in text)
    ]


# ---- Security Hub ----------------------------------------------------------------------------


def test_the_hostile_finding_fits_every_shape_and_documented_limit() -> None:
    # GIVEN a Security Hub channel on a real client, answered by the Stubber
    with recorded_client("securityhub") as recorded:
        recorded.stubber.add_response(
            "batch_import_findings", {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}
        )
        channel = SecurityHubChannel(client=recorded.client, account_id=ACCOUNT, max_attempts=1)
        # WHEN the hostile incident is published at a hostile milestone
        channel.publish_incident(
            hostile_incident(), HOSTILE_MILESTONE, event=hostile_event(), analysis=hostile_analysis()
        )
    # THEN every field of BatchImportFindings is within botocore's model
    [(operation, params)] = recorded.calls
    assert operation == "BatchImportFindings"
    assert recorded.errors() == []
    # AND within the limits the ASFF documentation adds, each string on one line
    (finding,) = params["Findings"]
    assert asff_limit_errors(finding) == []
    assert one_line_errors(finding) == []
    # AND the retired Network object (its DestinationDomain took the Host header) is gone,
    # the connection is inbound as the API spells it
    assert "Network" not in finding
    assert finding["Action"]["NetworkConnectionAction"]["ConnectionDirection"] == "IN"


def test_the_resolution_note_fits_the_model() -> None:
    # GIVEN a resolved incident whose operator note is hostile
    record = replace(
        hostile_incident(),
        status="resolved",
        status_history=(StatusChange("resolved", "2026-11-25T11:00:00.000+00:00", HOSTILE, HOSTILE),),
    )
    with recorded_client("securityhub") as recorded:
        recorded.stubber.add_response(
            "batch_import_findings", {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}
        )
        recorded.stubber.add_response(
            "batch_update_findings", {"ProcessedFindings": [], "UnprocessedFindings": []}
        )
        # WHEN its resolution is published
        SecurityHubChannel(client=recorded.client, account_id=ACCOUNT, max_attempts=1).publish_incident(
            record, RESOLVED
        )
    # THEN both calls fit the model, and the note its documented 512 characters
    assert [name for name, _ in recorded.calls] == ["BatchImportFindings", "BatchUpdateFindings"]
    assert recorded.errors() == []
    note = recorded.calls[1][1]["Note"]
    assert len(note["Text"]) <= ASFF_NOTE_MAX and len(note["UpdatedBy"]) <= ASFF_NOTE_MAX
    assert one_line_errors(recorded.calls[1][1]) == []


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov", "aws-iso-e"])
def test_resources_name_only_an_enumerated_partition(partition: str) -> None:
    # GIVEN a client whose partition may be newer than the API's enum
    from worker.notify.asff import FindingContext, build_finding

    context = FindingContext(
        f"arn:{partition}:securityhub:r:{ACCOUNT}:product/{ACCOUNT}/default", ACCOUNT, partition, "r"
    )
    acl = f"arn:{partition}:wafv2:eu-west-1:{ACCOUNT}:regional/webacl/shop/1"
    finding = build_finding(opened(contribution(1)), OPENED, context, now=T0, event=make_event(web_acl=acl))
    # THEN every resource fits the model's Resource shape (Partition is an enum)
    with recorded_client("securityhub") as recorded:
        shape = recorded.client.meta.service_model.shape_for("Resource")
    assert [e for r in finding["Resources"] for e in shape_errors(shape, r)] == []


# ---- Security Hub times ------------------------------------------------------------------


def securityhub_notice(at: datetime) -> Notice:
    return Notice(
        "m", at.isoformat(timespec="milliseconds"), "x", (ChannelResult("securityhub", ok=True, id="f"),)
    )


def test_created_equals_updated_on_creation_and_event_times_are_observed_times() -> None:
    # GIVEN an incident opened at T0 + 1 s whose events are stamped a day in the future
    from worker.notify.asff import FindingContext, build_finding

    context = FindingContext(
        f"arn:aws:securityhub:r:{ACCOUNT}:product/{ACCOUNT}/default", ACCOUNT, "aws", "r"
    )
    future = T0 + timedelta(days=1)
    record = replace(
        opened(contribution(1, at=future)),
        created_at=(T0 + timedelta(seconds=1)).isoformat(timespec="milliseconds"),
    )
    # WHEN the finding is created (no Security Hub write recorded yet)
    finding = build_finding(record, OPENED, context, now=T0 + timedelta(seconds=1))
    # THEN CreatedAt = UpdatedAt = when the incident was opened; the events' times are observed times
    assert finding["CreatedAt"] == finding["UpdatedAt"] == "2026-11-25T10:00:01.000Z"
    assert finding["FirstObservedAt"] == finding["LastObservedAt"] == "2026-11-26T10:00:00.000Z"


def test_updated_at_is_now_and_strictly_later_than_every_earlier_write() -> None:
    # GIVEN an incident whose finding was written three times, last by a replica whose
    # clock is a minute ahead of this one, and whose events are stamped in the future
    from worker.notify.asff import FindingContext, build_finding

    context = FindingContext(
        f"arn:aws:securityhub:r:{ACCOUNT}:product/{ACCOUNT}/default", ACCOUNT, "aws", "r"
    )
    created = T0 + timedelta(seconds=1)
    writes = [created + timedelta(seconds=2), created + timedelta(seconds=3), created + timedelta(minutes=1)]
    record = replace(
        opened(contribution(1, at=T0 + timedelta(days=1))),
        created_at=created.isoformat(timespec="milliseconds"),
        notices=tuple(securityhub_notice(at) for at in writes),
    )
    growth = Milestone("growth:10", "growth", "10 events")
    # WHEN this replica writes at T0 + 10 s (behind the last write)
    behind = build_finding(record, growth, context, now=T0 + timedelta(seconds=10))
    # THEN UpdatedAt is strictly later than every write, and CreatedAt unchanged
    assert behind["UpdatedAt"] > writes[-1].isoformat()
    assert behind["UpdatedAt"] == "2026-11-25T10:01:01.003Z"
    assert behind["CreatedAt"] == "2026-11-25T10:00:01.000Z"
    # AND with a clock ahead of every write, UpdatedAt is the time of this write, not an event time
    later = build_finding(record, growth, context, now=T0 + timedelta(hours=2))
    assert later["UpdatedAt"] == "2026-11-25T12:00:00.000Z"
    # AND a write another channel made (SNS) does not count as a Security Hub write
    sns_only = replace(
        record, notices=(Notice("opened", writes[-1].isoformat(), "m", (ChannelResult("sns", ok=True),)),)
    )
    first = build_finding(sns_only, growth, context, now=T0 + timedelta(seconds=10))
    assert first["UpdatedAt"] == first["CreatedAt"]


# ---- SNS and chat ----------------------------------------------------------------------------


def sns_errors(recorded: Any) -> list[str]:
    errors = recorded.errors()
    for _, params in recorded.calls:
        subject = params.get("Subject", "")
        if not 1 <= len(subject) < SNS_SUBJECT_BELOW or not all(" " <= ch <= "~" for ch in subject):
            errors.append(f"Subject {subject!r}")
        if len(params["Message"].encode()) > SNS_MESSAGE_BYTES:
            errors.append("Message over 256 KiB")
        errors += [
            f"attribute {name}"
            for name, value in params.get("MessageAttributes", {}).items()
            if not value.get("StringValue", "").strip()
        ]
    return errors


def test_every_sns_publish_fits_the_model_and_a_subject_under_100() -> None:
    # GIVEN the SNS text channel, the chat channel and the pattern notifier
    with recorded_client("sns") as recorded:
        for _ in range(4):
            recorded.stubber.add_response("publish", {"MessageId": "m-1"})
        publisher = SnsPublisher(client=recorded.client, max_attempts=1, wait=wait_none())
        incident, event, analysis = hostile_incident(), hostile_event(), hostile_analysis()
        # WHEN each publishes what hostile input gives it
        SnsChannel(topic_arn=TOPIC, publisher=publisher).publish_incident(
            incident, HOSTILE_MILESTONE, event=event, analysis=analysis
        )
        ChatChannel(topic_arn=TOPIC, publisher=publisher).publish_incident(
            incident, HOSTILE_MILESTONE, event=event, analysis=analysis
        )
        notifier = SnsNotifier(monitoring_topic_arn=TOPIC, publisher=publisher)
        notifier.notify_pattern(
            make_pattern(source_ip=HOSTILE, normalized_uri=HOSTILE, rules=(HOSTILE,)),
            escalated_keys=[HOSTILE],
        )
        long_subject = "[SecOps] " + "x" * 200
        from worker.notify.render import Notification

        publisher.publish(Notification(TOPIC, long_subject, "m", {}, None, None))
    # THEN every Publish fits the model, every subject is under 100 printable ASCII characters
    assert len(recorded.calls) == 4
    assert sns_errors(recorded) == []
    assert len(recorded.calls[-1][1]["Subject"]) == SNS_SUBJECT_BELOW - 1


# ---- EventBridge -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bus", ["secops-incidents", f"arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/secops.incidents"]
)
def test_the_eventbridge_entry_fits_the_model(bus: str) -> None:
    # GIVEN the EventBridge channel on a real client
    with recorded_client("events") as recorded:
        recorded.stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
        channel = EventBridgeChannel(bus=bus, client=recorded.client, max_attempts=1, wait=wait_none())
        # WHEN the hostile incident is put on the bus
        channel.publish_incident(
            hostile_incident(), HOSTILE_MILESTONE, event=hostile_event(), analysis=hostile_analysis()
        )
    # THEN PutEvents fits the model (the bus name pattern included), the detail is JSON
    # and the entry within EventBridge's 256 KiB
    assert recorded.errors() == []
    [entry] = recorded.calls[0][1]["Entries"]
    assert json.loads(entry["Detail"])
    assert len(json.dumps({k: v for k, v in entry.items() if k != "Time"}).encode()) < EVENTBRIDGE_ENTRY_BYTES
    assert one_line_errors({k: v for k, v in entry.items() if k not in {"Detail", "Time"}}) == []


def test_a_bus_name_with_a_slash_breaks_the_model_pattern() -> None:
    # GIVEN the name pattern PutEvents applies (no `/`: that is a partner bus)
    with recorded_client("events") as recorded:
        shape = recorded.client.meta.service_model.shape_for("PutEventsRequestEntry").members["EventBusName"]
    # THEN the check the settings make agrees with the model
    from pydantic import ValidationError

    from worker.settings import Settings

    for bus in ("team/incidents", "secops-incidents", "a.b-c_d"):
        model_ok = not shape_errors(shape, bus)
        try:
            Settings(eventbridge_bus=bus)
            settings_ok = True
        except ValidationError:
            settings_ok = False
        assert model_ok == settings_ok, bus
