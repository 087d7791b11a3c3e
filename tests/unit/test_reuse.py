"""Model economy: analysis signatures, re-rendering a saved analysis, the reuse window."""

from __future__ import annotations

import threading
from typing import Any

from secops_core.contract import Analysis, WafEvent
from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import explain_floor, severity_floor
from testkit.events import simplified, waf_record
from tests.fixtures.fakes import FakeClock
from worker.pipeline.reuse import (
    REUSED_BY,
    AnalysisReuse,
    Lead,
    Reused,
    SkipPolicy,
    analysis_signature,
    skipped_analysis,
)
from worker.store.memory import MemoryStore

T0 = 1_764_000_000.0


def event(event_id: str = "e1", **fields: Any) -> WafEvent:
    return normalize_event(simplified(event_id, **fields))


def model_analysis(of: WafEvent, *, severity: int = 5) -> Analysis:
    floor = severity_floor(of)
    return Analysis(
        severity_rating=severity,
        severity_floor=floor.severity,
        model_severity=severity,
        security_analysis=f"SQL injection from {of.source_ip} against {of.uri} (event {of.event_id}).",
        follow_up_suggestion=f"Block {of.source_ip}.",
        attack_type="SQL injection",
        analyzed_by="bedrock",
        floor=floor,
    )


def signature(e: WafEvent) -> str:
    return analysis_signature(e, severity_floor(e))


def test_the_source_ip_and_the_query_are_not_part_of_the_signature() -> None:
    # GIVEN one attack from two addresses, with different query strings and ids
    first = event("e1", source_ip="198.51.100.1", uri="/login.php?id=1")
    second = event("e2", source_ip="203.0.113.9", uri="/login.php?id=2")
    # THEN they share a signature
    assert signature(first) == signature(second)


def test_disposition_method_uri_and_rule_each_change_the_signature() -> None:
    base = event()
    assert signature(base) != signature(event(action="ALLOW"))
    assert signature(base) != signature(event(uri="/admin"))
    assert signature(base) != signature(event(rule_name="CrossSiteScripting_BODY"))
    assert signature(base) != signature(event(http_method="GET"))


def test_a_reused_analysis_names_the_events_own_fields() -> None:
    # GIVEN the model's analysis of one event, saved
    clock = FakeClock(T0)
    reuse = AnalysisReuse(MemoryStore(clock=clock), window_s=900, clock=clock)
    first = event("req-001", source_ip="198.51.100.1")
    reuse.save(first, model_analysis(first))
    # WHEN an event of the same signature from another address looks for it
    second = event("req-002", source_ip="203.0.113.9")
    found = reuse.find(second, severity_floor(second))
    # THEN it gets that analysis, marked as reused from the first event, naming itself
    assert isinstance(found, Reused) and found.origin == first.event_key
    assert found.analysis.analyzed_by == REUSED_BY
    assert found.analysis.severity_rating == 5
    assert "203.0.113.9" in found.analysis.security_analysis
    assert "198.51.100.1" not in found.analysis.security_analysis + found.analysis.follow_up_suggestion
    assert "event req-002" in found.analysis.security_analysis


def test_replicas_share_an_analysis_through_the_store_once_its_signature_repeats() -> None:
    # GIVEN one replica saved an analysis of an attack it has seen once
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    first = event("e1")
    one = AnalysisReuse(store, window_s=900, clock=clock)
    one.save(first, model_analysis(first))
    # THEN nothing is written for it yet: most distinct attacks never repeat
    assert store.get_signature(signature(first)) is None
    # WHEN the attack repeats at that replica
    second = event("e2", source_ip="203.0.113.9")
    assert isinstance(one.find(second, severity_floor(second)), Reused)
    # THEN another replica (an empty cache) reuses the analysis through the store
    third = event("e3", source_ip="203.0.113.10")
    found = AnalysisReuse(store, window_s=900, clock=clock).find(third, severity_floor(third))
    assert isinstance(found, Reused) and found.origin == first.event_key


def test_a_repeating_signature_is_written_to_the_store_once() -> None:
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    writes: list[str] = []
    put = store.put_signature

    def counted(saved: Any, *, ttl_s: float) -> None:
        writes.append(saved.signature)
        put(saved, ttl_s=ttl_s)

    store.put_signature = counted  # type: ignore[method-assign]
    reuse = AnalysisReuse(store, window_s=900, clock=clock)
    first = event("e1")
    reuse.save(first, model_analysis(first))
    for n in range(2, 12):
        other = event(f"e{n}")
        assert isinstance(reuse.find(other, severity_floor(other)), Reused)
    assert writes == [signature(first)]


def test_an_analysis_older_than_the_window_is_not_reused() -> None:
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    first = event("e1")
    AnalysisReuse(store, window_s=900, clock=clock).save(first, model_analysis(first))
    clock.advance(901)
    second = event("e2")
    # THEN the event asks the model itself (it leads its signature)
    assert isinstance(
        AnalysisReuse(store, window_s=900, clock=clock).find(second, severity_floor(second)), Lead
    )


def test_a_degraded_analysis_is_not_saved() -> None:
    clock = FakeClock(T0)
    reuse = AnalysisReuse(MemoryStore(clock=clock), window_s=900, clock=clock)
    first = event("e1")
    reuse.save(first, model_analysis(first).model_copy(update={"degraded": True}))
    assert isinstance(reuse.find(event("e2"), severity_floor(event("e2"))), Lead)


def skips(policy: SkipPolicy, of: WafEvent) -> bool:
    floor, findings = explain_floor(of)
    return policy.skips(of, floor, findings)


def test_an_unmatched_floor_of_zero_skips_the_model() -> None:
    # GIVEN a request no rule matched, allowed by default
    noise = normalize_event(simplified("n1", action="ALLOW", rule_name=""))
    floor = severity_floor(noise)
    # THEN it skips the model and the rules decide it, marked as skipped
    assert skips(SkipPolicy(), noise)
    assert skipped_analysis(noise, floor).analyzed_by == "skipped"
    assert skipped_analysis(noise, floor).severity_rating == 0
    # AND an attack does not, nor the same request with the policy off
    assert not skips(SkipPolicy(), event())
    assert not skips(SkipPolicy(unmatched=False), noise)


def reputation_block(**fields: Any) -> WafEvent:
    return normalize_event(
        waf_record(
            group="AWSManagedRulesAmazonIpReputationList",
            rule_id="AWSManagedIPReputationList",
            label="awswaf:managed:aws:amazon-ip-list:AWSManagedIPReputationList",
            **fields,
        )
    )


def test_a_request_blocked_for_its_sender_rate_or_size_skips_the_model() -> None:
    # GIVEN requests the WAF blocked for who sent them, how big or how many they were
    blocked = [
        reputation_block(),
        normalize_event(simplified("b1", rule_name="AWSManagedRulesBotControlRuleSet#CategoryHttpLibrary")),
        normalize_event(simplified("s1", rule_name="SizeRestrictions_BODY")),
    ]
    # THEN the rules decide them, unless the policy is off
    assert [skips(SkipPolicy(), e) for e in blocked] == [True, True, True]
    assert not any(skips(SkipPolicy(blocked_noise=False, unmatched=False), e) for e in blocked)


def test_noise_that_reached_the_application_or_carries_an_attack_asks_the_model() -> None:
    # GIVEN a reputation match only counted (the request went on to the application)
    counted = reputation_block(counted=True)
    # AND a blocked injection, and a rule nobody knows
    attack = event()
    unknown = normalize_event(simplified("u1", rule_name="SomethingCustom"))
    # THEN each goes to the model
    assert not skips(SkipPolicy(), counted)
    assert not skips(SkipPolicy(), attack)
    assert not skips(SkipPolicy(), unknown)


def test_a_blocked_request_with_a_payload_finding_beside_the_noise_asks_the_model() -> None:
    # GIVEN a request a reputation list blocked, in which a counting rule also saw XSS
    record = waf_record(
        group="AWSManagedRulesAmazonIpReputationList",
        rule_id="AWSManagedIPReputationList",
        label="awswaf:managed:aws:amazon-ip-list:AWSManagedIPReputationList",
    )
    record["ruleGroupList"].append(
        {
            "ruleGroupId": "AWS#AWSManagedRulesCommonRuleSet",
            "terminatingRule": None,
            "nonTerminatingMatchingRules": [{"ruleId": "CrossSiteScripting_BODY", "action": "COUNT"}],
            "excludedRules": None,
        }
    )
    # THEN the model is asked: the finding is about what the request carried
    assert not skips(SkipPolicy(), normalize_event(record))


def test_one_caller_leads_a_new_signature_and_the_others_wait_for_its_analysis() -> None:
    # GIVEN a signature nobody analyzed, and a first caller that leads it
    clock = FakeClock(T0)
    reuse = AnalysisReuse(MemoryStore(clock=clock), window_s=900, clock=clock)
    first = event("e1")
    lead = reuse.find(first, severity_floor(first))
    assert isinstance(lead, Lead)
    # WHEN four more events of that signature arrive while the model answers
    answers: list[Any] = []

    def look(n: int) -> None:
        other = event(f"w{n}", source_ip=f"203.0.113.{n}")
        answers.append(reuse.find(other, severity_floor(other)))

    waiters = [threading.Thread(target=look, args=(n,)) for n in range(4)]
    for thread in waiters:
        thread.start()
    reuse.save(first, model_analysis(first))
    lead.release()
    for thread in waiters:
        thread.join(timeout=10)
    # THEN each of them reuses the lead's analysis: one model call for five events
    assert len(answers) == 4
    assert all(isinstance(a, Reused) and a.origin == first.event_key for a in answers)


def test_a_lead_that_gives_up_hands_the_signature_to_the_next_caller() -> None:
    clock = FakeClock(T0)
    reuse = AnalysisReuse(MemoryStore(clock=clock), window_s=900, clock=clock)
    first = event("e1")
    lead = reuse.find(first, severity_floor(first))
    assert isinstance(lead, Lead)
    # WHEN the lead's model call fails (nothing saved) and it releases the lead
    lead.release()
    # THEN the next caller leads the signature in its place
    second = event("e2")
    assert isinstance(reuse.find(second, severity_floor(second)), Lead)


def test_a_caller_that_waits_too_long_for_a_lead_asks_the_model_itself() -> None:
    clock = FakeClock(T0)
    reuse = AnalysisReuse(MemoryStore(clock=clock), window_s=900, clock=clock, lead_wait_s=0.05)
    first = event("e1")
    assert isinstance(reuse.find(first, severity_floor(first)), Lead)
    # WHEN the lead never answers THEN the next caller stops waiting, without a lead
    second = event("e2")
    assert reuse.find(second, severity_floor(second)) is None


def test_a_floor_of_five_skips_the_model_no_answer_can_change_it() -> None:
    # GIVEN a Log4j attempt that reached the application (floor 5)
    log4j = normalize_event(
        waf_record(
            group="AWSManagedRulesKnownBadInputsRuleSet",
            rule_id="Log4JRCE_HEADER",
            label="awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header",
            counted=True,
        )
    )
    assert severity_floor(log4j).severity == 5
    # THEN the rules decide it, unless the policy is off
    assert skips(SkipPolicy(), log4j)
    assert not skips(SkipPolicy(max_floor=False), log4j)
