"""Unit tests of notification rendering (incident milestones and patterns): subjects,
bodies, attributes, FIFO ids. No network."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secops_core.contract import (
    Analysis,
    Header,
    Pattern,
    RuleMatch,
    SeverityFloorInfo,
    TriageDecision,
    WafEvent,
)
from tests.fixtures.incident_records import contribution, grow
from worker.incidents import IncidentRecord, Milestone
from worker.incidents.milestones import OPENED
from worker.notify.render import (
    JSON_SEPARATOR,
    MAX_BODY_BYTES,
    Notification,
    incident_notification,
    pattern_notification,
)
from worker.notify.sanitize import SUBJECT_FALLBACK, sanitize_subject

SNS_MAX_BYTES = 256 * 1024
STANDARD_ARN = "arn:aws:sns:us-east-1:123456789012:secops-critical"
FIFO_ARN = "arn:aws:sns:us-east-1:123456789012:secops-critical.fifo"
# Every notification's attributes; an incident milestone adds its id and milestone kind.
ATTRIBUTE_NAMES = {"event_key", "severity", "workflow", "action", "source_ip"}
INCIDENT_ATTRIBUTE_NAMES = ATTRIBUTE_NAMES | {"incident_id", "milestone"}
# Header values that must never reach a notification, whatever else is in the event.
HEADER_SECRETS = ("hv-0d1e2f-forwarded", "hv-9a8b7c-custom", "hv-5e6f7a-accept")


def make_event(**overrides: Any) -> WafEvent:
    fields: dict[str, Any] = {
        "event_key": "evt#abc-123",
        "source_format": "simplified",
        "event_id": "abc-123",
        "timestamp": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        "action": "ALLOW",
        "source_ip": "198.51.100.23",
        "country": "US",
        "http_method": "POST",
        "host": "shop.example.com",
        "uri": "/login.php",
        "args": "user=admin",
        "user_agent": "sqlmap/1.7",
        "headers": (
            Header(name="X-Forwarded-For", value=HEADER_SECRETS[0]),
            Header(name="X-Custom", value=HEADER_SECRETS[1]),
            Header(name="Accept", value=HEADER_SECRETS[2]),
            Header(name="Authorization", value="[REDACTED]"),
        ),
        "rule_name": "SQLi_BODY",
        "rule_group": "AWSManagedRulesSQLiRuleSet",
        "matches": (
            RuleMatch(
                rule_id="SQLi_BODY",
                rule_group="AWSManagedRulesSQLiRuleSet",
                action="COUNT",
                condition_types=("SQL_INJECTION",),
            ),
        ),
        "labels": ("awswaf:managed:aws:sql-database:SQLi_Body",),
    }
    fields.update(overrides)
    return WafEvent(**fields)


def make_analysis(**overrides: Any) -> Analysis:
    fields: dict[str, Any] = {
        "severity_rating": 5,
        "severity_floor": 4,
        "model_severity": 5,
        "security_analysis": "A SQL injection in the body reached the application.",
        "follow_up_suggestion": "Block 198.51.100.23 and review the login handler.",
        "attack_type": "SQL injection",
        "analyzed_by": "bedrock:amazon.nova-lite-v1:0",
        "floor": SeverityFloorInfo(severity=4, attack_class="sqli", reason="SQLi counted", rule="SQLi_BODY"),
    }
    fields.update(overrides)
    return Analysis(**fields)


def make_triage(**overrides: Any) -> TriageDecision:
    fields: dict[str, Any] = {
        "action": "escalate",
        "status": "escalated",
        "severity_rating": 5,
        "reason": "severity 5 is at least 4",
    }
    fields.update(overrides)
    return TriageDecision(**fields)


def make_pattern(**overrides: Any) -> Pattern:
    first = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "pattern_key": "pattern#203.0.113.7#/wp-login.php",
        "source_ip": "203.0.113.7",
        "normalized_uri": "/wp-login.php",
        "count": 12,
        "first_seen": first,
        "last_seen": first + timedelta(hours=2),
        "rules": ("WordPressExploitableCommands_QUERYSTRING",),
        "event_keys": tuple(f"evt#{i}" for i in range(12)),
        "max_severity": 3,
        "threshold": 10,
        "threshold_met": True,
        "narrative": "Twelve blocked WordPress probes from one address in two hours.",
    }
    fields.update(overrides)
    return Pattern(**fields)


def make_incident(event: WafEvent | None = None, **overrides: Any) -> IncidentRecord:
    """The incident ``event`` opens (severity 5, grouped by its source), built as the
    pipeline builds it."""
    event = event or make_event()
    # The group key is hashed as UTF-8: fold a printable stand-in, then show the event's source.
    ip = event.source_ip.encode("utf-8", "replace").decode()
    record = grow(None, contribution(1, ip=ip, severity=5, rule=event.rule_name or "-"))
    return replace(record, **{"source": event.source_ip, **overrides})


def incident_page(
    topic_arn: str = STANDARD_ARN,
    *,
    analysis: Analysis | None = None,
    milestone: Milestone = OPENED,
    incident: dict[str, Any] | None = None,
    **event_overrides: Any,
) -> Notification:
    """The milestone page of the incident an event opened, with that event and its analysis."""
    event = make_event(**event_overrides)
    return incident_notification(
        topic_arn,
        incident=make_incident(event, **(incident or {})),
        milestone=milestone,
        event=event,
        analysis=analysis or make_analysis(),
    )


def split_body(message: str) -> tuple[str, dict[str, Any]]:
    """The readable summary and the parsed JSON document of a notification body."""
    summary, _, document = message.partition(f"\n{JSON_SEPARATOR}\n")
    return summary, json.loads(document)


def assert_valid_subject(subject: str) -> None:
    # The Publish API reference: a subject "must be less than 100 characters long".
    assert 1 <= len(subject) < 100
    assert all(0x20 <= ord(ch) <= 0x7E for ch in subject), subject
    assert subject == subject.strip()


def assert_valid_notification(notification: Notification) -> dict[str, Any]:
    """Check every SNS constraint on a rendered notification; return its JSON document."""
    assert_valid_subject(notification.subject)
    assert len(notification.message.encode("utf-8")) <= MAX_BODY_BYTES < SNS_MAX_BYTES
    summary, document = split_body(notification.message)
    for line in summary.splitlines():
        assert all(ch == "\t" or ord(ch) >= 0x20 for ch in line)
        assert not any(0x7F <= ord(ch) <= 0x9F for ch in line)
    # Every untrusted value is indented or follows a label: the separator is ours alone.
    assert notification.message.count(f"\n{JSON_SEPARATOR}\n") == 1
    assert set(notification.attributes) in (ATTRIBUTE_NAMES, INCIDENT_ATTRIBUTE_NAMES)
    for value in notification.attributes.values():
        assert value
        assert "\n" not in value
        assert len(value) <= 256
    for secret in HEADER_SECRETS:
        assert secret not in notification.message
    return document


# ---- sanitize_subject: table -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[SecOps] ESCALATE sev 5", "[SecOps] ESCALATE sev 5"),
        ("", SUBJECT_FALLBACK),
        ("   ", SUBJECT_FALLBACK),
        ("\n\r\t\x00\x1b", SUBJECT_FALLBACK),
        ("\u200b\u202e\ufeff", SUBJECT_FALLBACK),
        ("  leading spaces", "leading spaces"),
        ("\nleading newline", "leading newline"),
        ("line one\r\nline two", "line one line two"),
        ("tab\tseparated", "tab separated"),
        ("many     spaces", "many spaces"),
        ("bell\x07 and esc\x1b[31m", "bell and esc[31m"),
        ("c1\x85control\x9b", "c1 control"),
        ("del\x7fchar", "delchar"),
        ("héllo wörld çà", "hello world ca"),
        ("\uff26\uff55\uff4c\uff4c", "Full"),  # fullwidth letters
        ("ﬁle", "file"),
        ("攻撃 from 🙂", "?? from ?"),
        ("bidi \u202egnp.exe\u202c", "bidi gnp.exe"),
        ("zero\u200bwidth", "zerowidth"),
        ("nbsp\u00a0space", "nbsp space"),
        ("line\u2028separator", "line separator"),
        ("a" * 99, "a" * 99),
        ("a" * 100, "a" * 96 + "..."),
        ("word " * 30, ("word " * 20)[:96].rstrip() + "..."),
    ],
)
def test_sanitize_subject_table(text: str, expected: str) -> None:
    # GIVEN a raw subject  WHEN sanitized  THEN it matches the SNS-safe form
    assert sanitize_subject(text) == expected


def test_sanitize_subject_10kb_of_hostile_text_is_cut_to_99() -> None:
    # GIVEN 10 KB mixing newlines, unicode and controls
    hostile = ("/login.php?q=' OR 1=1--\n\x00攻撃\u202e" * 400)[:10_240]

    # WHEN sanitized
    subject = sanitize_subject(hostile)

    # THEN it is cut to at most 99 printable ASCII characters (SNS: under 100), a cut
    # space dropped, ending with the ellipsis
    assert_valid_subject(subject)
    assert 95 <= len(subject) <= 99
    assert subject.endswith("...")


def test_sanitize_subject_marks_input_beyond_the_scan_window_as_cut() -> None:
    # GIVEN short visible text followed by a megabyte of invisible characters
    subject = sanitize_subject("visible" + "\u200b" * 1_000_000)

    # THEN the examined part is kept and the cut is visible
    assert subject == "visible..."


# ---- sanitize_subject: properties --------------------------------------------------------

hostile_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None), max_size=300),
    st.text(alphabet=st.sampled_from("\n\r\t \x00\x1b\x7f\x85\u200b\u202e\u2028é攻🙂a-"), max_size=300),
    st.builds(lambda chunk, times: chunk * times, st.text(min_size=1, max_size=20), st.integers(1, 600)),
)


@given(hostile_text)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_sanitize_subject_is_always_a_valid_sns_subject(text: str) -> None:
    subject = sanitize_subject(text)

    assert_valid_subject(subject)
    assert "\n" not in subject
    # Sanitizing is idempotent, so the publish path can apply it again safely.
    assert sanitize_subject(subject) == subject


# ---- incident milestone bodies ---------------------------------------------------------------


def test_incident_subject_summary_json_and_attributes() -> None:
    # GIVEN the incident an ordinary SQL injection opened  WHEN rendered for a standard topic
    notification = incident_page()

    # THEN the subject names the milestone, severity, class, source and count
    assert notification.subject == "[SecOps] INCIDENT opened sev 5 sqli from 198.51.100.23 (1 events)"
    document = assert_valid_notification(notification)
    summary, _ = split_body(notification.message)
    # AND the summary carries every fact an operator needs
    for expected in (
        "SecOps incident opened: new incident",
        "Attack class: sqli",
        "Source:       198.51.100.23",
        "Events:       1 (0 reached the application)",
        "Severity:     highest 5",
        "Rules:        SQLi_BODY (1)",
        "Latest event: evt#abc-123",
        "Request:      POST shop.example.com/login.php",
        "WAF action:   ALLOW",
        "Analyzed by:  bedrock:amazon.nova-lite-v1:0",
        "  A SQL injection in the body reached the application.",
        "  Block 198.51.100.23 and review the login handler.",
    ):
        assert expected in summary.splitlines()
    # AND the JSON part has the same facts, header names but no header values
    assert document["kind"] == "incident"
    assert document["milestone"] == {"id": "opened", "kind": "opened", "summary": "new incident"}
    assert document["severity"] == 5
    assert document["truncated"] is False
    assert document["event"]["event_key"] == "evt#abc-123"
    assert document["event"]["uri"] == "/login.php"
    assert document["event"]["header_names"] == [
        "X-Forwarded-For",
        "X-Custom",
        "Accept",
        "Authorization",
    ]
    assert "headers" not in document["event"]
    assert document["analysis"]["analyzed_by"] == "bedrock:amazon.nova-lite-v1:0"
    # AND the attributes identify the notification for subscription filters
    incident_id = document["incident_id"]
    assert notification.attributes == {
        "event_key": incident_id,
        "incident_id": incident_id,
        "milestone": "opened",
        "severity": "5",
        "workflow": "incident",
        "action": "escalate",
        "source_ip": "198.51.100.23",
    }
    # AND a standard topic gets no FIFO ids (SNS would reject them)
    assert notification.dedup_id is None
    assert notification.group_id is None


def test_degraded_rules_analysis_is_flagged() -> None:
    notification = incident_page(
        analysis=make_analysis(model_severity=None, analyzed_by="rules", degraded=True)
    )

    summary, document = split_body(notification.message)
    assert "Analyzed by:  rules" in summary.splitlines()
    assert document["analysis"]["degraded"] is True
    assert document["analysis"]["model_written"] is False


@pytest.mark.parametrize(
    "field",
    ["uri", "user_agent", "rule_name", "host", "args"],
)
@pytest.mark.parametrize(
    "payload",
    [
        "A" * 60_000,
        ("' OR 1=1--\r\nX-Injected: yes\n" + JSON_SEPARATOR + '\n{"kind": "forged"}\n') * 1500,
        "\U0001f600" * 60_000,
        "攻撃\u202e\u200b\x00\x1b[2J" * 10_000,
    ],
    ids=["ascii", "newline-injection", "astral", "cjk-controls"],
)
def test_hostile_60kb_fields_keep_the_body_valid(field: str, payload: str) -> None:
    # GIVEN a 60 KB hostile value in one attacker-controlled field of the latest event
    notification = incident_page(**{field: payload})

    # THEN the body stays under the cap, its JSON parses, and it says it was cut
    document = assert_valid_notification(notification)
    assert document["kind"] == "incident"
    assert document["truncated"] is True
    assert len(document["event"][field]) < 10_000


def test_long_attack_class_does_not_crowd_out_the_source_in_the_subject() -> None:
    # GIVEN a 10 KB attack class with newlines (a custom rule's label)
    notification = incident_page(incident={"attack_class": "Evil\nClass" * 1000})

    # THEN the class is cut short and the source and count still fit
    assert notification.subject.startswith("[SecOps] INCIDENT opened sev 5 Evil ClassEvil")
    assert "... from 198.51.100.23 (1 events)" in notification.subject
    assert_valid_subject(notification.subject)


def test_invisible_only_fields_leave_gaps_not_fallback_text_in_the_subject() -> None:
    notification = incident_page(incident={"attack_class": "\u200b\u202e"})
    assert notification.subject == "[SecOps] INCIDENT opened sev 5 from 198.51.100.23 (1 events)"


def test_lone_surrogates_do_not_break_encoding() -> None:
    # GIVEN values parsed from JSON escapes that Python keeps as lone surrogates
    notification = incident_page(uri="/a\ud800b", user_agent="\udfff", source_ip="1.2.3.4\ud800")

    # THEN every part encodes as UTF-8 and the JSON still carries the (escaped) value
    notification.message.encode("utf-8")
    notification.subject.encode("ascii")
    for value in notification.attributes.values():
        value.encode("utf-8")
    document = assert_valid_notification(notification)
    assert document["event"]["uri"] == "/a\ud800b"


def test_hostile_analysis_cannot_forge_the_json_part_or_summary_lines() -> None:
    # GIVEN model text (attacker-influenced) that imitates summary fields and the separator
    forged = "Fine.\nSeverity:     highest 0\n" + JSON_SEPARATOR + '\n{"kind": "forged"}'
    notification = incident_page(
        analysis=make_analysis(security_analysis=forged, follow_up_suggestion=forged)
    )

    # THEN the forged lines are indented text and the JSON part is the real one
    summary, document = split_body(notification.message)
    assert document["kind"] == "incident"
    assert "Severity:     highest 0" not in summary.splitlines()
    assert "  Severity: highest 0" in summary.splitlines()
    assert document["analysis"]["security_analysis"] == forged


def test_huge_lists_and_texts_are_capped() -> None:
    # GIVEN an event at every normalization limit, a megabyte of model text and an
    # incident counting hundreds of rules
    long_id = "R" * 512
    notification = incident_page(
        analysis=make_analysis(security_analysis="x " * 500_000, follow_up_suggestion="y\n" * 100_000),
        incident={"rules": {f"{long_id}{i}": 1 for i in range(300)}},
        headers=tuple(Header(name=f"X-H{i}", value=HEADER_SECRETS[0]) for i in range(100)),
        matches=tuple(
            RuleMatch(rule_id=long_id, rule_group=long_id, action="COUNT", condition_types=("XSS",))
            for _ in range(200)
        ),
        labels=tuple(long_id for _ in range(100)),
    )

    # THEN everything still fits and the JSON part parses
    document = assert_valid_notification(notification)
    assert document["truncated"] is True
    assert len(document["event"]["matches"]) <= 20
    assert len(document["event"]["labels"]) <= 20
    assert len(document["incident"]["rules"]) <= 10


def test_attribute_values_are_never_empty_and_single_line() -> None:
    # GIVEN an incident whose source is empty and whose id holds control characters
    notification = incident_page(incident={"source": "", "id": "inc#\x00\nbad\u202eid"})

    assert notification.attributes["source_ip"] == "unknown"
    assert notification.attributes["incident_id"] == "inc# badid"
    assert_valid_notification(notification)


# ---- FIFO ids ------------------------------------------------------------------------------


def test_fifo_ids_are_stable_per_milestone_and_kind() -> None:
    # GIVEN the same milestone rendered twice for a FIFO topic
    first, second = incident_page(FIFO_ARN), incident_page(FIFO_ARN)

    # THEN a retried publish carries the same deduplication id and groups by source
    assert first.dedup_id == second.dedup_id
    assert first.dedup_id is not None
    assert len(first.dedup_id) <= 128
    assert first.group_id == "198.51.100.23"
    # AND the next milestone, or another incident, gets another id
    growth = Milestone("growth:10", "growth", "10 events")
    assert incident_page(FIFO_ARN, milestone=growth).dedup_id != first.dedup_id
    assert incident_page(FIFO_ARN, incident={"id": "inc#other"}).dedup_id != first.dedup_id


def test_fifo_group_id_is_printable_ascii_without_spaces() -> None:
    notification = incident_page(FIFO_ARN, incident={"source": "1.2.3.4 \n攻 x"})
    assert notification.group_id == "1.2.3.4x"

    fallback = incident_page(FIFO_ARN, incident={"source": "\u200b 攻"})
    assert fallback.group_id
    assert all("!" <= ch <= "~" for ch in fallback.group_id)
    assert len(fallback.group_id) <= 128


def test_pattern_and_incident_dedup_ids_differ_for_the_same_key() -> None:
    page = incident_page(FIFO_ARN)
    pattern = make_pattern(pattern_key=page.attributes["incident_id"])
    notification = pattern_notification(FIFO_ARN, pattern=pattern, escalated_keys=(), grown_from=None)
    assert notification.dedup_id != page.dedup_id


# ---- pattern bodies ------------------------------------------------------------------------


def test_pattern_subject_summary_json_and_attributes() -> None:
    pattern = make_pattern()
    notification = pattern_notification(
        STANDARD_ARN, pattern=pattern, escalated_keys=pattern.event_keys, grown_from=None
    )

    assert notification.subject == "[SecOps] PATTERN 12 events sev 3 from 203.0.113.7 /wp-login.php"
    document = assert_valid_notification(notification)
    summary, _ = split_body(notification.message)
    assert "Events:       12" in summary.splitlines()
    assert "Threshold:    10 (met: yes)" in summary.splitlines()
    assert "Escalated:    12 events" in summary.splitlines()
    assert "  evt#11" in summary.splitlines()
    assert document["kind"] == "pattern"
    assert document["pattern"]["count"] == 12
    assert document["escalated_total"] == 12
    assert document["grown_from"] is None
    assert notification.attributes == {
        "event_key": "pattern#203.0.113.7#/wp-login.php",
        "severity": "3",
        "workflow": "monitor",
        "action": "pattern",
        "source_ip": "203.0.113.7",
    }


def test_grown_pattern_says_so_and_gets_a_new_dedup_id() -> None:
    small = make_pattern(count=6)
    grown = make_pattern(count=12)

    renotified = pattern_notification(FIFO_ARN, pattern=grown, escalated_keys=(), grown_from=6)
    first = pattern_notification(FIFO_ARN, pattern=small, escalated_keys=(), grown_from=None)

    assert renotified.subject.startswith("[SecOps] PATTERN grew 6->12 events sev 3")
    assert "Events:       12 (grew from 6)" in renotified.message.splitlines()
    assert split_body(renotified.message)[1]["grown_from"] == 6
    assert renotified.dedup_id != first.dedup_id
    assert renotified.group_id == "203.0.113.7"


def test_pattern_with_thousands_of_keys_lists_a_few() -> None:
    keys = tuple(f"evt#{i:06d}" for i in range(20_000))
    pattern = make_pattern(count=len(keys), event_keys=keys, narrative="n" * 200_000)

    notification = pattern_notification(STANDARD_ARN, pattern=pattern, escalated_keys=keys, grown_from=None)

    document = assert_valid_notification(notification)
    assert document["escalated_total"] == 20_000
    assert len(document["escalated_keys"]) <= 50
    assert document["pattern"]["event_keys_total"] == 20_000
    assert "... and 19950 more" in notification.message


# ---- properties over hostile events --------------------------------------------------------

big_hostile = st.builds(
    lambda chunk, times: chunk * times,
    st.text(min_size=1, max_size=24),
    st.integers(min_value=1, max_value=2500),
)


@given(uri=big_hostile, user_agent=big_hostile, rule=big_hostile, analysis=big_hostile)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_incident_body_always_fits_and_parses(uri: str, user_agent: str, rule: str, analysis: str) -> None:
    # GIVEN hostile text of any size in the event, its analysis and the incident's class
    notification = incident_page(
        FIFO_ARN,
        analysis=make_analysis(security_analysis=analysis),
        incident={"attack_class": rule},
        uri=uri,
        user_agent=user_agent,
        rule_name=rule,
        source_ip=rule[:64],
    )

    # THEN the body fits and parses, and the FIFO group id is printable ASCII
    document = assert_valid_notification(notification)
    assert document["event"]["uri"] == uri or document["truncated"] is True
    assert notification.group_id
    assert all("!" <= ch <= "~" for ch in notification.group_id)


@given(uri=big_hostile, narrative=big_hostile, source_ip=st.text(max_size=80))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pattern_body_always_fits_and_parses(uri: str, narrative: str, source_ip: str) -> None:
    pattern = make_pattern(normalized_uri=uri, narrative=narrative, source_ip=source_ip)
    notification = pattern_notification(
        FIFO_ARN, pattern=pattern, escalated_keys=pattern.event_keys, grown_from=3
    )

    document = assert_valid_notification(notification)
    assert document["kind"] == "pattern"
