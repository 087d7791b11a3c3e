"""The BlockRepo contract, run against the in-memory repository and DynamoDB on moto's
server over HTTP: one block per network and set however many replicas decide it, the
hourly and total caps, removal in two steps with its audit entry, reopening, listings.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from tests.fixtures.fakes import FakeClock
from worker.ports import BlockRepo
from worker.response.dynamodb import DynamoBlockRepo
from worker.response.memory import MemoryBlockRepo
from worker.response.records import POLICY, BlockCaps, BlockRecord, IpSetRef, person
from worker.store.dynamodb.table import DynamoTable

T0 = 1_796_000_000.0  # 2026-11-30, on the hour
V4 = IpSetRef(name="blocked-v4", id="set-v4", scope="REGIONAL", version="IPV4", arn="")
WIDE = BlockCaps(per_hour=100, total=100)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(params=["memory", "dynamodb"])
def replicas(request: pytest.FixtureRequest, unique: str, clock: FakeClock) -> Callable[[], BlockRepo]:
    """Builds repositories over one store, as separate replicas would."""
    if request.param == "memory":
        shared = MemoryBlockRepo(clock=clock)
        return lambda: shared
    client = request.getfixturevalue("dynamodb")
    table = f"secops-blk-{unique}"
    DynamoTable(table, client=client).create_table()
    return lambda: DynamoBlockRepo(table, client=client, clock=clock)


@pytest.fixture
def repo(replicas: Callable[[], BlockRepo]) -> BlockRepo:
    return replicas()


def decision(
    network: str = "203.0.113.9/32", *, at: float = T0, for_s: float = 3600, **kw: Any
) -> BlockRecord:
    fields: dict[str, Any] = {
        "network": network,
        "address": network.split("/", maxsplit=1)[0],
        "ip_set": V4,
        "incident_id": "inc#abc#1",
        "reason": "sqli reached the app",
        "decided_by": POLICY,
        "created_at": at,
        "expires_at": at + for_s,
    }
    fields.update(kw)
    return BlockRecord(**fields)


def test_a_block_is_recorded_once_with_its_audit_entry(repo: BlockRepo) -> None:
    # GIVEN a decision to block
    # WHEN it is opened twice
    first = repo.open_block(decision(), caps=WIDE)
    second = repo.open_block(decision(incident_id="inc#other#1"), caps=WIDE)
    # THEN the first opened it, the second found it in force, and the audit says who and why
    assert first.opened and not second.opened
    assert second.record is not None and second.record.incident_id == "inc#abc#1"
    stored = repo.get_block(decision().key)
    assert stored is not None and stored.status == "active" and stored.generation == 1
    assert [(e.action, e.by, e.reason, e.incident_id) for e in stored.history] == [
        ("blocked", "policy", "sqli reached the app", "inc#abc#1")
    ]


def test_four_racing_replicas_open_one_block(replicas: Callable[[], BlockRepo]) -> None:
    # GIVEN four replicas deciding the same block at once
    repos = [replicas() for _ in range(4)]
    # WHEN they race
    with ThreadPoolExecutor(4) as pool:
        openings = list(pool.map(lambda r: r.open_block(decision(), caps=WIDE), repos))
    # THEN exactly one opened it and the total counts one block
    assert sum(o.opened for o in openings) == 1
    assert len(repos[0].blocks_in_force()) == 1
    assert repos[0].open_block(decision("198.51.100.1/32"), caps=BlockCaps(per_hour=100, total=2)).opened
    assert repos[0].open_block(decision("198.51.100.2/32"), caps=BlockCaps(per_hour=100, total=2)).refused


def test_the_hourly_cap_holds_under_racing_replicas(replicas: Callable[[], BlockRepo]) -> None:
    # GIVEN a cap of 3 blocks per hour and four replicas each deciding 3 different blocks
    caps = BlockCaps(per_hour=3, total=100)
    repos = [replicas() for _ in range(4)]

    def decide(i: int) -> list[bool]:
        return [
            repos[i].open_block(decision(f"198.51.100.{i * 10 + j}/32"), caps=caps).opened for j in range(3)
        ]

    # WHEN they race
    with ThreadPoolExecutor(4) as pool:
        opened = [o for batch in pool.map(decide, range(4)) for o in batch]
    # THEN three blocks were opened in the hour, and the next hour allows more
    assert sum(opened) == 3
    later = repos[0].open_block(decision("192.0.2.1/32", at=T0 + 3600), caps=caps)
    assert later.opened


def test_the_caps_say_which_refused(repo: BlockRepo) -> None:
    # GIVEN one block in force
    repo.open_block(decision(), caps=WIDE)
    # WHEN the next is over the hourly cap, then over the total
    hourly = repo.open_block(decision("198.51.100.1/32"), caps=BlockCaps(per_hour=1, total=100))
    total = repo.open_block(decision("198.51.100.1/32"), caps=BlockCaps(per_hour=100, total=1))
    # THEN each refusal names its cap and nothing was recorded
    assert (hourly.refused, total.refused) == ("hourly_cap", "total_cap")
    assert repo.get_block(decision("198.51.100.1/32").key) is None


def test_removal_is_two_steps_idempotent_and_gives_the_total_back(repo: BlockRepo, clock: FakeClock) -> None:
    # GIVEN a block in force under a total cap of one
    caps = BlockCaps(per_hour=100, total=1)
    opened = repo.open_block(decision(), caps=caps).record
    assert opened is not None
    clock.now = T0 + 4000
    # WHEN it is marked removing (twice: a crashed remover's successor) and then removed (twice)
    assert repo.begin_removal(opened.key, generation=1) is not None
    marked = repo.begin_removal(opened.key, generation=1)
    closed = repo.finish_removal(opened.key, generation=1, action="expired", by="scheduler", reason="over")
    again = repo.finish_removal(opened.key, generation=1, action="expired", by="scheduler", reason="over")
    # THEN it was removed once, with its audit entry, and the total allows a new block
    assert marked is not None and marked.status == "removing"
    assert closed is not None and again is None
    assert closed.status == "removed" and closed.removed_at == T0 + 4000
    assert [e.action for e in closed.history] == ["blocked", "expired"]
    assert repo.blocks_in_force() == []
    assert repo.open_block(decision("198.51.100.1/32", at=T0 + 4000), caps=caps).opened


def test_a_removed_block_reopens_as_its_next_generation(repo: BlockRepo, clock: FakeClock) -> None:
    # GIVEN a block removed by a person
    repo.open_block(decision(), caps=WIDE)
    repo.finish_removal(decision().key, generation=1, action="unblocked", by=person("ana"), reason="fp")
    # WHEN the same network is blocked again
    reopened = repo.open_block(decision(at=T0 + 60, incident_id="inc#abc#2"), caps=WIDE)
    # THEN it is generation 2 and its history holds all three decisions
    assert reopened.opened and reopened.record is not None
    assert reopened.record.generation == 2
    assert [(e.action, e.generation) for e in reopened.record.history] == [
        ("blocked", 1),
        ("unblocked", 1),
        ("blocked", 2),
    ]
    # AND a stale remover of generation 1 cannot touch it
    assert repo.begin_removal(decision().key, generation=1) is None


def test_listings_in_force_expired_and_removed(repo: BlockRepo, clock: FakeClock) -> None:
    # GIVEN three blocks expiring at different times, one of them removed
    for i, for_s in enumerate((600, 60, 3600)):
        repo.open_block(decision(f"198.51.100.{i}/32", for_s=for_s), caps=WIDE)
    clock.now = T0 + 10
    repo.finish_removal(decision("198.51.100.2/32").key, generation=1, action="unblocked", by="x", reason="y")
    # WHEN they are listed at T0 + 600
    in_force = repo.blocks_in_force()
    expired = repo.expired_blocks(now=T0 + 600)
    removed = repo.removed_blocks(since=T0)
    # THEN in force is by expiry, expired holds those due, removed the one taken out
    assert [b.network for b in in_force] == ["198.51.100.1/32", "198.51.100.0/32"]
    assert [b.network for b in expired] == ["198.51.100.1/32", "198.51.100.0/32"]
    assert [b.network for b in removed] == ["198.51.100.2/32"]
    assert repo.removed_blocks(since=T0 + 11) == []


def test_the_record_round_trips(repo: BlockRepo) -> None:
    # GIVEN a person's block of a network in an IPv6 set
    v6 = replace(V4, name="blocked-v6", id="set-v6", version="IPV6")
    block = decision("2001:db8:1::/64", ip_set=v6, decided_by=person("ana"), incident_id=None)
    # WHEN it is recorded and read back
    repo.open_block(block, caps=WIDE)
    stored = repo.get_block(block.key)
    # THEN it is the same record, history added
    assert stored is not None
    assert replace(stored, history=()) == block


def test_many_removals_close_at_once_and_survive_a_finished_one(repo: BlockRepo, clock: FakeClock) -> None:
    # GIVEN three blocks being removed under a total cap of three, one of them finished by another remover
    caps = BlockCaps(per_hour=100, total=3)
    marked = []
    for last in (1, 2, 3):
        opened = repo.open_block(decision(f"198.51.100.{last}/32"), caps=caps).record
        assert opened is not None
        removing = repo.begin_removal(opened.key, generation=1)
        assert removing is not None
        marked.append(removing)
    repo.finish_removal(marked[0].key, generation=1, action="expired", by="other", reason="over")
    # WHEN the three are closed together
    closed = repo.finish_removals(marked, action="expired", by="scheduler", reason="over")
    # THEN the two still open were closed by this call, with their audit entries, and the
    # total has room for three again
    assert sorted(r.network for r in closed) == ["198.51.100.2/32", "198.51.100.3/32"]
    assert all([e.action for e in r.history] == ["blocked", "expired"] for r in closed)
    assert repo.blocks_in_force() == []
    assert sum(repo.open_block(decision(f"192.0.2.{n}/32"), caps=caps).opened for n in (1, 2, 3, 4)) == 3
