"""``secops suppress``, ``secops incidents resolve --false-positive`` and ``secops tune``
against moto's server over HTTP, the events written by the real pipeline beforehand.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from testkit.events import waf_record
from tests.fixtures.fakes import FakeAgents, FakeNotifier
from tests.fixtures.waf_week import PLANTED, log_objects, waf_week
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env
from worker.cli.app import main
from worker.incidents.factory import dynamo_repo
from worker.incidents.joiner import IncidentJoiner
from worker.pipeline.processor import EventProcessor
from worker.platform.metrics import Metrics
from worker.suppressions.cache import SuppressionCache
from worker.suppressions.dynamodb import DynamoSuppressionRepo

pytestmark = pytest.mark.slow

CUSTOMER = "198.51.100.77"
LOG4J = "awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header"


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()  # the pipeline's own log lines before the command
        try:
            code = main(list(argv))
        except SystemExit as stopped:  # a usage error found while parsing, as the console script exits
            code = int(stopped.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *argv: str) -> Any:
        code, stdout, stderr = self(*argv, "--json")
        assert code == 0, stderr
        return json.loads(stdout)


@pytest.fixture
def aws(aws_endpoint: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    settings = fast_settings(unique, tmp_path)
    env = make_env(settings)
    for name, value in cli_env(aws_endpoint, settings).items():
        if name.startswith(("SECOPS_", "AWS_")):
            monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def cli(aws: Env, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def processor(aws: Env) -> EventProcessor:
    """The pipeline over the test's table, as a replica builds it (refreshing at once)."""
    client = aws.clients.dynamodb
    return EventProcessor(
        store=aws.store,
        agents=FakeAgents(),
        notifier=FakeNotifier(),
        incidents=IncidentJoiner(dynamo_repo(aws.settings, client=client), window_s=0),
        owner="test",
        lease_s=30,
        metrics=Metrics(enabled=False),
        suppressions=SuppressionCache(
            DynamoSuppressionRepo(aws.settings.table_name, client=client), refresh_s=0.001
        ),
    )


def counted_search(ip: str, n: int, *labels: str) -> str:
    record = waf_record(
        counted=True, client_ip=ip, uri="/api/search", request_id=f"1-{ip}-{n}", minutes_ago=5
    )
    record["labels"] += [{"name": label} for label in labels]
    return json.dumps(record)


def test_a_false_positive_incident_becomes_a_suppression_that_closes_the_next_events(
    aws: Env, cli: Cli
) -> None:
    pipeline = processor(aws)
    # GIVEN a customer's counted SQLi matches on /api/search, escalated into an incident
    outcomes = [pipeline.process(counted_search(CUSTOMER, n), f"m-{n}") for n in range(3)]
    assert {o.status for o in outcomes} == {"escalated"}
    record = aws.store.get(outcomes[0].event_key or "")
    assert record is not None and record.incident_id is not None
    # WHEN the operator resolves it as a false positive
    result = cli.json("incidents", "resolve", record.incident_id, "--false-positive", "--note", "our search")
    # THEN the incident is resolved and the narrowest scope covering its events is created
    assert result["incident"]["status"] == "resolved"
    created = result["false_positive"]["suppression"]
    assert result["false_positive"]["blocks"]["summary"] == "no IP set configured"
    assert created["covers_incident_events"] == {"covered": 3, "events": 3}
    suppression = created["suppression"]
    assert suppression["scope"] == {
        "rule": "AWSManagedRulesSQLiRuleSet:SQLi_QUERYARGUMENTS",
        "uri_template": "/api/search",
        "method": "GET",
        "host": "shop.example.com",
    }
    assert (suppression["reason"], suppression["incident_id"]) == ("our search", record.incident_id)
    assert suppression["expires_at"] is not None
    assert created["preview"]["would_have_matched"] == 3
    # ... and the next customer's match is closed at its floor, without an incident
    later = pipeline.process(counted_search("198.51.100.78", 9), "m-9")
    assert later.status == "closed"
    shown = cli.json("suppress", "show", suppression["id"])
    assert (shown["hits"], shown["state"]) == (1, "active")
    # ... and the tuning report on the stored events names it beside its rule
    report = cli.json("tune", "--since", "1d", "--no-plot")
    row = next(r for r in report["rules"] if r["rule"].endswith("SQLi_QUERYARGUMENTS"))
    assert [s["id"] for s in row["suppressions"]] == [suppression["id"]]
    assert row["matches"] == 4


def test_a_scope_over_a_severity_5_event_of_another_class_needs_force(aws: Env, cli: Cli) -> None:
    pipeline = processor(aws)
    # GIVEN a stored event in the scope that also carried a Log4J match (severity 5)
    assert pipeline.process(counted_search(CUSTOMER, 1, LOG4J), "m-1").severity == 5
    add = ("suppress", "add", "--rule", "SQLi_QUERYARGUMENTS", "--uri", "/api/search", "--reason", "ours")
    # WHEN the suppression is added without --force / THEN it is refused in one line
    code, stdout, stderr = cli(*add)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and "refused" in stderr and "--force" in stderr
    assert cli.json("suppress", "list")["suppressions"] == []
    # WHEN it is forced / THEN it is created, marked forced, and the Log4J event stays unsuppressed
    created = cli.json(*add, "--force")
    assert created["suppression"]["forced"] is True
    assert created["preview"]["in_scope_but_other_class"] == 1
    assert pipeline.process(counted_search(CUSTOMER, 2, LOG4J), "m-2").status == "escalated"
    assert pipeline.process(counted_search(CUSTOMER, 3), "m-3").status == "closed"


def test_list_show_expire_remove_and_bad_arguments(aws: Env, cli: Cli) -> None:
    base = ("suppress", "add", "--rule", "SQLi_BODY", "--reason", "ours")
    first = cli.json(*base, "--uri", "/a", "--expires", "2h")["suppression"]
    second = cli.json(*base, "--method", "PUT", "--no-expiry", "--by", "carol")["suppression"]
    assert second["expires_at"] is None and second["created_by"] == "carol"
    assert {s["id"] for s in cli.json("suppress", "list")["suppressions"]} == {first["id"], second["id"]}
    # WHEN one is expired and the other removed
    assert cli.json("suppress", "expire", first["id"], "--by", "bob")["suppression"]["state"] == "expired"
    assert cli.json("suppress", "remove", second["id"])["suppression"]["state"] == "removed"
    # THEN none is in force, both are kept for the audit
    assert cli.json("suppress", "list")["suppressions"] == []
    kept = {s["id"]: s for s in cli.json("suppress", "list", "--all")["suppressions"]}
    assert kept[first["id"]]["ended_by"] == "bob" and kept[second["id"]]["status"] == "removed"
    # AND a bad argument is one line and exit 2, no traceback
    for argv in (
        ("suppress", "add", "--rule", "SQLi_BODY", "--reason", "x"),
        ("suppress", "add", "--rule", "SQLi_BODY", "--uri", "/a"),
        ("suppress", "add", "--rule", "SQLi_BODY", "--source", "10.0.0.999", "--reason", "x"),
        ("suppress", "show", "not-an-id"),
    ):
        code, stdout, stderr = cli(*argv)
        assert (code, stdout, stderr.count("\n")) == (2, "", 1), stderr
        assert "Traceback" not in stderr


def test_tune_reads_the_log_files_in_s3(aws: Env, cli: Cli, tmp_path: Path) -> None:
    # GIVEN a week of WAF logs in S3, as WAF's logging writes them
    s3 = aws.clients.s3
    bucket = f"aws-waf-logs-{aws.settings.table_name.lower()}"
    s3.create_bucket(Bucket=bucket)
    objects = log_objects(waf_week(datetime.now(UTC)))
    for key, body in objects:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    prefix = objects[0][0].split("/20", 1)[0] + "/"
    chart = tmp_path / "tune.png"
    # WHEN the report reads them
    report = cli.json("tune", "--from-s3", f"s3://{bucket}/{prefix}", "--plot", str(chart))
    # THEN the planted false positive ranks first and the chart is written
    assert report["rules"][0]["rule"] == PLANTED
    assert report["plot"] == str(chart) and chart.stat().st_size > 0
    # AND the table names it first too
    code, stdout, _ = cli(
        "tune", "--from-s3", f"s3://{bucket}/{prefix}", "--no-plot", "--web-acl", "shop-prod"
    )
    assert code == 0
    assert f"#1 {PLANTED}: Block SQLi_BODY everywhere except /api/search" in stdout
