"""``secops demo --json`` (what ``make run`` shows) as a smoke test of the whole flow.

It starts its own moto server, so it needs nothing from the test session but a
subprocess; the bundled samples hold a campaign, escalations and malformed messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.fixtures.moto_server import moto_process
from tests.fixtures.worker_process import SECOPS, cli_env, run_cli
from worker.platform import aws

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
    # the operator's word: the customer's search incident resolved as a false positive
    # created the narrowest suppression covering it; the other customers' searches were
    # closed by it at their floor (no incident), each counted once; and the tuning report
    # ranks that rule first as a likely false positive, with a WAF change to paste
    operator = summary["operator"]
    assert operator["scope"] == {
        "rule": "AWSManagedRulesSQLiRuleSet:SQLi_BODY",
        "uri_template": "/api/search",
        "method": "POST",
        "host": "shop.example.com",
    }
    assert operator["covers_incident_events"] == [3, 3]
    assert operator["later_statuses"] == [["closed", operator["suppression"], ""]]
    assert operator["hits"] == operator["later_requests"] == 5
    first = operator["tuning"][0]
    assert first["rule"] == "AWSManagedRulesSQLiRuleSet:SQLi_BODY"
    assert first["verdict"] == "likely_false_positive"
    assert first["suppressions"] == [operator["suppression"]] and first["proposals"]
    # the malformed messages went to the DLQ with their recorded reasons
    rejected = summary["rejected"]
    assert len(rejected) == 3 and {r["where"] for r in rejected} == {"DLQ"}
    assert {r["reason"] for r in rejected} == {"invalid_json", "invalid_event"}
    assert summary["by_status"]["rejected"] == 3


# ---- sealed: the demo writes into its own backend, whatever the shell points at -------------

# The services the demo's clients use, each with its per-service endpoint variable.
DEMO_SERVICES = ("sqs", "sns", "dynamodb", "s3", "events", "securityhub", "sts")


def backend_state(endpoint: str) -> dict[str, Any]:
    """Everything on a backend the demo could have touched, as comparable data."""

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="other",
            aws_secret_access_key="other",
        )

    sqs = client("sqs")
    queues = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for url in sqs.list_queues().get("QueueUrls", [])
    }
    for attributes in queues.values():
        for moving in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "LastModifiedTimestamp",
        ):
            attributes.pop(moving, None)
    try:
        hub = client("securityhub").describe_hub()["HubArn"]
    except ClientError:
        hub = None
    return {
        "queues": queues,
        "topics": client("sns").list_topics()["Topics"],
        "tables": client("dynamodb").list_tables()["TableNames"],
        "buckets": [b["Name"] for b in client("s3").list_buckets()["Buckets"]],
        "buses": [b["Name"] for b in client("events").list_event_buses()["EventBuses"]],
        "hub": hub,
    }


# A whole demo plus the commands around it: beyond the default 120 s on a loaded machine.
@pytest.mark.timeout(360)
def test_the_demo_is_sealed_from_the_environment_s_endpoints(tmp_path: Path) -> None:
    # GIVEN a second backend (another LocalStack, a shared staging endpoint) holding a
    # queue of the demo's name, configured its own way
    with moto_process() as other:
        sqs = boto3.client(
            "sqs",
            endpoint_url=other,
            region_name="us-east-1",
            aws_access_key_id="o",
            aws_secret_access_key="o",
        )
        url = sqs.create_queue(QueueName="waf-events", Attributes={"VisibilityTimeout": "99"})["QueueUrl"]
        before = backend_state(other)
        # AND a shell that points every service at it, the per-service way botocore
        # prefers, through a profile whose config does too, and names its resources
        config = tmp_path / "config"
        config.write_text(
            "[profile other]\nservices = other\nregion = eu-west-1\n"
            f"[services other]\nsqs =\n  endpoint_url = {other}\n"
        )
        env = cli_env(None)
        env.update({aws.endpoint_variable(service): other for service in DEMO_SERVICES})
        env.update(
            AWS_ENDPOINT_URL=other,
            AWS_PROFILE="other",
            AWS_CONFIG_FILE=str(config),
            AWS_SESSION_TOKEN="someone-else",
            SECOPS_LOCALSTACK="1",
            LOCALSTACK_HOST=other.removeprefix("http://"),
            SECOPS_QUEUE_URL=url,
            SECOPS_TABLE_NAME="their-table",
        )
        # WHEN the demo runs there
        result = run_cli("demo", "--json", env=env, timeout=180)
        # THEN it ran on its own backend (the whole flow, as usual)
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads(result.stdout)
        assert summary["incidents"] and summary["log_file"]["complete"]
        # AND the second backend is exactly as it was: no queue reconfigured (visibility,
        # redrive), no topic, table, bucket, bus or hub created, nothing published
        after = backend_state(other)
        assert after == before
        assert after["queues"][url]["VisibilityTimeout"] == "99"
        assert "RedrivePolicy" not in after["queues"][url]
        assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None


# A whole demo plus the commands around it: beyond the default 120 s on a loaded machine.
@pytest.mark.timeout(360)
def test_demo_serve_keeps_the_backend_up_for_a_second_shell(tmp_path: Path) -> None:
    # GIVEN `secops demo --serve --json` running
    stderr = (tmp_path / "stderr").open("wb")
    process = subprocess.Popen(
        [*SECOPS, "demo", "--serve", "--json"], env=cli_env(None), stdout=subprocess.PIPE, stderr=stderr
    )
    try:
        assert process.stdout is not None
        lines = []
        while not lines or lines[-1] != "}":
            line = process.stdout.readline().decode()
            assert line, (tmp_path / "stderr").read_text()[-3000:]
            lines.append(line.rstrip("\n"))
        summary = json.loads("\n".join(lines))
        served = summary["serve"]
        # WHEN a second shell exports what it printed (after clearing its AWS_*/SECOPS_*)
        shell = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SECOPS_"))}
        shell.update(served["export"])
        listed = run_cli("incidents", "list", "--json", env=shell)
        # THEN the demo's incidents, DLQ and log bucket are there to explore
        assert listed.returncode == 0, listed.stderr
        incidents = json.loads(listed.stdout)["incidents"]
        assert {i["id"] for i in incidents} == {i["id"] for i in summary["incidents"]}
        shown = run_cli("incidents", "show", incidents[0]["id"], "--json", env=shell)
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == incidents[0]["id"]
        dlq = run_cli("dlq", "inspect", "--json", env=shell)
        assert dlq.returncode == 0 and json.loads(dlq.stdout)["inspected"] == len(summary["rejected"])
        backfill = run_cli("backfill", "s3://aws-waf-logs-demo/AWSLogs/", "--dry-run", env=shell)
        assert backfill.returncode == 0, backfill.stderr
        # AND the demo's IP sets are reached, empty after its expiry pass
        blocks = run_cli("block", "list", "--json", env=shell)
        assert blocks.returncode == 0, blocks.stderr
        assert json.loads(blocks.stdout)["blocks"] == []
        assert served["clear"].startswith("for v in")
        # AND Ctrl-C stops it cleanly
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()
