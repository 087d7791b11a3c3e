"""The WindowCountRepo contract, run against both backends: DynamoDB (moto over HTTP) and memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.operator import EMPTY
from secops_core.waf.relevance import Relevance, relevance
from tests.fixtures.counted_records import reputation_blocked
from tests.fixtures.fakes import FakeClock
from worker.errors import RetryableError
from worker.store.aggregates import MAX_COUNTS_PER_SAVE, WindowCounter, WindowShard, merge_counts
from worker.store.dynamodb import EventStore
from worker.store.memory_aggregates import MemoryWindowCounts

Repo = EventStore | MemoryWindowCounts
_HOUR = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)


@pytest.fixture(params=["dynamodb", "memory"])
def repo_and_clock(request: pytest.FixtureRequest, unique: str) -> Iterator[tuple[Repo, FakeClock]]:
    clock = FakeClock(1_800_000_000.0)
    if request.param == "memory":
        yield MemoryWindowCounts(clock=clock), clock
        return
    request.getfixturevalue("aws_endpoint")
    store = EventStore(f"t-{unique}", clock=clock)
    store.create_table()
    yield store, clock


def _blocked(ip: str, uri: str = "/products/7", minute: int = 5) -> dict[str, Any]:
    return reputation_blocked(ip, uri, _HOUR + timedelta(minutes=minute))


def _count(counter: WindowCounter, record: dict[str, Any]) -> None:
    event = normalize_event(record)
    verdict = relevance(event, EMPTY)
    assert verdict.relevance is Relevance.COUNTED
    counter.add(event, verdict)


def test_counts_are_saved_with_the_checkpoint_and_read_back_merged(
    repo_and_clock: tuple[Repo, FakeClock],
) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    counter = WindowCounter(f"{claimed.pk}@{claimed.position}")
    # GIVEN 30 reputation blocks from 3 sources, on two URIs that share a template
    for i in range(30):
        _count(counter, _blocked(f"198.51.100.{i % 3}", uri=f"/products/{i}"))
    # WHEN saved with the checkpoint
    saved = repo.save_object_counted(
        claimed.advanced(30, claimed.counts()), counter.take_dirty(), owner="a", lease_s=30
    )
    assert saved.position == 30
    # THEN the hour reads back as one window: 30 requests, 3 sources, the top ones
    [window] = repo.window_counts(since=_HOUR, until=_HOUR)
    assert (window.requests, window.distinct_sources, window.exact) == (30, 3, True)
    assert window.key.uri_template == "/products/{n}"
    assert window.key.rule.endswith("AWSManagedIPReputationList")
    assert (window.attack_class, window.severity) == ("ip_reputation", 2)
    assert window.top_sources(1) == [("198.51.100.0", 10)]
    assert repo.get_object("b", "k", "e1") == saved


def test_a_resaved_segment_is_overwritten_not_added(repo_and_clock: tuple[Repo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    counter = WindowCounter(f"{claimed.pk}@0")
    for i in range(5):
        _count(counter, _blocked(f"203.0.113.{i}"))
    checkpoint = repo.save_object_counted(
        claimed.advanced(5, claimed.counts()), counter.take_dirty(), owner="a", lease_s=30
    )
    # WHEN the same segment goes on and is saved again (cumulative counts)
    for i in range(5):
        _count(counter, _blocked(f"203.0.113.{i}"))
    repo.save_object_counted(
        checkpoint.advanced(10, checkpoint.counts()),
        counter.take_dirty(),
        owner="a",
        lease_s=30,
        complete=True,
    )
    # THEN the window holds 10 requests, not 15
    [window] = repo.window_counts(since=_HOUR, until=_HOUR)
    assert (window.requests, window.distinct_sources) == (10, 5)


def test_a_lost_lease_stores_neither_the_checkpoint_nor_the_counts(
    repo_and_clock: tuple[Repo, FakeClock],
) -> None:
    repo, clock = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    counter = WindowCounter(f"{claimed.pk}@0")
    _count(counter, _blocked("192.0.2.1"))
    # GIVEN another reader took the lease over
    clock.advance(31)
    repo.claim_object("b", "k", "e1", owner="b", lease_s=30)
    # WHEN we save THEN it is refused, and nothing of ours is stored
    with pytest.raises(RetryableError) as lost:
        repo.save_object_counted(
            claimed.advanced(1, claimed.counts()), counter.take_dirty(), owner="a", lease_s=30
        )
    assert lost.value.reason == "lease_lost"
    assert repo.window_counts(since=_HOUR, until=_HOUR) == []
    current = repo.get_object("b", "k", "e1")
    assert current is not None and current.position == 0


def test_a_resumed_read_is_a_new_segment_and_the_hour_adds_both(
    repo_and_clock: tuple[Repo, FakeClock],
) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    first = WindowCounter(f"{claimed.pk}@0")
    for i in range(4):
        _count(first, _blocked(f"192.0.2.{i}"))
    checkpoint = repo.save_object_counted(
        claimed.advanced(4, claimed.counts()), first.take_dirty(), owner="a", lease_s=30, release=True
    )
    # WHEN another reader resumes at the checkpoint and counts the rest
    resumed = repo.claim_object("b", "k", "e1", owner="b", lease_s=30)
    assert resumed.position == checkpoint.position == 4
    second = WindowCounter(f"{resumed.pk}@{resumed.position}")
    for i in range(2, 8):
        _count(second, _blocked(f"192.0.2.{i}"))
    repo.save_object_counted(
        resumed.advanced(10, resumed.counts()), second.take_dirty(), owner="b", lease_s=30, complete=True
    )
    # THEN every record is counted once, and the sources are the union
    [window] = repo.window_counts(since=_HOUR, until=_HOUR)
    assert (window.requests, window.distinct_sources) == (10, 8)


def test_at_most_99_shards_per_save(repo_and_clock: tuple[Repo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    shards = [WindowShard("s", "2026-12-06T21", index, []) for index in range(MAX_COUNTS_PER_SAVE + 1)]
    with pytest.raises(ValueError, match="at most 99"):
        repo.save_object_counted(claimed, shards, owner="a", lease_s=30)


def test_a_frame_of_many_windows_is_one_shard_per_200_windows(repo_and_clock: tuple[Repo, FakeClock]) -> None:
    repo, _ = repo_and_clock
    claimed = repo.claim_object("b", "k", "e1", owner="a", lease_s=30)
    counter = WindowCounter(f"{claimed.pk}@0")
    # GIVEN 450 windows of one hour (450 URI templates), counted before one save
    for i in range(450):
        _count(counter, _blocked("192.0.2.1", uri=f"/p{i}"))
    assert counter.dirty() == 3
    repo.save_object_counted(
        claimed.advanced(450, claimed.counts()), counter.take_dirty(), owner="a", lease_s=30
    )
    # THEN every window reads back
    windows = repo.window_counts(since=_HOUR, until=_HOUR)
    assert len(windows) == 450 and sum(w.requests for w in windows) == 450


def test_merging_estimates_distinct_sources_past_the_listed_ones() -> None:
    # GIVEN two segments that each saw more sources than an item lists
    counters = [WindowCounter(f"s{n}") for n in range(2)]
    for n, counter in enumerate(counters):
        for i in range(150):
            _count(counter, _blocked(f"10.{n}.{i // 250}.{i % 250}"))
    single = merge_counts(w for shard in counters[0].take_dirty() for w in shard.windows)
    both = merge_counts([*single, *(w for shard in counters[1].take_dirty() for w in shard.windows)])
    # THEN one segment alone is exact; two are an upper bound, said so
    assert (single[0].distinct_sources, single[0].exact) == (150, True)
    assert both[0].requests == 300
    assert both[0].distinct_sources == 300 and not both[0].exact
