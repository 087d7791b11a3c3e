"""Relevance decided once by the catalog (docs/architecture.md, "Relevance")."""

from __future__ import annotations

from typing import Any

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.operator import EMPTY, parse_operator_catalog
from secops_core.waf.relevance import Relevance, relevance

_GEO = [{"name": "awswaf:clientip:geo:country:US"}, {"name": "awswaf:clientip:geo:region:US-VA"}]
_VERIFIED_BOT = [
    {"name": "awswaf:managed:aws:bot-control:bot:category:search_engine"},
    {"name": "awswaf:managed:aws:bot-control:bot:name:googlebot"},
    {"name": "awswaf:managed:aws:bot-control:bot:verified"},
]


def _record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": 1_764_000_000_000,
        "action": "ALLOW",
        "terminatingRuleId": "Default_Action",
        "terminatingRuleType": "REGULAR",
        "webaclId": "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/shop/abc",
        "httpRequest": {"clientIp": "198.51.100.7", "uri": "/products/42", "httpMethod": "GET"},
    }
    record.update(fields)
    return record


def _group(group: str, rule: str, action: str, *, terminating: bool = False) -> dict[str, Any]:
    if terminating:
        return {"ruleGroupId": f"AWS#{group}", "terminatingRule": {"ruleId": rule, "action": action}}
    return {
        "ruleGroupId": f"AWS#{group}",
        "terminatingRule": None,
        "nonTerminatingMatchingRules": [{"ruleId": rule, "action": action}],
    }


def _relevance(record: dict[str, Any], operator: Any = EMPTY) -> Relevance:
    return relevance(normalize_event(record), operator).relevance


@pytest.mark.parametrize(
    "labels",
    [[], _GEO, _VERIFIED_BOT, [*_GEO, *_VERIFIED_BOT], [{"name": "awswaf:managed:token:accepted"}]],
    ids=["nothing", "geo", "verified_bot", "geo+bot", "token"],
)
def test_informational_signals_alone_are_noise(labels: list[dict[str, str]]) -> None:
    # GIVEN a default-action ALLOW whose only signals are informational labels
    # WHEN the catalog decides THEN it is noise, like a record with nothing matched
    assert _relevance(_record(labels=labels)) is Relevance.NOISE


def test_an_unverified_bot_blocked_by_its_category_rule_is_counted() -> None:
    # GIVEN Bot Control's category rule blocking a bot it could not verify
    record = _record(
        action="BLOCK",
        terminatingRuleId="AWS-AWSManagedRulesBotControlRuleSet",
        terminatingRuleType="MANAGED_RULE_GROUP",
        ruleGroupList=[
            _group("AWSManagedRulesBotControlRuleSet", "CategoryHttpLibrary", "BLOCK", terminating=True)
        ],
        labels=[{"name": "awswaf:managed:aws:bot-control:bot:category:http_library"}, *_GEO],
    )
    # THEN it is relevant but cannot page: counted, not an event
    assert _relevance(record) is Relevance.COUNTED


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # SizeRestrictions_BODY overridden to COUNT: an upload that reached the app, floor 2
        (
            {"ruleGroupList": [_group("AWSManagedRulesCommonRuleSet", "SizeRestrictions_BODY", "COUNT")]},
            Relevance.COUNTED,
        ),
        # an IP reputation block: who sent it, not what it carried
        (
            {
                "action": "BLOCK",
                "terminatingRuleId": "AWS-AWSManagedRulesAmazonIpReputationList",
                "ruleGroupList": [
                    _group(
                        "AWSManagedRulesAmazonIpReputationList",
                        "AWSManagedIPReputationList",
                        "BLOCK",
                        terminating=True,
                    )
                ],
            },
            Relevance.COUNTED,
        ),
        # a rate-based rule blocking /login
        (
            {
                "action": "BLOCK",
                "terminatingRuleId": "login-rate-limit",
                "terminatingRuleType": "RATE_BASED",
            },
            Relevance.COUNTED,
        ),
        # a blocked SQL injection: floor 3, monitored
        (
            {
                "action": "BLOCK",
                "terminatingRuleId": "AWS-AWSManagedRulesSQLiRuleSet",
                "ruleGroupList": [
                    _group("AWSManagedRulesSQLiRuleSet", "SQLi_BODY", "BLOCK", terminating=True)
                ],
            },
            Relevance.EVENT,
        ),
        # a counted SQL injection that reached the application: floor 4, pages
        (
            {"ruleGroupList": [_group("AWSManagedRulesSQLiRuleSet", "SQLi_QUERYARGUMENTS", "COUNT")]},
            Relevance.EVENT,
        ),
        # a custom rule nobody recognizes, blocked: the catalog cannot vouch for it
        ({"action": "BLOCK", "terminatingRuleId": "rule-17"}, Relevance.EVENT),
        # a default BLOCK web ACL: nothing matched, blocked
        ({"action": "BLOCK"}, Relevance.COUNTED),
    ],
    ids=[
        "size_count",
        "ip_reputation",
        "rate",
        "sqli_blocked",
        "sqli_reached",
        "unknown_rule",
        "default_block",
    ],
)
def test_what_can_page_stays_an_event(fields: dict[str, Any], expected: Relevance) -> None:
    # GIVEN a record of one of a real web ACL's shapes WHEN the catalog decides
    # THEN only what can be monitored or escalated (or is uncertain) is an event
    assert _relevance(_record(labels=_GEO, **fields)) is expected


def test_an_operator_label_of_class_none_is_informational_and_others_are_not() -> None:
    # GIVEN an operator catalog naming one custom label informational and one a finding
    operator = parse_operator_catalog(
        "rules:\n"
        "  - label: 'awswaf:111122223333:webacl:shop:internal'\n"
        "    class: none\n"
        "  - label: 'awswaf:clientip:geo:country:KP'\n"
        "    class: geo_match\n",
        "catalog.yml",
    )
    internal = _record(labels=[{"name": "awswaf:111122223333:webacl:shop:internal"}])
    sanctioned = _record(labels=[{"name": "awswaf:clientip:geo:country:KP"}])
    # THEN the first is noise, and the operator's geo label makes the second relevant
    assert _relevance(internal, operator) is Relevance.NOISE
    assert _relevance(sanctioned, operator) is Relevance.COUNTED
