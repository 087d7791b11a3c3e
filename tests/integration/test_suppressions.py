"""Suppressions: the repository contract on both backends, then the pipeline over
DynamoDB on moto's server (HTTP): a suppression created through one replica applies
on another within its refresh period, never to an event that also matched another
class, stops at its expiry, and counts each suppressed event once however often it
is delivered (docs/architecture.md, "Suppressions").
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from testkit.events import waf_record
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeNotifier
from worker.errors import RetryableError
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline.processor import EventProcessor
from worker.platform.metrics import Metrics
from worker.store.dynamodb import EventStore
from worker.suppressions import Scope, Suppression
from worker.suppressions.cache import SuppressionCache
from worker.suppressions.dynamodb import DynamoSuppressionRepo
from worker.suppressions.memory import MemorySuppressionRepo
from worker.suppressions.repo import DuplicateSuppression

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
REFRESH_S = 30.0
# The planted false positive: SQLi_QueryArguments counted (not blocked) on /products,
# which reached the application: a floor of 4, an escalation without a suppression.
SCOPE = Scope.build(rule="AWSManagedRulesSQLiRuleSet:SQLi_QUERYARGUMENTS", uri_template="/products")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0.timestamp())


@pytest.fixture
def table(dynamodb: Any, unique: str, clock: FakeClock) -> str:
    name = f"secops-sup-{unique}"
    EventStore(name, client=dynamodb, clock=clock).create_table()
    return name


Repo = DynamoSuppressionRepo | MemorySuppressionRepo


@pytest.fixture(params=["dynamodb", "memory"])
def repo(request: pytest.FixtureRequest, clock: FakeClock) -> Repo:
    if request.param == "memory":
        return MemorySuppressionRepo()
    name = request.getfixturevalue("table")
    return DynamoSuppressionRepo(name, client=request.getfixturevalue("dynamodb"), clock=clock)


def suppression(*, days: float | None = 30, scope: Scope = SCOPE, at: datetime = T0) -> Suppression:
    return Suppression.new(
        scope,
        reason="our product search sends SQL-looking filters",
        created_by="alice",
        now=at,
        expires_in=None if days is None else timedelta(days=days),
    )


# ---- the repository contract -------------------------------------------------------------


def test_a_suppression_round_trips_with_its_audit(repo: Repo) -> None:
    # GIVEN a suppression created by an operator
    created = repo.create(suppression())
    # WHEN it is read back, alone and in the list
    got = repo.get(created.id)
    listed = repo.list()
    # THEN scope, who, why, created and expiry are kept, with no hits yet
    assert got is not None
    assert got.scope == SCOPE
    assert (got.created_by, got.reason, got.created_at) == ("alice", created.reason, T0)
    assert got.expires_at == T0 + timedelta(days=30)
    assert (got.hits, got.last_hit_at) == (0, None)
    assert [s.id for s in listed] == [created.id]
    assert repo.get("sup-0000000000") is None


def test_creating_the_same_id_twice_is_refused(repo: Repo) -> None:
    # GIVEN a created suppression
    created = repo.create(suppression())
    # WHEN the same one is created again (a retried create)
    # THEN the repository refuses it
    with pytest.raises(DuplicateSuppression):
        repo.create(created)


def test_expire_and_remove_end_it_and_keep_it_for_the_audit(repo: Repo) -> None:
    # GIVEN two suppressions in force
    first, second = repo.create(suppression()), repo.create(suppression(days=None))
    later = T0 + timedelta(hours=1)
    # WHEN one is expired and the other removed
    expired = repo.end(first.id, "expired", by="bob", at=later)
    removed = repo.end(second.id, "removed", by="carol", at=later)
    # THEN neither is in force, both are still listed with who ended them and when
    assert expired is not None and removed is not None
    assert expired.expires_at == later and expired.state(later) == "expired"
    assert removed.status == "removed" and removed.state(later) == "removed"
    kept = {s.id: s for s in repo.list()}
    assert (kept[first.id].ended_by, kept[second.id].ended_by) == ("bob", "carol")
    assert not any(s.active(later) for s in kept.values())
    assert repo.end("sup-0000000000", "expired", by="bob", at=later) is None


def test_a_hit_counts_once_per_event(repo: Repo) -> None:
    # GIVEN a suppression
    created = repo.create(suppression())
    at = T0 + timedelta(minutes=5)
    # WHEN one event is counted three times (redeliveries) and another once
    counted = [repo.count_hit(created.id, "evt#a", at=at) for _ in range(3)]
    counted.append(repo.count_hit(created.id, "evt#b", at=at + timedelta(minutes=1)))
    # THEN each event counted once, the last hit is the latest
    assert counted == [True, False, False, True]
    got = repo.get(created.id)
    assert got is not None
    assert got.hits == 2
    assert got.last_hit_at == at + timedelta(minutes=1)


# ---- the pipeline over DynamoDB on moto's server ---------------------------------------


class Replica:
    """One worker replica's pipeline: its own store client view, cache and processor."""

    def __init__(
        self, table: str, dynamodb: Any, clock: FakeClock, *, name: str, model_free: bool = False
    ) -> None:
        self.store = EventStore(table, client=dynamodb, clock=clock)
        self.repo = FlakyRepo(table, client=dynamodb, clock=clock)
        self.cache = SuppressionCache(self.repo, refresh_s=REFRESH_S, clock=clock)
        self.agents = FakeAgents()
        self.notifier = FakeNotifier()
        self.incidents = MemoryIncidentRepo(quiet_s=3600, clock=clock)
        self.processor = EventProcessor(
            store=self.store,
            agents=self.agents,
            notifier=self.notifier,
            incidents=IncidentJoiner(self.incidents, window_s=0),
            owner=name,
            lease_s=60,
            metrics=Metrics(enabled=False),
            suppressions=self.cache,
            model_free=model_free,
        )


class FlakyRepo(DynamoSuppressionRepo):
    """The DynamoDB repository, failing the hit counts a test queues."""

    failures = 0

    def count_hit(self, suppression_id: str, event_key: str, *, at: datetime) -> bool:
        if self.failures:
            self.failures -= 1
            raise RetryableError("injected: the hit could not be written", reason="store_unavailable")
        return super().count_hit(suppression_id, event_key, at=at)


@pytest.fixture
def replicas(table: str, dynamodb: Any, clock: FakeClock) -> tuple[Replica, Replica]:
    return Replica(table, dynamodb, clock, name="a"), Replica(table, dynamodb, clock, name="b")


def counted_sqli(request_id: str, **extra: Any) -> dict[str, Any]:
    record = waf_record(counted=True, request_id=request_id, minutes_ago=0)
    record["timestamp"] = int(T0.timestamp() * 1000)
    record.update(extra)
    return record


def test_a_suppression_made_on_one_replica_applies_on_another_within_its_refresh(
    replicas: tuple[Replica, Replica], clock: FakeClock
) -> None:
    a, b = replicas
    # GIVEN replica b has read the (empty) list of suppressions
    assert b.processor.process(json.dumps(counted_sqli("r-0")), "m-0").status == "escalated"
    calls = b.agents.analyst.calls
    # WHEN an operator creates a suppression through replica a's repository
    created = a.repo.create(suppression(at=datetime.fromtimestamp(clock(), UTC)))
    # THEN b may not know it before its refresh is due, and does once it is
    clock.advance(REFRESH_S)
    outcome = b.processor.process(json.dumps(counted_sqli("r-1")), "m-1")
    record = b.store.get(outcome.event_key or "")
    assert record is not None
    assert (record.status, record.suppressed_by) == ("closed", created.id)
    # ... closed above its floor, which is still recorded, without a model or an incident
    assert record.analysis is not None and record.triage is not None
    assert record.analysis.severity_floor == 4 and record.triage.severity_rating == 4
    assert record.analysis.analyzed_by == "suppressed"
    assert record.incident_id is None and b.agents.analyst.calls == calls
    assert b.incidents.list(limit=10)[0].count == 1  # only the event before the suppression
    # ... and it was counted for the suppression
    got = a.repo.get(created.id)
    assert got is not None and got.hits == 1


def test_an_event_that_also_matched_another_class_is_not_suppressed(
    replicas: tuple[Replica, Replica], clock: FakeClock
) -> None:
    a, _ = replicas
    # GIVEN a suppression of the counted SQLi rule on /products
    created = a.repo.create(suppression())
    # WHEN an event in that scope also carries a cross-site scripting match
    event = counted_sqli("r-xss")
    event["labels"].append({"name": "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body"})
    outcome = a.processor.process(json.dumps(event), "m-xss")
    # THEN it keeps its floor and its triage: escalated, into an incident, not counted
    record = a.store.get(outcome.event_key or "")
    assert record is not None
    assert (record.status, record.suppressed_by) == ("escalated", None)
    assert record.incident_id is not None
    got = a.repo.get(created.id)
    assert got is not None and got.hits == 0


def test_an_event_outside_the_scope_is_not_suppressed(replicas: tuple[Replica, Replica]) -> None:
    a, _ = replicas
    # GIVEN a suppression of the counted SQLi rule on /products
    a.repo.create(suppression())
    # WHEN the same rule fires on another path
    outcome = a.processor.process(json.dumps(counted_sqli("r-other", httpRequest=_request("/admin"))), "m")
    # THEN it is escalated as always
    assert outcome.status == "escalated"


def _request(uri: str) -> dict[str, Any]:
    request: dict[str, Any] = waf_record()["httpRequest"]
    return {**request, "uri": uri, "requestId": f"req-{uri}"}


def test_a_suppression_stops_at_its_expiry_and_when_expired_early(
    replicas: tuple[Replica, Replica], clock: FakeClock
) -> None:
    a, b = replicas
    # GIVEN a one-day suppression, known to both replicas
    created = a.repo.create(suppression(days=1))
    assert a.processor.process(json.dumps(counted_sqli("r-1")), "m-1").status == "closed"
    # WHEN the day has passed (compared at each event, whatever the refresh)
    clock.advance(24 * 3600)
    # THEN the next event is escalated again
    assert a.processor.process(json.dumps(counted_sqli("r-2")), "m-2").status == "escalated"
    # GIVEN another suppression, expired early by an operator through replica b
    other = b.repo.create(suppression(at=datetime.fromtimestamp(clock(), UTC)))
    clock.advance(REFRESH_S)
    assert a.processor.process(json.dumps(counted_sqli("r-3")), "m-3").status == "closed"
    b.repo.end(other.id, "expired", by="bob", at=datetime.fromtimestamp(clock(), UTC))
    # WHEN the refresh period has passed on replica a
    clock.advance(REFRESH_S)
    # THEN replica a no longer applies it
    assert a.processor.process(json.dumps(counted_sqli("r-4")), "m-4").status == "escalated"
    hits = {s.id: s.hits for s in a.repo.list()}
    assert hits == {created.id: 1, other.id: 1}


def test_hits_count_once_per_event_under_redelivery_and_a_lost_count(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    created = a.repo.create(suppression())
    body = json.dumps(counted_sqli("r-redelivered"))
    # GIVEN the delivery that closes the event fails to write its hit
    a.repo.failures = 1
    first = a.processor.process(body, "m-1")
    assert first.kind == "retry"
    # WHEN the message is redelivered, to both replicas, several times
    outcomes = [
        a.processor.process(body, "m-1"),
        b.processor.process(body, "m-2"),
        a.processor.process(body, "m-1"),
    ]
    # THEN the event is closed once and counted exactly once
    assert [o.kind for o in outcomes] == ["duplicate"] * 3
    got = a.repo.get(created.id)
    assert got is not None and got.hits == 1
    record = a.store.get(first.event_key or "")
    assert record is not None and record.suppressed_by == created.id
    assert a.agents.analyst.calls == b.agents.analyst.calls == 0


def test_a_redelivered_suppressed_event_joins_no_incident_on_the_fast_path(
    table: str, dynamodb: Any, clock: FakeClock
) -> None:
    # GIVEN a replica deciding every event without a model (the rules provider: the fast
    # path, which joins an escalation's incident before its one write)
    replica = Replica(table, dynamodb, clock, name="rules", model_free=True)
    replica.repo.create(suppression())
    body = json.dumps(counted_sqli("r-fast"))
    # WHEN a suppressed event is delivered, then redelivered
    outcomes = [replica.processor.process(body, "m-1"), replica.processor.process(body, "m-1")]
    # THEN it is closed once, counted once, and no incident ever counted it
    assert [o.kind for o in outcomes] == ["done", "duplicate"]
    assert replica.incidents.list(limit=10) == []
    got = replica.repo.get(replica.repo.list()[0].id)
    assert got is not None and got.hits == 1


def test_concurrent_copies_on_two_replicas_count_one_hit(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    created = a.repo.create(suppression())
    body = json.dumps(counted_sqli("r-race"))
    # GIVEN both replicas know the suppression
    for replica in replicas:
        replica.cache.refresh()
    # WHEN six copies of one event race on the two replicas
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda n: (a if n % 2 else b).processor.process(body, f"m-{n}"), range(6)))
    # THEN one closed it (no lease is ever held: one conditional put), the others
    # acknowledged a duplicate, and the suppression counted the event once
    assert sorted(o.kind for o in outcomes) == ["done", *["duplicate"] * 5]
    got = a.repo.get(created.id)
    assert got is not None and got.hits == 1
