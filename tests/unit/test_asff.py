"""The ASFF mapping of an incident (pure): limits, hostile text, every attack class."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from secops_core.waf.catalog import CLASSES
from tests.unit.test_incident_rules import QUIET_S, T0, contribution, fold, opened
from tests.unit.test_notifier_sanitize import make_analysis, make_event
from worker.incidents.grouping import ANY_SOURCE
from worker.incidents.milestones import OPENED, RESOLVED, Milestone
from worker.incidents.records import ChannelResult, IncidentRecord, Notice, StatusChange
from worker.notify.asff import (
    CLASS_TYPES,
    DESCRIPTION_MAX,
    FALLBACK_TYPES,
    ID_MAX,
    NOTE_MAX,
    PRODUCT_FIELD_KEY_MAX,
    PRODUCT_FIELD_VALUE_MAX,
    PRODUCT_FIELDS_MAX,
    TITLE_MAX,
    TYPE_MAX,
    FindingContext,
    build_finding,
    default_product_arn,
    finding_id,
    finding_types,
    generator_id,
    resolution_note,
    severity,
)

CONTEXT = FindingContext(
    product_arn=default_product_arn("aws", "eu-west-1", "111122223333"),
    account_id="111122223333",
    partition="aws",
    region="eu-west-1",
)
NOW = T0 + timedelta(minutes=5)
GROWTH = Milestone("growth:10", "growth", "12 events (passed 10)")
ACL_ARN = "arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/shop/1a2b3c4d-5e6f"
NAMESPACES = (
    "Software and Configuration Checks",
    "TTPs",
    "Effects",
    "Unusual Behaviors",
    "Sensitive Data Identifications",
)
HOSTILE = "\u202e\x00\x1b[31m" + "A" * 5000 + "\r\n<script>\u200b" + "/%00../" * 3000


def finding(incident: IncidentRecord, milestone: Milestone = OPENED, **kwargs: Any) -> dict[str, Any]:
    return build_finding(incident, milestone, CONTEXT, now=NOW, **kwargs)


def strings(value: Any) -> list[str]:
    """Every string in a finding, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def hostile_incident() -> IncidentRecord:
    """An incident whose every attacker-written field is long and full of control chars."""
    record = opened(contribution(1, uri="/x" + HOSTILE, country="DE"))
    counts = {f"{HOSTILE}{i}": 1 for i in range(20)}
    return replace(
        record,
        rules=counts,
        uri_templates=counts,
        countries={HOSTILE: 3, "de": 1},
        source_ips=counts,
        target=HOSTILE,
        attack_class=HOSTILE.lower(),
    )


# ---- identity and time -----------------------------------------------------------------


def test_one_stable_id_per_incident_across_milestones() -> None:
    # GIVEN an incident at opening and the same incident grown past 10
    first = opened(contribution(1))
    grown = fold(
        first, [contribution(i) for i in range(2, 13)], group=first.group, seq=1, quiet_s=QUIET_S, now=0
    ).after
    # AND the opening's Security Hub write recorded on it
    hub = ChannelResult("securityhub", ok=True, id=finding_id(first))
    grown = replace(grown, notices=(Notice("opened", "2026-11-25T10:00:00.050+00:00", "m", (hub,)),))
    # WHEN both are rendered
    a, b = finding(first), finding(grown, GROWTH)
    # THEN the id is the same, the creation is when the incident opened, the update is now
    assert a["Id"] == b["Id"] == finding_id(first)
    assert len(a["Id"]) <= ID_MAX
    assert a["CreatedAt"] == a["UpdatedAt"] == b["CreatedAt"] == "2026-11-25T10:00:00.000Z"
    assert b["FirstObservedAt"] == "2026-11-25T10:00:00.000Z"
    assert b["UpdatedAt"] == "2026-11-25T10:05:00.000Z"
    assert b["ProductFields"]["secops/event_count"] == "12"
    # AND a second incident of the same group is another finding
    assert finding_id(replace(first, seq=2)) != a["Id"]


def test_required_attributes_and_product_arn() -> None:
    # WHEN an incident is rendered
    rendered = finding(opened(contribution(1)))
    # THEN every attribute ASFF requires is there, for the account's default product
    for name in (
        "SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "Types", "CreatedAt",
        "UpdatedAt", "Severity", "Title", "Description", "Resources",
    ):  # fmt: skip
        assert rendered[name], name
    assert rendered["SchemaVersion"] == "2018-10-08"
    assert rendered["ProductArn"] == "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
    assert rendered["AwsAccountId"] == "111122223333"
    assert rendered["GeneratorId"] == "secops-worker/sqli"
    assert "SourceUrl" not in rendered


def test_last_observed_is_last_seen_and_updated_never_precedes_created() -> None:
    # GIVEN an incident whose events are stamped an hour ahead of the worker's clock
    ahead = T0 + timedelta(hours=1)
    record = opened(contribution(1, at=ahead), contribution(2, at=ahead + timedelta(seconds=30)))
    # WHEN rendered at NOW (before the events' own times)
    rendered = finding(record)
    # THEN the events' times are the observed times, and no event time is a write time
    assert rendered["FirstObservedAt"] == "2026-11-25T11:00:00.000Z"
    assert rendered["LastObservedAt"] == "2026-11-25T11:00:30.000Z"
    assert rendered["UpdatedAt"] == rendered["CreatedAt"] == "2026-11-25T10:00:00.000Z"


def test_workflow_only_when_the_finding_is_created() -> None:
    # GIVEN one incident
    record = opened(contribution(1))
    # THEN opening sets NEW; later imports leave the customer's workflow alone
    assert finding(record)["Workflow"] == {"Status": "NEW"}
    assert "Workflow" not in finding(record, GROWTH)
    assert "Workflow" not in finding(record, RESOLVED)
    assert finding(record, GROWTH)["RecordState"] == "ACTIVE"


# ---- severity and types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "label"),
    [
        (0, "INFORMATIONAL"),
        (1, "LOW"),
        (2, "LOW"),
        (3, "MEDIUM"),
        (4, "HIGH"),
        (5, "CRITICAL"),
        (9, "CRITICAL"),
        (-1, "INFORMATIONAL"),
    ],
)
def test_severity_label_and_normalized_agree_with_security_hub(ours: int, label: str) -> None:
    # WHEN our 0-5 is mapped
    got_label, normalized = severity(ours)
    # THEN the label is ours and Normalized falls in the range Security Hub maps to it
    assert got_label == label
    ranges = {
        "INFORMATIONAL": (0, 0),
        "LOW": (1, 39),
        "MEDIUM": (40, 69),
        "HIGH": (70, 89),
        "CRITICAL": (90, 100),
    }
    low, high = ranges[label]
    assert low <= normalized <= high


def test_severity_is_also_a_provider_field() -> None:
    rendered = finding(opened(contribution(1, severity=5)))
    assert rendered["Severity"] == {"Label": "CRITICAL", "Normalized": 95, "Original": "5"}
    assert rendered["FindingProviderFields"]["Severity"] == {"Label": "CRITICAL", "Original": "5"}
    assert rendered["FindingProviderFields"]["Types"] == rendered["Types"]


def test_every_catalog_class_has_types() -> None:
    # THEN the mapping covers the catalog exactly: a new class needs a decision here
    assert set(CLASS_TYPES) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_types_of_each_class_follow_the_taxonomy(name: str) -> None:
    # WHEN the class's types are rendered
    types = finding_types(name)
    # THEN each is namespace/category[/classifier] with a known namespace, within limits
    assert types
    for path in types:
        parts = path.split("/")
        assert parts[0] in NAMESPACES
        assert 2 <= len(parts) <= 3
        assert len(path) <= TYPE_MAX
    # AND the first names the class in the operator's words
    assert types[0].endswith("/" + CLASSES[name].title)


def test_sqli_is_initial_access_with_exfiltration() -> None:
    assert finding_types("sqli") == ["TTPs/Initial Access/SQL injection", "Effects/Data Exfiltration"]
    assert finding_types("log4j")[1] == "TTPs/Execution"


def test_a_class_the_catalog_lacks_gets_the_fallback_types_and_a_safe_generator() -> None:
    # GIVEN a model's own words as the class
    name = "graphql introspection / abuse\x07"
    # THEN it is an unusual application request, named cleanly
    types = finding_types(name)
    assert types[0].startswith(FALLBACK_TYPES[0] + "/")
    assert len(types[0].split("/")) == 3
    assert generator_id(name) == "secops-worker/graphql_introspection_abuse"
    assert generator_id("\x00\x00") == "secops-worker/unknown"


# ---- resources, network, country -------------------------------------------------------


def test_web_acl_from_the_event_is_a_resource() -> None:
    # GIVEN the milestone's event names its WAFv2 web ACL
    event = make_event(web_acl=ACL_ARN, host="Shop.Example.com")
    # WHEN rendered
    resources = finding(opened(contribution(1)), event=event)["Resources"]
    # THEN the ACL is the first resource, the host an Other one
    assert resources[0] == {
        "Type": "AwsWafv2WebAcl",
        "Id": ACL_ARN,
        "Partition": "aws",
        "Region": "eu-west-1",
    }
    assert resources[1]["Type"] == "Other"
    assert resources[1]["Id"] == "shop.example.com"


def test_cloudfront_acl_and_a_bare_acl_name() -> None:
    # GIVEN a global (CloudFront) ACL ARN, and a simplified event naming an ACL by name
    global_arn = "arn:aws:wafv2:us-east-1:111122223333:global/webacl/cdn/abcd"
    cdn = finding(opened(contribution(1)), event=make_event(web_acl=global_arn))["Resources"][0]
    bare = finding(opened(contribution(1)), event=make_event(web_acl="shop-acl"))["Resources"][0]
    # THEN the ARN keeps its region; the name is an Other resource
    assert cdn["Type"] == "AwsWafv2WebAcl" and cdn["Region"] == "us-east-1"
    assert bare["Type"] == "Other" and bare["Id"] == "shop-acl"


def test_without_acl_host_or_country_there_is_still_one_resource_and_no_country() -> None:
    # GIVEN an incident with no host, no target and no country, and no event
    record = replace(opened(contribution(1, country=None)), countries={})
    # WHEN rendered
    rendered = finding(record)
    # THEN one Other resource names the incident, and no country is invented
    assert len(rendered["Resources"]) == 1
    assert rendered["Resources"][0]["Type"] == "Other"
    assert record.id in rendered["Resources"][0]["Id"]
    remote = rendered["Action"]["NetworkConnectionAction"]["RemoteIpDetails"]
    assert "Country" not in remote
    assert "Network" not in rendered


def test_source_ip_country_and_direction() -> None:
    # GIVEN a blocked incident from an IPv4 source in Germany
    rendered = finding(opened(contribution(1, country="de")))
    # THEN the action is an inbound connection (IN, as ASFF spells it) from that IP,
    # blocked, from DE; the retired Network object is not sent
    assert "Network" not in rendered
    action = rendered["Action"]["NetworkConnectionAction"]
    assert action["ConnectionDirection"] == "IN"
    assert action["Blocked"] is True
    assert action["RemoteIpDetails"] == {"IpAddressV4": "203.0.113.7", "Country": {"CountryCode": "DE"}}
    # AND once a request reached the application it is no longer "blocked"
    reached = finding(opened(contribution(1, reached=True)))
    assert reached["Action"]["NetworkConnectionAction"]["Blocked"] is False


def test_ipv6_source() -> None:
    # GIVEN an IPv6 attacker
    rendered = finding(opened(contribution(1, ip="2001:DB8::1")))
    # THEN RemoteIpDetails (IPv4 only) holds no address; the source is a product field
    assert "IpAddressV4" not in rendered["Action"]["NetworkConnectionAction"]["RemoteIpDetails"]
    assert rendered["ProductFields"]["secops/source_ip"] == "2001:db8::1"


def test_distributed_incident_names_many_sources_and_its_top_ip() -> None:
    # GIVEN a signature incident (any source) without an event at hand
    record = replace(
        opened(contribution(1)),
        source=ANY_SOURCE,
        target="shop.example /login",
        source_ips={"198.51.100.9": 7, "203.0.113.7": 2},
    )
    rendered = finding(record)
    # THEN the title says many sources, the host comes from the target, the IP is the top one
    assert rendered["Title"] == "SQL injection from many sources on shop.example"
    assert rendered["Action"]["NetworkConnectionAction"]["RemoteIpDetails"]["IpAddressV4"] == "198.51.100.9"
    assert rendered["Resources"][0]["Id"] == "shop.example"
    assert rendered["ProductFields"]["secops/distinct_sources"] == "2"


# ---- hostile text and limits -------------------------------------------------------------


def test_hostile_incident_stays_within_every_asff_limit() -> None:
    # GIVEN an incident whose URIs, rules, countries, sources, target and class are hostile
    record = hostile_incident()
    analysis = make_analysis(security_analysis=HOSTILE, analyzed_by=HOSTILE)
    event = make_event(host=HOSTILE, web_acl=HOSTILE, country=HOSTILE)
    # WHEN rendered at a milestone whose summary is hostile too
    rendered = finding(record, Milestone("class:x", "new_class", HOSTILE), event=event, analysis=analysis)
    # THEN the scalar limits hold
    assert len(rendered["Title"]) <= TITLE_MAX
    assert len(rendered["Description"]) <= DESCRIPTION_MAX
    assert len(rendered["Id"]) <= ID_MAX
    assert all(len(t) <= TYPE_MAX for t in rendered["Types"])
    assert all(len(r["Id"]) <= 512 for r in rendered["Resources"])
    assert all(
        len(v) < 1024 for r in rendered["Resources"] for v in r.get("Details", {}).get("Other", {}).values()
    )
    # AND ProductFields is a string map within ASFF's count and lengths
    fields = rendered["ProductFields"]
    assert len(fields) <= PRODUCT_FIELDS_MAX - 10
    assert all(isinstance(v, str) and 0 < len(v) <= PRODUCT_FIELD_VALUE_MAX for v in fields.values())
    assert all(len(k) <= PRODUCT_FIELD_KEY_MAX for k in fields)
    # AND no string anywhere holds a control, format or line-break character
    for text in strings(rendered):
        assert text.strip(), "ASFF strings must hold a non-space character"
        assert not any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in text), repr(text[:80])
    # AND the hostile country is dropped, not passed on
    assert rendered["Action"]["NetworkConnectionAction"]["RemoteIpDetails"].get("Country") == {
        "CountryCode": "DE"
    }
    # AND the whole finding is far below Security Hub's 240 KB per finding
    assert len(json.dumps(rendered).encode()) < 64 * 1024


def test_sample_uris_rules_and_countries_with_counts() -> None:
    # GIVEN an incident over three URIs
    record = opened(
        contribution(1, uri="/login"),
        contribution(2, uri="/login"),
        contribution(3, uri="/admin"),
        contribution(4, uri="/api"),
    )
    fields = finding(record)["ProductFields"]
    # THEN the samples are listed, most frequent first, with their counts
    assert fields["secops/uri_1"] == "/login (2)"
    assert {fields["secops/uri_2"], fields["secops/uri_3"]} == {"/admin (1)", "/api (1)"}
    assert fields["secops/rule_1"] == "SQLi_BODY (4)"
    assert fields["secops/country_1"] == "DE (4)"
    assert "secops/uri_4" not in fields


def test_description_carries_totals_milestone_and_analysis() -> None:
    record = opened(contribution(1, reached=True), contribution(2))
    text = finding(record, GROWTH, analysis=make_analysis())["Description"]
    assert "2 event(s), 1 reached the application" in text
    assert "Latest milestone: 12 events (passed 10)." in text
    assert "A SQL injection in the body reached the application." in text
    assert "http" not in text


def test_resolution_note_names_who_why_and_the_totals() -> None:
    # GIVEN a resolved incident with a hostile, long note
    record = replace(
        opened(contribution(1)),
        status="resolved",
        status_history=(
            StatusChange("resolved", "2026-11-25T11:00:00.000+00:00", "alice", "false positive\n" + HOSTILE),
        ),
    )
    note = resolution_note(record)
    # THEN it is one bounded line with the operator and the totals
    assert note["Text"].startswith("Resolved in secops-worker by alice: false positive")
    assert len(note["Text"]) <= NOTE_MAX
    assert "\n" not in note["Text"]
    assert note["UpdatedBy"] == "secops-worker/alice"
