"""The processor's side of the model fail-safe: the per-event model budget across
deliveries, waiting out outages only while it lasts, and overruled models counted
(docs/architecture.md, "Model fail-safe")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from testkit.events import simplified
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeNotifier
from worker.errors import RetryableError, RuntimeUnavailable
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline.processor import EventProcessor
from worker.platform.metrics import Metrics
from worker.store.memory import MemoryStore

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp()
BUDGET = 3
# A counted SQL injection that reached the application: floor 4, escalated.
ESCALATING = {"action": "ALLOW", "rule_name": "AWS-AWSManagedRulesSQLiRuleSet"}


class CountingMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1, *, dimensions: Any = None) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


@pytest.fixture
def store() -> MemoryStore:
    clock = FakeClock(T0)
    return MemoryStore(clock=clock)


@pytest.fixture
def agents() -> FakeAgents:
    return FakeAgents()


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def metrics() -> CountingMetrics:
    return CountingMetrics()


def processor(
    store: MemoryStore,
    agents: FakeAgents,
    notifier: FakeNotifier,
    metrics: CountingMetrics,
    *,
    rules: bool = False,
    max_deliveries: int | None = None,
    retry_episode_gap_s: float | None = None,
) -> EventProcessor:
    return EventProcessor(
        store=store,
        agents=agents,
        notifier=notifier,
        incidents=IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=0),
        owner="w1",
        lease_s=60,
        fallback_to_rules=rules,
        metrics=metrics,
        model_call_budget=BUDGET,
        max_deliveries=max_deliveries,
        retry_episode_gap_s=retry_episode_gap_s,
    )


def body(event_id: str = "e1") -> str:
    return json.dumps(simplified(event_id, **ESCALATING))


def outage(calls: int, reason: str = "model_throttled") -> dict[str, Any]:
    return {"degraded": True, "degraded_reason": reason, "model_calls": calls}


def test_an_outage_with_budget_left_waits_and_the_next_delivery_gets_what_is_left(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN the `wait` policy and a model that throttles once (one call), then answers
    agents.analyst.answers = [outage(1), {"model_calls": 1, "model_written": True}]
    worker = processor(store, agents, notifier, metrics)
    # WHEN the event is delivered twice
    first = worker.process(body(), "m1")
    second = worker.process(body(), "m1")
    # THEN the first delivery waited (circuit open) without saving, the second was sent
    # what is left of the budget and saved the answer: 2 calls in all, notified once
    assert first.kind == "unavailable" and first.reason == "model_throttled"
    assert agents.analyst.budgets == [BUDGET, BUDGET - 1]
    assert second.kind == "done" and second.status == "escalated"
    record = store.get("evt#e1")
    assert record is not None and record.model_calls == 2
    assert [m for _, m in notifier.incidents] == ["opened"]  # its incident opened
    assert metrics.counts["ModelCalls"] == 2


def test_an_outage_that_spends_the_budget_saves_the_floor_at_once(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN the `wait` policy and a model that throttled through the whole budget
    agents.analyst.answers = [outage(BUDGET)]
    # WHEN the event is processed
    outcome = processor(store, agents, notifier, metrics).process(body(), "m1")
    # THEN nothing is left to wait for: the degraded floor answer is saved and escalated
    assert (outcome.kind, outcome.status, outcome.severity) == ("done", "escalated", 4)
    record = store.get("evt#e1")
    assert record is not None and record.analysis is not None
    assert record.analysis.degraded_reason == "model_throttled" and record.model_calls == BUDGET
    assert metrics.counts["DegradedAnalyses"] == 1


def test_a_spent_budget_asks_for_no_model_call(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN an event whose earlier deliveries spent the whole budget waiting on outages
    agents.analyst.answers = [outage(1), outage(1), {"model_calls": 0}]
    worker = processor(store, agents, notifier, metrics)
    outcomes = [worker.process(body(), "m1") for _ in range(3)]
    # THEN the third delivery asked with model_budget 0 and saved the floor
    assert [o.kind for o in outcomes] == ["unavailable", "unavailable", "done"]
    assert agents.analyst.budgets == [3, 2, 1]
    record = store.get("evt#e1")
    assert record is not None and record.model_calls == 2 and record.status == "escalated"


def test_the_budget_left_is_zero_once_the_store_counts_it_all(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN two outages of one call, then the runtime's budget-spent answer
    agents.analyst.answers = [outage(2), {"degraded": True, "degraded_reason": "model_budget_spent"}]
    worker = processor(store, agents, notifier, metrics)
    # WHEN the event is delivered until it is done
    kinds = [worker.process(body(), "m1").kind for _ in range(2)]
    # THEN the second request was sent the one call left, never more than the budget
    assert kinds == ["unavailable", "done"]
    assert agents.analyst.budgets == [3, 1]


@pytest.mark.parametrize("reason", ["model_output_invalid", "model_budget_spent"])
def test_an_answer_that_is_not_an_outage_is_saved_at_once(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics, reason: str
) -> None:
    # GIVEN the `wait` policy and an unusable answer
    agents.analyst.answers = [{"degraded": True, "degraded_reason": reason, "model_calls": 1}]
    # WHEN the event is processed
    outcome = processor(store, agents, notifier, metrics).process(body(), "m1")
    # THEN it never waits, never rejects: the floor escalates it
    assert (outcome.kind, outcome.status) == ("done", "escalated")
    assert [m for _, m in notifier.incidents] == ["opened"]  # its incident opened


def test_the_rules_policy_saves_an_outage_answer_as_is(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN the `rules` policy and a timed-out model with budget left
    agents.analyst.answers = [outage(1, "model_timeout")]
    # WHEN the event is processed
    outcome = processor(store, agents, notifier, metrics, rules=True).process(body(), "m1")
    # THEN the degraded answer is saved as it came
    record = store.get("evt#e1")
    assert outcome.kind == "done" and record is not None and record.analysis is not None
    assert record.analysis.degraded_reason == "model_timeout"


def test_an_unreachable_runtime_waits_until_the_last_delivery_then_the_floor_decides(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN a runtime that cannot be reached and a queue that dead-letters after 3 receives
    agents.analyst.errors = [RuntimeUnavailable("refused", reason="connection")] * 3
    worker = processor(store, agents, notifier, metrics, max_deliveries=3)
    # WHEN the event is delivered three times
    outcomes = [worker.process(body(), "m1") for _ in range(3)]
    # THEN the first two wait, the last is decided locally by the floor (never the DLQ)
    assert [o.kind for o in outcomes] == ["unavailable", "unavailable", "done"]
    record = store.get("evt#e1")
    assert record is not None and record.analysis is not None and record.status == "escalated"
    assert record.analysis.degraded and record.analysis.analyzed_by == "rules"
    assert [m for _, m in notifier.incidents] == ["opened"]  # its incident opened


def test_a_replayed_message_waits_again_instead_of_counting_its_earlier_deliveries(
    agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN a runtime that cannot be reached, a queue that dead-letters after 3 receives,
    # and an event that already spent its three deliveries waiting (then went to the DLQ)
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    agents.analyst.errors = [RuntimeUnavailable("refused", reason="connection")] * 5
    worker = processor(store, agents, notifier, metrics, max_deliveries=3, retry_episode_gap_s=600)
    outcomes = [worker.process(body(), "m1") for _ in range(2)]
    # WHEN an operator replays it an hour later (a new message, a fresh receive count)
    clock.advance(3600)
    outcomes.append(worker.process(body(), "m2"))
    # THEN its first delivery of the new episode waits for the runtime again: only the
    # episode's last delivery falls back to the floor
    assert [o.kind for o in outcomes] == ["unavailable", "unavailable", "unavailable"]


def test_a_lost_answer_counts_its_budget_as_spent(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN a runtime call that timed out after the runtime read it (its calls unknown)
    class Lost:
        calls = 0

        def analyze(self, event: Any, *, model_budget: int | None = None, on_lost_calls: Any = None) -> Any:
            assert on_lost_calls is not None and model_budget is not None
            on_lost_calls(model_budget)
            raise RetryableError("read timeout", reason="read_timeout")

    agents.analyst = Lost()  # type: ignore[assignment]
    # WHEN the event is processed
    outcome = processor(store, agents, notifier, metrics).process(body(), "m1")
    # THEN the whole budget counts as spent, so the floor decides instead of another try
    record = store.get("evt#e1")
    assert outcome.kind == "done" and record is not None and record.model_calls == BUDGET
    assert record.analysis is not None and record.analysis.degraded_reason == "model_budget_spent"


def test_an_overruled_model_is_counted(
    store: MemoryStore, agents: FakeAgents, notifier: FakeNotifier, metrics: CountingMetrics
) -> None:
    # GIVEN a model that rated the event below its floor
    agents.analyst.answers = [{"model_overruled": True, "model_severity": 0, "model_calls": 1}]
    # WHEN the event is processed
    processor(store, agents, notifier, metrics).process(body(), "m1")
    # THEN the metric counts it, and the floor still escalates
    assert metrics.counts["ModelOverruled"] == 1
    assert [m for _, m in notifier.incidents] == ["opened"]  # its incident opened
