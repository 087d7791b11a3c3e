"""The store's contract: the state machine, the monitoring window, the races the
conditional writes exist for, patterns and slot locks.

Every test taking ``store`` runs twice: against DynamoDB (moto's server over HTTP) and
against the in-memory store the unit tests use, so the two cannot drift apart. Tests
taking ``dynamo_store`` are about DynamoDB itself (the table, paging, batch reads).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import worker.platform.aws
from secops_core.contract import Analysis, Pattern, TriageDecision, WafEvent
from tests.fixtures.fakes import FakeClock
from tests.fixtures.moto_server import free_port
from worker.errors import AlreadyInProgress, ConfigurationError, PermanentError, RetryableError, WorkerError
from worker.store import EventRecord, rejection_key
from worker.store.dynamodb import EventStore
from worker.store.dynamodb.table import to_attr
from worker.store.keys import MAX_PATTERN_EVENT_KEYS, monitoring_sort_key
from worker.store.memory import MemoryStore
from worker.store.records import Decided, SavedAnalysis

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LEASE_S = 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0.timestamp())


@pytest.fixture
def dynamo_store(dynamodb: Any, unique: str, clock: FakeClock) -> EventStore:
    store = EventStore(f"secops-test-{unique}", client=dynamodb, clock=clock)
    store.create_table()
    return store


Store = EventStore | MemoryStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Store:
    if request.param == "memory":
        return MemoryStore(clock=clock)
    dynamo: EventStore = request.getfixturevalue("dynamo_store")
    return dynamo


def stored_excerpt(store: Store, key: str) -> str:
    """The raw excerpt attribute, which no record exposes."""
    if isinstance(store, MemoryStore):
        return str(store._items[key]["excerpt"])
    item = store._get_item(key)
    assert item is not None
    return str(item["excerpt"]["S"])


def make_event(n: int = 1, *, at: datetime = T0, ip: str = "203.0.113.7") -> WafEvent:
    return WafEvent(
        event_key=f"evt#{n}",
        source_format="simplified",
        event_id=str(n),
        timestamp=at,
        action="ALLOW",
        source_ip=ip,
        uri="/login",
        rule_name="SQLi_BODY",
        user_agent="",  # empty strings must survive the store
    )


ANALYSIS = Analysis(
    severity_rating=4,
    severity_floor=4,
    model_severity=3,
    security_analysis="SQL injection reached the application.",
    follow_up_suggestion="Check the login handler's queries.",
    attack_type="sqli",
    analyzed_by="rules",
)
ESCALATE = TriageDecision(action="escalate", status="escalated", severity_rating=4, reason="4-5")
MONITOR = TriageDecision(action="monitor", status="monitoring", severity_rating=3, reason="3")
CLOSE = TriageDecision(action="auto_close", status="closed", severity_rating=1, reason="0-2")


def to_status(store: Store, event: WafEvent, decision: TriageDecision) -> EventRecord:
    """Walk one event along the happy path to the decision's status."""
    store.claim(event, owner="w1", lease_s=LEASE_S, message_id=f"m-{event.event_key}")
    store.save_analysis(event.event_key, owner="w1", analysis=ANALYSIS)
    return store.apply_triage(event.event_key, owner="w1", decision=decision)


def race(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run ``attempt(i)`` in n threads released at the same instant; results or errors."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return attempt(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


# ---- table -----------------------------------------------------------------------------


def test_create_table_is_idempotent(dynamo_store: EventStore) -> None:
    # GIVEN the table the fixture created
    # WHEN setup runs again
    created = dynamo_store.create_table()
    # THEN nothing is created and TTL is on
    assert created is False
    ttl = dynamo_store._client.describe_time_to_live(TableName=dynamo_store.table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"


def test_missing_table_is_a_clear_configuration_error(aws_endpoint: str, unique: str) -> None:
    # GIVEN a store whose table was never created
    store = EventStore(f"absent-{unique}")
    # WHEN it reads
    with pytest.raises(ConfigurationError) as raised:
        store.get("evt#1")
    # THEN the deployment is at fault: the error names the table and the fix, not retryable
    assert raised.value.reason == "store_misconfigured"
    assert "secops setup" in raised.value.message
    assert not isinstance(raised.value, RetryableError)


def test_unreachable_endpoint_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an endpoint nobody listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    client = worker.platform.aws.client("dynamodb", connect_timeout=0.5, max_attempts=1)
    # WHEN the store calls it
    with pytest.raises(RetryableError) as raised:
        EventStore("t", client=client).get("evt#1")
    # THEN the consumer is told to retry later
    assert raised.value.reason == "store_unavailable"


# ---- claim and leases ------------------------------------------------------------------


def test_claim_on_absent_event_creates_processing(store: Store, clock: FakeClock) -> None:
    # GIVEN no record WHEN w1 claims
    record = store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # THEN the record is processing, leased to w1, and keeps the event intact
    assert record.status == "processing"
    assert record.attempts == 1
    assert record.lease_owner == "w1"
    assert record.lease_expires_at == clock.now + LEASE_S
    assert record.lease_live(clock.now)
    assert record.event == make_event()
    assert record.message_ids == ("m1",)
    assert not record.is_terminal and not record.needs_notification


def test_second_owner_backs_off_while_the_lease_is_live(store: Store, clock: FakeClock) -> None:
    # GIVEN w1 holds the lease, 20 s into it
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    clock.advance(20)
    # WHEN w2 claims the same event
    with pytest.raises(AlreadyInProgress) as raised:
        store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # THEN it learns how long the lease has left, and the record is untouched
    assert raised.value.lease_expires_in_s == pytest.approx(LEASE_S - 20)
    record = store.get("evt#1")
    assert record is not None
    assert (record.lease_owner, record.attempts, record.message_ids) == ("w1", 1, ("m1",))


def test_another_owner_claims_after_the_lease_expires(store: Store, clock: FakeClock) -> None:
    # GIVEN w1 claimed and died
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # WHEN the lease has expired and w2 claims (from a redelivery with a new message id)
    clock.advance(LEASE_S + 1)
    record = store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # THEN w2 holds it, the attempt is counted, both messages are recorded
    assert record.lease_owner == "w2"
    assert record.attempts == 2
    assert record.status == "processing"
    assert record.message_ids == ("m1", "m2")


def test_a_claim_after_a_long_gap_starts_a_new_retry_episode(store: Store, clock: FakeClock) -> None:
    # GIVEN an event claimed three times, each just after the last lease expired
    gap_s = 2 * LEASE_S
    for n in range(3):
        claimed = store.claim(
            make_event(), owner=f"w{n}", lease_s=LEASE_S, message_id="m1", episode_gap_s=gap_s
        )
        clock.advance(LEASE_S + 1)
    assert (claimed.attempts, claimed.episode_attempts) == (3, 3)
    # WHEN it is claimed again longer than the gap after the last claim (a replay)
    clock.advance(gap_s)
    replayed = store.claim(make_event(), owner="w3", lease_s=LEASE_S, message_id="m2", episode_gap_s=gap_s)
    # THEN every claim is still counted, but the episode starts again at its first attempt
    assert (replayed.attempts, replayed.episode_attempts, replayed.lease_owner) == (4, 1, "w3")
    # AND a retry soon after continues the new episode, as the store keeps it
    clock.advance(LEASE_S + 1)
    retried = store.claim(make_event(), owner="w4", lease_s=LEASE_S, message_id="m2", episode_gap_s=gap_s)
    assert (retried.attempts, retried.episode_attempts) == (5, 2)
    stored = store.get("evt#1")
    assert stored is not None and stored.episode_attempts == 2


def test_release_only_acts_on_our_own_lease(store: Store, clock: FakeClock) -> None:
    # GIVEN w1 holds the lease
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # WHEN w2 tries to release it, THEN nothing changes
    store.release("evt#1", owner="w2")
    assert store.get("evt#1").lease_live(clock.now)  # type: ignore[union-attr]
    # WHEN w1 releases it THEN w2 can claim at once, without waiting for expiry
    store.release("evt#1", owner="w1")
    assert store.get("evt#1").lease_expires_at == 0  # type: ignore[union-attr]
    assert store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2").lease_owner == "w2"


def test_eight_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    # GIVEN one event delivered to eight consumers at once
    # WHEN all claim at the same instant
    results = race(8, lambda i: store.claim(make_event(), owner=f"w{i}", lease_s=LEASE_S, message_id=f"m{i}"))
    # THEN one holds the lease and seven back off
    winners = [r for r in results if isinstance(r, EventRecord)]
    assert len(winners) == 1
    assert sum(isinstance(r, AlreadyInProgress) for r in results) == 7
    assert store.get("evt#1").lease_owner == winners[0].lease_owner  # type: ignore[union-attr]


def test_an_oversized_event_is_refused_before_any_write(store: Store) -> None:
    # GIVEN an event whose JSON would not fit an item
    huge = make_event().model_copy(update={"args": "a" * 300_000})
    # WHEN it is claimed THEN it is bad input, and nothing is stored
    with pytest.raises(PermanentError) as raised:
        store.claim(huge, owner="w1", lease_s=LEASE_S, message_id="m1")
    assert raised.value.reason == "event_too_large"
    assert store.get("evt#1") is None


# ---- the state machine -----------------------------------------------------------------


def test_full_path_to_an_escalation_linked_to_its_incident_once(store: Store) -> None:
    # GIVEN a claimed event
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # WHEN it is analyzed, triaged as an escalation and linked to its incident twice
    analyzed = store.save_analysis("evt#1", owner="w1", analysis=ANALYSIS)
    escalated = store.apply_triage("evt#1", owner="w1", decision=ESCALATE)
    first = store.link_incident("evt#1", owner="w1", incident_id="inc#a#1", notification_id="sns-1")
    second = store.link_incident("evt#1", owner="w1", incident_id="inc#b#1", notification_id="sns-2")
    # THEN every step is recorded, the link only once, and the lease is free
    assert analyzed.status == "analyzed" and analyzed.analysis == ANALYSIS
    assert escalated.status == "escalated" and escalated.triage == ESCALATE
    assert escalated.is_terminal and escalated.needs_notification
    assert (first, second) == (True, False)
    record = store.get("evt#1")
    assert record is not None
    assert not record.needs_notification and record.lease_expires_at == 0
    assert (record.incident_id, record.notification_id) == ("inc#a#1", "sns-1")
    assert [a["action"] for a in record.backend_actions] == [
        "stored_analysis",
        "triaged",
        "linked_incident",
    ]
    assert record.backend_actions[2]["incident_id"] == "inc#a#1"
    # AND the CLI view is plain JSON
    assert json.loads(json.dumps(record.to_dict()))["analysis"]["severity_rating"] == 4


def test_finish_takes_a_claimed_event_to_its_linked_escalation_in_one_write(store: Store) -> None:
    # GIVEN a claimed event
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # WHEN the model's analysis, its triage and the incident are written at once, twice
    analysis = ANALYSIS.model_copy(update={"model_calls": 2})
    first = store.finish(
        "evt#1",
        owner="w1",
        analysis=analysis,
        decision=ESCALATE,
        incident_id="inc#a#1",
        notification_id="sns-1",
    )
    again = store.finish("evt#1", owner="w1", analysis=analysis, decision=ESCALATE, incident_id="inc#b#1")
    # THEN the event is escalated, linked once, its lease free and its model calls counted once
    assert first.status == again.status == "escalated"
    record = store.get("evt#1")
    assert record is not None and not record.needs_notification and record.lease_expires_at == 0
    assert (record.incident_id, record.notification_id, record.model_calls) == ("inc#a#1", "sns-1", 2)
    assert record.analysis == analysis and record.triage == ESCALATE
    # AND its history reads as the three steps did
    assert [a["action"] for a in record.backend_actions] == ["stored_analysis", "triaged", "linked_incident"]


def test_finish_without_an_incident_leaves_the_escalation_to_be_joined(store: Store) -> None:
    # GIVEN a claimed event whose incident join failed
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # WHEN it is finished without a link
    record = store.finish("evt#1", owner="w1", analysis=ANALYSIS, decision=ESCALATE)
    # THEN it is escalated, its analysis kept, waiting for its incident
    assert record.status == "escalated" and record.needs_notification and record.analysis == ANALYSIS
    # AND a redelivery links it
    store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    assert store.link_incident("evt#1", owner="w2", incident_id="inc#a#1", notification_id="sns-1")


def test_finish_as_monitoring_puts_the_event_in_the_monitoring_window(store: Store) -> None:
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    store.finish(
        "evt#1", owner="w1", analysis=ANALYSIS.model_copy(update={"severity_rating": 3}), decision=MONITOR
    )
    assert [r.key for r in store.iter_monitoring(since=T0, until=T0)] == ["evt#1"]


def test_finish_after_the_lease_moved_on_raises_lease_lost(store: Store, clock: FakeClock) -> None:
    # GIVEN w1's lease expired during its model call and w2 claimed the event
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    clock.advance(LEASE_S + 1)
    store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # WHEN w1 finishes THEN it is told, and nothing is written
    with pytest.raises(RetryableError) as lost:
        store.finish("evt#1", owner="w1", analysis=ANALYSIS, decision=ESCALATE)
    assert lost.value.reason == "lease_lost"
    record = store.get("evt#1")
    assert record is not None and record.status == "processing"


def test_a_link_after_the_lease_moved_on_leaves_the_new_lease_alone(store: Store, clock: FakeClock) -> None:
    # GIVEN an escalation whose lease expired while w1 joined its incident, and w2 took it
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    store.save_analysis("evt#1", owner="w1", analysis=ANALYSIS)
    store.apply_triage("evt#1", owner="w1", decision=ESCALATE)
    clock.advance(LEASE_S + 1)
    store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # WHEN w1 links it
    assert store.link_incident("evt#1", owner="w1", incident_id="inc#a#1", notification_id="sns-1")
    # THEN the event is linked and w2 still holds its lease
    record = store.get("evt#1")
    assert record is not None and record.incident_id == "inc#a#1"
    assert record.lease_owner == "w2" and record.lease_expires_at > clock()


# ---- the fast path and saved analyses ---------------------------------------------------


def test_decide_writes_an_absent_event_to_its_status_in_one_put(store: Store) -> None:
    # WHEN an event decided without a model is written
    record = store.decide(Decided(make_event(), ANALYSIS, MONITOR, reused_from="evt#0"), message_id="m1")
    # THEN it is monitored, as the full path would have left it, with no lease
    assert record is not None and record.status == "monitoring"
    stored = store.get("evt#1")
    assert stored is not None and stored.status == "monitoring" and stored.lease_expires_at == 0
    assert (stored.analysis, stored.triage, stored.reused_from) == (ANALYSIS, MONITOR, "evt#0")
    assert stored.message_ids == ("m1",) and stored.attempts == 1
    assert [r.key for r in store.iter_monitoring(since=T0, until=T0)] == ["evt#1"]


def test_decide_never_overwrites_an_existing_record(store: Store) -> None:
    # GIVEN an event another consumer claimed
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    # WHEN a copy is decided on the fast path
    assert store.decide(Decided(make_event(), ANALYSIS, CLOSE), message_id="m2") is None
    # THEN the claim stands
    record = store.get("evt#1")
    assert record is not None and (record.status, record.lease_owner) == ("processing", "w1")


def test_a_decided_escalation_is_written_with_its_incident(store: Store) -> None:
    decided = Decided(make_event(), ANALYSIS, ESCALATE, incident_id="inc#a#1", notification_id="sns-1")
    assert store.decide(decided, message_id="m1") is not None
    record = store.get("evt#1")
    assert record is not None and record.status == "escalated" and not record.needs_notification
    assert (record.incident_id, record.notification_id) == ("inc#a#1", "sns-1")
    with pytest.raises(ValueError, match="incident"):
        store.decide(Decided(make_event(2), ANALYSIS, ESCALATE), message_id="m2")


def test_a_saved_analysis_is_read_back_by_its_signature(store: Store) -> None:
    saved = SavedAnalysis("abc", ANALYSIS, "evt#1", ("evt#1", None, "203.0.113.7"), 1000.5)
    assert store.get_signature("abc") is None
    store.put_signature(saved, ttl_s=900)
    assert store.get_signature("abc") == saved


def test_save_analysis_twice_is_idempotent(store: Store, clock: FakeClock) -> None:
    # GIVEN an event whose analysis is saved
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    first = store.save_analysis("evt#1", owner="w1", analysis=ANALYSIS)
    # WHEN it is saved again (a retry) with a different answer
    clock.advance(5)
    other = ANALYSIS.model_copy(update={"severity_rating": 5})
    second = store.save_analysis("evt#1", owner="w1", analysis=other)
    # THEN the first analysis stands and no second action is recorded
    assert second == first
    assert second.analysis == ANALYSIS


def test_model_calls_add_up_over_unsaved_and_saved_answers(store: Store, clock: FakeClock) -> None:
    # GIVEN an event whose first delivery waited out an outage after 2 model calls
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    waited = store.add_model_calls("evt#1", owner="w1", calls=2)
    # WHEN the next delivery saves an analysis that made 1 more
    clock.advance(LEASE_S + 1)
    store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m1")
    saved = store.save_analysis("evt#1", owner="w2", analysis=ANALYSIS.model_copy(update={"model_calls": 1}))
    # THEN the record counts every call of every delivery, and a repeated save adds nothing
    assert (waited.model_calls, saved.model_calls) == (2, 3)
    again = store.save_analysis("evt#1", owner="w2", analysis=ANALYSIS.model_copy(update={"model_calls": 1}))
    assert again.model_calls == 3


def test_the_lease_holder_extends_its_lease_and_no_one_else_can(store: Store, clock: FakeClock) -> None:
    # GIVEN a claimed event, half way through its lease
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    clock.advance(LEASE_S / 2)
    # WHEN its holder extends it, and another owner tries to
    extended = store.extend_lease("evt#1", owner="w1", lease_s=LEASE_S)
    stolen = store.extend_lease("evt#1", owner="w2", lease_s=LEASE_S)
    # THEN the holder's lease runs a whole lease from now; the other changed nothing
    assert extended and not stolen
    record = store.get("evt#1")
    assert record is not None and record.lease_expires_at == clock() + LEASE_S
    # AND an expired lease cannot be extended (a redelivery may have taken the event)
    clock.advance(LEASE_S + 1)
    assert not store.extend_lease("evt#1", owner="w1", lease_s=LEASE_S)


def test_a_step_after_losing_the_lease_is_retryable(store: Store, clock: FakeClock) -> None:
    # GIVEN w1's lease expired and w2 took the event over
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    clock.advance(LEASE_S + 1)
    store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # WHEN w1 finishes its analysis late
    with pytest.raises(RetryableError) as raised:
        store.save_analysis("evt#1", owner="w1", analysis=ANALYSIS)
    # THEN it is told it lost the lease, and w2's record is untouched
    assert raised.value.reason == "lease_lost"
    assert store.get("evt#1").status == "processing"  # type: ignore[union-attr]


def test_triage_before_analysis_is_refused(store: Store) -> None:
    # GIVEN a claimed, unanalyzed event WHEN its owner triages it THEN that is a bug, loudly
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    with pytest.raises(WorkerError) as raised:
        store.apply_triage("evt#1", owner="w1", decision=CLOSE)
    assert raised.value.reason == "invalid_transition"


def test_a_redelivered_terminal_event_can_be_claimed_and_read(store: Store) -> None:
    # GIVEN an event that is closed and released
    to_status(store, make_event(), CLOSE)
    store.release("evt#1", owner="w1")
    # WHEN a redelivery claims it
    record = store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # THEN the claim succeeds and shows the finished state, so the message can be acked
    assert record.status == "closed" and record.is_terminal


def test_a_finished_event_leased_elsewhere_is_returned_not_refused(store: Store) -> None:
    # GIVEN a closed event whose redelivery w1 is acknowledging right now (live lease)
    to_status(store, make_event(), CLOSE)
    # WHEN another duplicate reaches w2
    record = store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")
    # THEN w2 sees it finished at once, without taking the lease
    assert record.status == "closed" and record.lease_owner == "w1"


def test_an_escalation_not_yet_notified_still_needs_the_lease(store: Store) -> None:
    # GIVEN an escalated event whose notification w1 has not recorded yet
    to_status(store, make_event(), ESCALATE)
    # WHEN a duplicate reaches w2 THEN w2 backs off: a notification is still due
    with pytest.raises(AlreadyInProgress):
        store.claim(make_event(), owner="w2", lease_s=LEASE_S, message_id="m2")


# ---- rejection -------------------------------------------------------------------------


def test_reject_records_bad_input_and_releases_the_lease(store: Store, clock: FakeClock) -> None:
    # GIVEN a claimed event WHEN it turns out to be bad input
    store.claim(make_event(), owner="w1", lease_s=LEASE_S, message_id="m1")
    record = store.reject("evt#1", code="invalid_event", reason="x" * 5000, message_id="m1")
    # THEN it is rejected, the reason is bounded and the lease is free
    assert record.status == "rejected" and record.is_terminal
    assert record.rejection_code == "invalid_event"
    assert len(record.rejection_reason or "") == 1000
    assert not record.lease_live(clock.now)
    assert record.attempts == 2


def test_reject_a_body_that_is_not_json(store: Store) -> None:
    # GIVEN a body that never becomes an event
    body = "\x00not json " + "é" * 5000
    key = rejection_key(body)
    # WHEN it is rejected twice (two deliveries)
    store.reject(key, code="not_json", reason="bad", message_id="m1", excerpt=body)
    record = store.reject(key, code="not_json", reason="bad", message_id="m2", excerpt=body)
    # THEN one record keyed by the body holds both messages and a bounded excerpt
    assert key.startswith("msg#sha256:") and len(key) == len("msg#sha256:") + 40
    assert record.message_ids == ("m1", "m2")
    assert len(stored_excerpt(store, key).encode()) <= 2048


@pytest.mark.parametrize("decision", [CLOSE, MONITOR, ESCALATE], ids=lambda d: d.status)
def test_reject_never_overwrites_a_triaged_event(store: Store, decision: TriageDecision) -> None:
    # GIVEN an event that reached a triage status
    before = to_status(store, make_event(), decision)
    # WHEN a late failure tries to reject it
    after = store.reject("evt#1", code="late", reason="late", message_id="m9")
    # THEN the record is returned unchanged
    assert after == before
    assert after.status == decision.status and after.rejection_code is None


def monitoring_item(n: int, key: str) -> dict[str, Any]:
    """An event item as apply_triage leaves it in `monitoring`, n seconds after T0."""
    event = make_event(n, at=T0 + timedelta(seconds=n)).model_copy(update={"event_key": key})
    return {
        "pk": key,
        "status": "monitoring",
        "attempts": 1,
        "lease_expires_at": 0,
        "event": event.model_dump_json(),
        "mon_pk": "monitoring",
        "mon_sk": monitoring_sort_key(event.timestamp, key),
    }


def put_items(store: EventStore, items: list[dict[str, Any]]) -> None:
    """Write many items fast: BatchWriteItem (25 a call, its limit) from a thread pool."""

    def write(batch: list[dict[str, Any]]) -> None:
        requests = [{"PutRequest": {"Item": {k: to_attr(v) for k, v in i.items()}}} for i in batch]
        response = store._client.batch_write_item(RequestItems={store.table_name: requests})
        assert not response.get("UnprocessedItems")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))


# ---- the monitoring index --------------------------------------------------------------


def test_monitoring_events_are_found_by_time_until_escalated(store: Store) -> None:
    # GIVEN events at 0 h, 1 h, 2 h and 5 h in monitoring, and one closed at 1 h
    for n, hours in ((1, 0), (2, 1), (3, 2), (4, 5)):
        to_status(store, make_event(n, at=T0 + timedelta(hours=hours)), MONITOR)
    to_status(store, make_event(9, at=T0 + timedelta(hours=1)), CLOSE)

    def window() -> list[str]:
        since, until = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
        return [r.key for r in store.iter_monitoring(since=since, until=until)]

    # WHEN the window [1 h, 2 h] is read THEN both bounds are inclusive, oldest first
    assert window() == ["evt#2", "evt#3"]
    # WHEN one of them is escalated by its pattern
    assert store.escalate_from_pattern("evt#2", pattern_key="pat#x", decision=ESCALATE, incident_id="inc#p#1")
    # THEN it leaves the index, carries the pattern and its incident (whose notices
    # cover it), and cannot be escalated twice
    assert window() == ["evt#3"]
    record = store.get("evt#2")
    assert record is not None
    assert (record.status, record.pattern_key, record.needs_notification) == (
        "escalated",
        "pat#x",
        False,
    )
    assert (record.notification_id, record.incident_id) == ("pattern:pat#x", "inc#p#1")
    assert not store.escalate_from_pattern("evt#2", pattern_key="pat#x", decision=ESCALATE, incident_id="i")
    assert not store.escalate_from_pattern("evt#9", pattern_key="pat#x", decision=ESCALATE, incident_id="i")


def test_iter_monitoring_pages_through_1200_events_once_each(dynamo_store: EventStore) -> None:
    # GIVEN 1200 monitoring events
    keys = [f"evt#{n:05d}" for n in range(1200)]
    put_items(dynamo_store, [monitoring_item(n, key) for n, key in enumerate(keys)])
    queries = []
    dynamo_store._client.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.append(1))
    # WHEN they are read 100 at a time
    seen = [
        r.key for r in dynamo_store.iter_monitoring(since=T0, until=T0 + timedelta(hours=1), page_size=100)
    ]
    # THEN each comes exactly once, in time order, over at least 12 pages
    assert seen == keys
    assert len(queries) >= 12


# ---- get_many --------------------------------------------------------------------------


def test_get_many_reads_in_chunks_and_skips_absent_keys(dynamo_store: EventStore) -> None:
    # GIVEN 230 stored events
    put_items(dynamo_store, [monitoring_item(n, f"evt#{n}") for n in range(230)])
    # WHEN 230 stored and 20 absent keys (and a duplicate) are asked for
    wanted = [f"evt#{n}" for n in range(250)] + ["evt#0"]
    found = dynamo_store.get_many(wanted)
    # THEN exactly the stored ones come back, keyed by event key
    assert set(found) == {f"evt#{n}" for n in range(230)}
    assert found["evt#229"].event == make_event(229, at=T0 + timedelta(seconds=229))


# ---- patterns --------------------------------------------------------------------------


def make_pattern(keys: list[str], *, first: int = 0, last: int = 1, rules=("SQLi_BODY",)) -> Pattern:
    return Pattern(
        pattern_key="pat#203.0.113.7#abc",
        source_ip="203.0.113.7",
        normalized_uri="/login",
        count=len(keys),
        first_seen=T0 + timedelta(hours=first),
        last_seen=T0 + timedelta(hours=last),
        rules=tuple(rules),
        event_keys=tuple(keys),
        max_severity=3,
        threshold=5,
        threshold_met=len(keys) >= 5,
        narrative="probe",
    )


def test_upsert_pattern_counts_distinct_events_across_runs(store: Store) -> None:
    # GIVEN a run that saw events 0-3
    store.upsert_pattern(make_pattern([f"evt#{n}" for n in range(4)], first=2, last=3), slot="s1")
    # WHEN the next, overlapping window sees events 2-6 with another rule, earlier and later
    record = store.upsert_pattern(
        make_pattern([f"evt#{n}" for n in range(2, 7)], first=1, last=4, rules=("XSS_BODY",)),
        slot="s2",
    )
    # THEN the count is the union, the span the widest, the rules merged
    assert record.count == 7
    assert record.first_seen == T0 + timedelta(hours=1)
    assert record.last_seen == T0 + timedelta(hours=4)
    assert record.rules == ("SQLi_BODY", "XSS_BODY")
    assert record.event_keys == tuple(f"evt#{n}" for n in range(7))
    assert record.notified_count == 0 and record.notified_at is None


def test_upsert_pattern_count_stays_exact_beyond_the_stored_keys(store: Store) -> None:
    # GIVEN a pattern of 1500 events (more keys than a record shows)
    keys = [f"evt#{n:05d}" for n in range(1500)]
    first = store.upsert_pattern(make_pattern(keys), slot="s1")
    # WHEN the next run sees all of them again plus 10 new ones
    second = store.upsert_pattern(make_pattern(keys + [f"evt#new{n}" for n in range(10)]), slot="s2")
    # THEN the count is exact and the record keeps the most recent keys
    assert first.count == 1500
    assert second.count == 1510
    assert len(second.event_keys) == MAX_PATTERN_EVENT_KEYS
    assert second.event_keys[-1] == "evt#new9"


def test_concurrent_upserts_of_one_pattern_lose_nothing(store: Store) -> None:
    # GIVEN four runs (overlapping slots) with disjoint events of one pattern
    # WHEN they upsert at once
    results = race(
        4,
        lambda i: store.upsert_pattern(make_pattern([f"evt#{i}-{n}" for n in range(10)]), slot=f"s{i}"),
    )
    # THEN every event is counted once
    assert not [r for r in results if isinstance(r, Exception)]
    assert store.get_pattern("pat#203.0.113.7#abc").count == 40  # type: ignore[union-attr]


def test_pattern_notification_is_claimed_once_per_growth_step(store: Store) -> None:
    # GIVEN a stored pattern of 5 events
    store.upsert_pattern(make_pattern([f"evt#{n}" for n in range(5)]), slot="s1")
    key = "pat#203.0.113.7#abc"

    def claim(count: int) -> bool:
        return store.claim_pattern_notification(key, count=count, growth_factor=2.0)

    # WHEN it is first seen THEN notify; the same count again THEN not
    assert claim(5) is True
    assert claim(5) is False
    # WHEN it has grown but not doubled THEN not
    assert claim(9) is False
    # WHEN it has doubled, claimed by two replicas at once THEN exactly one notifies
    assert sorted(race(2, lambda _: claim(10))) == [False, True]
    assert store.get_pattern(key).notified_count == 10  # type: ignore[union-attr]


def test_a_released_notification_claim_is_claimed_again(store: Store) -> None:
    # GIVEN a pattern notified at 5 and claimed again at 10
    store.upsert_pattern(make_pattern([f"evt#{n}" for n in range(5)]), slot="s1")
    key = "pat#203.0.113.7#abc"
    assert store.claim_pattern_notification(key, count=5, growth_factor=2.0) is True
    assert store.claim_pattern_notification(key, count=10, growth_factor=2.0) is True
    # WHEN the publish at 10 fails and the claim is given back
    assert store.release_pattern_notification(key, count=10, previous=5) is True
    # THEN the next run claims it again, and a stale release changes nothing
    assert store.claim_pattern_notification(key, count=10, growth_factor=2.0) is True
    assert store.release_pattern_notification(key, count=7, previous=5) is False
    assert store.get_pattern(key).notified_count == 10  # type: ignore[union-attr]


def test_a_released_first_claim_leaves_the_pattern_never_notified(store: Store) -> None:
    # GIVEN a first claim whose publish failed WHEN it is given back
    store.upsert_pattern(make_pattern([f"evt#{n}" for n in range(5)]), slot="s1")
    key = "pat#203.0.113.7#abc"
    store.claim_pattern_notification(key, count=5, growth_factor=2.0)
    store.release_pattern_notification(key, count=5, previous=0)
    # THEN the pattern reads as never notified
    record = store.get_pattern(key)
    assert record is not None and (record.notified_count, record.notified_at) == (0, None)


def test_notification_claim_for_an_unknown_pattern_is_an_error(store: Store) -> None:
    with pytest.raises(WorkerError) as raised:
        store.claim_pattern_notification("pat#none", count=5, growth_factor=2.0)
    assert raised.value.reason == "pattern_missing"


# ---- slot locks ------------------------------------------------------------------------

LOCK = "lock#monitor#2026-11-25T10:15:00Z"


def test_one_of_eight_replicas_gets_the_slot(store: Store) -> None:
    # GIVEN eight replicas whose schedulers fire for the same slot
    # WHEN all try to lock it at once
    results = race(8, lambda i: store.acquire_lock(LOCK, owner=f"r{i}", ttl_s=300))
    # THEN exactly one runs it
    assert results.count(True) == 1 and results.count(False) == 7


def test_an_expired_lock_is_taken_over_but_a_completed_one_never(store: Store, clock: FakeClock) -> None:
    # GIVEN r1 took the slot and died without completing it
    assert store.acquire_lock(LOCK, owner="r1", ttl_s=300) is True
    assert store.acquire_lock(LOCK, owner="r2", ttl_s=300) is False
    # WHEN the lock has expired THEN r2 takes the slot over
    clock.advance(301)
    assert store.acquire_lock(LOCK, owner="r2", ttl_s=300) is True
    # WHEN r2 completes it (and r1 wakes up and tries to complete it too)
    store.complete_lock(LOCK, owner="r1")
    store.complete_lock(LOCK, owner="r2")
    # THEN nobody runs the slot again, however long after
    clock.advance(3600)
    assert store.acquire_lock(LOCK, owner="r3", ttl_s=300) is False


def test_an_event_escalated_by_the_monitor_has_one_severity_and_says_why(store: Store) -> None:
    # GIVEN a monitored event (its analysis and triage say 3)
    event = make_event(31)
    store.claim(event, owner="w1", lease_s=LEASE_S, message_id="m-31")
    rated_3 = ANALYSIS.model_copy(update={"severity_rating": 3, "severity_floor": 3})
    store.save_analysis(event.event_key, owner="w1", analysis=rated_3)
    record = store.apply_triage(event.event_key, owner="w1", decision=MONITOR)
    assert record.severity == 3 and record.severity_change is None
    # WHEN its pattern crosses the threshold and the monitor escalates it to 4
    decision = ESCALATE.model_copy(update={"reason": "pattern pat#y: 7 monitored events (threshold 5)"})
    escalated_now = store.escalate_from_pattern(
        "evt#31", pattern_key="pat#y", decision=decision, incident_id="inc#y#1"
    )
    assert escalated_now
    # THEN the event has one severity, 4, wherever it is read, and the record says why it
    # is not the analysis's 3
    escalated = store.get("evt#31")
    assert escalated is not None and escalated.analysis is not None
    assert escalated.severity == escalated.triage.severity_rating == 4  # type: ignore[union-attr]
    change = escalated.severity_change
    assert change is not None
    assert (change["from"], change["to"], change["by"], change["pattern_key"]) == (3, 4, "monitor", "pat#y")
    assert change["reason"] == decision.reason and change["at"]
    view = escalated.to_dict()
    assert view["severity"] == 4 and view["severity_change"] == change
    # AND the top-level copy that the console and ad-hoc queries read says 4 too
    if isinstance(store, MemoryStore):
        top = store._items["evt#31"]["severity_rating"]
    else:
        item = store._get_item("evt#31")
        assert item is not None
        top = item["severity_rating"]["N"]
    assert int(top) == 4
