"""The tuning report on a generated week of WAF logs: the planted false positive ranks
first, the COUNT rule that only matched attackers is safe to block, and every proposed
change validates against the WAFv2 API model botocore ships (docs/architecture.md,
"Tuning report")."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from secops_core.ingest.normalize import normalize_event
from tests.fixtures.waf_week import ACL_ARN, PLANTED, SAFE_TO_BLOCK, log_objects, waf_week
from worker.cli.tune import tune
from worker.store.aggregates import WindowCount, WindowKey, WindowShard
from worker.store.memory_aggregates import MemoryWindowCounts
from worker.suppressions import Scope, Suppression
from worker.tuning.aggregates import WindowRuleCounts
from worker.tuning.inputs import ReadTally, logged_events
from worker.tuning.plot import plot_matches
from worker.tuning.proposals import propose
from worker.tuning.report import RuleFinding, RuleId, RuleStats, browser_like
from worker.tuning.waf_shapes import update_web_acl_input, validated

END = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
SINCE = END - timedelta(days=7)


@pytest.fixture(scope="module")
def week() -> list[dict[str, Any]]:
    return waf_week(END)


@pytest.fixture(scope="module")
def view(week: list[dict[str, Any]]) -> dict[str, Any]:
    suppression = Suppression.new(
        Scope.build(rule="SQLi_BODY", uri_template="/api/search"),
        reason="our search filters",
        created_by="alice",
        now=SINCE,
        expires_in=timedelta(days=30),
    )
    # GIVEN a week of logs, every record as the ingestion normalizes it
    events = (normalize_event(record) for record in week)
    # WHEN the report is built over the week
    _, shown = tune(events, since=SINCE, until=END, source="generated week", suppressions=[suppression])
    return shown


def test_the_planted_false_positive_ranks_first(view: dict[str, Any]) -> None:
    # THEN the COUNT rule firing on one path from many clean sources is first
    first = view["rules"][0]
    assert first["rule"] == PLANTED
    assert first["verdict"] == "likely_false_positive"
    assert first["by_action"] == {"COUNT": first["matches"]}
    assert first["clean_source_share"] == 1.0 and first["distinct_sources"] == 60
    assert first["top_uri_templates"][0][0] == "/api/search"
    assert (
        first["top_hosts"] == [["shop.example.com", first["matches"]]]
        or first["top_hosts"][0][0] == "shop.example.com"
    )
    # ... with the suppression that covers it, and the command to make one
    assert [s["scope"] for s in first["suppressions"]] == [
        {"rule": "SQLi_BODY", "uri_template": "/api/search"}
    ]
    assert (
        "secops suppress add --rule AWSManagedRulesSQLiRuleSet:SQLi_BODY --uri '/api/search'"
        in first["suppress_command"]
    )
    # ... and no attacker's rule is called a false positive
    verdicts = {row["rule"]: row["verdict"] for row in view["rules"]}
    assert verdicts["AWSManagedRulesSQLiRuleSet:SQLi_QUERYARGUMENTS"] == "no_change"
    assert verdicts[SAFE_TO_BLOCK] == "safe_to_block"


def test_the_proposals_are_the_documented_patterns(view: dict[str, Any]) -> None:
    proposals = {p["kind"]: p for p in view["rules"][0]["proposals"]}
    # THEN the one-path false positive gets the label-match exception and the scope-down
    # (no override to COUNT: it is counted already)
    assert set(proposals) == {"label_match_exception", "scope_down"}
    group, exception = proposals["label_match_exception"]["rules"]
    statement = group["Statement"]["ManagedRuleGroupStatement"]
    assert statement["RuleActionOverrides"] == [{"Name": "SQLi_BODY", "ActionToUse": {"Count": {}}}]
    checks = exception["Statement"]["AndStatement"]["Statements"]
    assert checks[0] == {
        "LabelMatchStatement": {"Scope": "LABEL", "Key": "awswaf:managed:aws:sql-database:SQLi_Body"}
    }
    assert checks[1]["NotStatement"]["Statement"]["ByteMatchStatement"]["SearchString"] == "/api/search"
    assert exception["Action"] == {"Block": {}}
    safe = next(r for r in view["rules"] if r["rule"] == SAFE_TO_BLOCK)["proposals"]
    assert [p["fragment"] for p in safe] == [
        {"shape": "RuleActionOverride", "json": {"Name": "Log4JRCE_HEADER", "ActionToUse": {"Block": {}}}}
    ]


def test_every_proposal_validates_against_the_wafv2_model(view: dict[str, Any]) -> None:
    model = get_session().get_service_model("wafv2")
    validator = ParamValidator()
    proposals = [p for row in view["rules"] for p in row["proposals"]]
    assert proposals
    for proposal in proposals:
        # THEN the report found nothing wrong with it ...
        assert proposal["validated"], proposal.get("problems")
        # ... and botocore's own validator agrees, as UpdateWebACL input or as the fragment's shape
        if "rules" in proposal:
            shape = model.operation_model("UpdateWebACL").input_shape
            report = validator.validate(update_web_acl_input(proposal["rules"]), shape)
        else:
            fragment = proposal["fragment"]
            report = validator.validate(fragment["json"], model.shape_for(fragment["shape"]))
        assert not report.has_errors(), report.generate_report()


def test_the_log_files_give_the_same_ranking_through_the_ingestion_reader(week: list[dict[str, Any]]) -> None:
    # GIVEN the week as gzipped log objects, with the customers' unmatched browsing in them
    objects = dict(log_objects(week))
    tally = ReadTally()
    # WHEN the report reads them with the ingestion's reader and filter
    events = logged_events(objects, lambda key: io.BytesIO(objects[key]), keep="matched", tally=tally)
    _, shown = tune(events, since=SINCE, until=END, source="s3")
    # THEN the unmatched records were filtered out and the planted rule is still first
    assert tally.records < len(week) and tally.unreadable == 0
    assert shown["rules"][0]["rule"] == PLANTED


def test_the_chart_is_written(week: list[dict[str, Any]], tmp_path: Path) -> None:
    report, _ = tune((normalize_event(r) for r in week), since=SINCE, until=END, source="generated week")
    path = tmp_path / "tune.png"
    assert plot_matches(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("agent", "headers", "expected"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            {"Accept-Language": "en"},
            True,
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", {}, False),
        ("Mozilla/5.0", {"Accept-Language": "en"}, False),
        ("Mozilla/5.0 (compatible; Googlebot/2.1) AppleWebKit/537.36", {"Accept-Language": "en"}, False),
        ("sqlmap/1.8", {"Accept-Language": "en"}, False),
    ],
)
def test_a_browser_like_profile(agent: str, headers: dict[str, str], expected: bool) -> None:
    record = waf_week(END, customers=1)[0]
    record["httpRequest"]["headers"] = [
        {"name": "User-Agent", "value": agent},
        {"name": "Host", "value": "shop.example.com"},
        *({"name": k, "value": v} for k, v in headers.items()),
    ]
    assert browser_like(normalize_event(json.loads(json.dumps(record)))) is expected


@pytest.mark.parametrize(
    ("rule", "actions", "uris", "verdict"),
    [
        (RuleId("AWSManagedRulesCommonRuleSet", "SizeRestrictions_BODY"), {"BLOCK": 9}, {"/upload": 9}, "fp"),
        (RuleId("AWSManagedRulesCommonRuleSet", "GenericLFI_BODY"), {"BLOCK": 9}, {"/a": 3, "/b": 3}, "fp"),
        (RuleId("AWSManagedRulesSQLiRuleSet", "SQLi_BODY"), {"BLOCK": 9}, {"/orders/{n}": 9}, "fp"),
        (RuleId(None, "BlockOddUploads"), {"BLOCK": 9}, {"/files/*": 9}, "fp"),
        (RuleId(None, "BlockOddUploads"), {"BLOCK": 9}, {"/a": 3, "/b": 3}, "fp"),
        (RuleId(None, "CountScanners"), {"COUNT": 20}, {"/a": 20}, "safe"),
    ],
)
def test_each_kind_of_proposal_validates(
    rule: RuleId, actions: dict[str, int], uris: dict[str, int], verdict: str
) -> None:
    # GIVEN a rule's line of a report, managed or the web ACL's own, one path or many
    stats = RuleStats(rule, by_action=Counter(actions), uri_templates=Counter(uris))
    stats.labels[f"awswaf:managed:aws:core-rule-set:{rule.rule_id}"] = 1
    kind = "likely_false_positive" if verdict == "fp" else "safe_to_block"
    finding = RuleFinding(1, stats, 1.0, 1.0, kind, ())
    # WHEN its changes are proposed / THEN there is one at least, and each is valid WAFv2 JSON
    proposals = [validated(p) for p in propose(finding)]
    assert proposals
    assert [p.problems for p in proposals] == [()] * len(proposals)


def test_window_counts_add_matches_but_never_customers(week: list[dict[str, Any]]) -> None:
    # GIVEN an hour's aggregate of a rule that blocked noise, saved with a log object's checkpoint
    repo = MemoryWindowCounts(clock=END.timestamp)
    checkpoint = repo.claim_object("logs", "k", "v", owner="me", lease_s=60)
    hour = END - timedelta(hours=3)
    window = WindowCount(
        key=WindowKey(
            web_acl=ACL_ARN,
            rule="AWSManagedRulesAmazonIpReputationList:AWSManagedIPReputationList",
            action="BLOCK",
            uri_template="/wp-login.php",
            hour=hour.strftime("%Y-%m-%dT%H"),
        ),
        attack_class="ip_reputation",
        severity=2,
        requests=500,
        distinct_sources=400,
        segment="k@0",
    )
    shard = WindowShard(segment="k@0", hour=window.key.hour, index=0, windows=[window])
    repo.save_object_counted(checkpoint, [shard], owner="me", lease_s=60)
    # WHEN the report reads the week's events and the aggregates
    events = (normalize_event(record) for record in week)
    _, shown = tune(
        events, since=SINCE, until=END, source="week", counts=WindowRuleCounts(repo), web_acl="shop-prod"
    )
    # THEN the rule's matches include the window's requests, its sources and shares do not
    row = next(r for r in shown["rules"] if r["rule_id"] == "AWSManagedIPReputationList")
    assert row["matches"] == 530 and row["matches_from_window_counts"] == 500
    assert row["by_action"] == {"BLOCK": 530} and row["distinct_sources"] == 30
    assert shown["rules"][0]["rule"] == PLANTED
