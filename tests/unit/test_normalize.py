"""Normalization of both event shapes into one WafEvent, with the shapes AWS really logs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from secops_core.errors import ContractError, ErrorCode
from secops_core.ingest.normalize import (
    decode_payload,
    event_key_for,
    is_request,
    normalize_event,
    parse_request,
)
from secops_core.redaction import REDACTED
from secops_core.waf.floor import severity_floor


def waf(**overrides: Any) -> dict[str, Any]:
    """A native record shaped like AWS's documented examples (rate-based block)."""
    record: dict[str, Any] = {
        "timestamp": 1683355579981,
        "formatVersion": 1,
        "webaclId": "arn:aws:wafv2:eu-west-3:<ACCOUNT_ID>:regional/webacl/TestWebACL/abc",
        "terminatingRuleId": "RateBasedRule",
        "terminatingRuleType": "RATE_BASED",
        "action": "BLOCK",
        "terminatingRuleMatchDetails": [],
        "httpSourceName": "APIGW",
        "httpSourceId": "EXAMPLE11:rjvegx5guh:CanaryTest",
        "ruleGroupList": [],
        "rateBasedRuleList": [
            {
                "rateBasedRuleId": "b7cd8d80-example",
                "rateBasedRuleName": "RateBasedRule",
                "limitKey": "CUSTOMKEYS",
                "maxRateAllowed": 100,
                "evaluationWindowSec": "120",
                "customValues": [{"key": "HEADER", "name": "dogname", "value": "ella"}],
            }
        ],
        "nonTerminatingMatchingRules": [],
        "requestHeadersInserted": None,
        "responseCodeSent": None,
        "httpRequest": {
            "clientIp": "52.46.82.45",
            "country": "FR",
            "headers": [
                {"name": "X-Forwarded-For", "value": "52.46.82.45"},
                {"name": "Host", "value": "rjvegx5guh.execute-api.eu-west-3.amazonaws.com"},
                {"name": "User-Agent", "value": "RateBasedRuleTestKoipOneKeyModulePV2"},
                {"name": "Authorization", "value": "Bearer abc.def.ghi"},
                {"name": "cookie", "value": "session=s3cr3t"},
                {"name": "X-Api-Key", "value": "k-123"},
            ],
            "uri": "/CanaryTest",
            "args": "q=1&access_token=tok123",
            "httpVersion": "HTTP/1.1",
            "httpMethod": "GET",
            "requestId": "Ov0YjEm_CGYEP4Q=",
        },
        "labels": [{"name": "awswaf:<ACCOUNT_ID>:webacl:TestWebACL:rule:RateBasedRule"}],
    }
    record.update(overrides)
    return record


def test_a_rate_based_block_from_the_aws_docs() -> None:
    event = normalize_event(waf())
    assert (event.source_format, event.action, event.rule_name, event.terminating_rule_type) == (
        "waf_log",
        "BLOCK",
        "RateBasedRule",
        "RATE_BASED",
    )
    assert event.timestamp == datetime(2023, 5, 6, 6, 46, 19, 981000, tzinfo=UTC)
    assert event.host == "rjvegx5guh.execute-api.eu-west-3.amazonaws.com"
    assert event.user_agent == "RateBasedRuleTestKoipOneKeyModulePV2"
    assert event.request_id == "Ov0YjEm_CGYEP4Q="
    assert severity_floor(event).severity == 2


def test_secrets_are_redacted_in_headers_and_query() -> None:
    event = normalize_event(waf())
    values = {h.name.lower(): h.value for h in event.headers}
    assert values["authorization"] == values["cookie"] == values["x-api-key"] == REDACTED
    assert "tok123" not in (event.args or "") and "q=1" in (event.args or "")
    dumped = event.model_dump_json()
    for secret in ("abc.def.ghi", "s3cr3t", "k-123", "tok123"):
        assert secret not in dumped


def test_a_managed_group_block_names_the_inner_rule() -> None:
    record = waf(
        terminatingRuleId="AWS-AWSManagedRulesSQLiRuleSet",
        terminatingRuleType="MANAGED_RULE_GROUP",
        rateBasedRuleList=[],
        ruleGroupList=[
            {
                "ruleGroupId": "AWS#AWSManagedRulesSQLiRuleSet#Version_2.0",
                "terminatingRule": {
                    "ruleId": "SQLi_QUERYARGUMENTS",
                    "action": "BLOCK",
                    "ruleMatchDetails": [
                        {
                            "conditionType": "SQL_INJECTION",
                            "location": "QUERY_STRING",
                            "matchedData": ["1", "or"],
                        }
                    ],
                },
                "nonTerminatingMatchingRules": [],
                "excludedRules": None,
            }
        ],
        labels=[{"name": "awswaf:managed:aws:sql-database:SQLi_QueryArguments"}],
    )
    event = normalize_event(record)
    assert (event.rule_name, event.rule_group) == ("SQLi_QUERYARGUMENTS", "AWSManagedRulesSQLiRuleSet")
    assert event.matches[0].condition_types == ("SQL_INJECTION",)
    assert severity_floor(event).severity == 3


def test_a_group_overridden_to_count_is_graded_as_reaching_the_app() -> None:
    # The group's action is overridden to Count: the group still logs its rule's BLOCK,
    # the request is ALLOWed by the default action, and the group is listed as counted.
    record = waf(
        terminatingRuleId="Default_Action",
        terminatingRuleType="REGULAR",
        action="ALLOW",
        rateBasedRuleList=[],
        ruleGroupList=[
            {
                "ruleGroupId": "AWS#AWSManagedRulesSQLiRuleSet",
                "terminatingRule": {
                    "ruleId": "SQLi_QUERYARGUMENTS",
                    "action": "BLOCK",
                    "ruleMatchDetails": None,
                },
                "nonTerminatingMatchingRules": [],
                "excludedRules": None,
            }
        ],
        nonTerminatingMatchingRules=[{"ruleId": "AWS-AWSManagedRulesSQLiRuleSet", "action": "COUNT"}],
        labels=[{"name": "awswaf:managed:aws:sql-database:SQLi_QueryArguments"}],
    )
    event = normalize_event(record)
    assert event.rule_name == "SQLi_QUERYARGUMENTS"
    assert not any(m.terminating for m in event.matches)
    assert severity_floor(event).severity == 4


def test_a_rule_overridden_to_count_and_an_excluded_rule() -> None:
    record = waf(
        terminatingRuleId="Default_Action",
        terminatingRuleType="REGULAR",
        action="ALLOW",
        rateBasedRuleList=[],
        ruleGroupList=[
            {
                "ruleGroupId": "AWS#AWSManagedRulesKnownBadInputsRuleSet",
                "terminatingRule": None,
                "nonTerminatingMatchingRules": [
                    {"ruleId": "Log4JRCE_HEADER", "action": "COUNT", "overriddenAction": "BLOCK"}
                ],
                "excludedRules": [
                    {"exclusionType": "EXCLUDED_AS_COUNT", "ruleId": "JavaDeserializationRCE_BODY"}
                ],
            }
        ],
    )
    event = normalize_event(record)
    assert [(m.rule_id, m.action) for m in event.matches] == [
        ("Log4JRCE_HEADER", "COUNT"),
        ("JavaDeserializationRCE_BODY", "EXCLUDED_AS_COUNT"),
    ]
    assert event.rule_name == "Log4JRCE_HEADER"
    assert severity_floor(event).severity == 5


def test_a_captcha_that_terminated_and_a_default_allow() -> None:
    captcha = waf(
        action="CAPTCHA",
        terminatingRuleId="captcha-login",
        terminatingRuleType="REGULAR",
        rateBasedRuleList=[],
        captchaResponse={"responseCode": 405, "failureReason": "TOKEN_MISSING"},
    )
    assert severity_floor(normalize_event(captcha)).severity == 1
    allowed = waf(
        action="ALLOW",
        terminatingRuleId="Default_Action",
        terminatingRuleType="REGULAR",
        rateBasedRuleList=[],
        labels=[],
    )
    event = normalize_event(allowed)
    assert (event.rule_name, event.matches) == ("Default_Action", ())
    assert severity_floor(event).severity == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1683355579981, datetime(2023, 5, 6, 6, 46, 19, 981000, tzinfo=UTC)),
        ("1683355579981", datetime(2023, 5, 6, 6, 46, 19, 981000, tzinfo=UTC)),
        (1683355579.981, datetime(2023, 5, 6, 6, 46, 19, 981000, tzinfo=UTC)),
        ("2023-05-06T06:46:19.981Z", datetime(2023, 5, 6, 6, 46, 19, 981000, tzinfo=UTC)),
        ("2023-05-06T08:46:19.981+02:00", datetime(2023, 5, 6, 6, 46, 19, 981000, tzinfo=UTC)),
        ("2023-05-06T06:46:19", datetime(2023, 5, 6, 6, 46, 19, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_shape(raw: Any, expected: datetime) -> None:
    assert normalize_event(waf(timestamp=raw)).timestamp == expected


def test_headers_as_an_object_ipv6_and_too_many_headers() -> None:
    record = waf()
    record["httpRequest"] = {
        **record["httpRequest"],
        "clientIp": "2001:db8::1",
        "headers": {f"X-H{i}": str(i) for i in range(150)},
    }
    event = normalize_event(record)
    assert event.source_ip == "2001:db8::1"
    assert len(event.headers) == 100 and event.truncated


def test_event_keys_id_or_canonical_hash_never_request_id() -> None:
    simple = {
        "id": "evt-9",
        "timestamp": "2026-11-25T10:00:00Z",
        "action": "BLOCK",
        "source_ip": "192.0.2.1",
        "uri": "/",
    }
    assert normalize_event(simple).event_key == "evt#evt-9"
    first, second = waf(), waf()
    second["timestamp"] += 1  # same requestId, another request
    assert normalize_event(first).event_key != normalize_event(second).event_key
    reordered = json.loads(json.dumps(first, sort_keys=True))
    assert event_key_for(reordered) == normalize_event(first).event_key


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda r: r["httpRequest"].update(clientIp="not-an-ip"), ErrorCode.INVALID_EVENT),
        (lambda r: r.update(action="DROP"), ErrorCode.INVALID_EVENT),
        (lambda r: r.update(timestamp="yesterday"), ErrorCode.INVALID_EVENT),
        (lambda r: r.update(timestamp=None), ErrorCode.INVALID_EVENT),
        (lambda r: r["httpRequest"].update(uri="/" + "a" * 70_000), ErrorCode.FIELD_TOO_LARGE),
        (lambda r: r.update(httpRequest="GET /"), ErrorCode.INVALID_EVENT),
        (lambda r: r.update(labels="awswaf:x"), ErrorCode.INVALID_EVENT),
    ],
)
def test_bad_records_are_contract_errors(mutate: Any, code: ErrorCode) -> None:
    record = copy.deepcopy(waf())
    mutate(record)
    with pytest.raises(ContractError) as caught:
        normalize_event(record)
    assert caught.value.code == code


def test_simplified_event_with_seed_spellings() -> None:
    event = normalize_event(
        {
            "id": 1001,
            "timestamp": "2026-11-25T10:00:00Z",
            "action": "blocked",
            "source_ip": "198.51.100.23",
            "uri": "/login.php?user=admin&password=hunter2",
            "http_method": "post",
            "rule_name": "AWSManagedRulesSQLiRuleSet",
            "country": "US",
            "user_agent": "sqlmap/1.7",
        }
    )
    assert (event.event_key, event.action, event.http_method) == ("evt#1001", "BLOCK", "POST")
    assert severity_floor(event).severity == 3


def test_requests_and_events_are_told_apart() -> None:
    assert is_request({"action": "analyze", "event": {}})
    assert is_request({"action": "bogus", "event": {}})
    assert not is_request({"action": "BLOCK", "source_ip": "192.0.2.1"})
    wrapped = {"prompt": json.dumps({"action": "monitor", "hours": 2, "events": []})}
    assert decode_payload(wrapped)["action"] == "monitor"
    assert parse_request(wrapped).action == "monitor"


def test_a_pre_normalized_event_is_only_trusted_where_allowed() -> None:
    event = normalize_event(waf())
    forged = {**event.model_dump(mode="json"), "event_key": "evt#someone-else"}
    # As a queue message it is just a simplified-looking record with its own hash key.
    assert normalize_event(forged).event_key != "evt#someone-else"
    # Inside a monitor request (the worker's own events) it keeps its key, re-redacted.
    forged["headers"] = [{"name": "Authorization", "value": "Bearer leaked"}]
    again = normalize_event(forged, allow_normalized=True)
    assert again.event_key == "evt#someone-else"
    assert "leaked" not in again.model_dump_json()


@pytest.mark.parametrize("raw", ["0500-01-01T00:00:00Z", "9000-01-01T00:00:00Z", 0, "1999-12-31T23:59:59Z"])
def test_timestamps_outside_any_plausible_waf_log_are_rejected(raw: Any) -> None:
    with pytest.raises(ContractError) as caught:
        normalize_event(waf(timestamp=raw))
    assert caught.value.code == ErrorCode.INVALID_EVENT
    assert "outside 2000-2200" in caught.value.message
