"""The log filter and the floor agree, over generated WAF records (docs/architecture.md, "Relevance").

- The filter never skips a record whose floor is above 0: what the fast path calls
  noise, the catalog calls noise too, with a floor of 0.
- The filter never keeps one the catalog calls noise: a default-action ALLOW whose only
  labels are informational is skipped, however WAF (or anything after it) spaced it.
- A floor key once graded stands for every record that has it: two records with equal
  floor keys, whatever their requests and other fields, get the same verdict.
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
# Fields a floor key leaves out (the request aside).
_OTHER_FIELDS = ["timestamp", "formatVersion", "webaclId", "httpSourceName", "httpSourceId", "ja3Fingerprint"]
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
    if graded is None:
        return
    # AND however it is spaced or escaped, it is skipped (unless it is not JSON at all: a
    # lone surrogate written raw is a bad line, counted as such)
    for raw in _encodings(record):
        assert noise_filter.certainly_noise(raw) or not _parses(raw)


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _msgspec_refuses(raw: bytes) -> bool:
    """What json.loads takes and msgspec does not: NaN, infinities, lone surrogates."""
    return any(token in raw for token in (b"NaN", b"Infinity", b"\\ud", b"\\uD", b"\xed\xa0", b"\xed\xb0"))


@fuzz_settings(300)
@given(
    records, s.valid_http_requests, st.dictionaries(st.sampled_from(_OTHER_FIELDS), s.json_values, max_size=3)
)
def test_a_floor_key_stands_for_every_record_that_has_it(
    record: dict[str, Any], request: dict[str, Any], other: dict[str, Any]
) -> None:
    # GIVEN a record, and another with the same floor fields but another request and
    # other fields around them (what a fast-path skip does not look at)
    twin = {**record, **other, "httpRequest": request}
    noise_filter = RelevanceFilter(EMPTY)
    first, second = noise_filter.grade(record), RelevanceFilter(EMPTY).grade(twin)
    for raw, twin_raw in zip(_encodings(record), _encodings(twin), strict=True):
        key, twin_key = noise_filter.floor_key(raw), noise_filter.floor_key(twin_raw)
        # THEN their floor keys are equal (where both lines are JSON msgspec takes: an
        # other field may hold a NaN), and so are the catalog's verdicts on them
        assert key is not None or _msgspec_refuses(raw)
        if key is not None and twin_key is not None:
            assert key == twin_key
    if first is not None and second is not None:
        assert first.relevance is second.relevance
        assert first.verdict.floor == second.verdict.floor
