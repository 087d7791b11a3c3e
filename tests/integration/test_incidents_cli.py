"""``secops incidents list|show|ack|resolve`` as a subprocess against moto's server.

The incidents and their events are written through the real store and incident
repository (DynamoDB on moto over HTTP), exactly as the worker leaves them; the
commands then read and change them the way an operator would, ``--json`` piped into
``json.load``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secops_core.rules_analysis import rules_analysis
from secops_core.triage import triage
from secops_core.waf.floor import severity_floor
from testkit.events import waf_record
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env, run_cli
from worker.incidents import Contribution, IncidentRecord
from worker.incidents.dynamodb import DynamoIncidentRepo
from worker.pipeline.processor import parse_message
from worker.settings import Settings

pytestmark = pytest.mark.slow

SCANNER = "203.0.113.66"
# Attacker-written text that rich would read as console markup if it were not escaped.
MARKUP_URI = "/search/[bold red]owned[/]"


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@dataclass
class Seeded:
    settings: Settings
    env: dict[str, str]
    repo: DynamoIncidentRepo
    scanner: IncidentRecord
    keys: list[str]
    aws: Env


@pytest.fixture
def seeded(aws_endpoint: str, unique: str, tmp_path: Path) -> Seeded:
    """A table with one scanner's incident (five counted SQL injections on two
    endpoints, each event analyzed and escalated in the store) and a second, older one.
    """
    settings = fast_settings(unique, tmp_path)
    env = make_env(settings)  # queue, topics, table, and a queue subscribed to each topic
    client, store = env.clients.dynamodb, env.store
    repo = DynamoIncidentRepo(settings.table_name, client=client, quiet_s=settings.incident_quiet_s)
    contributions, keys = [], []
    for n in range(5):
        body = waf_record(
            counted=True,
            client_ip=SCANNER,
            uri=MARKUP_URI if n % 2 else "/products",
            request_id=f"1-scan-{unique}-{n}",
            minutes_ago=10 - n,
        )
        event = parse_message(json.dumps(body)).event
        analysis = rules_analysis(event, severity_floor(event))
        store.claim(event, owner="test", lease_s=30, message_id=f"m-{n}")
        store.save_analysis(event.event_key, owner="test", analysis=analysis)
        store.apply_triage(event.event_key, owner="test", decision=triage(analysis.severity_rating))
        contributions.append(Contribution.from_event(event, analysis))
        keys.append(event.event_key)
    scanner = repo.join(contributions[0].group("source"), contributions).record
    other = parse_message(
        json.dumps(
            waf_record(counted=True, client_ip="198.51.100.9", request_id=f"1-x-{unique}", minutes_ago=90)
        )
    ).event
    other_contribution = Contribution.from_event(other, rules_analysis(other, severity_floor(other)))
    repo.join(other_contribution.group("source"), [other_contribution])
    return Seeded(settings, cli_env(aws_endpoint, settings), repo, scanner, keys, env)


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.load(io.StringIO(result.stdout))


def test_list_json_parses_and_holds_every_column(seeded: Seeded) -> None:
    # WHEN an operator lists incidents as JSON, with the log level turned up
    result = run_cli("incidents", "list", "--json", env={**seeded.env, "SECOPS_LOG_LEVEL": "DEBUG"})

    # THEN stdout is one JSON document (logs went to stderr), newest incident first
    listed = _json(result)["incidents"]
    assert [i["source"] for i in listed] == [SCANNER, "198.51.100.9"]
    scanner = listed[0]
    assert scanner["id"] == seeded.scanner.id
    assert scanner["attack_class"] == seeded.scanner.attack_class
    assert scanner["count"] == 5 and scanner["severity"] == 4 and scanner["status"] == "open"
    assert scanner["first_seen"] < scanner["last_seen"]


def test_list_filters_by_status_and_since_and_prints_a_table(seeded: Seeded) -> None:
    # WHEN the list is narrowed to the last hour, then to acknowledged incidents
    recent = _json(run_cli("incidents", "list", "--since", "1h", "--json", env=seeded.env))
    acknowledged = _json(run_cli("incidents", "list", "--status", "acknowledged", "--json", env=seeded.env))
    table = run_cli("incidents", "list", env=seeded.env)

    # THEN only the scanner's incident had events in the hour, none is acknowledged yet
    assert [i["id"] for i in recent["incidents"]] == [seeded.scanner.id]
    assert acknowledged == {"incidents": []}
    # AND the table names the incident, its source and its status
    assert table.returncode == 0, table.stderr
    assert seeded.scanner.id in table.stdout and SCANNER in table.stdout and "open" in table.stdout


def test_show_json_has_timeline_targets_samples_and_the_analysis(seeded: Seeded) -> None:
    # WHEN an operator shows the scanner's incident
    view = _json(run_cli("incidents", "show", seeded.scanner.id, "--json", env=seeded.env))

    # THEN it carries the counts, the URI templates and the rules it saw
    assert view["id"] == seeded.scanner.id and view["count"] == 5
    assert sum(view["uri_templates"].values()) == 5 and len(view["uri_templates"]) == 2
    assert sum(view["rules"].values()) == 5
    assert view["countries"] == {"NL": 5} and view["source_ips"] == {SCANNER: 5}
    # AND a timeline from the first to the last event
    assert [e["what"] for e in view["timeline"]] == ["first event", "last event"]
    # AND the sample events as the store holds them, escalated
    assert [s["event_key"] for s in view["samples"]] == seeded.keys
    assert {s["triage"] for s in view["samples"]} == {"escalate"}
    # AND the analysis of a sample event
    assert view["analysis"]["event_key"] == seeded.keys[0]
    assert view["analysis"]["analyzed_by"] == "rules" and view["analysis"]["severity_rating"] == 4


def test_show_prints_attacker_text_literally(seeded: Seeded) -> None:
    # WHEN the incident is shown as tables
    result = run_cli("incidents", "show", seeded.scanner.id, env={**seeded.env, "COLUMNS": "200"})

    # THEN the sections are there and the URI's markup is printed as text, not applied
    assert result.returncode == 0, result.stderr
    for section in ("Timeline", "URI templates", "Rules", "Sample events", "Analysis of"):
        assert section in result.stdout
    assert "[bold red]owned[/]" in result.stdout


def test_ack_then_resolve_records_history_and_claims_the_resolved_milestone(seeded: Seeded) -> None:
    # WHEN an operator acknowledges, then resolves, each with a note
    acked = _json(
        run_cli(
            "incidents",
            "ack",
            seeded.scanner.id,
            "--note",
            "looking",
            "--by",
            "ana",
            "--json",
            env=seeded.env,
        )
    )
    resolved = _json(
        run_cli("incidents", "resolve", seeded.scanner.id, "--note", "IP blocked", "--json", env=seeded.env)
    )

    # THEN each returns the incident in its new status
    assert acked["incident"]["status"] == "acknowledged" and acked["notification"] is None
    assert resolved["incident"]["status"] == "resolved"
    # AND the resolution was announced once on the critical topic, and noted on the incident
    notification = resolved["notification"]
    assert notification["milestone"] == "resolved" and notification["sent"] is True
    [delivered] = seeded.aws.delivered(seeded.aws.critical_tap)
    assert delivered["MessageId"] == notification["message_id"]
    stored = seeded.repo.get(seeded.scanner.id)
    assert stored is not None and "resolved" in stored.claimed
    assert [(n.milestone, n.message_id) for n in stored.notices] == [("resolved", notification["message_id"])]
    first, second = stored.status_history
    assert (first.status, first.by, first.note) == ("acknowledged", "ana", "looking")
    assert (second.status, second.note) == ("resolved", "IP blocked")
    # AND show's timeline lists both changes with their notes
    view = _json(run_cli("incidents", "show", seeded.scanner.id, "--json", env=seeded.env))
    whats = [(e["what"], e["detail"]) for e in view["timeline"]]
    assert ("notified: resolved", notification["message_id"]) in whats
    assert ("acknowledged", "by ana: looking") in whats and (
        "resolved",
        "by " + stored.status_history[1].by + ": IP blocked",
    ) in whats


def test_a_conflicting_status_change_is_one_line_and_exit_1(seeded: Seeded) -> None:
    # GIVEN a resolved incident
    assert run_cli("incidents", "resolve", seeded.scanner.id, env=seeded.env).returncode == 0

    # WHEN someone acknowledges or resolves it again
    ack = run_cli("incidents", "ack", seeded.scanner.id, "--json", env=seeded.env)
    again = run_cli("incidents", "resolve", seeded.scanner.id, env=seeded.env)

    # THEN each is refused (a well-formed request, exit 1) with one line naming the
    # status it is in, nothing on stdout
    for result in (ack, again):
        assert result.returncode == 1
        assert result.stdout == ""
        assert "is resolved" in _one_line(result.stderr)
    # AND the resolution was announced once, not once per attempt
    assert len(seeded.aws.delivered(seeded.aws.critical_tap)) == 1


def test_a_resolution_whose_announcement_failed_is_sent_by_the_next_resolve(seeded: Seeded) -> None:
    # GIVEN an incident resolved while its notification could not be published: the
    # status is resolved, the milestone's claim was given back (no critical topic here)
    env = {**seeded.env, "SECOPS_CRITICAL_TOPIC_ARN": seeded.aws.resources.critical_topic_arn + "-gone"}
    failed = run_cli("incidents", "resolve", seeded.scanner.id, "--note", "blocked", env=env)
    assert failed.returncode == 1 and failed.stdout == ""
    # (the notifier logs the refused publish on stderr too; the command's own line is last)
    assert "Traceback" not in failed.stderr
    assert "is resolved, but its notification failed" in failed.stderr.strip().splitlines()[-1]
    stored = seeded.repo.get(seeded.scanner.id)
    assert stored is not None and stored.status == "resolved" and "resolved" not in stored.claimed

    # WHEN the operator runs resolve again, with the topic back
    again = _json(run_cli("incidents", "resolve", seeded.scanner.id, "--json", env=seeded.env))

    # THEN the announcement goes out now, once, and the status history holds one resolution
    assert again["notification"]["sent"] is True
    assert len(seeded.aws.delivered(seeded.aws.critical_tap)) == 1
    stored = seeded.repo.get(seeded.scanner.id)
    assert stored is not None and [s.status for s in stored.status_history] == ["resolved"]


@pytest.mark.parametrize(
    ("command", "incident", "code"),
    [
        ("show", "inc#00000000000000000000#1", 1),
        ("resolve", "inc#00000000000000000000#1", 1),
        ("ack", "not-an-id", 2),
        ("show", "inc#0000", 2),
    ],
)
def test_an_unknown_id_is_exit_1_and_a_malformed_one_exit_2(
    seeded: Seeded, command: str, incident: str, code: int
) -> None:
    # WHEN an operator names an incident that does not exist (found nothing: exit 1), or
    # something that is no incident id at all (a usage error: exit 2)
    result = run_cli("incidents", command, incident, "--json", env=seeded.env)

    # THEN one line on stderr naming it, nothing on stdout
    assert result.returncode == code
    assert result.stdout == ""
    assert incident in _one_line(result.stderr)


def test_show_names_what_the_source_also_sent_that_was_counted(seeded: Seeded) -> None:
    # GIVEN a log file's read that counted the scanner's IP reputation blocks (not events)
    # in the incident's span, saved with its checkpoint as the worker does
    from secops_core.ingest.normalize import normalize_event
    from secops_core.waf.relevance import relevance
    from worker.store.aggregates import WindowCounter

    store = seeded.aws.store
    claimed = store.claim_object("logs", "AWSLogs/x.log.gz", "e1", owner="w", lease_s=30)
    counter = WindowCounter(f"{claimed.pk}@0")
    for n in range(7):
        record = waf_record(
            group="AWSManagedRulesAmazonIpReputationList",
            rule_id="AWSManagedIPReputationList",
            client_ip=SCANNER,
            uri="/login",
            request_id=f"1-rep-{n}",
            minutes_ago=8,
            label="awswaf:managed:aws:amazon-ip-list:AWSManagedIPReputationList",
        )
        event = normalize_event(record)
        counter.add(event, relevance(event))
    store.save_object_counted(
        claimed.advanced(7, claimed.counts()), counter.take_dirty(), owner="w", lease_s=30
    )

    # WHEN the incident is shown
    view = _json(run_cli("incidents", "show", seeded.scanner.id, "--json", env=seeded.env))
    table = run_cli("incidents", "show", seeded.scanner.id, env={**seeded.env, "COLUMNS": "200"})

    # THEN the counted requests from its source are named beside the events
    [counted] = view["counted_from_source"]
    assert (counted["requests"], counted["uri_template"], counted["action"]) == (7, "/login", "BLOCK")
    assert counted["attack_class"] == "ip_reputation"
    assert "Also counted from this source" in table.stdout
