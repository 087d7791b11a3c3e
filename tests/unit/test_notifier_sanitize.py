"""Unit tests of notification rendering: subjects, bodies, attributes, FIFO ids. No network."""

from __future__ import annotations

import json
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
from worker.notify.render import (
    JSON_SEPARATOR,
    MAX_BODY_BYTES,
    Notification,
    escalation_notification,
    pattern_notification,
)
from worker.notify.sanitize import SUBJECT_FALLBACK, sanitize_subject

SNS_MAX_BYTES = 256 * 1024
STANDARD_ARN = "arn:aws:sns:us-east-1:123456789012:secops-critical"
FIFO_ARN = "arn:aws:sns:us-east-1:123456789012:secops-critical.fifo"
ATTRIBUTE_NAMES = {"event_key", "severity", "workflow", "action", "source_ip"}
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


def escalation(topic_arn: str = STANDARD_ARN, **event_overrides: Any) -> Notification:
    event = make_event(**event_overrides)
    return escalation_notification(
        topic_arn,
        event=event,
        analysis=make_analysis(),
        triage=make_triage(),
        event_key=event.event_key,
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
    assert set(notification.attributes) == ATTRIBUTE_NAMES
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


# ---- escalation bodies ---------------------------------------------------------------------


def test_escalation_subject_summary_json_and_attributes() -> None:
    # GIVEN an ordinary escalated SQL injection  WHEN rendered for a standard topic
    notification = escalation()

    # THEN the subject names severity, rule, source and request
    assert notification.subject == ("[SecOps] ESCALATE sev 5 SQLi_BODY from 198.51.100.23 POST /login.php")
    document = assert_valid_notification(notification)
    summary, _ = split_body(notification.message)
    # AND the summary carries every fact an operator needs
    for expected in (
        "Event key:    evt#abc-123",
        "Time:         2025-03-01T12:00:00+00:00",
        "Source IP:    198.51.100.23 (US)",
        "Request:      POST shop.example.com/login.php",
        "Rule:         SQLi_BODY (group AWSManagedRulesSQLiRuleSet)",
        "WAF action:   ALLOW",
        "Severity:     final 5, floor 4, model 5",
        "Analyzed by:  bedrock:amazon.nova-lite-v1:0",
        "Degraded:     no",
        "Triage:       escalate -> escalated: severity 5 is at least 4",
        "  A SQL injection in the body reached the application.",
        "  Block 198.51.100.23 and review the login handler.",
    ):
        assert expected in summary.splitlines()
    # AND the JSON part has the same facts, header names but no header values
    assert document["kind"] == "escalation"
    assert document["event_key"] == "evt#abc-123"
    assert document["severity"] == 5
    assert document["truncated"] is False
    assert document["event"]["uri"] == "/login.php"
    assert document["event"]["header_names"] == [
        "X-Forwarded-For",
        "X-Custom",
        "Accept",
        "Authorization",
    ]
    assert "headers" not in document["event"]
    assert document["analysis"]["severity_floor"] == 4
    assert document["analysis"]["analyzed_by"] == "bedrock:amazon.nova-lite-v1:0"
    assert document["triage"]["status"] == "escalated"
    # AND the attributes identify the notification for subscription filters
    assert notification.attributes == {
        "event_key": "evt#abc-123",
        "severity": "5",
        "workflow": "analyze",
        "action": "escalate",
        "source_ip": "198.51.100.23",
    }
    # AND a standard topic gets no FIFO ids (SNS would reject them)
    assert notification.dedup_id is None
    assert notification.group_id is None


def test_degraded_rules_analysis_is_flagged() -> None:
    event = make_event()
    notification = escalation_notification(
        STANDARD_ARN,
        event=event,
        analysis=make_analysis(model_severity=None, analyzed_by="rules", degraded=True),
        triage=make_triage(),
        event_key=event.event_key,
    )

    summary, document = split_body(notification.message)
    assert "Degraded:     yes" in summary.splitlines()
    assert "Severity:     final 5, floor 4, model -" in summary.splitlines()
    assert document["analysis"]["degraded"] is True
    assert document["analysis"]["model_severity"] is None


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
    # GIVEN a 60 KB hostile value in one attacker-controlled field
    notification = escalation(**{field: payload})

    # THEN the body stays under the cap, its JSON parses, and it says it was cut
    document = assert_valid_notification(notification)
    assert document["kind"] == "escalation"
    assert document["truncated"] is True
    assert len(document["event"][field]) < 10_000


def test_long_rule_name_does_not_crowd_out_the_source_in_the_subject() -> None:
    # GIVEN a 10 KB custom rule name with newlines
    notification = escalation(rule_name="Evil\nRule" * 1000)

    # THEN the rule is cut short and the source IP and request still fit
    assert notification.subject.startswith("[SecOps] ESCALATE sev 5 Evil RuleEvil Rule")
    assert "... from 198.51.100.23 POST /login.php" in notification.subject
    assert_valid_subject(notification.subject)


def test_invisible_only_fields_leave_gaps_not_fallback_text_in_the_subject() -> None:
    notification = escalation(rule_name="\u200b\u202e", http_method=None)
    assert notification.subject == "[SecOps] ESCALATE sev 5 from 198.51.100.23 /login.php"


def test_lone_surrogates_do_not_break_encoding() -> None:
    # GIVEN values parsed from JSON escapes that Python keeps as lone surrogates
    notification = escalation(uri="/a\ud800b", user_agent="\udfff", source_ip="1.2.3.4\ud800")

    # THEN every part encodes as UTF-8 and the JSON still carries the (escaped) value
    notification.message.encode("utf-8")
    notification.subject.encode("ascii")
    for value in notification.attributes.values():
        value.encode("utf-8")
    document = assert_valid_notification(notification)
    assert document["event"]["uri"] == "/a\ud800b"


def test_hostile_analysis_cannot_forge_the_json_part_or_summary_lines() -> None:
    # GIVEN model text (attacker-influenced) that imitates summary fields and the separator
    forged = "Fine.\nSeverity:     final 0\n" + JSON_SEPARATOR + '\n{"kind": "forged"}'
    event = make_event()
    notification = escalation_notification(
        STANDARD_ARN,
        event=event,
        analysis=make_analysis(security_analysis=forged, follow_up_suggestion=forged),
        triage=make_triage(),
        event_key=event.event_key,
    )

    # THEN the forged lines are indented text and the JSON part is the real one
    summary, document = split_body(notification.message)
    assert document["kind"] == "escalation"
    assert "Severity:     final 0" not in summary.splitlines()
    assert "  Severity: final 0" in summary.splitlines()
    assert document["analysis"]["security_analysis"] == forged


def test_huge_lists_and_texts_are_capped() -> None:
    # GIVEN an event at every normalization limit and a megabyte of model text
    long_id = "R" * 512
    event = make_event(
        headers=tuple(Header(name=f"X-H{i}", value=HEADER_SECRETS[0]) for i in range(100)),
        matches=tuple(
            RuleMatch(rule_id=long_id, rule_group=long_id, action="COUNT", condition_types=("XSS",))
            for _ in range(200)
        ),
        labels=tuple(long_id for _ in range(100)),
    )
    notification = escalation_notification(
        STANDARD_ARN,
        event=event,
        analysis=make_analysis(security_analysis="x " * 500_000, follow_up_suggestion="y\n" * 100_000),
        triage=make_triage(reason="z" * 100_000),
        event_key=event.event_key,
    )

    # THEN everything still fits and the JSON part parses
    document = assert_valid_notification(notification)
    assert document["truncated"] is True
    assert len(document["event"]["matches"]) <= 20
    assert len(document["event"]["labels"]) <= 20


def test_attribute_values_are_never_empty_and_single_line() -> None:
    # GIVEN an event whose source IP is empty and whose key holds control characters
    event = make_event(source_ip="", event_key="evt#\x00\nbad\u202ekey")
    notification = escalation_notification(
        STANDARD_ARN,
        event=event,
        analysis=make_analysis(),
        triage=make_triage(),
        event_key=event.event_key,
    )

    assert notification.attributes["source_ip"] == "unknown"
    assert notification.attributes["event_key"] == "evt# badkey"
    assert_valid_notification(notification)


# ---- FIFO ids ------------------------------------------------------------------------------


def test_fifo_ids_are_stable_per_event_and_kind() -> None:
    # GIVEN the same escalation rendered twice for a FIFO topic
    first, second = escalation(FIFO_ARN), escalation(FIFO_ARN)

    # THEN a retried publish carries the same deduplication id and groups by source IP
    assert first.dedup_id == second.dedup_id
    assert first.dedup_id is not None
    assert len(first.dedup_id) <= 128
    assert first.group_id == "198.51.100.23"
    # AND another event gets another id
    assert escalation(FIFO_ARN, event_key="evt#other").dedup_id != first.dedup_id


def test_fifo_group_id_is_printable_ascii_without_spaces() -> None:
    notification = escalation(FIFO_ARN, source_ip="1.2.3.4 \n攻 x")
    assert notification.group_id == "1.2.3.4x"

    fallback = escalation(FIFO_ARN, source_ip="\u200b 攻")
    assert fallback.group_id
    assert all("!" <= ch <= "~" for ch in fallback.group_id)
    assert len(fallback.group_id) <= 128


def test_pattern_and_escalation_dedup_ids_differ_for_the_same_key() -> None:
    pattern = make_pattern(pattern_key="evt#abc-123")
    notification = pattern_notification(FIFO_ARN, pattern=pattern, escalated_keys=(), grown_from=None)
    assert notification.dedup_id != escalation(FIFO_ARN).dedup_id


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
def test_escalation_body_always_fits_and_parses(uri: str, user_agent: str, rule: str, analysis: str) -> None:
    event = make_event(uri=uri, user_agent=user_agent, rule_name=rule, source_ip=rule[:64])
    notification = escalation_notification(
        FIFO_ARN,
        event=event,
        analysis=make_analysis(security_analysis=analysis),
        triage=make_triage(),
        event_key=event.event_key,
    )

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
