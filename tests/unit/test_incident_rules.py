"""Incident rules without storage: grouping keys, folding events into a record, and
the milestones a fold crosses.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from secops_core.contract import Analysis, SeverityFloorInfo, WafEvent
from worker.incidents.grouping import group_key, network_of
from worker.incidents.keys import (
    MAX_DIGESTS,
    MAX_TOP_ENTRIES,
    OTHER,
    SAMPLE_FIRST,
    SAMPLE_LATEST,
    parse_incident_id,
)
from worker.incidents.milestones import OPENED, REACHED_APP, crossed, growth_crossed, growth_steps
from worker.incidents.records import Contribution, IncidentRecord, bump_counts, fold

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
QUIET_S = 3600
NOW = T0.timestamp()


def contribution(
    n: int,
    *,
    at: datetime = T0,
    ip: str = "203.0.113.7",
    severity: int = 4,
    cls: str = "sqli",
    reached: bool = False,
    uri: str = "/login",
    country: str | None = "DE",
) -> Contribution:
    return Contribution(
        event_key=f"evt#{n}",
        at=at,
        severity=severity,
        attack_class=cls,
        source_ip=ip,
        reached_app=reached,
        rule="SQLi_BODY",
        uri_template=uri,
        host="shop.example",
        country=country,
    )


def opened(*contributions: Contribution) -> IncidentRecord:
    group = contributions[0].group("source")
    return fold(None, contributions, group=group, seq=1, quiet_s=QUIET_S, now=NOW).after


# ---- grouping -------------------------------------------------------------------------


def test_source_grouping_separates_ips_and_classes_but_not_uris() -> None:
    # GIVEN events of one IP and class on two URIs, one of another class, one of another IP
    a = group_key("source", source_ip="203.0.113.7", attack_class="SQLi", host="h", uri="/a")
    b = group_key("source", source_ip="203.0.113.7", attack_class=" sqli ", host="h", uri="/b")
    c = group_key("source", source_ip="203.0.113.7", attack_class="xss", host="h", uri="/a")
    d = group_key("source", source_ip="203.0.113.8", attack_class="sqli", host="h", uri="/a")
    # THEN only the class and the IP tell groups apart, and the hash is stable
    assert a == b and a.hash == b.hash
    assert len({a.hash, c.hash, d.hash}) == 3
    assert len(a.hash) == 20 and a.text == "source|203.0.113.7|sqli"


def test_source_net_groups_a_slash_24_and_a_slash_64() -> None:
    # GIVEN addresses in one IPv4 /24, another /24, and one IPv6 /64
    one = group_key("source_net", source_ip="198.51.100.1", attack_class="xss", host=None, uri="/")
    two = group_key("source_net", source_ip="198.51.100.250", attack_class="xss", host=None, uri="/")
    other = group_key("source_net", source_ip="198.51.101.1", attack_class="xss", host=None, uri="/")
    # THEN the /24 groups, the neighbour does not, and IPv6 widens to /64
    assert one == two and one.source == "198.51.100.0/24"
    assert other != one
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network_of("not-an-ip") == "not-an-ip"


def test_signature_groups_one_target_across_sources() -> None:
    # GIVEN two IPs hitting the same URI template, and one hitting another host
    a = group_key(
        "signature", source_ip="192.0.2.1", attack_class="xss", host="Shop.example", uri="/p/12?q=1"
    )
    b = group_key("signature", source_ip="192.0.2.2", attack_class="xss", host="shop.example", uri="/p/99")
    c = group_key("signature", source_ip="192.0.2.2", attack_class="xss", host="admin.example", uri="/p/99")
    # THEN the sources do not matter, the host and template do
    assert a == b and a.target == "shop.example /p/{n}" and a.source == "*"
    assert c != a


def test_an_unknown_grouping_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown grouping"):
        group_key("host", source_ip="192.0.2.1", attack_class="x", host=None, uri="/")  # type: ignore[arg-type]


def test_incident_ids_parse_back() -> None:
    record = opened(contribution(1))
    assert parse_incident_id(record.id) == (record.group_hash, 1)
    with pytest.raises(ValueError):
        parse_incident_id("evt#1")


def test_contribution_from_an_analyzed_event() -> None:
    # GIVEN a counted (COUNT) request whose floor names the class
    event = WafEvent(
        event_key="evt#9",
        source_format="simplified",
        timestamp=datetime(2026, 11, 25, 10, 0),  # naive: taken as UTC
        action="COUNT",
        source_ip="203.0.113.7",
        uri="/api/orders/123?id=1",
        rule_name="SQLi_QUERYARGUMENTS",
        host="shop.example",
        country="FR",
    )
    floor = SeverityFloorInfo(severity=4, attack_class="SQLi", reason="r", rule="SQLi_QUERYARGUMENTS")
    analysis = Analysis(
        severity_rating=5,
        severity_floor=4,
        security_analysis="a",
        follow_up_suggestion="f",
        attack_type="SQL injection",
        analyzed_by="rules",
        floor=floor,
    )
    # WHEN it becomes a contribution
    c = Contribution.from_event(event, analysis)
    # THEN the class is the floor's, the URI a template, and it reached the app
    assert (c.attack_class, c.uri_template, c.reached_app, c.severity) == ("sqli", "/api/orders/{n}", True, 5)
    assert c.at == T0


# ---- folding --------------------------------------------------------------------------


def test_a_new_incident_takes_its_first_events() -> None:
    # GIVEN three events, one of them a redelivery within the batch order
    record = opened(contribution(1), contribution(2, at=T0 + timedelta(minutes=5), reached=True))
    # THEN the record counts both and opens its window from the last one
    assert record.count == 2 and record.reached_app == 1 and record.status == "open"
    assert record.first_seen == T0 and record.last_seen == T0 + timedelta(minutes=5)
    assert record.open_until == T0 + timedelta(minutes=5, seconds=QUIET_S)
    assert record.version == 1 and record.counted("evt#1") and not record.counted("evt#3")
    assert dict(record.countries) == {"DE": 2}


def test_refolding_a_counted_event_counts_nothing() -> None:
    # GIVEN an incident that counted evt#1
    record = opened(contribution(1))
    # WHEN evt#1 comes again with a new one
    step = fold(
        record, [contribution(1), contribution(2)], group=record.group, seq=1, quiet_s=QUIET_S, now=NOW
    )
    # THEN only the new one counts
    assert step.new == ("evt#2",) and step.duplicate == ("evt#1",) and step.after.count == 2


def test_a_fold_of_only_counted_events_leaves_the_record_as_it_was() -> None:
    record = opened(contribution(1))
    step = fold(record, [contribution(1)], group=record.group, seq=1, quiet_s=QUIET_S, now=NOW)
    assert step.after is record and step.new == () and step.duplicate == ("evt#1",)


def test_events_past_the_quiet_period_are_left_for_the_next_incident() -> None:
    # GIVEN an incident open until T0 + 1 h
    record = opened(contribution(1))
    late = T0 + timedelta(seconds=QUIET_S + 1)
    batch = [contribution(2, at=T0 + timedelta(minutes=59)), contribution(3, at=late + timedelta(hours=1))]
    # WHEN a batch brings one event in the window and one past the window it extends
    step = fold(record, batch, group=record.group, seq=1, quiet_s=QUIET_S, now=NOW)
    # THEN the first joins and extends the window, the second is left over
    assert step.new == ("evt#2",) and [c.event_key for c in step.rest] == ["evt#3"]
    assert step.after.open_until == T0 + timedelta(minutes=59, seconds=QUIET_S)


def test_a_resolved_incident_takes_nothing() -> None:
    record = replace(opened(contribution(1)), status="resolved")
    assert not record.accepts(T0)
    step = fold(record, [contribution(2)], group=record.group, seq=1, quiet_s=QUIET_S, now=NOW)
    assert step.new == () and len(step.rest) == 1


def test_samples_keep_the_first_and_the_latest_events() -> None:
    record = opened(*(contribution(n, at=T0 + timedelta(seconds=n)) for n in range(1, 21)))
    assert record.first_events == tuple(f"evt#{n}" for n in range(1, SAMPLE_FIRST + 1))
    assert record.latest_events == tuple(f"evt#{n}" for n in range(21 - SAMPLE_LATEST, 21))


def test_count_maps_keep_the_largest_entries_and_exact_totals() -> None:
    # GIVEN more distinct names than the map keeps, one of them frequent
    names = ["big"] * 5 + [f"ip{n}" for n in range(MAX_TOP_ENTRIES + 10)]
    counts = bump_counts({}, names)
    # THEN the frequent one stays, the rest fold into OTHER, and the total is exact
    assert counts["big"] == 5 and len(counts) == MAX_TOP_ENTRIES + 1
    assert sum(counts.values()) == len(names) and counts[OTHER] == 11


def test_digests_are_bounded() -> None:
    record = opened(contribution(0))
    batch = [contribution(n) for n in range(1, MAX_DIGESTS + 10)]
    step = fold(record, batch, group=record.group, seq=1, quiet_s=QUIET_S, now=NOW)
    assert step.after.count == MAX_DIGESTS + 10 and len(step.after.seen) == MAX_DIGESTS * 8
    assert step.after.counted(f"evt#{MAX_DIGESTS + 9}") and not step.after.counted("evt#0")


def test_records_survive_their_stored_form() -> None:
    record = opened(contribution(1), contribution(2, reached=True, country=None))
    assert IncidentRecord.from_fields(record.to_fields()) == record
    assert "seen" not in record.to_dict() and record.to_dict()["count"] == 2


# ---- milestones -----------------------------------------------------------------------


def test_growth_steps_are_powers_of_the_factor() -> None:
    steps = growth_steps(10)
    assert [next(steps) for _ in range(4)] == [10, 100, 1000, 10000]
    halves = growth_steps(1.5)
    assert [next(halves) for _ in range(5)] == [2, 3, 5, 8, 12]
    with pytest.raises(ValueError):
        next(growth_steps(1))


def test_a_jump_over_several_steps_names_only_the_highest() -> None:
    assert growth_crossed(5, 150, 10) == 100
    assert growth_crossed(10, 99, 10) is None
    assert growth_crossed(9, 10, 10) == 10


def test_opening_names_only_opened() -> None:
    after = opened(*(contribution(n) for n in range(15)))
    assert crossed(None, after) == (OPENED,)


def test_growth_severity_class_and_reached_app_are_crossed() -> None:
    # GIVEN a blocked incident of 9 severity-3 events
    before = opened(*(contribution(n, severity=3) for n in range(9)))
    # WHEN an allowed severity-5 event of another class joins
    step = fold(
        before,
        [contribution(100, severity=5, reached=True, cls="rce")],
        group=before.group,
        seq=1,
        quiet_s=QUIET_S,
        now=NOW,
    )
    # THEN each change is a milestone with a stable id
    ids = [m.id for m in crossed(before, step.after)]
    assert ids == ["growth:10", "severity:5", "class:rce", REACHED_APP.id]


def test_nothing_new_crosses_nothing() -> None:
    before = opened(contribution(1))
    step = fold(before, [contribution(2)], group=before.group, seq=1, quiet_s=QUIET_S, now=NOW)
    assert crossed(before, step.after) == ()


# ---- settings -------------------------------------------------------------------------


def test_incident_settings_have_their_defaults_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from worker.settings import Settings

    # GIVEN no incident variables: the documented defaults
    defaults = Settings()
    assert (defaults.incident_group_by, defaults.incident_quiet_s) == ("source", 3600)
    assert (defaults.incident_growth_factor, defaults.incident_join_window_s) == (10.0, 0.5)
    # WHEN the grouping is set to a choice, it is taken; a wrong one is refused
    monkeypatch.setenv("SECOPS_INCIDENT_GROUP_BY", "signature")
    assert Settings().incident_group_by == "signature"
    monkeypatch.setenv("SECOPS_INCIDENT_GROUP_BY", "host")
    with pytest.raises(ValidationError):
        Settings()
