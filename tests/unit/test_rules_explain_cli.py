"""``secops rules explain``: a table or JSON on stdout, one line on stderr on failure."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from worker.cli.app import main

RECORD = {
    "timestamp": 1576280412771,
    "action": "ALLOW",
    "terminatingRuleId": "Default_Action",
    "ruleGroupList": [
        {
            "ruleGroupId": "AWS#AWSManagedRulesKnownBadInputsRuleSet",
            "nonTerminatingMatchingRules": [{"ruleId": "ReactJSRCE_BODY", "action": "COUNT"}],
        }
    ],
    "httpRequest": {"clientIp": "1.1.1.1", "uri": "", "httpMethod": "POST"},
}


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(RECORD, indent=2), encoding="utf-8")
    return path


def test_json_output_names_the_deciding_rule(record_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a pretty-printed native record with a counted ReactJSRCE_BODY
    # WHEN explained with --json
    code = main(["rules", "explain", "--json", str(record_file)])
    out = json.loads(capsys.readouterr().out)
    # THEN stdout is only JSON: remote code execution reached, decided by that rule
    assert code == 0
    assert (out["severity"], out["attack_class"], out["disposition"]) == (5, "rce", "reached")
    assert out["decided_by"]["source"] == "rule"
    assert out["decided_by"]["matched"] == "ReactJSRCE_BODY"


def test_table_output_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the record on stdin WHEN explained as a table
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(RECORD)))
    code = main(["rules", "explain", "-"])
    out = capsys.readouterr().out
    # THEN the table shows the floor and what decided it
    assert code == 0
    assert "floor     5 rce" in out
    assert "decided   rule ReactJSRCE_BODY" in out


def test_operator_catalog_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an operator catalog declaring rule-17 an SQL injection rule
    catalog = tmp_path / "rules.yaml"
    catalog.write_text("rules:\n  - rule: rule-17\n    class: sqli\n", encoding="utf-8")
    monkeypatch.setenv("SECOPS_RULES_CATALOG", str(catalog))
    event = {
        "timestamp": 1576280412771,
        "action": "BLOCK",
        "source_ip": "1.1.1.1",
        "uri": "/",
        "rule_name": "rule-17",
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(event)))
    # WHEN explained
    code = main(["rules", "explain", "--json", "-"])
    out = json.loads(capsys.readouterr().out)
    # THEN the entry that decided is named
    assert code == 0
    assert out["decided_by"]["source"] == "operator"
    assert out["decided_by"]["entry"] == "rules.yaml line 2"


def test_bad_record_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a JSON object that is no WAF event WHEN explained
    monkeypatch.setattr("sys.stdin", io.StringIO('{"hello": 1}'))
    code = main(["rules", "explain", "-"])
    captured = capsys.readouterr()
    # THEN one line on stderr, nothing on stdout, exit 1
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("secops: error: stdin: not a WAF event")


def test_not_json_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a file that is not JSON, and a path that does not exist
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    # WHEN explained THEN each is one line and exit 1
    assert main(["rules", "explain", str(bad)]) == 1
    assert main(["rules", "explain", str(tmp_path / "absent.json")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "not JSON" in err[0]
    assert "no such file" in err[1]


def test_bad_catalog_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN SECOPS_RULES_CATALOG naming a malformed file WHEN any record is explained
    catalog = tmp_path / "rules.yaml"
    catalog.write_text("rules:\n  - rule: a\n    class: nope\n", encoding="utf-8")
    monkeypatch.setenv("SECOPS_RULES_CATALOG", str(catalog))
    code = main(["rules", "explain", "-"])
    err = capsys.readouterr().err
    # THEN exit 2 with the one line naming the file's line
    assert code == 2
    assert "rules.yaml line 2: entry 1: unknown class 'nope'" in err
    assert err.count("\n") == 1


def test_missing_argument_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no record argument WHEN parsed THEN argparse's one line, exit 2
    with pytest.raises(SystemExit) as raised:
        main(["rules", "explain"])
    assert raised.value.code == 2
