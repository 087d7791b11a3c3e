"""The log filter's fast path agrees with the catalog (docs/architecture.md, "Relevance")."""

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
    # THEN the fast path skips it, and the catalog agrees it is noise
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
        # a matched rule
        _compact(_allow(nonTerminatingMatchingRules=[{"ruleId": "geo-count", "action": "COUNT"}])),
        # a key spelled with an escape is the same key to the parser
        _compact(_allow()).replace(b'"action":"ALLOW"', b'"\\u0061ction":"BLOCK"'),
        b'{"l\\u0061bels":[{"name":"awswaf:managed:aws:sql-database:SQLi_Body"}],' + _compact(_allow())[1:],
        # a duplicate key: the last one wins, in the fast path as in json.loads
        _compact(_allow())[:-1] + b',"action":"BLOCK"}',
    ],
    ids=["finding_label", "bot_signal", "rule", "escaped_key", "escaped_labels", "duplicate_key"],
)
def test_findings_are_never_skipped(raw: bytes) -> None:
    # GIVEN a filter that knows the plain default-allow shape as noise
    noise_filter = RelevanceFilter(EMPTY)
    assert noise_filter.certainly_noise(_compact(_allow()))
    # WHEN a record with a finding comes THEN it is not noise, on first sight or later
    assert not noise_filter.certainly_noise(raw)
    assert not noise_filter.known_noise(noise_filter.floor_key(raw))
    assert not noise_filter.certainly_noise(raw)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(_allow(["awswaf:clientip:geo:country:US"])).encode(),
        json.dumps(_allow(["awswaf:clientip:geo:country:US"]), indent=2).encode().replace(b"\n", b" "),
        _compact(_allow(['awswaf:clientip:geo:country:"US'])),
        _compact(_allow(["awswaf:clientip:geo:country:DE"])).replace(b"geo", b"\\u0067eo"),
        json.dumps(dict(reversed(_allow(["awswaf:clientip:geo:country:US"]).items()))).encode(),
    ],
    ids=["spaced", "indented", "quote_in_label", "escaped_label", "keys_reversed"],
)
def test_spacing_escapes_and_order_are_the_parsers_business(raw: bytes) -> None:
    # GIVEN informational records however they were written THEN the catalog's noise
    noise_filter = RelevanceFilter(EMPTY)
    assert noise_filter.certainly_noise(raw)
    # AND the second time from the floor key alone
    assert noise_filter.known_noise(noise_filter.floor_key(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'["an", "array"]',
        b'{"action":"ALLOW"}',
        b'{"httpRequest":null,"action":"ALLOW"}',
        b'{"httpRequest":"GET /","action":"ALLOW"}',
        b'{"messageType":"DATA_MESSAGE","logEvents":[],"httpRequest":{}}',
        b'{"logEvents":[],"httpRequest":{}}',
        _compact(_allow())[:-1] + b',"x":NaN}',
        _compact(_allow())[:-1] + b',"x":"\\ud800"}',
        _compact(_allow()) + b"{}",
    ],
    ids=[
        "text",
        "array",
        "no_request",
        "null_request",
        "string_request",
        "envelope",
        "log_events",
        "nan",
        "lone_surrogate",
        "two_objects",
    ],
)
def test_what_is_no_single_waf_record_has_no_floor_key(raw: bytes) -> None:
    # GIVEN a line that is not one WAF record as msgspec reads it THEN no floor key: the
    # reader parses it in full (an envelope is opened, a bad line is counted as bad)
    assert RelevanceFilter.floor_key(raw) is None


def test_floor_keys_are_remembered_within_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    import secops_core.ingest.log_filter as log_filter

    monkeypatch.setattr(log_filter, "MAX_NOISE_KEYS", 2)
    noise_filter = RelevanceFilter(EMPTY)
    countries = ["US", "DE", "FR"]
    raws = [_compact(_allow([f"awswaf:clientip:geo:country:{c}"])) for c in countries]
    # GIVEN three noise shapes, one more than the bound THEN each is noise, graded in full
    assert all(noise_filter.certainly_noise(raw) for raw in raws)
    # AND only the first two are known by their key
    known = [noise_filter.known_noise(noise_filter.floor_key(raw)) for raw in raws]
    assert known == [True, True, False]
    # AND a key longer than MAX_KEY_BYTES is never kept
    long_label = "awswaf:clientip:geo:region:" + "X" * log_filter.MAX_KEY_BYTES
    monkeypatch.setattr(log_filter, "MAX_NOISE_KEYS", 100)
    raw = _compact(_allow([long_label]))
    assert noise_filter.certainly_noise(raw)
    assert not noise_filter.known_noise(noise_filter.floor_key(raw))


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


def test_attacks_cannot_crowd_out_the_noise_keys_or_grow_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import secops_core.ingest.log_filter as log_filter

    monkeypatch.setattr(log_filter, "OTHER_KEY_BUDGET_BYTES", 20_000)
    noise_filter = RelevanceFilter(EMPTY)
    # GIVEN many attacks whose keys differ by the data their rule matched
    for n in range(400):
        attack = _allow(
            nonTerminatingMatchingRules=[
                {"ruleId": "sqli", "action": "COUNT", "ruleMatchDetails": [{"matchedData": [f"x{n}", "OR"]}]}
            ],
        )
        attack["labels"] = [{"name": "awswaf:managed:aws:sql-database:SQLi_QueryArguments"}]
        assert not noise_filter.certainly_noise(_compact(attack))
    # THEN what they left stays within the budget (and they did leave keys: it filled)
    assert 15_000 < noise_filter._other_bytes <= 20_000
    # AND a noise shape seen after them is still remembered by its key
    raw = _compact(_allow(["awswaf:clientip:geo:country:US"]))
    assert noise_filter.certainly_noise(raw)
    assert noise_filter.known_noise(noise_filter.floor_key(raw))
