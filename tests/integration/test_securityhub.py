"""The Security Hub channel against moto's server over HTTP: one finding per incident,
updated in place as the incident grows, read back with GetFindings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from tenacity import wait_none

from tests.unit.test_incident_rules import QUIET_S, T0, contribution, fold, opened
from tests.unit.test_notifier_sanitize import make_analysis, make_event
from worker.incidents.keys import incident_id
from worker.incidents.milestones import OPENED, RESOLVED, crossed
from worker.incidents.records import ChannelResult, IncidentRecord, Notice, StatusChange
from worker.notify.asff import finding_id
from worker.notify.securityhub import SecurityHubChannel
from worker.platform.aws import client as aws_client
from worker.settings import Settings

ACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/shop/0f1e2d3c"


class Clock:
    """The channel's time, moved by the test (UpdatedAt comes from it)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def securityhub(aws_endpoint: str) -> Any:
    client = aws_client("securityhub", max_attempts=1)
    client.enable_security_hub(EnableDefaultStandards=False)
    return client


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(minutes=1))


@pytest.fixture
def hub(securityhub: Any, clock: Clock) -> SecurityHubChannel:
    return SecurityHubChannel(
        client=securityhub, sts_client=aws_client("sts"), max_attempts=3, wait=wait_none(), now=clock
    )


def findings(securityhub: Any, incident: IncidentRecord) -> list[dict[str, Any]]:
    """The findings of ``incident`` (moto's GetFindings ignores filters: filter here)."""
    wanted = finding_id(incident)
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"MaxResults": 100}
    while True:
        page = securityhub.get_findings(**kwargs)
        found.extend(f for f in page["Findings"] if f["Id"] == wanted)
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def grow(record: IncidentRecord, first: int, last: int, **kwargs: Any) -> IncidentRecord:
    batch = [contribution(n, at=T0 + timedelta(seconds=n), **kwargs) for n in range(first, last + 1)]
    return fold(record, batch, group=record.group, seq=record.seq, quiet_s=QUIET_S, now=0).after


def recorded(record: IncidentRecord, milestone: str, at: datetime) -> IncidentRecord:
    """``record`` with the notice of a Security Hub write at ``at``."""
    notice = Notice(milestone, at.isoformat(), "m", (ChannelResult("securityhub", ok=True, id="f"),))
    return replace(record, notices=(*record.notices, notice))


def test_the_finding_exists_once_per_incident_and_is_updated_in_place(
    hub: SecurityHubChannel, securityhub: Any, clock: Clock, unique: str
) -> None:
    # GIVEN an incident of its own source, opened and published
    ip = f"2001:db8::{int(unique[:4], 16):x}"
    first = opened(contribution(1, ip=ip))
    event = make_event(source_ip=ip, web_acl=ACL_ARN, host="shop.example.com", country="DE")
    hub.publish_incident(first, OPENED, event=event, analysis=make_analysis())
    [created] = findings(securityhub, first)

    # WHEN it grows past 10 and then 100 events, each milestone published a minute later
    # (and recorded on the incident, as the pipeline does after each publish)
    grown = recorded(first, OPENED.id, clock.at)
    for last in (12, 140):
        before, grown = grown, grow(grown, grown.count + 1, last, ip=ip)
        clock.at += timedelta(minutes=1)
        for milestone in crossed(before, grown):
            hub.publish_incident(grown, milestone, event=event)
            grown = recorded(grown, milestone.id, clock.at)

    # THEN Security Hub holds one finding for it, carrying the new totals
    [updated] = findings(securityhub, grown)
    assert updated["Id"] == created["Id"] == finding_id(first)
    assert updated["ProductFields"]["secops/event_count"] == "140"
    assert updated["ProductFields"]["secops/milestone"] == "growth:100"
    assert created["ProductFields"]["secops/event_count"] == "1"
    # AND it was updated, not recreated: same creation, later update and last observation
    assert updated["CreatedAt"] == created["CreatedAt"] == created["UpdatedAt"]
    assert updated["FirstObservedAt"] == created["FirstObservedAt"]
    assert updated["UpdatedAt"] > created["UpdatedAt"]
    assert updated["LastObservedAt"] > created["LastObservedAt"]
    # AND what a person sees: title, severity, types, resources, the IPv6 source
    assert updated["Title"] == f"SQL injection from {ip} on shop.example.com"
    assert updated["Severity"]["Label"] == "HIGH"
    assert updated["Types"][0] == "TTPs/Initial Access/SQL injection"
    assert updated["Resources"][0] == {
        "Type": "AwsWafv2WebAcl",
        "Id": ACL_ARN,
        "Partition": "aws",
        "Region": "us-east-1",
    }
    assert updated["ProductFields"]["secops/source_ip"] == ip
    assert updated["ProductArn"] == "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"
    assert updated["Workflow"] == {"Status": "NEW"}


def test_two_incidents_are_two_findings(hub: SecurityHubChannel, securityhub: Any, unique: str) -> None:
    # GIVEN two incidents of one source: the second opened after the first went quiet
    ip = f"198.51.{int(unique[:2], 16)}.{int(unique[2:4], 16)}"
    first = opened(contribution(1, ip=ip))
    second = replace(opened(contribution(2, ip=ip)), seq=2, id=incident_id(first.group_hash, 2))
    # WHEN both are published
    hub.publish_incident(first, OPENED)
    hub.publish_incident(second, OPENED)
    # THEN each is its own finding
    assert len(findings(securityhub, first)) == 1
    assert len(findings(securityhub, second)) == 1
    assert finding_id(first) != finding_id(second)


@pytest.fixture
def workflow_changes(securityhub: Any) -> Iterator[list[dict[str, Any]]]:
    """moto 5.2.5 has no BatchUpdateFindings: botocore's before-call hook (what Stubber
    uses) answers that one operation and records it; every other call goes to moto.
    """
    calls: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        calls.append(json.loads(params["body"]))
        return AWSResponse("", 200, {}, None), {"ProcessedFindings": [], "UnprocessedFindings": []}

    securityhub.meta.events.register("before-call.securityhub.BatchUpdateFindings", answer)
    yield calls
    securityhub.meta.events.unregister("before-call.securityhub.BatchUpdateFindings", answer)


def test_resolving_sets_the_workflow_and_keeps_the_final_totals(
    hub: SecurityHubChannel,
    securityhub: Any,
    clock: Clock,
    workflow_changes: list[dict[str, Any]],
    unique: str,
) -> None:
    # GIVEN an incident published at opening, which grew quietly to 7 events
    ip = f"203.0.{int(unique[:2], 16)}.{int(unique[2:4], 16)}"
    first = opened(contribution(1, ip=ip))
    hub.publish_incident(first, OPENED)
    grown = grow(first, 2, 7, ip=ip)
    # WHEN an operator resolves it and the resolved milestone is published
    resolved = replace(
        grown,
        status="resolved",
        status_history=(StatusChange("resolved", "2026-11-25T11:00:00+00:00", "bob", "blocked at the edge"),),
    )
    clock.at += timedelta(hours=1)
    assert hub.publish_incident(resolved, RESOLVED) == finding_id(first)
    # THEN the finding carries the final totals and is still the one finding
    [final] = findings(securityhub, first)
    assert final["ProductFields"]["secops/event_count"] == "7"
    assert final["ProductFields"]["secops/status"] == "resolved"
    # AND the workflow status was set to RESOLVED through the customer-side API, with the note
    [change] = workflow_changes
    assert change["Workflow"] == {"Status": "RESOLVED"}
    assert change["FindingIdentifiers"] == [{"Id": finding_id(first), "ProductArn": final["ProductArn"]}]
    assert "by bob: blocked at the edge" in change["Note"]["Text"]


def test_from_settings_finds_the_account_and_default_product(aws_endpoint: str, unique: str) -> None:
    # GIVEN default settings and moto's Security Hub enabled
    aws_client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    hub = SecurityHubChannel.from_settings(Settings())
    # WHEN an incident is published
    incident = opened(contribution(1, ip=f"192.0.2.{int(unique[:2], 16)}"))
    hub.publish_incident(incident, OPENED)
    # THEN the account came from STS and the product is the account's default one
    context = hub.context()
    assert context.account_id == "123456789012"
    assert context.product_arn.endswith(":product/123456789012/default")
    assert findings(aws_client("securityhub"), incident)
