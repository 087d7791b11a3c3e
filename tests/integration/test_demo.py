"""``secops demo --json`` (what ``make run`` shows) as a smoke test of the whole flow.

It starts its own moto server, so it needs nothing from the test session but a
subprocess; the bundled samples hold a campaign, escalations and malformed messages.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.worker_process import cli_env, run_cli

pytestmark = pytest.mark.slow


def test_demo_json_shows_incidents_notifications_patterns_and_rejections() -> None:
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
    # the malformed messages went to the DLQ with their recorded reasons
    rejected = summary["rejected"]
    assert len(rejected) == 3 and {r["where"] for r in rejected} == {"DLQ"}
    assert {r["reason"] for r in rejected} == {"invalid_json", "invalid_event"}
    assert summary["by_status"]["rejected"] == 3
