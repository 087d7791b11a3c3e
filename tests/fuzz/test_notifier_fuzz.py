"""Properties of the SNS notifier's sanitizing: subjects, bodies, attributes, FIFO ids.

Everything an attacker wrote (URI, user agent, custom rule names, the model's text about
them) reaches an e-mail subject or a chat message. Whatever the input:

- ``sanitize_subject`` gives 1-100 printable ASCII characters, trimmed;
- a notification body is UTF-8, under SNS's 256 KiB (and our own 64 KiB), has exactly one
  ``--- JSON ---`` separator line, and the JSON after it parses with the facts;
- header values never appear, attributes are non-empty single lines, FIFO ids are valid.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from secops_core.contract import Analysis, Header, Pattern, SeverityFloorInfo, WafEvent
from tests.fuzz import strategies as s
from tests.unit.test_notifier_sanitize import make_incident
from worker.incidents import Milestone
from worker.notify.render import (
    JSON_SEPARATOR,
    MAX_BODY_BYTES,
    Notification,
    incident_notification,
    pattern_notification,
)
from worker.notify.sanitize import SUBJECT_MAX_CHARS, sanitize_subject

SNS_MAX_PUBLISH_BYTES = 256 * 1024
TOPICS = [
    "arn:aws:sns:us-east-1:123456789012:secops-critical",
    "arn:aws:sns:us-east-1:123456789012:secops-critical.fifo",
]
# Text for long fields: sometimes far past every limit of the body.
long_texts = st.one_of(
    s.texts(), st.integers(10_000, 120_000).map(lambda n: "\u00e9\U0001f600\ud800\n" * (n // 4))
)
severities = st.integers(0, 5)

floors = st.builds(
    SeverityFloorInfo, severity=severities, attack_class=s.texts(), reason=long_texts, rule=s.texts()
)
analyses = st.builds(
    Analysis,
    severity_rating=severities,
    severity_floor=severities,
    model_severity=st.none() | severities,
    security_analysis=long_texts,
    follow_up_suggestion=long_texts,
    attack_type=s.texts(),
    analyzed_by=s.texts(),
    floor=st.none() | floors,
    degraded=st.booleans(),
)
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
patterns = st.builds(
    Pattern,
    pattern_key=s.texts(),
    source_ip=s.valid_ips | s.texts(),
    normalized_uri=long_texts,
    count=st.integers(0, 10**6),
    first_seen=moments,
    last_seen=moments,
    rules=st.lists(s.texts(), max_size=30).map(tuple),
    event_keys=st.lists(s.texts(), max_size=60).map(tuple),
    max_severity=severities,
    threshold=st.integers(1, 100),
    threshold_met=st.booleans(),
    narrative=long_texts,
)
milestones = st.builds(
    Milestone, id=s.texts(), kind=st.sampled_from(["opened", "growth", "new_class"]), summary=long_texts
)
secret_values = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16).map(lambda h: f"HDRVAL{h}")


def assert_subject(subject: str) -> None:
    assert 1 <= len(subject) <= SUBJECT_MAX_CHARS, subject
    assert all(" " <= ch <= "~" for ch in subject), repr(subject)
    assert subject == subject.strip()


def assert_notification(notification: Notification, kind: str) -> dict[str, Any]:
    assert_subject(notification.subject)
    raw = notification.message.encode("utf-8")
    assert len(raw) <= MAX_BODY_BYTES < SNS_MAX_PUBLISH_BYTES
    separator = f"\n{JSON_SEPARATOR}\n"
    assert notification.message.count(separator) == 1, "untrusted text forged the separator"
    summary, document_text = notification.message.split(separator)
    assert summary.strip()
    document = json.loads(document_text)
    assert document["kind"] == kind
    assert isinstance(document["truncated"], bool)
    for name, value in notification.attributes.items():
        assert value, name
        assert len(value) <= 256
        assert "\n" not in value
        value.encode("utf-8")
    if notification.topic_arn.endswith(".fifo"):
        assert notification.dedup_id
        assert notification.group_id
        assert len(notification.group_id) <= 128
        assert all("!" <= ch <= "~" for ch in notification.group_id)
    else:
        assert notification.dedup_id is None
        assert notification.group_id is None
    return document


@s.fuzz_settings(150)
@given(text=st.one_of(s.texts(), long_texts, st.text(alphabet=s.any_chars)))
@example(text="")
@example(text="\u00e9" * 5000)
@example(text="\ufdfa" * 200)  # one character that NFKD expands to eighteen
@example(text=" " * 10 + "\u200b" * 10)
def test_sanitize_subject_gives_1_to_100_printable_ascii_characters(text: str) -> None:
    assert_subject(sanitize_subject(text))


@s.fuzz_settings(40)
@given(
    waf_event=s.waf_events,
    header_values=st.lists(secret_values, max_size=3),
    analysis=analyses,
    milestone=milestones,
    attack_class=s.texts(),
    topic=st.sampled_from(TOPICS),
)
def test_incident_notifications_are_sane_whatever_the_event_says(
    waf_event: WafEvent,
    header_values: list[str],
    analysis: Analysis,
    milestone: Milestone,
    attack_class: str,
    topic: str,
) -> None:
    # GIVEN any event (with secret header values) that opened an incident of any class
    headers = waf_event.headers + tuple(Header(name="X-Anything", value=value) for value in header_values)
    waf_event = waf_event.model_copy(update={"headers": headers})
    incident = make_incident(waf_event, attack_class=attack_class)
    # WHEN any milestone of it is rendered
    notification = incident_notification(
        topic, incident=incident, milestone=milestone, event=waf_event, analysis=analysis
    )
    # THEN it fits SNS, parses, and carries no header value
    document = assert_notification(notification, "incident")
    assert document["severity"] == incident.max_severity
    for value in header_values:
        assert value not in notification.message


@s.fuzz_settings(40)
@given(
    pattern=patterns,
    escalated_keys=st.lists(s.texts(), max_size=80),
    grown_from=st.none() | st.integers(0, 10**6),
    topic=st.sampled_from(TOPICS),
)
def test_pattern_notifications_are_sane_whatever_the_pattern_says(
    pattern: Pattern, escalated_keys: list[str], grown_from: int | None, topic: str
) -> None:
    notification = pattern_notification(
        topic, pattern=pattern, escalated_keys=escalated_keys, grown_from=grown_from
    )
    document = assert_notification(notification, "pattern")
    assert document["pattern"]["count"] == pattern.count
    assert document["escalated_total"] == len(escalated_keys)
