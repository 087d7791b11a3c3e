"""The EventBridge channel's entries without a network: detail-types, the versioned
detail against its JSON Schema (and the schema against the code), size bounds and
hostile text.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from tests.fixtures.incident_records import (
    T0,
    WEB_ACL_ARN,
    contribution,
    grow,
    incident_schema,
    waf_event,
)
from worker.incidents.milestones import OPENED, REACHED_APP, RESOLVED, Milestone, crossed
from worker.incidents.records import IncidentRecord, StatusChange
from worker.notify.eventbridge import (
    DETAIL_TYPES,
    MAX_DETAIL_BYTES,
    MAX_ENTRY_BYTES,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    SOURCE,
    EventBridgeChannel,
    render_detail,
)
from worker.settings import Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VALIDATOR = Draft202012Validator(incident_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)

GROWTH = Milestone("growth:10", "growth", "10 events (passed 10)")
SEVERITY = Milestone("severity:5", "severity_rise", "severity rose from 4 to 5")
NEW_CLASS = Milestone("class:xss", "new_class", "new attack class xss")
ALL_MILESTONES = (OPENED, GROWTH, SEVERITY, NEW_CLASS, REACHED_APP, RESOLVED)


def channel() -> EventBridgeChannel:
    # The client is never called: these tests only build entries.
    return EventBridgeChannel(bus="secops-incidents", client=object(), now=lambda: NOW)


def detail_of(entry: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(entry["Detail"])
    return detail


def entry_size(entry: dict[str, Any]) -> int:
    """The entry's size as EventBridge counts it (Time is 14 bytes)."""
    size = 14 if "Time" in entry else 0
    size += sum(len(entry[name].encode()) for name in ("Source", "DetailType", "Detail"))
    return size + sum(len(r.encode()) for r in entry.get("Resources", ()))


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a detail (list items as ``[]``)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(prefix + key)
            found |= paths(item, prefix + key + ".")
    elif isinstance(value, list):
        for item in value:
            found |= paths(item, prefix + "[].")
    return found


def schema_paths(node: dict[str, Any], root: dict[str, Any], prefix: str = "") -> set[str]:
    """Every property path the schema documents, following ``$ref`` and array items."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    found: set[str] = set()
    for key, sub in node.get("properties", {}).items():
        found.add(prefix + key)
        found |= schema_paths(sub, root, prefix + key + ".")
    if "items" in node:
        found |= schema_paths(node["items"], root, prefix + "[].")
    return found


def described(node: Any) -> list[str]:
    """Property names under ``node`` that lack a description."""
    missing: list[str] = []
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(key)
        for value in node.values():
            missing += described(value)
    return missing


def sample_incidents() -> list[IncidentRecord]:
    """An incident under each grouping, one with every list filled, one IPv6."""
    by_source = grow(None, contribution(1), contribution(2, minutes=1, reached=True, uri="/cart"))
    by_signature = grow(
        None,
        contribution(1, ip="192.0.2.1"),
        contribution(2, ip="192.0.2.2", country=None),
        group_by="signature",
    )
    ipv6 = grow(None, contribution(1, ip="2001:db8::1"), group_by="source_net")
    return [by_source, by_signature, ipv6]


# ---- detail-types and the entry ------------------------------------------------------------


@pytest.mark.parametrize(
    ("milestone", "detail_type"),
    [
        (OPENED, "Incident Opened"),
        (GROWTH, "Incident Updated"),
        (SEVERITY, "Incident Updated"),
        (NEW_CLASS, "Incident Updated"),
        (REACHED_APP, "Incident Updated"),
        (RESOLVED, "Incident Resolved"),
    ],
    ids=lambda v: v.id if isinstance(v, Milestone) else v,
)
def test_each_milestone_kind_has_its_detail_type(milestone: Milestone, detail_type: str) -> None:
    # GIVEN an incident  WHEN its milestone becomes an entry
    entry = channel().entry(grow(None, contribution(1)), milestone)

    # THEN source, detail-type and bus are fixed, and the detail names the milestone
    assert entry["Source"] == SOURCE == "secops-worker"
    assert entry["DetailType"] == detail_type
    assert entry["EventBusName"] == "secops-incidents"
    assert detail_of(entry)["milestone"] == {
        "id": milestone.id,
        "kind": milestone.kind,
        "summary": milestone.summary,
    }
    assert set(DETAIL_TYPES) == {m.kind for m in ALL_MILESTONES}


def test_the_detail_carries_the_incident_totals() -> None:
    # GIVEN an incident of two events from one IP, one of which reached the application
    incident = grow(None, contribution(1), contribution(2, minutes=1, reached=True, uri="/cart", severity=5))

    # WHEN it is rendered
    detail = detail_of(channel().entry(incident, OPENED))

    # THEN the detail holds the documented facts
    assert detail["schema_version"] == SCHEMA_VERSION == "1"
    assert detail["incident_id"] == incident.id
    assert detail["status"] == "open"
    assert detail["group"] == {
        "by": "source",
        "source": "198.51.100.23",
        "attack_class": "sqli",
        "target": None,
    }
    assert detail["first_seen"] == T0.isoformat()
    assert detail["last_seen"] == incident.last_seen.isoformat()
    assert (detail["count"], detail["max_severity"], detail["reached_app"]) == (2, 5, 1)
    assert detail["rules"] == [{"value": "SQLi_BODY", "count": 2}]
    assert detail["uri_templates"] == [{"value": "/cart", "count": 1}, {"value": "/login", "count": 1}]
    assert detail["countries"] == [{"value": "DE", "count": 2}]
    assert detail["source_ips"] == [{"value": "198.51.100.23", "count": 2}]
    assert detail["sample_event_keys"] == ["evt#1", "evt#2"]
    assert detail["truncated"] is False
    assert "2 events" in detail["summary"] and "highest severity 5" in detail["summary"]


def test_resources_name_the_web_acl_only_when_an_arn_is_known() -> None:
    incident = grow(None, contribution(1))
    # GIVEN events from a native WAF log (an ARN), a simplified event (a name), none
    with_arn = channel().entry(incident, OPENED, event=waf_event())
    with_name = channel().entry(incident, OPENED, event=waf_event(web_acl="shop-prod"))
    hostile = channel().entry(incident, OPENED, event=waf_event(web_acl=WEB_ACL_ARN + "\n evil"))
    without = channel().entry(incident, OPENED)

    # THEN only the ARN becomes a resource
    assert with_arn["Resources"] == [WEB_ACL_ARN]
    assert "Resources" not in with_name and "Resources" not in hostile and "Resources" not in without


def test_time_is_the_last_event_or_the_resolution() -> None:
    # GIVEN an incident resolved at a known time, and one resolved without a history
    incident = grow(None, contribution(1), contribution(2, minutes=5))
    resolved_at = "2026-11-25T11:30:00.000+00:00"
    resolved = replace(
        incident, status="resolved", status_history=(StatusChange("resolved", resolved_at, "ana", "blocked"),)
    )

    # WHEN entries are built  THEN opened and updates carry last_seen, resolved its resolution
    assert channel().entry(incident, OPENED)["Time"] == incident.last_seen
    assert channel().entry(incident, GROWTH)["Time"] == incident.last_seen
    assert channel().entry(resolved, RESOLVED)["Time"] == datetime.fromisoformat(resolved_at)
    assert channel().entry(replace(incident, status="resolved"), RESOLVED)["Time"] == NOW


# ---- the schema --------------------------------------------------------------------------


def test_the_schema_is_valid_draft_2020_12_and_versioned() -> None:
    schema = incident_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(":v1")
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert SCHEMA_FILE == "docs/schemas/incident-event.v1.json"


@pytest.mark.parametrize("milestone", ALL_MILESTONES, ids=lambda m: m.id)
def test_every_detail_validates_against_the_schema(milestone: Milestone) -> None:
    for incident in sample_incidents():
        # GIVEN an incident under each grouping  WHEN the milestone is rendered
        detail = json.loads(render_detail(incident, milestone))
        # THEN it validates against the published schema
        VALIDATOR.validate(detail)


def test_the_schema_documents_exactly_what_the_code_emits() -> None:
    # GIVEN every key path the code emits over incidents that fill every field
    emitted: set[str] = set()
    for incident in sample_incidents():
        for milestone in ALL_MILESTONES:
            emitted |= paths(json.loads(render_detail(incident, milestone)))
    schema = incident_schema()

    # WHEN compared with the schema's properties
    documented = schema_paths(schema, schema)

    # THEN nothing is emitted undocumented, nothing documented is never emitted, and
    # every property has a description
    assert emitted - documented == set()
    assert documented - emitted == set()
    assert described(schema) == []


def test_the_schema_rejects_undocumented_keys() -> None:
    # GIVEN a valid detail with one key the schema does not document
    detail = json.loads(render_detail(grow(None, contribution(1)), OPENED))
    detail["surprise"] = 1
    # THEN it is invalid: version 1 is closed, so a new key must come with a new version
    assert not VALIDATOR.is_valid(detail)


# ---- bounds and hostile input ------------------------------------------------------------


HOSTILE = (
    "\x1b[31mred\x1b[0m\x00nul\r\nInjected: line\u202eevil\u200bzero\ufeff\U000e0041tag"
    "\ud800lone surrogate http://evil.example/a www.evil.example"
)
EMOJI = "\U0001f600"


def hostile_incident(size: int = 200_000, entries: int = 5000) -> IncidentRecord:
    """An incident whose attacker-written maps hold huge, hostile and countless values
    (the store caps them at 20 entries; the channel must not rely on it).
    """
    base = grow(None, contribution(1, ip="2001:db8::dead:beef"), group_by="signature")
    huge_uri = "/" + "a%2F" * (size // 4) + HOSTILE
    return replace(
        base,
        attack_class=HOSTILE + " " + "x" * size,
        target="shop.example " + huge_uri,
        # Four UTF-8 bytes a character: at full size these lists alone pass the limit.
        rules={f"rule-{i:05d}-{HOSTILE}-" + EMOJI * 600: i + 1 for i in range(entries)},
        uri_templates={f"/{i}{EMOJI * 2000}{huge_uri}": 1 for i in range(20)} | {"/ok": 7},
        countries={EMOJI * 5000: 3, "DE": 9},
        source_ips={f"2001:db8::{i:x}": i + 1 for i in range(entries)} | {"198.51.100.23": 1},
        first_events=tuple(f"evt#{HOSTILE}{EMOJI * 10_000}{i}" for i in range(5)),
        latest_events=tuple(f"evt#{i}" for i in range(5)),
    )


def test_hostile_input_stays_small_valid_clean_and_deterministic() -> None:
    # GIVEN an incident full of huge URIs, control characters, many rules and IPv6
    incident = hostile_incident()
    milestone = Milestone("class:" + HOSTILE, "new_class", "new attack class " + HOSTILE)

    # WHEN it becomes an entry (twice)
    entry = channel().entry(incident, milestone, event=waf_event())
    again = channel().entry(incident, milestone, event=waf_event())

    # THEN the detail fits far below the entry limit, validates, and says it was cut
    detail = detail_of(entry)
    assert len(entry["Detail"].encode()) <= MAX_DETAIL_BYTES
    assert entry_size(entry) < MAX_ENTRY_BYTES // 2
    VALIDATOR.validate(detail)
    assert detail["truncated"] is True
    # values were cut below their full-size limit: the first rendering did not fit
    assert max(len(rule["value"]) for rule in detail["rules"]) < 512
    # the same input cuts the same way: a rule or a deduplication sees one event
    assert again["Detail"] == entry["Detail"]
    # the largest counts survive, in order
    assert [r["count"] for r in detail["rules"]] == sorted(
        (r["count"] for r in detail["rules"]), reverse=True
    )
    assert detail["rules"][0]["count"] == 5000
    assert detail["source_ips"][0] == {"value": "2001:db8::1387", "count": 5000}
    # no string holds a control, format, surrogate or line-break character
    for text in strings(detail):
        assert not [ch for ch in text if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}], (
            text
        )
    # and the summary for a person carries no link
    assert "://" not in detail["summary"] and "www." not in detail["summary"]
    assert "://" not in detail["milestone"]["summary"]


def test_a_long_ipv6_network_and_many_sources_render_in_full() -> None:
    # GIVEN a /64 incident of 30 IPv6 sources (the store keeps its top 20 + other)
    incident = grow(
        None,
        *(contribution(i, ip=f"2001:db8:0:0:{i:x}::1") for i in range(30)),
        group_by="source_net",
    )

    # WHEN rendered
    detail = json.loads(render_detail(incident, OPENED))

    # THEN the network is the group's source, and ten sources are listed, cut and marked
    assert detail["group"]["source"] == "2001:db8::/64"
    assert len(detail["source_ips"]) == 10
    assert detail["truncated"] is True
    VALIDATOR.validate(detail)


# ---- settings ----------------------------------------------------------------------------


def test_from_settings_takes_the_bus_and_the_attempt_budget() -> None:
    # GIVEN settings naming a bus by ARN and a budget of 2
    arn = "arn:aws:events:us-east-1:111122223333:event-bus/security"
    settings = Settings(eventbridge_bus=arn, notify_max_attempts=2)

    # WHEN the channel is built from them
    built = EventBridgeChannel.from_settings(settings, client=object())

    # THEN it puts on that bus with that budget
    assert built.name == "eventbridge"
    assert built.bus == arn
    assert built.entry(grow(None, contribution(1)), OPENED)["EventBusName"] == arn
    assert Settings().eventbridge_bus == "secops-incidents"


@pytest.mark.parametrize(
    "bus",
    [
        "",
        "bad bus",
        "x" * 257,
        "arn:aws:sns:us-east-1:111122223333:topic",
        # PutEvents takes `[.\-_A-Za-z0-9]+` as a name: a `/` (a partner bus) is refused
        "aws.partner/example.com/123/bus",
        "team/incidents",
    ],
)
def test_a_malformed_bus_is_refused_at_start_up(bus: str) -> None:
    with pytest.raises(ValidationError, match="eventbridge_bus"):
        Settings(eventbridge_bus=bus)


def test_milestones_a_join_crosses_all_have_a_detail_type() -> None:
    # GIVEN a join that crosses growth, severity, class and reached-app at once
    before = grow(None, contribution(1))
    after = grow(
        before,
        *(contribution(i, reached=True, severity=5, cls="xss" if i == 2 else "sqli") for i in range(2, 12)),
    )
    # THEN every crossing maps to "Incident Updated"
    kinds = {m.kind for m in crossed(before, after)}
    assert kinds == {"growth", "severity_rise", "new_class", "reached_app"}
    assert {DETAIL_TYPES[k] for k in kinds} == {"Incident Updated"}
