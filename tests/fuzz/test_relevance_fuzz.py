"""The log filter and the floor agree, over generated WAF records (docs/architecture.md, "Relevance").

- The filter never skips a record whose floor is above 0: what the byte fast path calls
  noise, the catalog calls noise too, with a floor of 0.
- The filter never keeps one the catalog calls noise: a default-action ALLOW whose only
  labels are informational is skipped, on its bytes when WAF wrote it compactly.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from secops_core.ingest.log_filter import RelevanceFilter
from secops_core.waf.operator import EMPTY
from secops_core.waf.relevance import Relevance
from tests.fuzz import strategies as s
from tests.fuzz.strategies import fuzz_settings

INFORMATIONAL = [
    "awswaf:clientip:geo:country:US",
    "awswaf:clientip:geo:region:US-VA",
    "awswaf:forwardedip:geo:country:DE",
    "awswaf:forwardedip:geo:region:DE-BE",
    "awswaf:managed:aws:bot-control:bot:verified",
    "awswaf:managed:aws:bot-control:bot:name:googlebot",
    "awswaf:managed:aws:bot-control:bot:category:search_engine",
    "awswaf:managed:token:accepted",
    "awswaf:managed:token:id:0a1b2c",
    "awswaf:managed:captcha:absent",
    "awswaf:managed:aws:acfp:risk_score:low",
    "awswaf:managed:aws:anti-ddos:event-detected",
]
FINDINGS = [
    "awswaf:managed:aws:sql-database:SQLi_Body",
    "awswaf:managed:aws:bot-control:signal:non_browser_user_agent",
    "awswaf:managed:aws:bot-control:bot:unverified",
    "awswaf:managed:aws:anti-ddos:high-suspicion-ddos-request",
    "awswaf:managed:aws:acfp:risk_score:high",
    "awswaf:123456789012:webacl:shop:sqli-probe",
]
label_lists = st.lists(
    st.one_of(st.sampled_from(INFORMATIONAL), st.sampled_from(INFORMATIONAL), st.sampled_from(FINDINGS)),
    max_size=5,
).map(lambda names: [{"name": n} for n in names])

# Native records: the shared strategy, and the shape most of a real log has (default
# ALLOW with rule groups that matched nothing), both with informational labels mixed in.
_quiet = st.fixed_dictionaries(
    {
        "timestamp": st.just(1_764_000_000_000),
        "formatVersion": st.just(1),
        "terminatingRuleId": st.sampled_from(["Default_Action", "Default_Action", "geo-block"]),
        "terminatingRuleType": st.just("REGULAR"),
        "action": st.sampled_from(["ALLOW", "ALLOW", "BLOCK", "CAPTCHA"]),
        "ruleGroupList": st.just(
            [
                {
                    "ruleGroupId": "AWS#AWSManagedRulesCommonRuleSet",
                    "terminatingRule": None,
                    "excludedRules": None,
                }
            ]
        ),
        "rateBasedRuleList": st.just([]),
        "nonTerminatingMatchingRules": st.one_of(st.just([]), s.matching_rules),
        "httpRequest": s.valid_http_requests,
        "labels": label_lists,
    }
)
records = st.one_of(
    _quiet,
    _quiet,
    st.builds(lambda record, labels: {**record, "labels": labels}, s.valid_waf_log_records, label_lists),
    s.valid_waf_log_records,
)


def _encodings(record: dict[str, Any]) -> list[bytes]:
    return [
        json.dumps(record, separators=(",", ":")).encode(),
        json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps(record).encode(),
    ]


@fuzz_settings(400)
@given(records)
def test_the_filter_skips_exactly_what_the_catalog_calls_noise(record: dict[str, Any]) -> None:
    noise_filter = RelevanceFilter(EMPTY)
    graded = noise_filter.grade(record)
    for raw in _encodings(record):
        # WHEN the byte fast path skips a record
        if noise_filter.certainly_noise(raw):
            # THEN the catalog calls it noise: its floor is 0 (a record that does not even
            # normalize has no floor; it is no WAF record the floor could grade)
            assert graded is None or (
                graded.relevance is Relevance.NOISE and graded.verdict.floor.severity == 0
            )
    if graded is None:
        return
    # AND a floor above 0 is never noise; noise is always a floor of 0, class none
    if graded.verdict.floor.severity > 0:
        assert graded.relevance is not Relevance.NOISE
    if graded.relevance is Relevance.NOISE:
        assert (graded.verdict.floor.severity, graded.verdict.floor.attack_class) == (0, "none")


@fuzz_settings(200)
@given(
    st.lists(st.sampled_from(INFORMATIONAL), max_size=6).map(lambda names: [{"name": n} for n in names]),
    s.valid_http_requests,
)
def test_informational_records_are_never_kept(labels: list[dict[str, str]], request: dict[str, Any]) -> None:
    # GIVEN a default-action ALLOW, rule groups that matched nothing, informational labels
    record = {
        "timestamp": 1_764_000_000_000,
        "terminatingRuleId": "Default_Action",
        "terminatingRuleType": "REGULAR",
        "action": "ALLOW",
        "ruleGroupList": [{"ruleGroupId": "AWS#AWSManagedRulesBotControlRuleSet", "terminatingRule": None}],
        "nonTerminatingMatchingRules": [],
        "labels": labels,
        "httpRequest": request,
    }
    noise_filter = RelevanceFilter(EMPTY)
    graded = noise_filter.grade(record)
    # THEN the catalog calls it noise, and the compact bytes are skipped unparsed (unless
    # an escape is left in them: a backslash-u could spell a key, so those are parsed)
    assert graded is None or graded.relevance is Relevance.NOISE
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert noise_filter.certainly_noise(raw) or b"\\u" in raw
