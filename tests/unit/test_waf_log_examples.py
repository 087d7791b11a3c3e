"""One record per example of the AWS WAF logging documentation, accepted and graded.

Written from the AWS WAF Developer Guide pages "Log examples for web ACL traffic" and
"Log fields for web ACL traffic" (field names and shapes; identifiers shortened). Each
must normalize (never dead-letter) and get a floor from its rules, not the default.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import severity_floor
from secops_core.waf.operator import EMPTY

_ACL = "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/example/1EXAMPLE"
_HEADERS = [
    {"name": "Host", "value": "localhost:1989"},
    {"name": "User-Agent", "value": "curl/7.61.1"},
    {"name": "Accept", "value": "*/*"},
]


def _record(**fields: Any) -> dict[str, Any]:
    request = {
        "clientIp": "1.1.1.1",
        "country": "AU",
        "headers": _HEADERS,
        "uri": "/foo",
        "args": "",
        "httpVersion": "HTTP/1.1",
        "httpMethod": "GET",
        "requestId": "rid",
    }
    request.update(fields.pop("httpRequest", {}))
    base: dict[str, Any] = {
        "timestamp": 1576280412771,
        "formatVersion": 1,
        "webaclId": _ACL,
        "terminatingRuleId": "Default_Action",
        "terminatingRuleType": "REGULAR",
        "action": "ALLOW",
        "terminatingRuleMatchDetails": [],
        "httpSourceName": "-",
        "httpSourceId": "-",
        "ruleGroupList": [],
        "rateBasedRuleList": [],
        "nonTerminatingMatchingRules": [],
        "httpRequest": request,
        "labels": [{"name": "value"}],
    }
    base.update(fields)
    return base


_RATE_RULE_ARN = "arn:aws:wafv2:us-east-1:111122223333:regional/ratebasedrule/RateBasedRule/1"
_SQLI_DETAILS = [{"conditionType": "SQL_INJECTION", "location": "HEADER", "matchedData": ["10", "AND", "1"]}]

# (id, record, expected severity, expected class)
EXAMPLES: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "sqli-terminating",
        _record(
            terminatingRuleId="STMTest_SQLi_XSS",
            action="BLOCK",
            terminatingRuleMatchDetails=_SQLI_DETAILS,
        ),
        3,
        "sqli",
    ),
    (
        "sqli-non-terminating",
        _record(
            nonTerminatingMatchingRules=[
                {"ruleId": "TestRule", "action": "COUNT", "ruleMatchDetails": _SQLI_DETAILS}
            ],
            httpRequest={"clientIp": "3.3.3.3", "country": "US"},
        ),
        4,
        "sqli",
    ),
    (
        "rule-group-xss-terminating-sqli-counted",
        _record(
            terminatingRuleId="RG-Reference",
            terminatingRuleType="GROUP",
            action="BLOCK",
            terminatingRuleMatchDetails=[
                {"conditionType": "XSS", "location": "HEADER", "matchedData": ["<", "frameset"]}
            ],
            ruleGroupList=[
                {
                    "ruleGroupId": "arn:aws:wafv2:us-east-1:111122223333:global/rulegroup/hello/c05lb698",
                    "terminatingRule": {"ruleId": "RuleA-XSS", "action": "BLOCK", "ruleMatchDetails": None},
                    "nonTerminatingMatchingRules": [
                        {"ruleId": "RuleB-SQLi", "action": "COUNT", "ruleMatchDetails": _SQLI_DETAILS}
                    ],
                    "excludedRules": None,
                }
            ],
        ),
        # The whole request was blocked: the counted SQLi never reached the app either.
        3,
        "xss",
    ),
    (
        "json-body-sqli-empty-uri",
        _record(
            terminatingRuleId="STMTest_SQLi_XSS",
            action="BLOCK",
            terminatingRuleMatchDetails=[
                {"conditionType": "SQL_INJECTION", "location": "UNKNOWN", "matchedData": ["10", "AND", "1"]}
            ],
            httpSourceName="ALB",
            httpSourceId="alb",
            requestHeadersInserted=None,
            responseCodeSent=None,
            httpRequest={"headers": [], "uri": "", "httpMethod": "POST", "requestId": "null"},
        ),
        3,
        "sqli",
    ),
    (
        "captcha-valid-token",
        _record(
            timestamp=1632420429309,
            httpSourceName="APIGW",
            httpSourceId="111122223333:b34myvfw0b:pen-test",
            nonTerminatingMatchingRules=[
                {
                    "ruleId": "captcha-rule",
                    "action": "CAPTCHA",
                    "ruleMatchDetails": [],
                    "captchaResponse": {"responseCode": 0, "solveTimestamp": 1632420429},
                }
            ],
            requestHeadersInserted=[{"name": "x-amzn-waf-test-header-name", "value": "test-header-value"}],
            httpRequest={"clientIp": "72.21.198.65", "country": "US", "uri": "/pen-test/pets"},
        ),
        1,
        "challenge",
    ),
    (
        "captcha-token-missing",
        _record(
            timestamp=1632420416512,
            terminatingRuleId="captcha-rule",
            action="CAPTCHA",
            httpSourceName="APIGW",
            responseCodeSent=405,
            captchaResponse={"responseCode": 405, "solveTimestamp": 0, "failureReason": "TOKEN_MISSING"},
            httpRequest={"clientIp": "72.21.198.65", "country": "US", "uri": "/pen-test/pets"},
        ),
        1,
        "challenge",
    ),
    (
        "challenge-token-missing",
        _record(
            terminatingRuleId="challenge-rule",
            action="CHALLENGE",
            challengeResponse={"responseCode": 202, "solveTimestamp": 0, "failureReason": "TOKEN_MISSING"},
        ),
        1,
        "challenge",
    ),
    (
        "rate-based-custom-key",
        _record(
            timestamp=1683355579981,
            terminatingRuleId="RateBasedRule",
            terminatingRuleType="RATE_BASED",
            action="BLOCK",
            httpSourceName="APIGW",
            httpSourceId="EXAMPLE11:rjvegx5guh:CanaryTest",
            rateBasedRuleList=[
                {
                    "rateBasedRuleId": _RATE_RULE_ARN,
                    "rateBasedRuleName": "RateBasedRule",
                    "limitKey": "CUSTOMKEYS",
                    "maxRateAllowed": 100,
                    "evaluationWindowSec": "120",
                    "customValues": [{"key": "HEADER", "name": "dogname", "value": "ella"}],
                }
            ],
            requestHeadersInserted=None,
            responseCodeSent=None,
            httpRequest={"clientIp": "52.46.82.45", "country": "FR", "uri": "/CanaryTest"},
        ),
        2,
        "rate_limit",
    ),
    (
        "rate-based-ip-key-counted",
        _record(
            rateBasedRuleList=[
                {
                    "rateBasedRuleId": _RATE_RULE_ARN,
                    "rateBasedRuleName": "RateBasedRule",
                    "limitKey": "IP",
                    "maxRateAllowed": 100,
                    "evaluationWindowSec": "60",
                }
            ],
            nonTerminatingMatchingRules=[
                {"ruleId": "RateBasedRule", "action": "COUNT", "ruleMatchDetails": []}
            ],
        ),
        2,
        "rate_limit",
    ),
    (
        "managed-group-excluded-rule",
        _record(
            ruleGroupList=[
                {
                    "ruleGroupId": "AWS#AWSManagedRulesCommonRuleSet#Version_1.12",
                    "terminatingRule": None,
                    "nonTerminatingMatchingRules": [],
                    "excludedRules": [
                        {"exclusionType": "EXCLUDED_AS_COUNT", "ruleId": "SizeRestrictions_BODY"}
                    ],
                }
            ],
            labels=[{"name": "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"}],
        ),
        2,
        "size_restriction",
    ),
]


def _optional_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The same record with every optional field of the log-fields page filled in."""
    full = copy.deepcopy(record)
    full["httpRequest"].update(
        {"fragment": "#section", "scheme": "https", "host": "example.com", "requestBodySize": 4096}
    )
    full.update(
        {
            "ja3Fingerprint": "e7a4a66a4f8b5ae5d8b0a4e1b1ea3a3f",
            "ja4Fingerprint": "t13d1516h2_8daaf6152771_e5627efa2ab1",
            "oversizeFields": ["REQUEST_BODY", "REQUEST_HEADERS"],
            "requestBodySize": 4096,
            "requestBodySizeInspectedByWAF": 8192,
            "responseCodeSent": 403,
        }
    )
    return full


_IDS = [example[0] for example in EXAMPLES]


@pytest.mark.parametrize(("record", "severity", "cls"), [e[1:] for e in EXAMPLES], ids=_IDS)
def test_documented_example_is_accepted_and_graded(record: dict[str, Any], severity: int, cls: str) -> None:
    # GIVEN a record shaped like the AWS documentation's example
    # WHEN it is normalized and graded
    event = normalize_event(record)
    floor = severity_floor(event, EMPTY)
    # THEN it is a native log event graded by its rules, not by the default
    assert event.source_format == "waf_log"
    assert (floor.severity, floor.attack_class) == (severity, cls)


@pytest.mark.parametrize(("record", "severity", "cls"), [e[1:] for e in EXAMPLES], ids=_IDS)
def test_optional_fields_change_nothing(record: dict[str, Any], severity: int, cls: str) -> None:
    # GIVEN the example with ja3/ja4, oversizeFields, requestBodySize, fragment ...
    # WHEN graded THEN the extra documented fields are accepted and change no grade
    floor = severity_floor(normalize_event(_optional_fields(record)), EMPTY)
    assert (floor.severity, floor.attack_class) == (severity, cls)


def test_empty_uri_is_kept_empty() -> None:
    # GIVEN the documented JSON-body record whose uri is "" WHEN normalized
    event = normalize_event(dict(EXAMPLES[3][1]))
    # THEN the path is kept as "" (not an invented "/") and the method stays POST
    assert (event.uri, event.http_method) == ("", "POST")


def test_missing_uri_is_accepted_as_empty() -> None:
    # GIVEN a record whose httpRequest has no uri at all
    record = _record()
    del record["httpRequest"]["uri"]
    # WHEN normalized THEN it is accepted with an empty path
    assert normalize_event(record).uri == ""


@pytest.mark.parametrize(
    "source", ["ALB", "APIGW", "CF", "APPSYNC", "COGNITOIDP", "APPRUNNER", "VERIFIED_ACCESS", "AMPLIFY", "-"]
)
def test_every_http_source_name_is_accepted(source: str) -> None:
    # GIVEN a blocked SQL injection record from each documented resource type
    record = _record(
        httpSourceName=source,
        action="BLOCK",
        terminatingRuleId="r",
        terminatingRuleMatchDetails=_SQLI_DETAILS,
    )
    # WHEN graded THEN the source does not matter to the floor
    assert severity_floor(normalize_event(record), EMPTY).severity == 3


def test_minimal_record_without_optional_blocks() -> None:
    # GIVEN only what every record has: timestamp, action and the client IP
    record = {"timestamp": 1576280412771, "action": "BLOCK", "httpRequest": {"clientIp": "1.1.1.1"}}
    # WHEN normalized and graded
    event = normalize_event(record)
    floor = severity_floor(event, EMPTY)
    # THEN it is a default-action block with an empty path, no headers and no labels
    assert (event.uri, event.headers, event.labels, event.rule_name) == ("", (), (), "Default_Action")
    assert (floor.severity, floor.attack_class) == (1, "default_block")
