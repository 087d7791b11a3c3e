"""Model economy: analysis signatures, re-rendering a saved analysis, the reuse window."""

from __future__ import annotations

from typing import Any

from secops_core.contract import Analysis, WafEvent
from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import severity_floor
from tests.fixtures.events import simplified
from tests.fixtures.fakes import FakeClock
from worker.pipeline.reuse import (
    REUSED_BY,
    AnalysisReuse,
    analysis_signature,
    skippable,
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
    assert found is not None and found.origin == first.event_key
    assert found.analysis.analyzed_by == REUSED_BY
    assert found.analysis.severity_rating == 5
    assert "203.0.113.9" in found.analysis.security_analysis
    assert "198.51.100.1" not in found.analysis.security_analysis + found.analysis.follow_up_suggestion
    assert "event req-002" in found.analysis.security_analysis


def test_replicas_share_saved_analyses_through_the_store() -> None:
    # GIVEN one replica saved an analysis
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    first = event("e1")
    AnalysisReuse(store, window_s=900, clock=clock).save(first, model_analysis(first))
    # WHEN another replica (an empty cache) sees the same attack
    second = event("e2", source_ip="203.0.113.9")
    found = AnalysisReuse(store, window_s=900, clock=clock).find(second, severity_floor(second))
    # THEN it reuses the analysis
    assert found is not None and found.origin == first.event_key


def test_an_analysis_older_than_the_window_is_not_reused() -> None:
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    first = event("e1")
    AnalysisReuse(store, window_s=900, clock=clock).save(first, model_analysis(first))
    clock.advance(901)
    second = event("e2")
    assert AnalysisReuse(store, window_s=900, clock=clock).find(second, severity_floor(second)) is None


def test_a_degraded_analysis_is_not_saved() -> None:
    clock = FakeClock(T0)
    reuse = AnalysisReuse(MemoryStore(clock=clock), window_s=900, clock=clock)
    first = event("e1")
    reuse.save(first, model_analysis(first).model_copy(update={"degraded": True}))
    assert reuse.find(event("e2"), severity_floor(event("e2"))) is None


def test_only_an_unmatched_floor_of_zero_skips_the_model() -> None:
    # GIVEN a request no rule matched, allowed by default
    noise = normalize_event(simplified("n1", action="ALLOW", rule_name=""))
    floor = severity_floor(noise)
    # THEN it skips the model and the rules decide it, marked as skipped
    assert skippable(floor)
    assert skipped_analysis(noise, floor).analyzed_by == "skipped"
    assert skipped_analysis(noise, floor).severity_rating == 0
    # AND an attack does not
    assert not skippable(severity_floor(event()))
