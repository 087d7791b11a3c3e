"""The monitor job against moto's server: one run per slot, crash recovery, growth, scale.

Every replica is a real MonitorJob over the real store, runtime (in-process, rules)
and notifier; a shared fake clock moves all of them (and the store's lease checks).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from secops_core.contract import TriageDecision
from secops_core.ingest.normalize import normalize_event
from testkit.events import simplified
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from worker.daemon import Clients
from worker.incidents.factory import dynamo_joiner
from worker.notify.registry import build_notifier
from worker.pipeline.monitor_job import MonitorJob, chunk_by_group, lock_name, slot_start
from worker.scheduler import build_scheduler
from worker.store.dynamodb import EventStore
from worker.store.dynamodb.table import to_attr
from worker.store.keys import monitoring_sort_key

pytestmark = pytest.mark.usefixtures("aws_endpoint")

INTERVAL = 900
T0 = datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC)
MONITOR = TriageDecision(action="monitor", status="monitoring", severity_rating=3, reason="test")


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def epoch(self) -> float:
        return self.t.timestamp()

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Env:
    return make_env(fast_settings(unique, tmp_path, monitor_threshold=5, monitor_interval_s=INTERVAL))


def replica(env: Env, clock: FakeClock, owner: str, *, store: Any = None, growth: float = 2.0) -> MonitorJob:
    """One replica's job: its own store client and notifier, the shared clock."""
    agents = env.agents()
    return MonitorJob(
        store=store or EventStore(env.settings.table_name, client=env.clients.dynamodb, clock=clock.epoch),
        monitor_agent=agents.monitor,
        notifier=build_notifier(env.settings, clients=env.clients, resources=env.resources),
        incidents=dynamo_joiner(env.settings, client=env.clients.dynamodb),
        owner=owner,
        interval_s=INTERVAL,
        hours=24,
        threshold=5,
        growth_factor=growth,
        chunk_size=1000,
        now=clock.now,
    )


def monitored(env: Env, clock: FakeClock, n: int, *, ip: str = "198.51.100.77", start: int = 0) -> list[str]:
    """Put ``n`` events through the real state machine into `monitoring`."""
    store = EventStore(env.settings.table_name, client=env.clients.dynamodb, clock=clock.epoch)
    keys = []
    for i in range(start, start + n):
        record = simplified(f"{ip}-{i}", source_ip=ip, uri=f"/api/users/{i}", minutes_ago=0)
        record["timestamp"] = (clock.now() - timedelta(minutes=30 - i % 30)).isoformat()
        event = normalize_event(record)
        store.claim(event, owner="seed", lease_s=60, message_id=f"m{i}")
        from secops_core.rules_analysis import rules_analysis
        from secops_core.waf.floor import severity_floor

        store.save_analysis(
            event.event_key, owner="seed", analysis=rules_analysis(event, severity_floor(event))
        )
        store.apply_triage(event.event_key, owner="seed", decision=MONITOR)
        store.release(event.event_key, owner="seed")
        keys.append(event.event_key)
    return keys


def patterns_delivered(env: Env) -> list[dict[str, Any]]:
    return [n for n in env.delivered(env.monitoring_tap) if "PATTERN" in n.get("Subject", "")]


def test_slot_start_and_lock_name_are_the_same_in_every_replica() -> None:
    moment = datetime(2026, 11, 25, 12, 14, 59, tzinfo=UTC)
    assert slot_start(moment, INTERVAL) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert lock_name(slot_start(moment, INTERVAL)) == "lock#monitor#2026-11-25T12:00:00Z"
    assert slot_start(moment + timedelta(seconds=1), INTERVAL) == datetime(2026, 11, 25, 12, 15, tzinfo=UTC)


def test_three_replicas_on_a_shared_clock_run_each_slot_once(env: Env, clock: FakeClock) -> None:
    # GIVEN a six-event campaign in monitoring and three replicas
    keys = monitored(env, clock, 6)
    replicas = [replica(env, clock, f"replica-{i}") for i in range(3)]

    # WHEN every replica ticks three times per slot over four slots, concurrently
    runs = []
    for _slot in range(4):
        for _tick in range(3):
            with ThreadPoolExecutor(3) as pool:
                runs += list(pool.map(lambda job: job.tick(), replicas))
            clock.advance(INTERVAL / 3)

    # THEN each slot ran exactly once, and the campaign was escalated and notified once
    ran = [run for run in runs if run.ran]
    assert sorted(run.slot for run in ran) == sorted({run.slot for run in runs})
    assert len(ran) == 4
    assert all(run.skipped_reason == "slot already taken" for run in runs if not run.ran)
    store = EventStore(env.settings.table_name, client=env.clients.dynamodb)
    records = store.get_many(keys)
    assert {r.status for r in records.values()} == {"escalated"}
    assert {r.pattern_key for r in records.values()} == {ran[0].patterns[0].pattern_key}
    assert len(patterns_delivered(env)) == 1


class CrashingStore(EventStore):
    """The process dies after escalating two events (the exception is not caught)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.escalations = 0

    def escalate_from_pattern(self, key: str, **kwargs: Any) -> bool:
        if self.escalations == 2:
            raise SystemExit("killed mid-run")
        self.escalations += 1
        return super().escalate_from_pattern(key, **kwargs)


def test_a_crash_mid_run_is_completed_by_the_next_slot_without_duplicate_notifications(
    env: Env, clock: FakeClock
) -> None:
    # GIVEN a replica that dies after escalating two of six events
    keys = monitored(env, clock, 6)
    crashing = CrashingStore(env.settings.table_name, client=env.clients.dynamodb, clock=clock.epoch)
    with pytest.raises(SystemExit):
        replica(env, clock, "doomed", store=crashing).tick()

    # WHEN another replica ticks in the same slot, then in the next one
    survivor = replica(env, clock, "survivor")
    same_slot = survivor.tick()
    clock.advance(INTERVAL)
    next_slot = survivor.tick()

    # THEN the dead replica's slot is not re-run, the next slot finishes the work,
    # and exactly one pattern notification went out
    assert not same_slot.ran
    assert next_slot.ran and len(next_slot.escalated) == 4
    store = EventStore(env.settings.table_name, client=env.clients.dynamodb)
    assert {r.status for r in store.get_many(keys).values()} == {"escalated"}
    assert len(patterns_delivered(env)) == 1


def test_a_pattern_is_notified_again_only_when_it_grew_past_the_factor(env: Env, clock: FakeClock) -> None:
    job = replica(env, clock, "solo", growth=2.0)
    # GIVEN five events: a new pattern over the threshold
    monitored(env, clock, 5)
    assert job.tick().notified
    # WHEN three more arrive (8 < 5 * 2) in the next slot
    clock.advance(INTERVAL)
    monitored(env, clock, 3, start=5)
    grown_a_little = job.tick()
    # AND two more (10 = 5 * 2) in the slot after
    clock.advance(INTERVAL)
    monitored(env, clock, 2, start=8)
    grown_enough = job.tick()
    # AND the same slot is forced again, and a later slot runs over the same data
    forced = job.run_once(force=True)
    clock.advance(INTERVAL)
    later = job.tick()

    # THEN exactly two notifications: the new pattern and its doubling
    assert grown_a_little.ran and not grown_a_little.notified
    assert grown_a_little.patterns[0].count == 8
    assert grown_enough.notified and grown_enough.patterns[0].count == 10
    assert not forced.notified and not later.notified
    delivered = patterns_delivered(env)
    assert len(delivered) == 2
    assert "10" in delivered[1]["Subject"]


def bulk_monitoring(env: Env, count: int, now: datetime) -> None:
    """Write ``count`` monitoring items directly (BatchWriteItem), as apply_triage leaves them."""
    items = []
    for i in range(count):
        ip = f"203.0.113.{i % 3}"
        record = simplified(f"bulk-{i}", source_ip=ip, uri=f"/search/{i}", minutes_ago=0)
        record["timestamp"] = (now - timedelta(seconds=10 + i)).isoformat()
        event = normalize_event(record)
        items.append(
            {
                "pk": event.event_key,
                "status": "monitoring",
                "attempts": 1,
                "lease_expires_at": 0,
                "event": event.model_dump_json(),
                "mon_pk": "monitoring",
                "mon_sk": monitoring_sort_key(event.timestamp, event.event_key),
            }
        )

    def write(batch: list[dict[str, Any]]) -> None:
        requests = [{"PutRequest": {"Item": {k: to_attr(v) for k, v in item.items()}}} for item in batch]
        response = env.clients.dynamodb.batch_write_item(RequestItems={env.settings.table_name: requests})
        assert not response.get("UnprocessedItems")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))


def test_thousands_of_monitoring_events_paginate_and_merge_across_chunks(env: Env, clock: FakeClock) -> None:
    # GIVEN 3000 monitored events in three groups of 1000 (one IP each, /search/{n})
    bulk_monitoring(env, 3000, clock.now())
    job = replica(env, clock, "big")
    job.threshold = 1_000_000  # count only: escalating 3000 events is not what this tests
    job.chunk_size = 700  # every group is split over chunks
    queries: list[int] = []
    job.store._client.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.append(1))

    # WHEN one pass runs
    run = job.run_once(force=True)

    # THEN all 3000 were read (several pages), and each group was merged whole
    assert run.events_read == 3000
    assert len(queries) > 1
    assert sorted(p.count for p in run.patterns) == [1000, 1000, 1000]
    assert all(len(set(p.event_keys)) == 1000 for p in run.patterns)


def test_chunks_keep_groups_together_and_stay_under_the_payload_limit() -> None:
    events = [
        normalize_event(simplified(f"c{i}", source_ip=f"192.0.2.{i % 4}", uri="/a", minutes_ago=1))
        for i in range(40)
    ]
    chunks = chunk_by_group(events, 25)
    assert sum(len(c) for c in chunks) == 40
    assert all(len(c) <= 25 for c in chunks)
    assert all(event.headers == () for chunk in chunks for event in chunk)
    small = chunk_by_group(events, 1000, max_bytes=2000)
    assert all(sum(len(e.model_dump_json()) + 2 for e in c) <= 2000 or len(c) == 1 for c in small)


def test_scheduler_coalesces_and_never_runs_two_at_once(env: Env, clock: FakeClock) -> None:
    scheduler = build_scheduler(replica(env, clock, "sched"), interval_s=INTERVAL)
    job = scheduler.get_jobs()[0]
    assert (job.coalesce, job.max_instances) == (True, 1)
    scheduler.start()
    scheduler.shutdown(wait=True)
    assert not scheduler.running


def test_secops_monitor_prints_patterns_as_json(
    env: Env, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.app import main

    clock.t = datetime.now(UTC)
    monitored(env, clock, 5)
    settings = env.settings
    for name, value in {
        "SECOPS_QUEUE_NAME": settings.queue_name,
        "SECOPS_TABLE_NAME": settings.table_name,
        "SECOPS_CRITICAL_TOPIC_NAME": settings.critical_topic_name,
        "SECOPS_MONITORING_TOPIC_NAME": settings.monitoring_topic_name,
        "SECOPS_LOG_LEVEL": "ERROR",
        "SECOPS_LOG_FORMAT": "console",
        "SECOPS_HEALTH_FILE": str(Path(settings.health_file)),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["monitor", "--hours", "2", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["ran"] and output["over_threshold"] == 1 and output["notifications"] == 1
    assert output["patterns"][0]["count"] == 5
    # A second pass in the same slot respects the lock; --force runs it again.
    assert main(["monitor", "--hours", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] is False
    assert main(["monitor", "--hours", "2", "--force"]) == 0
    assert "patterns" in capsys.readouterr().out


class FirstCallOfEachOperationThrottled:
    """A botocore hook: DynamoDB throttles the first call of each data-plane operation."""

    OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "Query"})

    def __init__(self) -> None:
        self.throttled: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        if model.name in self.OPERATIONS and model.name not in self.throttled:
            self.throttled.append(model.name)
            raise ClientError(
                {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )


def test_a_slot_survives_transient_store_faults_and_completes(env: Env, clock: FakeClock) -> None:
    # GIVEN a six-event campaign in monitoring, and a replica whose DynamoDB client
    # throttles the first call of each operation it makes (lock, read, upserts, escalations)
    keys = monitored(env, clock, 6)
    client = Clients.from_settings(env.settings).dynamodb
    throttle = FirstCallOfEachOperationThrottled()
    client.meta.events.register("before-call.dynamodb", throttle)
    faulty = replica(
        env, clock, "faulty", store=EventStore(env.settings.table_name, client=client, clock=clock.epoch)
    )

    # WHEN it ticks once
    run = faulty.tick()

    # THEN every fault was retried within the slot: the campaign is escalated and
    # notified once, and the slot is completed, so no replica runs it again
    assert {"PutItem", "UpdateItem", "Query"} <= set(throttle.throttled)
    assert run.ran and sorted(run.escalated) == sorted(keys)
    assert len(patterns_delivered(env)) == 1
    lock = env.clients.dynamodb.get_item(TableName=env.settings.table_name, Key={"pk": to_attr(run.slot)})
    assert "completed_at" in lock["Item"]
    assert not replica(env, clock, "other").tick().ran
