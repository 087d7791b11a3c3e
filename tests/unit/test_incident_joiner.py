"""The group-commit joiner over the in-memory repository: batches, answers per caller,
milestones handed to exactly one caller, errors reaching every caller of a batch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from worker.errors import RetryableError
from worker.incidents import Contribution, EventJoin, GroupKey, JoinResult
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def contribution(n: int, *, ip: str = "203.0.113.7") -> Contribution:
    return Contribution(
        event_key=f"evt#{n}",
        at=T0,
        severity=4,
        attack_class="sqli",
        source_ip=ip,
        reached_app=False,
        rule="SQLi_BODY",
        uri_template="/login",
    )


def join_all(joiner: IncidentJoiner, contributions: Sequence[Contribution], threads: int) -> list[EventJoin]:
    """Join from ``threads`` threads at once (a barrier lines them up)."""
    barrier = threading.Barrier(min(threads, len(contributions)))

    def one(c: Contribution) -> EventJoin:
        barrier.wait()
        return joiner.join(c)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, contributions))


def test_threads_joining_one_group_share_batches_and_count_exactly() -> None:
    # GIVEN a joiner with a window long enough for 16 threads to line up
    repo = MemoryIncidentRepo(quiet_s=3600)
    joiner = IncidentJoiner(repo, window_s=0.2, max_batch=1000)
    # WHEN 64 events of one attack arrive from 16 threads
    answers = join_all(joiner, [contribution(n) for n in range(64)], threads=16)
    # THEN one incident counts each event once, with fewer writes than events
    (incident,) = repo.list()
    assert incident.count == 64 and all(a.new for a in answers)
    assert {a.incident.id for a in answers} == {incident.id}
    assert joiner.joins == 64 and joiner.flushes < 64
    # AND each milestone went to exactly one caller
    milestones = [c.milestone.id for a in answers for c in a.crossings]
    assert sorted(milestones) == sorted(set(milestones)) and "opened" in milestones


def test_groups_do_not_share_batches() -> None:
    repo = MemoryIncidentRepo(quiet_s=3600)
    joiner = IncidentJoiner(repo, window_s=0.05)
    batch = [contribution(n, ip=f"192.0.2.{n % 3}") for n in range(12)]
    answers = join_all(joiner, batch, threads=12)
    assert len(repo.list()) == 3 and sum(r.count for r in repo.list()) == 12
    assert sum(1 for a in answers for c in a.crossings if c.milestone.id == "opened") == 3


def test_a_redelivered_event_is_not_counted_again() -> None:
    # GIVEN an event already joined
    joiner = IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=0)
    first = joiner.join(contribution(1))
    # WHEN it comes again
    again = joiner.join(contribution(1))
    # THEN it is a duplicate in the same incident, with nothing to notify
    assert first.new and [c.milestone.id for c in first.crossings] == ["opened"]
    assert not again.new and again.crossings == () and again.incident.count == 1


def test_one_event_twice_in_one_batch_is_new_for_one_caller() -> None:
    repo = MemoryIncidentRepo(quiet_s=3600)
    joiner = IncidentJoiner(repo, window_s=0.2)
    answers = join_all(joiner, [contribution(1), contribution(1), contribution(2)], threads=3)
    assert sorted(a.new for a in answers if a.event_key == "evt#1") == [False, True]
    assert [r.count for r in repo.list()] == [2]


def test_a_full_batch_flushes_before_its_window() -> None:
    # GIVEN a window far longer than the test, batches of four, and an open incident
    joiner = IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=3600, max_batch=4)
    joiner.join(contribution(0))
    done: list[EventJoin] = []
    threads = [
        threading.Thread(target=lambda n=n: done.append(joiner.join(contribution(n)))) for n in range(1, 5)
    ]
    # WHEN four callers arrive
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # THEN they were answered without waiting out the window
    assert len(done) == 4 and joiner.flushes == 2


def test_the_join_that_opens_an_incident_does_not_wait_for_the_window() -> None:
    # GIVEN a window far longer than the test
    joiner = IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=3600)
    # WHEN the first event of an attack joins THEN it opens the incident at once
    first = joiner.join(contribution(1))
    assert first.new and [c.milestone.id for c in first.crossings] == ["opened"]
    assert joiner.flushes == 1


class FailingRepo(MemoryIncidentRepo):
    """Fails every join, as a throttled table would after botocore's retries."""

    def join(self, group: GroupKey, contributions: Sequence[Contribution]) -> JoinResult:
        raise RetryableError("throttled", reason="store_unavailable")


def test_an_error_reaches_every_caller_of_the_batch() -> None:
    # GIVEN a repository that fails
    joiner = IncidentJoiner(FailingRepo(quiet_s=3600), window_s=0.2)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            joiner.join(contribution(n))
        except RetryableError as exc:
            errors.append(exc)

    # WHEN three callers share a batch
    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # THEN each of them gets the error, and the joiner serves the next batch
    assert len(errors) == 3
    with pytest.raises(RetryableError):
        joiner.join(contribution(9))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=-1)
    with pytest.raises(ValueError):
        MemoryIncidentRepo(quiet_s=0)
