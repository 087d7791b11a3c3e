"""EventProcessor, branch by branch, over the in-memory store and fake ports.

Every branch of the per-event state machine (docs/architecture.md, "Event state
machine") gets a millisecond test here; tests/integration/test_worker_flow.py runs the
same flow over SQS, DynamoDB and SNS on moto's server.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from secops_core.contract import WafEvent
from testkit.events import simplified
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeNotifier
from worker.errors import ConfigurationError, PermanentError, RetryableError, RuntimeUnavailable
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline import processor as processor_module
from worker.pipeline.outcome import DelayPolicy, Outcome, redelivery_delay
from worker.pipeline.processor import EventProcessor
from worker.pipeline.reuse import AnalysisReuse, SkipPolicy
from worker.platform.metrics import Metrics
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

    def finish(self, *args: Any, **kwargs: Any) -> EventRecord:
        self._maybe_fail("finish")
        return super().finish(*args, **kwargs)

    def link_incident(self, *args: Any, **kwargs: Any) -> bool:
        self._maybe_fail("link_incident")
        return super().link_incident(*args, **kwargs)


class FlakyIncidents(MemoryIncidentRepo):
    """The in-memory incident repository, with join errors a test queues."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(quiet_s=3600, clock=clock)
        self.faults: list[BaseException] = []

    def join(self, *args: Any, **kwargs: Any) -> Any:
        if self.faults:
            raise self.faults.pop(0)
        return super().join(*args, **kwargs)


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
def incidents(clock: FakeClock) -> FlakyIncidents:
    return FlakyIncidents(clock)


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
    incidents: MemoryIncidentRepo | None = None,
    fallback_to_rules: bool = False,
    **economy: Any,
) -> EventProcessor:
    return EventProcessor(
        store=store,
        agents=agents,
        notifier=notifier,
        # No batching window: one thread, and the join answers at once.
        incidents=IncidentJoiner(incidents or MemoryIncidentRepo(quiet_s=3600), window_s=0),
        owner="w1",
        lease_s=LEASE_S,
        fallback_to_rules=fallback_to_rules,
        metrics=metrics,
        **economy,
    )


@pytest.fixture
def processor(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics, incidents: FlakyIncidents
) -> EventProcessor:
    return make_processor(store, agents, notifier, metrics, incidents=incidents)


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


def test_an_escalation_opens_an_incident_notified_at_once(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier
) -> None:
    # GIVEN an analyst that rates the event 5
    agents.analyst.severity = 5
    # WHEN it is processed
    outcome = processor.process(body(), "m1")
    # THEN it is escalated into a new incident whose opening is published at once; the
    # event keeps the incident's id and the notice, and the lease is free
    assert (outcome.kind, outcome.status, outcome.notified) == ("done", "escalated", True)
    record = store.get("evt#e1")
    assert record is not None and record.incident_id is not None
    assert notifier.incidents == [(record.incident_id, "opened")]
    assert record.notification_id == "inc-1" and not record.needs_notification
    assert record.lease_expires_at == 0


def test_one_attack_is_one_incident_notified_per_milestone(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier
) -> None:
    # GIVEN one source sending 12 escalated requests of one attack class
    agents.analyst.severity = 5
    # WHEN they are processed
    outcomes = [processor.process(body(f"e{n}"), f"m{n}") for n in range(12)]
    # THEN all join one incident, notified when it opened and when it reached 10 events
    assert all(o.status == "escalated" for o in outcomes)
    records = [store.get(f"evt#e{n}") for n in range(12)]
    incident_ids = {r.incident_id for r in records if r is not None}
    assert len(incident_ids) == 1 and None not in incident_ids
    (incident_id,) = incident_ids
    assert notifier.incidents == [(incident_id, "opened"), (incident_id, "growth:10")]
    assert [o.notified for o in outcomes].count(True) == 2


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
    assert agents.analyst.calls == 1 and [m for _, m in notifier.incidents] == ["opened"]


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
    store: FlakyStore,
    agents: FakeAgents,
    notifier: FakeNotifier,
    metrics: Metrics,
    incidents: FlakyIncidents,
) -> None:
    # GIVEN a first delivery whose publish failed after the event joined its incident
    agents.analyst.severity = 5
    notifier.errors.append(RetryableError("sns down", reason="notify_failed"))
    processor = make_processor(store, agents, notifier, metrics, incidents=incidents)
    first = processor.process(body(), "m1")
    # THEN that delivery is retried, unlinked, with the lease given back at once
    assert (first.kind, first.reason) == ("retry", "notify_failed")
    record = store.get("evt#e1")
    assert record is not None and record.needs_notification and record.lease_expires_at == 0
    # WHEN the redelivery arrives
    second = processor.process(body(), "m2")
    # THEN it joins again (counted once), sends the opening it was owed, and links,
    # without a second model call
    assert (second.kind, second.notified, second.model_called) == ("done", True, False)
    record = store.get("evt#e1")
    assert record is not None and record.incident_id is not None
    assert notifier.incidents == [(record.incident_id, "opened")] and agents.analyst.calls == 1
    incident = incidents.get(record.incident_id)
    assert incident is not None and incident.count == 1


def test_a_redelivered_escalation_without_its_link_joins_again_counted_once(
    processor: EventProcessor,
    store: FlakyStore,
    agents: FakeAgents,
    notifier: FakeNotifier,
    incidents: FlakyIncidents,
) -> None:
    # GIVEN an escalation that joined and was notified, but whose one write after the
    # model call (analysis, triage and link) failed
    agents.analyst.severity = 5
    store.fail("finish", RetryableError("throttled", reason="store_unavailable"))
    first = processor.process(body(), "m1")
    assert (first.kind, first.reason) == ("retry", "store_unavailable")
    # WHEN it is redelivered
    second = processor.process(body(), "m2")
    # THEN it is linked to the same incident, which counted it once and notified once
    record = store.get("evt#e1")
    assert second.kind == "done" and record is not None and record.incident_id is not None
    incident = incidents.get(record.incident_id)
    assert incident is not None and incident.count == 1
    assert notifier.incidents == [(record.incident_id, "opened")]


def test_a_join_outage_is_retried_and_leaves_the_event_unlinked(
    processor: EventProcessor, store: FlakyStore, agents: FakeAgents, incidents: FlakyIncidents
) -> None:
    # GIVEN the incident store refuses one join
    agents.analyst.severity = 5
    incidents.faults.append(RetryableError("contended", reason="store_contended"))
    # WHEN the escalation is processed THEN the delivery is retried, the event unlinked
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, outcome.reason) == ("retry", "store_contended")
    record = store.get("evt#e1")
    assert record is not None and record.status == "escalated" and record.needs_notification
    # AND the redelivery links it
    assert processor.process(body(), "m2").kind == "done"
    linked = store.get("evt#e1")
    assert linked is not None and linked.incident_id is not None


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
    store.fail("finish", *[RetryableError("throttled", reason="store_unavailable")] * 2)
    # WHEN the event is delivered twice
    first = processor.process(body(), "m1")
    second = processor.process(body(), "m1")
    # THEN each retry counts the claims the store recorded, 1 then 2
    assert [(o.kind, o.attempts) for o in (first, second)] == [("retry", 1), ("retry", 2)]


def test_a_retry_after_a_gap_longer_than_any_retry_waits_starts_a_new_episode(
    store: FlakyStore,
    agents: FakeAgents,
    notifier: FakeNotifier,
    metrics: Metrics,
    clock: FakeClock,
) -> None:
    # GIVEN a processor whose retries are seen again within 100 s
    processor = make_processor(store, agents, notifier, metrics, retry_episode_gap_s=100)
    # AND an event whose analysis write failed on three deliveries, 50 s apart
    store.fail("finish", *[RetryableError("throttled", reason="store_unavailable")] * 4)
    early = []
    for _ in range(3):
        early.append(processor.process(body(), "m1").attempts)
        clock.advance(50)
    # WHEN it comes back a day later (a DLQ replay) and fails again
    clock.advance(86_400)
    replayed = processor.process(body(), "m1")
    # THEN the replay's retry is the first of a new episode: it backs off from the base
    assert early == [1, 2, 3]
    assert (replayed.kind, replayed.attempts) == ("retry", 1)
    policy = DelayPolicy(base_s=10, max_s=600)
    assert redelivery_delay(replayed, receive_count=15, policy=policy) == 10
    record = store.get(_parsed_event(body()).event_key)
    assert record is not None and (record.attempts, record.episode_attempts) == (4, 1)


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
    store.fail("finish", RetryableError("throttled", reason="store_unavailable"))
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


# ---- model economy and the fast path ---------------------------------------------------------


def test_an_event_decided_by_in_process_rules_takes_one_write(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics
) -> None:
    # GIVEN a runtime that answers without a model
    processor = make_processor(store, agents, notifier, metrics, model_free=True)
    # WHEN an event is processed
    outcome = processor.process(body(), "m1")
    # THEN it went from absent to its triage status in one write, without a lease
    assert (outcome.kind, outcome.status, outcome.model_called) == ("done", "monitoring", False)
    record = store.get("evt#e1")
    assert record is not None and record.status == "monitoring" and record.attempts == 1
    assert [a["action"] for a in record.backend_actions] == ["decided"]
    assert record.lease_owner is None and record.lease_expires_at == 0
    # AND it is in the monitoring index like any monitored event
    window = store.iter_monitoring(since=datetime(2000, 1, 1, tzinfo=UTC), until=_far())
    assert [r.key for r in window] == ["evt#e1"]


def test_a_model_free_runtime_is_asked_instead_of_reading_saved_analyses(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics, clock: FakeClock
) -> None:
    # GIVEN a model-free runtime, reuse on, and a store that cannot read saved analyses
    reuse = AnalysisReuse(store, window_s=900, clock=clock)
    processor = make_processor(store, agents, notifier, metrics, model_free=True, reuse=reuse)
    store.get_signature = _unreadable  # type: ignore[method-assign]
    # WHEN an event is processed THEN the runtime decides it, no saved analysis is read
    outcome = processor.process(body(), "m1")
    assert (outcome.kind, agents.analyst.calls) == ("done", 1)


def _unreadable(signature: str) -> None:
    raise AssertionError("a model-free runtime needs no saved analysis")


def test_a_fast_escalation_is_written_linked_to_its_incident(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics, incidents: FlakyIncidents
) -> None:
    # GIVEN a model-free runtime and an event it escalates (reached the app)
    processor = make_processor(store, agents, notifier, metrics, incidents=incidents, model_free=True)
    # WHEN processed
    outcome = processor.process(body(action="ALLOW"), "m1")
    # THEN the one write carries the incident, whose opening was notified
    assert (outcome.status, outcome.notified) == ("escalated", True)
    record = store.get("evt#e1")
    assert record is not None and record.incident_id is not None and not record.needs_notification
    assert [a["action"] for a in record.backend_actions] == ["decided"]
    assert notifier.incidents == [(record.incident_id, "opened")]
    # AND a redelivery is a duplicate, counted once by the incident
    again = processor.process(body(action="ALLOW"), "m2")
    assert again.kind == "duplicate"
    incident = incidents.get(record.incident_id)
    assert incident is not None and incident.count == 1 and len(notifier.incidents) == 1


def test_events_of_one_signature_reuse_the_first_analysis(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics, clock: FakeClock
) -> None:
    # GIVEN reuse on, and the model's analysis of one event
    reuse = AnalysisReuse(store, window_s=900, clock=clock)
    processor = make_processor(store, agents, notifier, metrics, reuse=reuse)
    first = processor.process(body("e1", source_ip="198.51.100.1"), "m1")
    assert first.model_called
    # WHEN the same attack comes from another address
    second = processor.process(body("e2", source_ip="203.0.113.9"), "m2")
    # THEN the model is not asked again: the analysis is reused, rendered for the event,
    # and the event is written once
    assert (second.kind, second.model_called) == ("done", False)
    assert agents.analyst.calls == 1
    record = store.get("evt#e2")
    assert record is not None and record.analysis is not None
    assert (record.analysis.analyzed_by, record.reused_from) == ("reuse", "evt#e1")
    assert "203.0.113.9" in record.analysis.security_analysis
    assert [a["action"] for a in record.backend_actions] == ["decided"]
    assert metrics.total("AnalysesReused") == 1


def test_events_of_one_signature_arriving_together_make_one_model_call(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics, clock: FakeClock
) -> None:
    # GIVEN reuse on, and a model that answers only once the other events have arrived
    reuse = AnalysisReuse(store, window_s=900, clock=clock)
    processor = make_processor(store, agents, notifier, metrics, reuse=reuse)
    asked, answer = threading.Event(), threading.Event()
    real_analyze = agents.analyst.analyze

    def slow_analyze(*args: Any, **kwargs: Any) -> Any:
        asked.set()
        answer.wait(timeout=10)
        return real_analyze(*args, **kwargs)

    agents.analyst.analyze = slow_analyze  # type: ignore[method-assign]
    outcomes: list[Outcome] = []
    # WHEN five events of one attack from five addresses arrive at once
    threads = [
        threading.Thread(
            target=lambda n=n: outcomes.append(
                processor.process(body(f"e{n}", source_ip=f"203.0.113.{n}"), f"m{n}")
            )
        )
        for n in range(5)
    ]
    for thread in threads:
        thread.start()
    assert asked.wait(timeout=10)
    time.sleep(0.1)  # the others are at the lead by now (or past it: they wait either way)
    answer.set()
    for thread in threads:
        thread.join(timeout=10)
    # THEN the model is asked once; the others reuse its answer
    assert agents.analyst.calls == 1
    assert sorted(o.model_called for o in outcomes) == [False, False, False, False, True]
    assert all(o.kind == "done" for o in outcomes)


def test_without_reuse_every_event_asks_the_model(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics
) -> None:
    processor = make_processor(store, agents, notifier, metrics, reuse=None)
    processor.process(body("e1", source_ip="198.51.100.1"), "m1")
    processor.process(body("e2", source_ip="203.0.113.9"), "m2")
    assert agents.analyst.calls == 2


def test_an_event_nothing_matched_skips_the_model(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics
) -> None:
    # GIVEN skipping on WHEN a request no rule matched arrives
    processor = make_processor(store, agents, notifier, metrics, skip=SkipPolicy())
    outcome = processor.process(body(action="ALLOW", rule_name=""), "m1")
    # THEN the rules close it without a model call, in one write
    assert (outcome.status, outcome.model_called, agents.analyst.calls) == ("closed", False, 0)
    record = store.get("evt#e1")
    assert record is not None and record.analysis is not None
    assert record.analysis.analyzed_by == "skipped"


def test_a_fast_path_event_that_has_a_record_takes_the_full_path(
    store: FlakyStore, agents: FakeAgents, notifier: FakeNotifier, metrics: Metrics, clock: FakeClock
) -> None:
    # GIVEN an event another consumer holds (claimed, not finished)
    store.claim(_parsed_event(body()), owner="w2#x", lease_s=LEASE_S, message_id="m1")
    processor = make_processor(store, agents, notifier, metrics, model_free=True)
    # WHEN a copy is decided without a model
    outcome = processor.process(body(), "m2")
    # THEN the one write does not overwrite it: the full path backs off for the lease
    assert outcome.kind == "in_progress"
    record = store.get("evt#e1")
    assert record is not None and record.status == "processing"


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


def _far() -> datetime:
    return datetime(2100, 1, 1, tzinfo=UTC)


def _parsed_event(message: str) -> WafEvent:
    return processor_module.parse_message(message).event
