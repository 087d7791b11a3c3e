"""The response policy: which incidents block, and for how long (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.fixtures.incident_records import contribution, grow
from worker.incidents.records import IncidentRecord
from worker.response.policy import ResponsePolicy
from worker.response.records import POLICY, BlockRecord, IpSetRef

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ON = ResponsePolicy(mode="on")


def incident_record() -> IncidentRecord:
    return grow(None, contribution(1))


def test_off_selects_nothing() -> None:
    incident = replace(incident_record(), max_severity=5, reached_app=3)
    assert ResponsePolicy().select(incident) is None


def test_severity_needs_the_application_reached_by_default() -> None:
    # GIVEN a severity-4 incident that was blocked at the edge, and the same one that got through
    edge = replace(incident_record(), max_severity=4, reached_app=0)
    reached = replace(edge, reached_app=1)
    # THEN only the one that reached the application is selected, unless told otherwise
    assert ON.select(edge) is None
    selection = ON.select(reached)
    assert selection is not None and "reached the application" in selection.reason
    assert replace(ON, reached_app_only=False).select(edge) is not None


def test_volume_and_rate_rules() -> None:
    # GIVEN a low-severity scanner with 120 events over 2 minutes
    scanner = replace(
        incident_record(),
        max_severity=2,
        reached_app=0,
        count=120,
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=2),
    )
    # THEN the volume rule and the rate rule select it when enabled, not otherwise
    assert ON.select(scanner) is None
    assert replace(ON, min_events=100).select(scanner) is not None
    assert replace(ON, min_rate_per_min=50).select(scanner) is not None
    assert replace(ON, min_rate_per_min=70).select(scanner) is None


def test_a_resolved_incident_is_never_selected() -> None:
    incident = replace(incident_record(), max_severity=5, reached_app=3, status="resolved")
    assert ON.select(incident) is None


def test_repeat_offenders_are_blocked_longer_within_the_window() -> None:
    # GIVEN a network blocked twice before, once an hour ago and once two days ago
    now = T0.timestamp()
    ip_set = IpSetRef(name="s", id="s", scope="REGIONAL", version="IPV4")
    record = BlockRecord(
        network="203.0.113.9/32",
        address="203.0.113.9",
        ip_set=ip_set,
        incident_id="i",
        reason="r",
        decided_by=POLICY,
        created_at=now - 3600,
        expires_at=now - 60,
        status="removed",
    )
    old = replace(record, created_at=now - 2 * 86400).opening_entry()
    recent = record.opening_entry()
    record = replace(record, history=(old, recent))
    # THEN one earlier block counts (doubling 4 h to 8 h), and the maximum caps it
    assert ON.duration([record], now=now) == 8 * 3600
    assert ON.duration([None], now=now) == 4 * 3600
    assert replace(ON, max_duration_s=5 * 3600).duration([record], now=now) == 5 * 3600
