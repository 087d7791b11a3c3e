"""``secops setup --ip-set``, ``secops block list|add|remove|sync`` and ``secops incidents
resolve --false-positive`` as subprocesses against moto's server (DynamoDB, WAFv2, SNS),
``--json`` piped into ``json.loads``; what a person reads arrives on the SNS topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.incident_records import contribution
from tests.fixtures.waf import stored_addresses
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env, run_cli
from worker.incidents.dynamodb import DynamoIncidentRepo
from worker.platform import aws
from worker.response.records import IpSetRef

# Each test runs a dozen `secops` subprocesses (a few seconds each on a loaded machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@dataclass
class Deployed:
    env: dict[str, str]
    aws: Env
    v4: IpSetRef
    wafv2: Any


def _json(result: Any, code: int = 0) -> Any:
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def deployed(aws_endpoint: str, unique: str, tmp_path: Path) -> Deployed:
    # GIVEN the worker's resources, then `secops setup --ip-set` run twice (the second adopts)
    settings = fast_settings(unique, tmp_path)
    harness = make_env(settings)
    env = cli_env(aws_endpoint, settings, response_blockable_ranges="documentation")
    first = _json(run_cli("setup", "--ip-set", f"blocked-{unique}", env=env))["ip_sets"]
    second = _json(run_cli("setup", "--ip-set", f"blocked-{unique}", env=env))["ip_sets"]
    assert first["created"] == [f"blocked-{unique}-v4", f"blocked-{unique}-v6"]
    assert second["created"] == [] and second["settings"] == first["settings"]
    rule = first["web_acl_rule"]
    assert rule["Action"] == {"Block": {}}
    assert [s["IPSetReferenceStatement"]["ARN"] for s in rule["Statement"]["OrStatement"]["Statements"]] == [
        first["arns"]["IPV4"],
        first["arns"]["IPV6"],
    ]
    env.update(first["settings"])
    return Deployed(
        env=env,
        aws=harness,
        v4=IpSetRef.from_arn(first["arns"]["IPV4"], version="IPV4"),
        wafv2=aws.client("wafv2"),
    )


def test_a_person_blocks_lists_reconciles_and_unblocks(deployed: Deployed) -> None:
    env = deployed.env
    # WHEN a person blocks an address for 4 hours
    added = _json(
        run_cli(
            "block",
            "add",
            "203.0.113.9",
            "--for",
            "4h",
            "--reason",
            "credential stuffing",
            "--by",
            "ana",
            "--json",
            env=env,
        )
    )
    # THEN it is in the IP set, recorded as the person's decision, and announced with its undo
    assert (added["outcome"], added["outcome_reason"]) == ("blocked", None)
    assert added["block"]["reason"] == "credential stuffing"
    assert added["block"]["decided_by"] == "person:ana"
    assert stored_addresses(deployed.wafv2, deployed.v4) == ["203.0.113.9/32"]
    texts = [m["Message"] for m in deployed.aws.delivered(deployed.aws.critical_tap)]
    assert any(
        f"blocked 203.0.113.9 in ipset {deployed.v4.name} until" in t
        and "secops block remove 203.0.113.9/32" in t
        for t in texts
    ), texts
    # AND a second add is the same block
    assert (
        _json(run_cli("block", "add", "203.0.113.9", "--for", "1h", "--reason", "x", "--json", env=env))[
            "outcome"
        ]
        == "already"
    )
    listed = _json(run_cli("block", "list", "--json", env=env))
    assert [b["network"] for b in listed["blocks"]] == ["203.0.113.9/32"]

    # WHEN someone takes the address out of the set by hand, sync reports it, then repairs it
    token = deployed.wafv2.get_ip_set(Name=deployed.v4.name, Scope="REGIONAL", Id=deployed.v4.id)["LockToken"]
    deployed.wafv2.update_ip_set(
        Name=deployed.v4.name,
        Scope="REGIONAL",
        Id=deployed.v4.id,
        Addresses=["198.51.100.5/32"],
        LockToken=token,
    )
    check = _json(run_cli("block", "sync", "--check", "--json", env=env), code=1)
    repaired = _json(run_cli("block", "sync", "--json", env=env))
    # THEN the drift is named; the person's own address is reported and left alone
    assert check["missing"] == [f"203.0.113.9/32 ({deployed.v4.name})"]
    assert check["foreign"] == [f"198.51.100.5/32 ({deployed.v4.name})"]
    assert (check["drift"], check["repaired"]) == (True, False)
    assert (repaired["drift"], repaired["repaired"]) == (True, True)
    assert sorted(stored_addresses(deployed.wafv2, deployed.v4)) == ["198.51.100.5/32", "203.0.113.9/32"]

    # WHEN the person removes the block
    removed = _json(
        run_cli("block", "remove", "203.0.113.9", "--reason", "customer's NAT", "--json", env=env)
    )
    # THEN it is out of the set, with its audit trail
    assert [r["network"] for r in removed["removed"]] == ["203.0.113.9/32"]
    assert [e["action"] for e in removed["removed"][0]["history"]] == ["blocked", "unblocked"]
    assert stored_addresses(deployed.wafv2, deployed.v4) == ["198.51.100.5/32"]


def test_refusals_are_one_line_and_json_stays_json(deployed: Deployed) -> None:
    # WHEN a person tries to block a private address, as text and as JSON
    text = run_cli("block", "add", "10.0.0.7", "--for", "1h", "--reason", "x", env=deployed.env)
    as_json = run_cli("block", "add", "10.0.0.7", "--for", "1h", "--reason", "x", "--json", env=deployed.env)
    bad = run_cli("block", "add", "203.0.113.9", "--for", "soon", "--reason", "x", env=deployed.env)
    # THEN it is refused: one line on stderr, or pure JSON naming the guard; nothing written
    assert text.returncode == 1 and "allowlist" in text.stderr and len(text.stderr.strip().splitlines()) == 1
    assert _json(as_json, code=1)["outcome_reason"] == "allowlisted"
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    # AND something that is no address is a usage error, not a refusal, with --json too:
    # one line on stderr, exit 2, no JSON
    for argv in (("notanip",), ("notanip", "--json"), ("198.51.100.7/24", "--json")):
        malformed = run_cli("block", "add", *argv, "--for", "1h", "--reason", "x", env=deployed.env)
        assert (malformed.returncode, malformed.stdout) == (2, ""), argv
        assert malformed.stderr.startswith("secops block add: error: argument address: "), argv
        assert len(malformed.stderr.strip().splitlines()) == 1, argv
    assert stored_addresses(deployed.wafv2, deployed.v4) == []


def test_resolving_an_incident_as_false_positive_unblocks_its_sources(deployed: Deployed) -> None:
    # GIVEN an incident whose source was blocked for it
    settings = deployed.aws.settings
    repo = DynamoIncidentRepo(settings.table_name, client=deployed.aws.clients.dynamodb, quiet_s=3600)
    attack = contribution(1, ip="203.0.113.66")
    incident = repo.join(attack.group("source"), [attack]).record
    _json(
        run_cli(
            "block",
            "add",
            "203.0.113.66",
            "--for",
            "4h",
            "--reason",
            "sqli",
            "--incident",
            incident.id,
            "--json",
            env=deployed.env,
        )
    )
    shown = _json(run_cli("incidents", "show", incident.id, "--json", env=deployed.env))
    assert [b["network"] for b in shown["blocks"]] == ["203.0.113.66/32"]
    # WHEN it is resolved as a false positive
    resolved = _json(
        run_cli(
            "incidents",
            "resolve",
            incident.id,
            "--false-positive",
            "--note",
            "pen test",
            "--json",
            env=deployed.env,
        )
    )
    # THEN the block is gone at once, and the output says so
    assert resolved["false_positive"]["blocks"]["removed"] == ["203.0.113.66/32"]
    assert stored_addresses(deployed.wafv2, deployed.v4) == []
