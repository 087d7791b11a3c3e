"""The day scenario of the benchmark: its traffic, what the catalog makes of it, its cost."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.day import day_cost
from bench.day_traffic import ATTACKER_IP, DayPlan, HourMix, day_records
from bench.s3 import Prices
from bench.tokens import estimate_tokens
from secops_core.ingest.log_filter import RelevanceFilter


def _verdicts(plan: DayPlan, hour: int) -> Counter[tuple[str, str]]:
    grader = RelevanceFilter()
    verdicts: Counter[tuple[str, str]] = Counter()
    for item in day_records(plan, hour):
        graded = grader.grade(item.record)
        assert graded is not None, item
        verdicts[(item.kind, graded.relevance.value)] += 1
    return verdicts


def test_an_ordinary_hour_is_noise_and_counts_only() -> None:
    # GIVEN an ordinary hour of the day (no scanner, no attacker)
    verdicts = _verdicts(DayPlan(mix=HourMix().scaled(600)), hour=0)
    # THEN people and verified crawlers are noise, the rule matches are counted, no event
    assert {kind for kind, v in verdicts if v == "noise"} == {"human", "verified_bot"}
    assert {kind for kind, v in verdicts if v == "counted"} == {
        "http_library",
        "upload",
        "ip_reputation",
        "geo_block",
    }
    assert not any(v == "event" for _, v in verdicts)


def test_the_scanner_and_the_attacker_are_events() -> None:
    plan = DayPlan(mix=HourMix().scaled(200))
    scanner = _verdicts(plan, plan.scanner_hour)
    attacker = _verdicts(plan, plan.attacker_hour)
    # THEN the scanner's blocked probes are events, its tool's user agent counted
    assert scanner[("scanner", "event")] > 0 and scanner[("scanner", "counted")] > 0
    # AND every SQL injection of the attacker is an event, its browsing noise
    assert attacker[("attacker_reached", "event")] == plan.attacker_sqli_reached
    assert attacker[("attacker_blocked", "event")] == plan.attacker_sqli_blocked
    assert attacker[("attacker_browsing", "noise")] == plan.attacker_browsing


def test_the_attackers_reached_injections_grade_4_and_nothing_else_does() -> None:
    plan = DayPlan(mix=HourMix().scaled(300))
    grader = RelevanceFilter()
    high = set()
    for hour in (0, plan.scanner_hour, plan.attacker_hour):
        for item in day_records(plan, hour):
            graded = grader.grade(item.record)
            if graded is not None and graded.verdict.floor.severity >= 4:
                high.add(graded.event.source_ip)
    assert high == {ATTACKER_IP}


def test_every_record_of_a_quiet_line_is_skipped_on_its_bytes() -> None:
    # GIVEN WAF's compact JSON of people browsing (geo labels on every record)
    import json

    grader = RelevanceFilter()
    humans = [i.record for i in day_records(DayPlan(mix=HourMix().scaled(300)), 0) if i.kind == "human"]
    # THEN not one needs a parse
    assert all(grader.certainly_noise(json.dumps(r, separators=(",", ":")).encode()) for r in humans)


def test_day_cost_bills_a_transactions_items_twice_and_the_model_as_measured() -> None:
    requests = {
        "s3.GetObject": 1,
        "dynamodb.TransactWriteItems": 2,
        "dynamodb.TransactWriteItems.items": 10,
        "dynamodb.UpdateItem": 5,
    }
    prices = Prices(output_tokens_per_call=0)
    cost = day_cost(requests, 1_000_000, calls=100, input_tokens=800, prices=prices)
    # 20 write units for the transaction's 10 items, 5 updates
    assert cost["dynamodb"] == pytest.approx(25 * prices.dynamodb_per_write, abs=1e-4)
    assert cost["model"] == pytest.approx(100 * 800 / 1000 * prices.nova_lite_input_per_1k_tokens, abs=1e-4)


def test_the_token_estimate_counts_words_numbers_and_symbols() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("injection") == 2  # nine letters: two pieces of five
    assert estimate_tokens("2026") == 2
    assert estimate_tokens('{"a":"b"}') == 1 + 1 + 2 + 1 + 1  # {" a ":" b "}: symbols in pairs
