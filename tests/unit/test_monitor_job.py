"""MonitorJob over the in-memory store and fake ports: slots, escalation, notices.

tests/integration/test_monitor_job.py runs it over DynamoDB and SNS on moto's server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secops_core.contract import TriageDecision, WafEvent
from tests.fixtures.agent_samples import simplified_waf_event
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeMonitor, FakeNotifier
from worker.errors import RetryableError
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline.monitor_job import MonitorJob, MonitorStopped
from worker.store.memory import MemoryStore
from worker.store.records import EventRecord

NOW = datetime(2026, 11, 25, 10, 7, tzinfo=UTC)
MONITOR = TriageDecision(action="monitor", status="monitoring", severity_rating=3, reason="3")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(clock=FakeClock(NOW.timestamp()))


def monitored(store: MemoryStore, n: int, *, ip: str = "198.51.100.23") -> list[EventRecord]:
    """``n`` events from ``ip`` to one URI, walked to `monitoring`, a minute apart."""
    records = []
    for i in range(n):
        event: WafEvent = simplified_waf_event(id=f"{ip}-{i}", source_ip=ip, uri=f"/item/{i}").model_copy(
            update={"timestamp": NOW - timedelta(minutes=i + 1)}
        )
        record = store.claim(event, owner="w", lease_s=60, message_id=f"m{i}")
        analysis = FakeAgents().analyst.analyze(event).analysis.model_copy(update={"severity_rating": 3})
        store.save_analysis(record.key, owner="w", analysis=analysis)
        records.append(store.apply_triage(record.key, owner="w", decision=MONITOR, release=True))
    return records


def job(store: MemoryStore, notifier: FakeNotifier, *, owner: str = "r1") -> MonitorJob:
    return MonitorJob(
        store=store,
        monitor_agent=FakeMonitor(),
        notifier=notifier,
        incidents=IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=0),
        owner=owner,
        interval_s=300,
        hours=24,
        threshold=5,
        growth_factor=2.0,
        chunk_size=100,
        now=lambda: NOW,
    )


def test_a_pattern_over_the_threshold_is_notified_once_and_escalated(store: MemoryStore) -> None:
    # GIVEN six monitored events from one IP to one URI, and two from another
    keys = [r.key for r in monitored(store, 6)]
    others = [r.key for r in monitored(store, 2, ip="203.0.113.9")]
    notifier = FakeNotifier()
    # WHEN the slot runs
    run = job(store, notifier).tick()
    # THEN one pattern crossed the threshold: one notice, its six members escalated
    assert run.ran and run.events_read == 8
    assert len(notifier.patterns) == 1 and sorted(run.escalated) == sorted(keys)
    assert all(store.get(k).status == "escalated" for k in keys)  # type: ignore[union-attr]
    # AND the pattern under the threshold stays monitored
    window = store.iter_monitoring(since=NOW - timedelta(hours=1), until=NOW)
    assert sorted(r.key for r in window) == sorted(others)


def test_an_escalated_pattern_becomes_an_incident_of_its_members(store: MemoryStore) -> None:
    # GIVEN six monitored events from one IP over the threshold
    keys = [r.key for r in monitored(store, 6)]
    notifier = FakeNotifier()
    repo = MemoryIncidentRepo(quiet_s=3600)
    monitor = job(store, notifier)
    monitor.incidents.incidents = IncidentJoiner(repo, window_s=0)
    # WHEN the slot runs
    monitor.tick()
    # THEN every member is escalated and linked to one incident counting all six,
    # whose opening was notified once
    linked = {store.get(k).incident_id for k in keys}  # type: ignore[union-attr]
    assert len(linked) == 1 and None not in linked
    (incident_id,) = linked
    incident = repo.get(str(incident_id))
    assert incident is not None and incident.count == 6 and incident.max_severity == 4
    assert notifier.incidents == [(incident_id, "opened")]


def test_each_slot_runs_once_across_replicas(store: MemoryStore) -> None:
    # GIVEN two replicas whose schedulers fire for the same slot
    monitored(store, 6)
    notifier = FakeNotifier()
    first, second = job(store, notifier, owner="r1").tick(), job(store, notifier, owner="r2").tick()
    # THEN only the first runs it
    assert first.ran and not second.ran and second.skipped_reason == "slot already taken"
    assert len(notifier.patterns) == 1


def test_a_failed_notice_escalates_nothing_and_is_retried_next_slot(store: MemoryStore) -> None:
    # GIVEN a notifier that fails once
    keys = [r.key for r in monitored(store, 6)]
    notifier = FakeNotifier(errors=[RetryableError("sns down", reason="notify_failed")])
    # WHEN the run applies the pattern THEN it fails, nothing is escalated
    with pytest.raises(RetryableError):
        job(store, notifier).run_once(force=True)
    assert all(store.get(k).status == "monitoring" for k in keys)  # type: ignore[union-attr]
    # WHEN the next run comes THEN the claim given back is claimed again: notified, escalated
    run = job(store, notifier).run_once(force=True)
    assert len(notifier.patterns) == 1 and sorted(run.escalated) == sorted(keys)


def test_a_stopping_job_stops_between_chunks(store: MemoryStore) -> None:
    monitored(store, 2)
    stopping = job(store, FakeNotifier())
    stopping.stop_event.set()
    with pytest.raises(MonitorStopped):
        stopping.run_once(force=True)


# ---- transient store faults within a slot --------------------------------------------------


class FaultyStore(MemoryStore):
    """The in-memory store, failing the next ``n`` calls of a method with a throttle."""

    def __init__(self) -> None:
        super().__init__(clock=FakeClock(NOW.timestamp()))
        self.faults: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def fail(self, method: str, times: int = 1) -> None:
        self.faults[method] = times

    def _maybe_fail(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.faults.get(method):
            self.faults[method] -= 1
            raise RetryableError(f"{method} throttled (injected)", reason="store_unavailable")


def _faulty(method: str) -> Any:
    def wrapped(self: FaultyStore, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail(method)
        return getattr(MemoryStore, method)(self, *args, **kwargs)

    return wrapped


for _method in (
    "acquire_lock",
    "complete_lock",
    "iter_monitoring",
    "upsert_pattern",
    "claim_pattern_notification",
    "release_pattern_notification",
    "escalate_from_pattern",
):
    setattr(FaultyStore, _method, _faulty(_method))


def retrying_job(store: MemoryStore, notifier: FakeNotifier) -> MonitorJob:
    scheduled = job(store, notifier)
    scheduled.write_backoff_s = 0.0
    return scheduled


def test_one_fault_in_every_store_call_still_completes_the_slot() -> None:
    # GIVEN six monitored events, and a store whose every call a slot makes fails once
    store = FaultyStore()
    keys = [r.key for r in monitored(store, 6)]
    for method in (
        "acquire_lock",
        "iter_monitoring",
        "upsert_pattern",
        "claim_pattern_notification",
        "escalate_from_pattern",
        "complete_lock",
    ):
        store.fail(method)
    notifier = FakeNotifier()

    # WHEN the slot runs
    run = retrying_job(store, notifier).tick()

    # THEN it ran to the end: one notice, every member escalated, the slot completed
    assert run.ran and len(notifier.patterns) == 1 and sorted(run.escalated) == sorted(keys)
    assert not store.acquire_lock(run.slot, owner="r2", ttl_s=0)  # completed: never taken again
    assert store.calls["complete_lock"] == 2


def test_a_failed_publish_gives_its_claim_back_through_a_fault() -> None:
    # GIVEN a notifier that fails once, and a release of the claim that is throttled once
    faulty = FaultyStore()
    keys = [r.key for r in monitored(faulty, 6)]
    faulty.fail("release_pattern_notification")
    notifier = FakeNotifier(errors=[RetryableError("sns down", reason="notify_failed")])
    # WHEN the run fails on the publish THEN nothing is escalated
    with pytest.raises(RetryableError):
        retrying_job(faulty, notifier).run_once(force=True)
    assert all(faulty.get(k).status == "monitoring" for k in keys)  # type: ignore[union-attr]
    # AND the claim was given back, so the next run notifies and escalates
    run = retrying_job(faulty, notifier).run_once(force=True)
    assert len(notifier.patterns) == 1 and sorted(run.escalated) == sorted(keys)


def test_a_fault_that_persists_is_bounded_and_leaves_the_slot_open() -> None:
    # GIVEN a store whose pattern upserts keep failing
    store = FaultyStore()
    monitored(store, 6)
    store.fail("upsert_pattern", times=100)
    scheduled = retrying_job(store, FakeNotifier())
    # WHEN the slot runs THEN it gives up after the bounded attempts, without completing
    with pytest.raises(RetryableError):
        scheduled.tick()
    assert store.calls["upsert_pattern"] == scheduled.write_attempts
    assert "complete_lock" not in store.calls


def test_a_shutdown_during_a_backoff_stops_the_run() -> None:
    # GIVEN a store whose monitoring read fails, and a job asked to stop
    store = FaultyStore()
    monitored(store, 2)
    store.fail("iter_monitoring")
    stopping = job(store, FakeNotifier())
    stopping.stop_event.set()
    # WHEN the slot runs THEN the retry's wait ends at once and the run stops
    with pytest.raises(MonitorStopped):
        stopping.run_once(force=True)
    assert store.calls["iter_monitoring"] == 1


def test_a_run_reports_the_windows_counted_records(store: MemoryStore) -> None:
    # GIVEN a log file's read that counted 12 IP reputation blocks in the monitor's window
    from secops_core.ingest.normalize import normalize_event
    from secops_core.waf.relevance import relevance
    from worker.store.aggregates import WindowCounter
    from worker.store.memory_aggregates import MemoryWindowCounts

    counts = MemoryWindowCounts(clock=FakeClock(NOW.timestamp()))
    claimed = counts.claim_object("logs", "k", "e", owner="w", lease_s=30)
    counter = WindowCounter("s")
    for i in range(12):
        event = normalize_event(
            {
                "timestamp": int((NOW - timedelta(minutes=5)).timestamp() * 1000),
                "action": "BLOCK",
                "terminatingRuleId": "AWS-AWSManagedRulesAmazonIpReputationList",
                "ruleGroupList": [
                    {
                        "ruleGroupId": "AWS#AWSManagedRulesAmazonIpReputationList",
                        "terminatingRule": {"ruleId": "AWSManagedIPReputationList", "action": "BLOCK"},
                    }
                ],
                "httpRequest": {"clientIp": f"192.0.2.{i}", "uri": "/", "httpMethod": "GET"},
            }
        )
        counter.add(event, relevance(event))
    counts.save_object_counted(claimed, counter.take_dirty(), owner="w", lease_s=30)
    monitor = job(store, FakeNotifier())
    monitor.counts = counts

    # WHEN a slot runs (with no monitored events at all)
    run = monitor.run_once()

    # THEN its summary says how much was counted, and by which rule
    summary = run.summary()
    assert summary["counted_requests"] == 12
    [top] = summary["counted_top_rules"]
    assert top["requests"] == 12 and top["attack_class"] == "ip_reputation"
