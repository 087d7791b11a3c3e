"""The incident repository contract, run against both backends (in memory, and
DynamoDB on moto's server over HTTP), then the races its conditional writes exist for
and the write count of a flood through the joiner.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.incidents import Contribution, IncidentNotFound, StatusConflict
from worker.incidents.dynamodb import DynamoIncidentRepo
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.incidents.records import ChannelResult
from worker.incidents.repo import JoiningRepo
from worker.store.dynamodb.table import DynamoTable

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
QUIET_S = 3600


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


RepoFactory = Callable[[], JoiningRepo]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0.timestamp())


@pytest.fixture(params=["memory", "dynamodb"])
def replicas(request: pytest.FixtureRequest, unique: str, clock: FakeClock) -> RepoFactory:
    """Builds repositories over one store, as separate replicas would (own caches)."""
    if request.param == "memory":
        shared = MemoryIncidentRepo(quiet_s=QUIET_S, clock=clock)
        return lambda: shared
    client = request.getfixturevalue("dynamodb")
    table = f"secops-inc-{unique}"
    DynamoTable(table, client=client).create_table()
    return lambda: DynamoIncidentRepo(table, client=client, quiet_s=QUIET_S, clock=clock)


@pytest.fixture
def repo(replicas: RepoFactory) -> JoiningRepo:
    return replicas()


def contribution(
    n: int,
    *,
    at: datetime = T0,
    ip: str = "203.0.113.7",
    severity: int = 4,
    reached: bool = False,
) -> Contribution:
    return Contribution(
        event_key=f"evt#{n}",
        at=at,
        severity=severity,
        attack_class="sqli",
        source_ip=ip,
        reached_app=reached,
        rule="SQLi_BODY",
        uri_template="/login",
        host="shop.example",
        country="DE",
    )


GROUP = contribution(0).group("source")


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


# ---- the contract ------------------------------------------------------------------------


def test_the_first_join_opens_an_incident(repo: JoiningRepo) -> None:
    # WHEN the first events of an attack join
    result = repo.join(GROUP, [contribution(2, at=T0 + timedelta(seconds=5)), contribution(1)])
    # THEN one incident holds both, and the join crossed `opened`
    record = result.record
    assert record.id == f"inc#{GROUP.hash}#1" and record.count == 2 and record.status == "open"
    assert result.new == ("evt#1", "evt#2") and result.duplicate == ()
    assert result.placed == {"evt#1": record.id, "evt#2": record.id}
    assert [c.milestone.id for c in result.crossings] == ["opened"]
    assert repo.get(record.id) == record
    assert record.first_events == ("evt#1", "evt#2")


def test_later_events_join_the_open_incident(repo: JoiningRepo) -> None:
    # GIVEN an open incident of 9 events
    repo.join(GROUP, [contribution(n) for n in range(9)])
    # WHEN a tenth, more severe one joins
    result = repo.join(GROUP, [contribution(9, at=T0 + timedelta(minutes=30), severity=5)])
    # THEN it is counted in the same incident and crosses growth and severity
    assert result.record.seq == 1 and result.record.count == 10 and result.record.max_severity == 5
    assert [c.milestone.id for c in result.crossings] == ["growth:10", "severity:5"]


def test_a_counted_event_is_never_counted_twice(repo: JoiningRepo) -> None:
    # GIVEN an incident that counted evt#1
    repo.join(GROUP, [contribution(1)])
    # WHEN evt#1 joins again (a redelivery, or a crash before the event was written)
    result = repo.join(GROUP, [contribution(1)])
    # THEN it is a duplicate of the same incident, nothing is crossed, nothing counted
    assert result.new == () and result.duplicate == ("evt#1",) and result.crossings == ()
    assert result.placed == {"evt#1": result.record.id} and result.record.count == 1


def test_a_redelivery_after_the_next_incident_opened_counts_in_neither(repo: JoiningRepo) -> None:
    # GIVEN evt#1 counted in incident 1, and a later event that opened incident 2
    first = repo.join(GROUP, [contribution(1)]).record
    second = repo.join(GROUP, [contribution(2, at=T0 + timedelta(seconds=QUIET_S * 3))]).record
    # WHEN evt#1 comes again (its worker crashed before writing the event)
    result = repo.join(GROUP, [contribution(1), contribution(3, at=T0 + timedelta(seconds=QUIET_S * 3))])
    # THEN it is a duplicate of incident 1, and incident 2 only gains the new one
    assert result.duplicate == ("evt#1",) and result.new == ("evt#3",)
    assert result.placed == {"evt#1": first.id, "evt#3": second.id}
    assert repo.get(first.id).count == 1 and repo.get(second.id).count == 2  # type: ignore[union-attr]


def test_a_redelivery_after_a_resolution_opens_nothing(repo: JoiningRepo) -> None:
    # GIVEN evt#1 counted in an incident that was then resolved
    first = repo.join(GROUP, [contribution(1)]).record
    repo.set_status(first.id, "resolved")
    # WHEN evt#1 comes again
    result = repo.join(GROUP, [contribution(1)])
    # THEN it is a duplicate of the resolved incident, and no incident opens
    assert result.duplicate == ("evt#1",) and result.new == () and result.crossings == ()
    assert result.placed == {"evt#1": first.id}
    assert repo.get(f"inc#{GROUP.hash}#2") is None


def test_an_event_after_the_quiet_period_opens_the_next_incident(repo: JoiningRepo) -> None:
    # GIVEN an incident whose last event was at T0
    first = repo.join(GROUP, [contribution(1)]).record
    # WHEN one batch brings an event within the window and one far past it
    late = T0 + timedelta(seconds=QUIET_S * 3)
    result = repo.join(GROUP, [contribution(2, at=T0 + timedelta(minutes=1)), contribution(3, at=late)])
    # THEN the first joins incident 1, the second opens incident 2
    second = result.record
    assert second.seq == 2 and second.count == 1 and second.first_seen == late
    assert result.placed == {"evt#2": first.id, "evt#3": second.id}
    assert [r.id for r in result.records] == [first.id, second.id]
    assert [(c.incident.id, c.milestone.id) for c in result.crossings] == [(second.id, "opened")]


def test_a_resolved_incident_is_followed_by_a_new_one(repo: JoiningRepo) -> None:
    first = repo.join(GROUP, [contribution(1)]).record
    repo.set_status(first.id, "resolved", note="blocked at the edge", by="alice")
    result = repo.join(GROUP, [contribution(2)])
    assert result.record.seq == 2 and [c.milestone.id for c in result.crossings] == ["opened"]


def test_a_milestone_is_claimed_once_and_can_be_released(repo: JoiningRepo) -> None:
    # GIVEN a new incident: the write that opened it claimed its opening
    joined = repo.join(GROUP, [contribution(1)])
    record = joined.record
    assert [(c.milestone.id, c.claimed) for c in joined.crossings] == [("opened", True)]
    assert record.claimed == frozenset({"opened"}) and set(record.pending_claims) == {"opened"}
    assert repo.claim_milestone(record.id, "opened") is False
    # WHEN the publish failed and the claim is given back
    assert repo.release_milestone(record.id, "opened") is True
    assert repo.release_milestone(record.id, "opened") is False
    released = repo.get(record.id)
    assert released is not None and released.claimed == frozenset() and released.pending_claims == {}
    # THEN it can be claimed again
    assert repo.claim_milestone(record.id, "opened") is True
    with pytest.raises(IncidentNotFound):
        repo.claim_milestone(f"inc#{GROUP.hash}#9", "opened")


def test_a_claim_never_notified_can_be_taken_again_once_stale(repo: JoiningRepo, clock: FakeClock) -> None:
    # GIVEN two milestones claimed: one notified, one whose claimer was killed before publishing
    record = repo.join(GROUP, [contribution(1)]).record
    assert "opened" in record.claimed  # by the join that opened it
    repo.record_notice(record.id, "opened", "msg-1")
    assert repo.claim_milestone(record.id, "growth:10") is True
    # WHEN the clock has not yet moved past the staleness
    clock.now += repo.claim_stale_s
    # THEN neither can be claimed again
    assert repo.claim_milestone(record.id, "growth:10") is False
    assert repo.claim_milestone(record.id, "opened") is False
    assert repo.stale_claims(repo.get(record.id) or record) == ()
    # WHEN the clock moves past it
    clock.now += 1
    # THEN the record the next join returns shows the dead claim, and exactly one
    # caller takes it again
    stale = repo.join(GROUP, [contribution(2)]).record
    assert repo.stale_claims(stale) == ("growth:10",)
    assert repo.claim_milestone(record.id, "growth:10") is True
    assert repo.claim_milestone(record.id, "growth:10") is False
    # AND a notified claim is never taken again, however old
    assert repo.claim_milestone(record.id, "opened") is False
    # AND once its notice is recorded the milestone is done for good
    repo.record_notice(record.id, "growth:10", "msg-2")
    clock.now += 10 * repo.claim_stale_s
    done = repo.get(record.id)
    assert done is not None and repo.stale_claims(done) == () and done.pending_claims == {}
    assert repo.claim_milestone(record.id, "growth:10") is False


def test_joins_keep_claims_notices_and_status_history(repo: JoiningRepo) -> None:
    # GIVEN an acknowledged incident with a claimed, notified milestone
    record = repo.join(GROUP, [contribution(1)]).record
    repo.claim_milestone(record.id, "opened")
    repo.record_notice(record.id, "opened", "msg-1")
    repo.set_status(record.id, "acknowledged", note="looking", by="alice")
    # WHEN more events join
    after = repo.join(GROUP, [contribution(2)]).record
    # THEN the join kept what it does not own
    assert after.claimed == frozenset({"opened"}) and after.status == "acknowledged"
    assert after.pending_claims == {}
    assert [(n.milestone, n.message_id) for n in after.notices] == [("opened", "msg-1")]
    assert [(s.status, s.by, s.note) for s in after.status_history] == [("acknowledged", "alice", "looking")]
    with pytest.raises(IncidentNotFound):
        repo.record_notice(f"inc#{GROUP.hash}#9", "opened", None)


def test_a_notice_keeps_what_each_channel_did(repo: JoiningRepo) -> None:
    # GIVEN a milestone that SNS took and the chat channel refused
    record = repo.join(GROUP, [contribution(1)]).record
    repo.claim_milestone(record.id, "opened")
    channels = (
        ChannelResult("sns", ok=True, id="msg-1"),
        ChannelResult(
            "chat", ok=False, reason="notify_topic_not_found", error="NotificationRejected: no topic"
        ),
    )
    # WHEN its notice is recorded with both outcomes
    repo.record_notice(record.id, "opened", "msg-1", channels=channels)
    # THEN the stored notice has both, as they were, and a later join keeps them
    stored = repo.join(GROUP, [contribution(2)]).record
    assert [(n.milestone, n.message_id, n.channels) for n in stored.notices] == [
        ("opened", "msg-1", channels)
    ]
    assert stored.last_failure is None
    fetched = repo.get(record.id)
    assert fetched is not None and fetched.notices == stored.notices


def test_a_release_after_every_channel_failed_keeps_the_latest_failure(repo: JoiningRepo) -> None:
    # GIVEN a milestone no channel took, twice (the join that opened it claimed it)
    record = repo.join(GROUP, [contribution(1)]).record
    first = (ChannelResult("sns", ok=False, reason="notify_failed", error="RetryableError: throttled"),)
    second = (ChannelResult("sns", ok=False, reason="notify_not_authorized", error="denied"),)
    for n, failed in enumerate((first, second)):
        assert n == 0 or repo.claim_milestone(record.id, "opened") is True
        # WHEN its claim is given back with what the channels answered
        assert repo.release_milestone(record.id, "opened", failed=failed) is True
    # THEN the incident keeps only the latest failure (bounded however often it fails),
    # no notice, and the milestone is free to claim again
    stored = repo.join(GROUP, [contribution(2)]).record
    assert stored.last_failure is not None
    assert (stored.last_failure.milestone, stored.last_failure.channels) == ("opened", second)
    assert stored.notices == () and stored.claimed == frozenset()
    # AND a release without results leaves the recorded failure alone
    assert repo.claim_milestone(record.id, "opened") is True
    assert repo.release_milestone(record.id, "opened") is True
    kept = repo.get(record.id)
    assert kept is not None and kept.last_failure == stored.last_failure


def test_status_changes_are_conditional(repo: JoiningRepo) -> None:
    record = repo.join(GROUP, [contribution(1)]).record
    # WHEN someone expects the wrong status
    with pytest.raises(StatusConflict) as conflict:
        repo.set_status(record.id, "resolved", expected_status="acknowledged")
    assert conflict.value.current.status == "open"
    # THEN a right expectation wins, and a resolved incident stays resolved
    acked = repo.set_status(record.id, "acknowledged", expected_status="open", by="bob")
    resolved = repo.set_status(record.id, "resolved", note="n" * 5000)
    assert acked.version == record.version + 1 and resolved.status == "resolved"
    assert len(resolved.status_history[-1].note) == 1000
    with pytest.raises(StatusConflict):
        repo.set_status(record.id, "acknowledged")
    with pytest.raises(IncidentNotFound):
        repo.set_status(f"inc#{GROUP.hash}#9", "resolved")


def test_list_filters_by_status_and_time_most_recent_first(repo: JoiningRepo) -> None:
    # GIVEN three incidents of three sources, last seen at T0, T0+1h, T0+2h
    ids = [
        repo.join(
            contribution(n, ip=f"192.0.2.{n}").group("source"),
            [contribution(n, ip=f"192.0.2.{n}", at=T0 + timedelta(hours=n))],
        ).record.id
        for n in range(3)
    ]
    repo.set_status(ids[1], "resolved")
    # THEN the list is newest first, and filters as asked
    assert [r.id for r in repo.list()] == ids[::-1]
    assert [r.id for r in repo.list(status="open")] == [ids[2], ids[0]]
    assert [r.id for r in repo.list(since=T0 + timedelta(minutes=30))] == [ids[2], ids[1]]
    assert [r.id for r in repo.list(limit=1)] == [ids[2]]


# ---- races -------------------------------------------------------------------------------


def test_racing_joins_of_one_group_count_exactly_in_one_incident(replicas: RepoFactory) -> None:
    # GIVEN 4 replicas, each with its own memory of the group
    repos = [replicas() for _ in range(4)]
    # WHEN each joins 5 events of the same attack, one after the other, all at once
    results = race(4, lambda i: [repos[i].join(GROUP, [contribution(i * 5 + k)]) for k in range(5)])
    # THEN one incident counts all 20, and each milestone was crossed once
    assert not [r for r in results if isinstance(r, Exception)]
    (incident,) = repos[0].list()
    assert incident.count == 20 and incident.seq == 1
    crossings = Counter(c.milestone.id for joins in results for j in joins for c in j.crossings)
    assert crossings["opened"] == 1 and all(n == 1 for n in crossings.values())


def test_racing_joins_on_an_expired_group_open_one_incident(replicas: RepoFactory) -> None:
    # GIVEN a group whose incident went quiet long ago
    repos = [replicas() for _ in range(8)]
    repos[0].join(GROUP, [contribution(0)])
    for r in repos[1:]:
        r.join(GROUP, [contribution(0)])  # every replica remembers incident 1
    late = T0 + timedelta(seconds=QUIET_S * 2)
    # WHEN 8 replicas join a new event each at once
    results = race(8, lambda i: repos[i].join(GROUP, [contribution(100 + i, at=late)]))
    # THEN exactly one second incident holds all 8, opened once
    assert not [r for r in results if isinstance(r, Exception)]
    assert {r.record.id for r in results} == {f"inc#{GROUP.hash}#2"}
    assert repos[0].get(f"inc#{GROUP.hash}#2").count == 8  # type: ignore[union-attr]
    assert sum(1 for r in results for c in r.crossings if c.milestone.id == "opened") == 1
    assert repos[0].get(f"inc#{GROUP.hash}#3") is None


def test_racing_claimers_win_a_milestone_once(replicas: RepoFactory) -> None:
    repos = [replicas() for _ in range(8)]
    record = repos[0].join(GROUP, [contribution(1)]).record
    won = race(8, lambda i: repos[i].claim_milestone(record.id, "growth:10"))
    assert won.count(True) == 1 and won.count(False) == 7


def test_a_status_change_racing_joins_is_kept(replicas: RepoFactory) -> None:
    # GIVEN an incident being joined by 4 replicas while an operator resolves it
    repos = [replicas() for _ in range(5)]
    record = repos[0].join(GROUP, [contribution(0)]).record

    def act(i: int) -> Any:
        if i == 4:
            return repos[4].set_status(record.id, "resolved")
        return repos[i].join(GROUP, [contribution(1 + i)])

    results = race(5, act)
    # THEN the resolution stands, and every event is counted in exactly one incident
    assert not [r for r in results if isinstance(r, Exception)]
    assert repos[0].get(record.id).status == "resolved"  # type: ignore[union-attr]
    assert sum(r.count for r in repos[0].list()) == 5


# ---- a flood through the joiner ------------------------------------------------------------


def test_flood_through_the_joiner_costs_about_one_write_per_batch(dynamodb: Any, unique: str) -> None:
    # GIVEN the DynamoDB repository behind a joiner, and a tap on its requests
    table = f"secops-flood-{unique}"
    DynamoTable(table, client=dynamodb).create_table()
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def tap(event_name: str, **_: Any) -> None:
        with lock:
            calls[event_name.rsplit(".", 1)[-1]] += 1

    dynamodb.meta.events.register("before-call.dynamodb", tap)
    try:
        joiner = IncidentJoiner(DynamoIncidentRepo(table, client=dynamodb, quiet_s=QUIET_S), window_s=0.1)
        # WHEN 600 events of one scanner are joined from 16 worker threads
        events = [contribution(n, at=T0 + timedelta(milliseconds=n)) for n in range(600)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(joiner.join, events))
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb", tap)
    # THEN one incident counts 600, every event new, and the incident cost one write per
    # batch, and no pointer for a group's first incident (reads: the pointer and the
    # incident, once)
    (incident,) = {a.incident.id for a in answers}
    assert DynamoIncidentRepo(table, client=dynamodb, quiet_s=QUIET_S).get(incident).count == 600  # type: ignore[union-attr]
    assert all(a.new for a in answers) and joiner.joins == 600
    assert calls["UpdateItem"] == joiner.flushes and calls["GetItem"] == 2
    incident_requests = sum(calls.values())
    # The pipeline adds its own one write per event (the fast path's event write).
    print(
        f"\nincident flood: 600 events, {joiner.flushes} batches, incident writes/event "
        f"{calls['UpdateItem'] / 600:.3f}, incident requests/event {incident_requests / 600:.3f}; "
        f"with the event's own write: {1 + calls['UpdateItem'] / 600:.3f} writes/event, "
        f"{1 + incident_requests / 600:.3f} requests/event"
    )
