"""A milestone claimed by a worker killed before its publish is sent by the incident's
next event once the claim is stale, and only once (docs/architecture.md, "Event state
machine").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from secops_core.contract import WafEvent
from testkit.events import simplified
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeNotifier
from worker.errors import RetryableError
from worker.incidents import Contribution, IncidentRecord, Milestone
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline import incident_step
from worker.pipeline.incident_step import IncidentStep
from worker.pipeline.processor import EventProcessor, parse_message
from worker.platform.metrics import Metrics
from worker.store.memory import MemoryStore

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp()
STALE_S = 120


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def repo(clock: FakeClock) -> MemoryIncidentRepo:
    return MemoryIncidentRepo(quiet_s=3600, claim_stale_s=STALE_S, clock=clock)


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def processor(store: MemoryStore, repo: MemoryIncidentRepo, notifier: FakeNotifier) -> EventProcessor:
    agents = FakeAgents()
    agents.analyst.severity = 5
    return EventProcessor(
        store=store,
        agents=agents,
        notifier=notifier,
        incidents=IncidentJoiner(repo, window_s=0),
        owner="w1",
        lease_s=60,
        metrics=Metrics(enabled=False),
    )


def body(event_id: str) -> str:
    return json.dumps(simplified(event_id))


def killed_before_publishing(
    step: IncidentStep, incident: IncidentRecord, milestone: Milestone, *args: object, **kwargs: object
) -> str | None:
    """A worker SIGKILLed between its claim and its publish: the claim and nothing else."""
    step.incidents.repo.claim_milestone(incident.id, milestone.id)
    return None


def open_with_a_dead_claim(processor: EventProcessor, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(IncidentStep, "notify", killed_before_publishing)
        processor.process(body("e1"), "m1")


def test_the_next_event_sends_an_opening_whose_claimer_died(
    processor: EventProcessor,
    repo: MemoryIncidentRepo,
    store: MemoryStore,
    notifier: FakeNotifier,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an incident whose opening was claimed by a worker killed before publishing
    open_with_a_dead_claim(processor, monkeypatch)
    first = store.get("evt#e1")
    assert first is not None and first.incident_id is not None
    assert notifier.incidents == []
    # WHEN the incident's next events come after the claim went stale
    clock.advance(STALE_S + 1)
    processor.process(body("e2"), "m2")
    processor.process(body("e3"), "m3")
    # THEN the next event sends the opening, once, and the notice is recorded
    assert notifier.incidents == [(first.incident_id, "opened")]
    incident = repo.get(first.incident_id)
    assert incident is not None and incident.pending_claims == {}
    assert [n.milestone for n in incident.notices] == ["opened"]
    second = store.get("evt#e2")
    assert second is not None and second.notification_id == "inc-1"


def test_a_fresh_claim_is_left_to_its_claimer(
    processor: EventProcessor,
    notifier: FakeNotifier,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an opening claimed moments ago by a worker that may still be publishing
    open_with_a_dead_claim(processor, monkeypatch)
    clock.advance(STALE_S)
    # WHEN the incident's next event comes
    processor.process(body("e2"), "m2")
    # THEN it does not send the opening: the claim is not stale yet
    assert notifier.incidents == []


def test_the_monitor_join_sends_a_growth_milestone_whose_claimer_died(
    processor: EventProcessor,
    repo: MemoryIncidentRepo,
    store: MemoryStore,
    notifier: FakeNotifier,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an incident notified when it opened, and 10 events whose growth:10 claimer died
    processor.process(body("e0"), "m0")
    with monkeypatch.context() as patch:
        patch.setattr(IncidentStep, "notify", killed_before_publishing)
        for n in range(1, 10):
            processor.process(body(f"e{n}"), f"m{n}")
    record = store.get("evt#e0")
    assert record is not None and record.incident_id is not None
    incident = repo.get(record.incident_id)
    assert incident is not None and set(incident.pending_claims) == {"growth:10"}
    # WHEN the claim is stale and the monitor joins an event of the incident
    clock.advance(STALE_S + 1)
    assert record.event is not None and record.analysis is not None
    member = (record.event, record.analysis)
    processor.incidents.join_many([member], severity=5)
    processor.incidents.join_many([member], severity=5)
    # THEN the milestone is sent once, told from the incident as it is now
    assert notifier.incidents == [(record.incident_id, "opened"), (record.incident_id, "growth:10")]


def test_the_redelivery_of_a_killed_openers_event_waits_for_the_claim_then_sends_it(
    repo: MemoryIncidentRepo,
    store: MemoryStore,
    notifier: FakeNotifier,
    clock: FakeClock,
) -> None:
    # GIVEN a one-event attack whose worker was killed after the join that opened (and
    # claimed) its incident, before publishing and before writing the event
    processor = EventProcessor(
        store=store,
        agents=FakeAgents(),
        notifier=notifier,
        incidents=IncidentJoiner(repo, window_s=0),
        owner="w1",
        lease_s=60,
        metrics=Metrics(enabled=False),
        model_free=True,
    )
    log4j = json.dumps(simplified("e1", action="ALLOW", rule_name="Log4JRCE_HEADER"))
    analysis = processor.agents.analyst.analyze(_event(log4j)).analysis
    processor.incidents.incidents.join(Contribution.from_event(_event(log4j), analysis))
    assert store.get("evt#e1") is None and notifier.incidents == []
    # WHEN its message comes back while the claim is fresh
    early = processor.process(log4j, "m1")
    # THEN it is not acknowledged: it comes back once the claim is stale
    assert (early.kind, early.reason) == ("retry", "milestone_pending")
    assert early.delay_s is not None and STALE_S - 1 <= early.delay_s <= STALE_S + 1
    assert notifier.incidents == [] and store.get("evt#e1") is None
    # WHEN it comes back after that
    clock.advance(STALE_S + 1)
    late = processor.process(log4j, "m1")
    # THEN the opening is sent, once, and the event written with its incident
    assert late.kind == "done"
    record = store.get("evt#e1")
    assert record is not None and record.incident_id is not None
    assert notifier.incidents == [(record.incident_id, "opened")]


def _event(body_text: str) -> WafEvent:
    return parse_message(body_text).event


def test_a_notice_write_that_fails_once_is_retried_so_the_milestone_is_not_sent_again(
    processor: EventProcessor,
    repo: MemoryIncidentRepo,
    notifier: FakeNotifier,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the store refuses the first write of a notice (throttled)
    monkeypatch.setattr(incident_step, "_NOTICE_BACKOFF_S", 0.0)
    record_notice = repo.record_notice
    failures = [RetryableError("throttled", reason="store_unavailable")]

    def flaky(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        record_notice(*args, **kwargs)

    monkeypatch.setattr(repo, "record_notice", flaky)
    # WHEN an incident opens, and later events come after any claim would be stale
    processor.process(body("e1"), "m1")
    clock.advance(STALE_S + 1)
    processor.process(body("e2"), "m2")
    # THEN the notice was recorded on the second try and the opening sent once
    assert [m for _, m in notifier.incidents] == ["opened"]
    (incident,) = repo.list()
    assert [n.milestone for n in incident.notices] == ["opened"] and incident.pending_claims == {}
