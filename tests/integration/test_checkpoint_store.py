"""The CheckpointRepo contract, run against both backends: DynamoDB (moto over HTTP) and memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from secops_core.ingest.s3_logs import BadLine, ReadCounts
from tests.fixtures.fakes import FakeClock
from worker.errors import AlreadyInProgress, RetryableError
from worker.ports import CheckpointRepo
from worker.store.dynamodb import EventStore
from worker.store.memory import MemoryCheckpoints


@pytest.fixture(params=["dynamodb", "memory"])
def repo_and_clock(request: pytest.FixtureRequest, unique: str) -> Iterator[tuple[CheckpointRepo, FakeClock]]:
    clock = FakeClock(1_800_000_000.0)
    if request.param == "memory":
        yield MemoryCheckpoints(clock=clock), clock
        return
    request.getfixturevalue("aws_endpoint")
    store = EventStore(f"t-{unique}", clock=clock)
    store.create_table()
    yield store, clock


def test_first_claim_creates_a_reading_checkpoint(repo_and_clock: tuple[CheckpointRepo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    # WHEN an object is claimed for the first time
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    # THEN it starts at the beginning, leased to us
    assert (claimed.status, claimed.position, claimed.lease_owner, claimed.attempts) == ("reading", 0, "a", 1)


def test_a_live_lease_keeps_others_out_and_an_expired_one_does_not(
    repo_and_clock: tuple[CheckpointRepo, FakeClock],
) -> None:
    repo, clock = repo_and_clock
    repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    # WHEN another reader claims while the lease is live THEN it is told to come back
    with pytest.raises(AlreadyInProgress) as caught:
        repo.claim_object("b", "k", "e1", owner="b", lease_s=30)
    assert caught.value.lease_expires_in_s == pytest.approx(30, abs=1)
    # WHEN the lease has run out THEN it takes over, progress intact
    clock.advance(31)
    taken = repo.claim_object("b", "k", "e1", owner="b", lease_s=30)
    assert taken.lease_owner == "b" and taken.attempts == 2


def test_progress_is_saved_only_under_our_lease(repo_and_clock: tuple[CheckpointRepo, FakeClock]) -> None:
    repo, clock = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    counts = ReadCounts(read=10, kept=2, skipped=7, bad=1, bad_lines=[BadLine(4, "not_json")])
    saved = repo.save_object(claimed.advanced(10, counts), owner="a", lease_s=30)
    # THEN what was saved reads back
    again = repo.get_object("b", "k", "e1")
    assert again is not None and again == saved
    assert (again.position, again.read, again.kept, again.skipped, again.bad) == (10, 10, 2, 7, 1)
    assert again.bad_lines == (BadLine(4, "not_json"),)
    # WHEN another reader took the lease over THEN our save is refused
    clock.advance(31)
    repo.claim_object("b", "k", "e1", owner="b", lease_s=30)
    with pytest.raises(RetryableError) as lost:
        repo.save_object(saved.advanced(20, counts), owner="a", lease_s=30)
    assert lost.value.reason == "lease_lost"


def test_release_frees_the_object_at_once(repo_and_clock: tuple[CheckpointRepo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=300)
    repo.save_object(claimed.advanced(5, claimed.counts()), owner="a", lease_s=300, release=True)
    # THEN another reader resumes at once, where we stopped
    resumed = repo.claim_object("b", "k", "e1", owner="b", lease_s=300)
    assert resumed.position == 5 and resumed.lease_owner == "b"


def test_a_complete_checkpoint_is_returned_as_is(repo_and_clock: tuple[CheckpointRepo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    repo.save_object(claimed.advanced(9, claimed.counts()), owner="a", lease_s=30, complete=True)
    # WHEN anyone claims it again (a duplicate notification, a backfill re-run)
    again = repo.claim_object("b", "k", "e1", owner="b", lease_s=30)
    # THEN it is complete, with no lease taken
    assert again.complete and again.position == 9 and again.lease_owner is None
    assert again.completed_at is not None


def test_versions_of_one_key_are_separate(repo_and_clock: tuple[CheckpointRepo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    other = repo.claim_object("b", "k", "e2", owner="b", lease_s=30)
    assert other.lease_owner == "b" and repo.get_object("b", "k", "e3") is None
