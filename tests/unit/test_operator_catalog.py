"""The operator's own rules catalog: grades, validation at start-up, one load per path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from secops_core.contract import Analysis, WafEvent
from secops_core.rules_analysis import rules_analysis
from secops_core.settings import CommonSettings
from secops_core.waf.floor import severity_floor
from secops_core.waf.operator import (
    RULES_CATALOG_ENV,
    RulesCatalogError,
    active_operator_catalog,
    load_operator_catalog,
    parse_operator_catalog,
)

CATALOG = """\
# the edge web ACL's own rules
rules:
  - rule: rule-17
    class: sqli
  - pattern: "^legacy-.*-exec$"
    class: rce
  - label: "awswaf:111122223333:rulegroup:edge:probe*"
    class: admin_access
"""


def _event(action: str, rule_name: str, labels: tuple[str, ...] = ()) -> WafEvent:
    return WafEvent(
        event_key="evt#t",
        source_format="simplified",
        timestamp=datetime.now(UTC),
        source_ip="203.0.113.7",
        uri="/",
        action=action,
        rule_name=rule_name,
        labels=labels,
    )


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(CATALOG, encoding="utf-8")
    return path


def test_a_catalog_entry_changes_the_grade(catalog_file: Path) -> None:
    # GIVEN rule-17, unknown to the built-in catalog (3 when counted)
    event = _event("COUNT", "rule-17")
    assert severity_floor(event, load_operator_catalog("")).attack_class == "unknown"
    # WHEN the operator declares it an SQL injection rule
    floor = severity_floor(event, load_operator_catalog(str(catalog_file)))
    # THEN it grades as SQL injection reached (4), and the reason names the entry
    assert (floor.severity, floor.attack_class) == (4, "sqli")
    assert floor.floor_reason is not None
    assert floor.floor_reason.source == "operator"
    assert floor.floor_reason.entry == "rules.yaml line 3"
    assert "operator catalog rules.yaml line 3" in floor.reason


def test_patterns_and_label_prefixes_match(catalog_file: Path) -> None:
    operator = load_operator_catalog(str(catalog_file))
    # GIVEN a rule matching the pattern, and a label under the declared prefix
    by_pattern = severity_floor(_event("COUNT", "legacy-cgi-exec"), operator)
    by_label = severity_floor(
        _event("BLOCK", "Default_Action", ("awswaf:111122223333:rulegroup:edge:probe:admin",)), operator
    )
    # THEN each takes the declared class
    assert (by_pattern.severity, by_pattern.attack_class) == (5, "rce")
    assert (by_label.severity, by_label.attack_class) == (3, "admin_access")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  - rule: a\n    class: sqli\n  - rule: b\n    class: nope\n",
            "line 4: entry 2: unknown class 'nope'",
        ),
        (
            "rules:\n  - rule: a\n    pattern: b\n    class: sqli\n",
            "line 2: entry 1 needs exactly one of rule, pattern, label",
        ),
        (
            "rules:\n  - pattern: '(['\n    class: sqli\n",
            "line 2: entry 1: pattern '([' is not a regular expression",
        ),
        (
            "rules:\n  - rule: a\n    class: sqli\n    colour: red\n",
            "line 2: entry 1 has unknown key(s) colour",
        ),
        ("rules: [\n", "not valid YAML or JSON"),
        ("- rule: a\n", "line 1: expected a mapping with one key, 'rules'"),
    ],
)
def test_a_malformed_catalog_is_one_clear_line(text: str, message: str) -> None:
    # GIVEN a malformed catalog WHEN parsed THEN one line names the file, line and entry
    with pytest.raises(RulesCatalogError) as raised:
        parse_operator_catalog(text, "rules.yaml")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_json_is_accepted() -> None:
    # GIVEN the catalog written as JSON WHEN parsed THEN it holds the same entry
    catalog = parse_operator_catalog('{"rules": [{"rule": "rule-17", "class": "sqli"}]}', "rules.json")
    assert [(e.kind, e.value, e.cls) for e in catalog.entries] == [("rule", "rule-17", "sqli")]


def test_settings_fail_at_start_up_on_a_bad_catalog(tmp_path: Path) -> None:
    # GIVEN SECOPS_RULES_CATALOG naming a file with an unknown class
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - rule: a\n    class: nope\n", encoding="utf-8")
    # WHEN a process builds its settings THEN start-up fails naming the line
    with pytest.raises(ValidationError) as raised:
        CommonSettings(rules_catalog=str(bad))
    assert "bad.yaml line 2: entry 1: unknown class 'nope'" in str(raised.value)


def test_settings_fail_on_a_missing_catalog(tmp_path: Path) -> None:
    # GIVEN a path that does not exist WHEN settings are built THEN they fail
    with pytest.raises(ValidationError, match="cannot read the file"):
        CommonSettings(rules_catalog=str(tmp_path / "absent.yaml"))


def test_the_active_catalog_is_loaded_once(catalog_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the variable set, as both processes see it
    monkeypatch.setenv(RULES_CATALOG_ENV, str(catalog_file))
    load_operator_catalog.cache_clear()
    # WHEN events are graded repeatedly, and the file changes on disk meanwhile
    first = severity_floor(_event("COUNT", "rule-17"))
    catalog_file.write_text("rules: []\n", encoding="utf-8")
    second = severity_floor(_event("COUNT", "rule-17"))
    # THEN the file was read once: the catalog of start-up keeps grading
    assert first.attack_class == second.attack_class == "sqli"
    assert load_operator_catalog.cache_info().misses == 1
    assert active_operator_catalog() is load_operator_catalog(str(catalog_file))
    load_operator_catalog.cache_clear()


def test_the_reason_travels_in_the_analysis_the_worker_stores(catalog_file: Path) -> None:
    # GIVEN rule-17 graded with the operator catalog
    event = _event("COUNT", "rule-17")
    floor = severity_floor(event, load_operator_catalog(str(catalog_file)))
    # WHEN the analysis is serialized as the store writes it, and read back
    stored = Analysis.model_validate_json(rules_analysis(event, floor).model_dump_json())
    # THEN the floor's reason is in the record: which entry, which class, reached
    assert stored.floor is not None
    assert stored.floor.floor_reason == floor.floor_reason
    assert stored.floor.floor_reason is not None
    assert (stored.floor.floor_reason.source, stored.floor.floor_reason.disposition) == (
        "operator",
        "reached",
    )
    load_operator_catalog.cache_clear()
