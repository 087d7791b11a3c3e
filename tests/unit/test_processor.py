"""EventProcessor, branch by branch, over the in-memory store and fake ports.

Every branch of the per-event state machine (docs/architecture.md, "Event state
machine") gets a millisecond test here; tests/integration/test_worker_flow.py runs the
same flow over SQS, DynamoDB and SNS on moto's server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from secops_core.contract import WafEvent
from tests.fixtures.events import simplified
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeNotifier
from worker.errors import ConfigurationError, PermanentError, RetryableError, RuntimeUnavailable
from worker.metrics import Metrics
from worker.pipeline import processor as processor_module
from worker.pipeline.processor import EventProcessor
from worker.store.memory import MemoryStore
from worker.store.records import EventRecord

LEASE_S = 60
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp()


class FlakyStore(MemoryStore):
    """The in-memory store, with errors a test queues per method (raised before acting)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.faults: dict[str, list[BaseException]] = {}

    def fail(self, method: str, *errors: BaseException) -> None:
        self.faults.setdefault(method, []).extend(errors)

    def _maybe_fail(self, method: str) -> None:
        if self.faults.get(method):
            raise self.faults[method].pop(0)

    def claim(self, *args: Any, **kwargs: Any) -> EventRecord:
        self._maybe_fail("claim")
        return super().claim(*args, **kwargs)

    def save_analysis(self, *args: Any, **kwargs: Any) -> EventRecord:
        self._maybe_fail("save_analysis")
        return super().save_analysis(*args, **kwargs)

    def mark_notified(self, *args: Any, **kwargs: Any) -> bool:
        self._maybe_fail("mark_notified")
        return super().mark_notified(*args, **kwargs)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # The small-write retries sleep 0.1 s, 0.3 s ...; the branches are what matters here.
    monkeypatch.setattr(processor_module, "_SMALL_WRITE_BACKOFF_S", 0.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(clock: FakeClock) -> FlakyStore:
    return FlakyStore(clock)


@pytest.fixture
def agents() -> FakeAgents:
    return FakeAgents()


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(enabled=False)


def make_processor(
    store: MemoryStore,
    agents: FakeAgents,
    notifier: FakeNotifier,
    metrics: Metrics,
    *,
    fallback_to_rules: bool = False,
) -> EventProcessor:
    return EventProcessor(
        store=store,
        agents=agents,
        notifier=notifier,
        owner="w1",
        lease_s=LEASE_S,
        fallback_to_rules=fallback_to_rules,
        metrics=metrics,
    )


@pytest.fixture
def processor(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics
) -> EventProcessor:
    return make_processor(store, agents, notifier, metrics)


def body(event_id: str = "e1", **extra: Any) -> str:
    return json.dumps(simplified(event_id, **extra))


# ---- the happy path, one test per triage status ------------------------------------------


@pytest.mark.parametrize(
    ("severity", "status"),
    [(0, "closed"), (2, "closed"), (3, "monitoring")],
)
def test_a_new_event_is_analyzed_triaged_and_released(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, severity: int, status: str
) -> None:
    # GIVEN an analyst that rates the event `severity`
    agents.analyst.severity = severity
    # WHEN a new event is processed
    outcome = processor.process(body(), "m1")
    # THEN it is done in its triage status, the model was asked once, and the final
    # write gave the lease back
    assert (outcome.kind, outcome.status, outcome.severity) == ("done", status, severity)
    assert outcome.ack and outcome.model_called and outcome.lease_released
    record = store.get("evt#e1")
    assert record is not None and record.status == status and record.lease_expires_at == 0
    assert agents.analyst.calls == 1


def test_an_escalation_is_notified_once_and_marked(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier
) -> None:
    # GIVEN an analyst that rates the event 5
    agents.analyst.severity = 5
    # WHEN it is processed
    outcome = processor.process(body(), "m1")
    # THEN it is escalated, published once, marked, and the lease is released after
    assert (outcome.kind, outcome.status, outcome.notified) == ("done", "escalated", True)
    assert notifier.escalations == ["evt#e1"]
    record = store.get("evt#e1")
    assert record is not None
    assert record.notification_id == "msg-1" and not record.needs_notification
    assert record.lease_expires_at == 0


def test_the_worker_triages_from_the_stored_severity(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents
) -> None:
    # GIVEN an analyst rating 4 (its own response carries a triage the worker does not read)
    agents.analyst.severity = 4
    # WHEN processed THEN the stored triage follows the stored severity
    processor.process(body(), "m1")
    record = store.get("evt#e1")
    assert record is not None and record.triage is not None and record.analysis is not None
    assert record.triage.severity_rating == record.analysis.severity_rating == 4
    assert record.triage.action == "escalate"


# ---- redeliveries --------------------------------------------------------------------------


def test_a_duplicate_is_acknowledged_without_a_model_call(
    processor: EventProcessor, agents: FakeAgents, notifier: FakeNotifier
) -> None:
    # GIVEN an event escalated and notified
    agents.analyst.severity = 5
    processor.process(body(), "m1")
    # WHEN the same event arrives again (a redelivery with a new message id)
    outcome = processor.process(body(), "m2")
    # THEN it is a duplicate: acknowledged, no model call, no second notice
    assert (outcome.kind, outcome.status, outcome.severity) == ("duplicate", "escalated", 5)
    assert outcome.ack and not outcome.model_called
    assert agents.analyst.calls == 1 and notifier.escalations == ["evt#e1"]


def test_a_saved_analysis_is_resumed_without_a_model_call(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, clock: FakeClock
) -> None:
    # GIVEN a worker that saved the analysis and died before triage (its lease expired)
    event = _parsed_event(body())
    store.claim(event, owner="dead#1", lease_s=LEASE_S, message_id="m1")
    analysis = FakeAgents().analyst.analyze(event).analysis.model_copy(update={"severity_rating": 2})
    store.save_analysis("evt#e1", owner="dead#1", analysis=analysis)
    clock.advance(LEASE_S + 1)
    # WHEN the redelivery is processed
    outcome = processor.process(body(), "m2")
    # THEN it resumes at triage: done, and this worker's model was never called
    assert (outcome.kind, outcome.status) == ("done", "closed")
    assert not outcome.model_called and agents.analyst.calls == 0


def test_an_escalation_left_unnotified_is_notified_on_redelivery(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics
) -> None:
    # GIVEN a first delivery whose publish failed after the escalation was stored
    agents.analyst.severity = 5
    notifier.errors.append(RetryableError("sns down", reason="notify_failed"))
    processor = make_processor(store, agents, notifier, metrics)
    first = processor.process(body(), "m1")
    # THEN that delivery is retried, with the lease given back at once
    assert (first.kind, first.reason) == ("retry", "notify_failed")
    record = store.get("evt#e1")
    assert record is not None and record.needs_notification and record.lease_expires_at == 0
    # WHEN the redelivery arrives
    second = processor.process(body(), "m2")
    # THEN it notifies once, without a second model call
    assert (second.kind, second.notified, second.model_called) == ("done", True, False)
    assert notifier.escalations == ["evt#e1"] and agents.analyst.calls == 1


def test_a_live_lease_elsewhere_backs_off_for_its_remainder(
    processor: EventProcessor, store: FlakyStore, clock: FakeClock
) -> None:
    # GIVEN another consumer claimed the event 20 s ago
    store.claim(_parsed_event(body()), owner="w2#x", lease_s=LEASE_S, message_id="m1")
    clock.advance(20)
    # WHEN a copy reaches this worker
    outcome = processor.process(body(), "m2")
    # THEN it comes back once the other lease has run out, not acknowledged
    assert (outcome.kind, outcome.reason, outcome.delay_s) == ("in_progress", "in_progress", 40)
    assert not outcome.ack


def test_a_duplicate_copy_learns_the_lease_is_another_deliverys(
    processor: EventProcessor, store: FlakyStore
) -> None:
    # GIVEN another delivery (message m1) holds a live lease on the event
    store.claim(_parsed_event(body()), owner="w2#x", lease_s=LEASE_S, message_id="m1")
    # WHEN a copy of the event sent as another message (m2) arrives
    outcome = processor.process(body(), "m2")
    # THEN the outcome says the holder is another delivery, so the copy may look again soon
    assert (outcome.kind, outcome.lease_held_by_other) == ("in_progress", True)


def test_a_redelivery_of_the_holders_own_message_is_not_a_duplicate_copy(
    processor: EventProcessor, store: FlakyStore
) -> None:
    # GIVEN message m1 claimed the event and its work is still running
    store.claim(_parsed_event(body()), owner="w2#x", lease_s=LEASE_S, message_id="m1")
    # WHEN m1 itself is delivered again (its visibility ran out)
    outcome = processor.process(body(), "m1")
    # THEN it waits for the lease like before: its holder is at work on it
    assert (outcome.kind, outcome.lease_held_by_other) == ("in_progress", False)


def test_a_retry_carries_the_events_own_attempts(processor: EventProcessor, store: FlakyStore) -> None:
    # GIVEN the analysis write fails on the first two deliveries
    store.fail("save_analysis", *[RetryableError("throttled", reason="store_unavailable")] * 2)
    # WHEN the event is delivered twice
    first = processor.process(body(), "m1")
    second = processor.process(body(), "m1")
    # THEN each retry counts the claims the store recorded, 1 then 2
    assert [(o.kind, o.attempts) for o in (first, second)] == [("retry", 1), ("retry", 2)]


def test_a_failed_claim_knows_no_attempts(processor: EventProcessor, store: FlakyStore) -> None:
    # GIVEN the store refuses the claim
    store.fail("claim", RetryableError("throttled", reason="store_unavailable"))
    # WHEN a message arrives THEN its retry names no attempts (the source's count decides)
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.attempts) == ("retry", None)


# ---- rejections ----------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_rejected_under_its_hash(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents
) -> None:
    # WHEN a body that is not JSON is processed
    outcome = processor.process("not json {", "m1")
    # THEN it is rejected under a key derived from the body, with no model call
    assert outcome.kind == "rejected" and not outcome.ack
    assert outcome.event_key is not None and outcome.event_key.startswith("msg#sha256:")
    record = store.get(outcome.event_key)
    assert record is not None and record.status == "rejected"
    assert agents.analyst.calls == 0


def test_a_rejected_event_stays_rejected_on_redelivery(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents
) -> None:
    # GIVEN an event the analyst refused as bad input
    agents.analyst.errors.append(PermanentError("no such field", reason="invalid_event"))
    first = processor.process(body(), "m1")
    assert (first.kind, first.reason, first.lease_released) == ("rejected", "invalid_event", True)
    # WHEN it is delivered again
    second = processor.process(body(), "m2")
    # THEN it is rejected again with the recorded reason, and the model is not asked again
    assert (second.kind, second.reason) == ("rejected", "invalid_event")
    assert agents.analyst.calls == 1
    record = store.get("evt#e1")
    assert record is not None and record.message_ids == ("m1", "m2")


def test_an_event_the_store_refuses_at_the_claim_is_rejected(
    processor: EventProcessor, store: FlakyStore
) -> None:
    # GIVEN a valid event the store cannot keep (too large for an item)
    store.fail("claim", PermanentError("too large", reason="event_too_large"))
    # WHEN processed THEN it is rejected, keyed by its event key, with an excerpt only
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.reason) == ("rejected", "event_too_large")
    record = store.get("evt#e1")
    assert record is not None and record.status == "rejected"


def test_a_monitor_request_is_not_a_queue_message(processor: EventProcessor) -> None:
    outcome = processor.process(json.dumps({"action": "monitor", "hours": 1, "events": []}), "m1")
    assert (outcome.kind, outcome.reason) == ("rejected", "unsupported_action")


# ---- failures at each step -------------------------------------------------------------------


def test_a_store_outage_at_the_claim_is_retried(processor: EventProcessor, store: FlakyStore) -> None:
    store.fail("claim", RetryableError("throttled", reason="store_unavailable"))
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.reason) == ("retry", "store_unavailable")


def test_a_missing_table_opens_the_circuit_instead_of_rejecting(
    processor: EventProcessor, store: FlakyStore
) -> None:
    # GIVEN a deployment whose table is missing WHEN an event arrives
    store.fail("claim", ConfigurationError("no table", reason="store_misconfigured"))
    outcome = processor.process(body(), "m1")
    # THEN the event is not at fault: unavailable, never rejected
    assert (outcome.kind, outcome.reason) == ("unavailable", "store_misconfigured")


def test_a_runtime_outage_is_unavailable_and_frees_the_lease(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents
) -> None:
    agents.analyst.errors.append(RuntimeUnavailable("down", reason="runtime_unavailable", delay_s=7))
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.delay_s) == ("unavailable", 7)
    record = store.get("evt#e1")
    assert record is not None and record.status == "processing" and record.lease_expires_at == 0


def test_a_runtime_outage_falls_back_to_rules_when_configured(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics
) -> None:
    # GIVEN a worker configured to fall back to the rules WHEN the runtime is down
    agents.analyst.errors.append(RuntimeUnavailable("down", reason="runtime_unavailable"))
    processor = make_processor(store, agents, notifier, metrics, fallback_to_rules=True)
    outcome = processor.process(body(), "m1")
    # THEN the floor decides, marked degraded, and the event is done
    assert (outcome.kind, outcome.degraded, outcome.model_called) == ("done", True, False)
    assert metrics.total("DegradedAnalyses") == 1


def test_a_lost_analysis_write_is_retried_and_asks_the_model_again(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents
) -> None:
    # GIVEN the write of the analysis fails once
    store.fail("save_analysis", RetryableError("throttled", reason="store_unavailable"))
    first = processor.process(body(), "m1")
    # THEN the delivery is retried (the model was called) and the lease is free
    assert (first.kind, first.model_called) == ("retry", True)
    # WHEN it comes back THEN nothing was saved, so the model is asked again
    second = processor.process(body(), "m2")
    assert second.kind == "done" and agents.analyst.calls == 2


def test_a_refused_notification_is_a_deployment_problem(
    processor: EventProcessor, agents: FakeAgents, notifier: FakeNotifier
) -> None:
    agents.analyst.severity = 5
    notifier.errors.append(ConfigurationError("no such topic", reason="notify_misconfigured"))
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.reason) == ("unavailable", "notify_misconfigured")


def test_a_notification_mark_is_retried_so_the_notice_is_not_sent_twice(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier
) -> None:
    # GIVEN the mark after a successful publish fails twice
    agents.analyst.severity = 5
    store.fail("mark_notified", *[RetryableError("throttled", reason="store_unavailable")] * 2)
    # WHEN processed THEN the mark is retried in place and the notice went out once
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.notified) == ("done", True)
    assert notifier.escalations == ["evt#e1"]


def test_a_mark_that_keeps_failing_is_retried_later(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents
) -> None:
    agents.analyst.severity = 5
    store.fail("mark_notified", *[RetryableError("throttled", reason="store_unavailable")] * 4)
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.reason) == ("retry", "store_unavailable")


# ---- the triage_only workflow and shutdown -----------------------------------------------------


def test_triage_only_uses_the_triager_not_the_model(processor: EventProcessor, agents: FakeAgents) -> None:
    message = json.dumps(
        {"action": "triage_only", "event": simplified("e1"), "analysis": {"severity_rating": 5}}
    )
    outcome = processor.process(message, "m1")
    assert (outcome.kind, outcome.status, outcome.model_called) == ("done", "escalated", False)
    assert agents.triager.calls == 1 and agents.analyst.calls == 0


def test_release_claims_gives_back_leases_of_abandoned_work(
    processor: EventProcessor, store: FlakyStore
) -> None:
    # GIVEN a claim recorded as in progress (as if its call were still running)
    record = store.claim(_parsed_event(body()), owner="w1#abc", lease_s=LEASE_S, message_id="m1")
    processor._claims["w1#abc"] = record.key
    # WHEN the shutdown gives back the abandoned claims
    assert processor.release_claims() == 1
    # THEN the lease is free and nothing is left to release
    released = store.get(record.key)
    assert released is not None and released.lease_expires_at == 0
    assert processor.release_claims() == 0


def _parsed_event(message: str) -> WafEvent:
    return processor_module.parse_message(message).event
