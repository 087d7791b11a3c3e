"""The log filter's byte fast path agrees with the catalog (docs/architecture.md, "Relevance")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secops_core.ingest.log_filter import RelevanceFilter
from secops_core.waf.operator import EMPTY, parse_operator_catalog
from secops_core.waf.relevance import Relevance


def _compact(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def _allow(labels: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": 1_764_000_000_000,
        "formatVersion": 1,
        "terminatingRuleId": "Default_Action",
        "terminatingRuleType": "REGULAR",
        "action": "ALLOW",
        "ruleGroupList": [
            {
                "ruleGroupId": "AWS#AWSManagedRulesCommonRuleSet",
                "terminatingRule": None,
                "excludedRules": None,
            }
        ],
        "rateBasedRuleList": [],
        "nonTerminatingMatchingRules": [],
        "httpRequest": {"clientIp": "198.51.100.7", "uri": "/", "httpMethod": "GET", "headers": []},
    }
    if labels is not None:
        record["labels"] = [{"name": name} for name in labels]
    record.update(fields)
    return record


@pytest.mark.parametrize(
    "labels",
    [
        None,
        [],
        ["awswaf:clientip:geo:country:US", "awswaf:clientip:geo:region:US-VA"],
        [
            "awswaf:managed:aws:bot-control:bot:category:search_engine",
            "awswaf:managed:aws:bot-control:bot:name:bingbot",
            "awswaf:managed:aws:bot-control:bot:verified",
        ],
        ["awswaf:managed:token:accepted", "awswaf:forwardedip:geo:country:DE"],
    ],
)
def test_informational_records_are_skipped_on_their_bytes(labels: list[str] | None) -> None:
    # GIVEN a default-action ALLOW with only informational labels, as WAF writes it
    raw = _compact(_allow(labels))
    # THEN the byte fast path skips it, and the catalog agrees it is noise
    noise_filter = RelevanceFilter(EMPTY)
    assert noise_filter.certainly_noise(raw)
    graded = noise_filter.grade(json.loads(raw))
    assert graded is not None and graded.relevance is Relevance.NOISE


@pytest.mark.parametrize(
    "raw",
    [
        # a label that is a finding
        _compact(_allow(["awswaf:clientip:geo:country:US", "awswaf:managed:aws:sql-database:SQLi_Body"])),
        # a bot signal label
        _compact(_allow(["awswaf:managed:aws:bot-control:signal:non_browser_user_agent"])),
        # other spacing: not read on its bytes
        json.dumps(_allow(["awswaf:clientip:geo:country:US"])).encode(),
        # an escape inside a label name
        _compact(_allow(['awswaf:clientip:geo:country:"US'])),
        # a matched rule
        _compact(_allow(nonTerminatingMatchingRules=[{"ruleId": "geo-count", "action": "COUNT"}])),
    ],
    ids=["finding_label", "bot_signal", "spaced", "escaped", "rule"],
)
def test_anything_uncertain_is_parsed(raw: bytes) -> None:
    # GIVEN a record the bytes cannot vouch for THEN the fast path does not skip it
    assert not RelevanceFilter(EMPTY).certainly_noise(raw)


def test_request_data_cannot_forge_informational_labels() -> None:
    # GIVEN a counted SQL injection whose URI spells an informational labels array
    record = _allow(
        ruleGroupList=[
            {
                "ruleGroupId": "AWS#AWSManagedRulesSQLiRuleSet",
                "terminatingRule": None,
                "nonTerminatingMatchingRules": [{"ruleId": "SQLi_QUERYARGUMENTS", "action": "COUNT"}],
            }
        ]
    )
    record["httpRequest"]["uri"] = '/"labels":[{"name":"awswaf:clientip:geo:country:US"}]'
    # THEN it is not noise
    assert not RelevanceFilter(EMPTY).certainly_noise(_compact(record))


def test_the_operators_catalog_is_asked_first() -> None:
    # GIVEN an operator catalog that makes one geo label a finding
    operator = parse_operator_catalog(
        "rules:\n  - label: 'awswaf:clientip:geo:country:KP'\n    class: geo_match\n", "c.yml"
    )
    noise_filter = RelevanceFilter(operator)
    # THEN a record with that label is parsed, one with another country is skipped
    assert not noise_filter.certainly_noise(_compact(_allow(["awswaf:clientip:geo:country:KP"])))
    assert noise_filter.certainly_noise(_compact(_allow(["awswaf:clientip:geo:country:US"])))


def test_a_record_that_is_not_a_waf_record_is_not_graded() -> None:
    # GIVEN a parsed object without httpRequest THEN grade says so (sent on, rejected there)
    assert RelevanceFilter(EMPTY).grade({"action": "ALLOW"}) is None
