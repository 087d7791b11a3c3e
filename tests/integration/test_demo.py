"""``secops demo --json`` (what ``make run`` shows) as a smoke test of the whole flow.

It starts its own moto server, so it needs nothing from the test session but a
subprocess; the bundled samples hold a campaign, escalations and malformed messages.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.worker_process import cli_env, run_cli

pytestmark = pytest.mark.slow


def test_demo_json_shows_incidents_notifications_channels_patterns_and_rejections() -> None:
    # WHEN the embedded default runs
    result = run_cli("demo", "--json", env=cli_env(None), timeout=120)

    # THEN it exits 0 with a JSON summary
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    # escalations, each one notified
    assert summary["escalations"] and all(e["notified"] for e in summary["escalations"])
    assert any(e["via"] == "analysis" for e in summary["escalations"])
    # notifications SNS delivered on both topics (read back through SQS subscriptions)
    assert summary["notifications"]["critical"]
    # one per incident milestone, not one per escalated event
    critical = summary["notifications"]["critical"]
    assert all(s.startswith("[SecOps] INCIDENT") for s in critical)
    assert len(critical) < len(summary["escalations"])
    # the monitor pass: the seven-request campaign from one IP is over the threshold,
    # its members escalated by the pattern, and one pattern notice went out
    campaign = [p for p in summary["patterns"] if p["threshold_met"]]
    assert len(campaign) == 1 and campaign[0]["count"] >= 5
    assert summary["monitor"]["ran"] is True
    assert any(e["via"].startswith("pattern") for e in summary["escalations"])
    assert [s for s in summary["notifications"]["monitoring"] if s.startswith("[SecOps] PATTERN")]
    # incidents instead of a row per escalated event: each escalated event is counted in
    # the one incident it links to, the campaign is one incident, and every critical
    # notification is a notice of an incident
    incidents = summary["incidents"]
    escalations = summary["escalations"]
    assert sum(i["count"] for i in incidents) == summary["by_status"]["escalated"] == len(escalations)
    assert {e["incident"] for e in escalations} == {i["id"] for i in incidents}
    [campaign_incident] = [i for i in incidents if i["source"] == campaign[0]["source_ip"]]
    assert campaign_incident["count"] >= 5
    assert sum(i["notices"] for i in incidents) == len(summary["notifications"]["critical"])
    # every incident channel is enabled, and each received every milestone
    assert summary["channels"] == ["sns", "chat", "securityhub", "eventbridge"]
    by_id = {i["id"]: i for i in incidents}
    # EventBridge: what a rule on source secops-worker routed to a queue, one event per
    # milestone, one `Incident Opened` per incident
    events = summary["eventbridge_events"]
    assert {e["source"] for e in events} == {"secops-worker"}
    assert len(events) == sum(i["notices"] for i in incidents)
    opened = [e["incident"] for e in events if e["detail_type"] == "Incident Opened"]
    assert sorted(opened) == sorted(by_id)
    assert all(e["milestone"] == "opened" for e in events if e["detail_type"] == "Incident Opened")
    # Security Hub: one finding per incident (read back with GetFindings), with the
    # incident's severity and the totals of its latest milestone (a later event that
    # crossed none is counted at the next)
    findings = summary["securityhub_findings"]
    assert sorted(f["incident"] for f in findings) == sorted(by_id)
    assert len({f["id"] for f in findings}) == len(findings)
    labels = {4: "HIGH", 5: "CRITICAL"}
    for finding in findings:
        incident = by_id[finding["incident"]]
        latest = max(e["count"] for e in events if e["incident"] == finding["incident"])
        assert finding["count"] == latest <= incident["count"]
        assert finding["severity"] == labels[incident["severity"]]
        assert finding["title"] and finding["types"] and finding["updated_at"]
        assert finding["workflow"] == "NEW"
    # chat: one card per milestone, threaded by incident id
    cards = summary["chat_cards"]
    assert len(cards) == len(critical)
    assert {c["thread_id"] for c in cards} == set(by_id)
    for incident_id, incident in by_id.items():
        thread = [c for c in cards if c["thread_id"] == incident_id]
        assert len(thread) == incident["notices"]
        assert [c["milestone"] for c in thread].count("opened") == 1
    # response actions: the incidents that reached the application blocked their sources
    # in moto's WAFv2 IP set, except the allowlisted one; the expiry pass took them all out
    blocks = summary["blocks"]
    blocked = {b["incident"] for b in blocks["decided"]}
    assert blocked and blocked <= set(by_id)
    assert all(by_id[i]["reached_app"] for i in blocked)
    assert [r["reason"] for r in blocks["refused"]] == ["allowlisted"]
    assert sorted(blocks["in_ip_set"]) == sorted(b["network"] for b in blocks["decided"])
    assert sorted(blocks["expired"]) == sorted(blocks["in_ip_set"])
    assert blocks["in_ip_set_after_expiry"] == []
    # each block and its expiry announced once on SNS, chat and EventBridge
    for channel in ("sns", "chat", "eventbridge"):
        assert len(blocks["notices"][channel]) == 2 * len(blocks["decided"]), channel
    # the malformed messages went to the DLQ with their recorded reasons
    rejected = summary["rejected"]
    assert len(rejected) == 3 and {r["where"] for r in rejected} == {"DLQ"}
    assert {r["reason"] for r in rejected} == {"invalid_json", "invalid_event"}
    assert summary["by_status"]["rejected"] == 3
