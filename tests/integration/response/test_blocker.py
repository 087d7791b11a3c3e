"""Blocking on moto's server over HTTP (DynamoDB records, WAFv2 IP sets), as replicas
do it: a block added once under four racing replicas, through a storm of lost lock
tokens, never for an allowlisted or reserved address, within the hourly and total caps,
and removed after its expiry, also when every worker was killed past it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tenacity import wait_none

import worker.platform.aws
from tests.fixtures.fakes import FakeClock as BaseClock
from tests.fixtures.waf import create_ip_set, lock_storm, stored_addresses
from worker.response.addresses import Allowlist
from worker.response.blocker import Blocker
from worker.response.dynamodb import DynamoBlockRepo
from worker.response.expiry import ExpiryJob
from worker.response.records import POLICY, BlockCaps, IpSetRef, person
from worker.response.wafv2 import WafIpSets
from worker.store.dynamodb import EventStore
from worker.store.dynamodb.table import DynamoTable

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_796_000_000.0
WIDE = BlockCaps(per_hour=100, total=100)


class FakeClock(BaseClock):
    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture(scope="module")
def aws(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        yield {
            "dynamodb": worker.platform.aws.client("dynamodb"),
            "wafv2": worker.platform.aws.client("wafv2"),
        }


@dataclass
class Env:
    table: str
    v4: IpSetRef
    v6: IpSetRef
    wafv2: Any
    dynamodb: Any
    clock: FakeClock

    def replica(
        self, *, caps: BlockCaps = WIDE, allowlist: Allowlist | None = None, wafv2: Any = None, **kw: Any
    ) -> Blocker:
        """A replica: its own clients to the same table and sets."""
        return Blocker(
            repo=DynamoBlockRepo(self.table, client=worker.platform.aws.client("dynamodb"), clock=self.clock),
            ip_sets=WafIpSets(client=wafv2 or worker.platform.aws.client("wafv2"), wait=wait_none()),
            sets={"IPV4": self.v4, "IPV6": self.v6},
            allowlist=allowlist or Allowlist.build(release=["documentation"]),
            caps=caps,
            now=self.clock,
            **kw,
        )

    def stored(self, ip_set: IpSetRef | None = None) -> list[str]:
        return stored_addresses(self.wafv2, ip_set or self.v4)


@pytest.fixture
def env(aws: dict[str, Any], unique: str, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> Env:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    table = f"secops-blk-{unique}"
    DynamoTable(table, client=aws["dynamodb"]).create_table()
    return Env(
        table=table,
        v4=create_ip_set(aws["wafv2"], f"blocked-v4-{unique}", version="IPV4"),
        v6=create_ip_set(aws["wafv2"], f"blocked-v6-{unique}", version="IPV6"),
        wafv2=aws["wafv2"],
        dynamodb=aws["dynamodb"],
        clock=FakeClock(T0),
    )


def test_a_block_is_added_once_under_four_racing_replicas(env: Env) -> None:
    # GIVEN four replicas deciding the same block of the same incident at once
    replicas = [env.replica() for _ in range(4)]

    def decide(blocker: Blocker) -> str:
        return blocker.block(
            "203.0.113.9", duration_s=3600, reason="sqli", decided_by=POLICY, incident_id="inc#a#1"
        ).outcome

    # WHEN they race
    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(decide, replicas))
    # THEN one wrote it, the others found it, and the set holds it once, with one audit entry
    assert outcomes == ["already", "already", "already", "blocked"]
    assert env.stored() == ["203.0.113.9/32"]
    record = replicas[0].repo.get_block(f"blk#{env.v4.id}#203.0.113.9/32")
    assert record is not None
    assert [(e.action, e.by, e.incident_id) for e in record.history] == [("blocked", "policy", "inc#a#1")]


def test_a_block_survives_a_storm_of_lost_lock_tokens(env: Env) -> None:
    # GIVEN a set a person keeps an address in, and a replica whose next 10 writes lose the lock
    env.wafv2.update_ip_set(
        Name=env.v4.name,
        Scope="REGIONAL",
        Id=env.v4.id,
        Addresses=["198.51.100.7/32"],
        LockToken=env.wafv2.get_ip_set(Name=env.v4.name, Scope="REGIONAL", Id=env.v4.id)["LockToken"],
    )
    client = worker.platform.aws.client("wafv2")
    blocker = env.replica(wafv2=client)
    with lock_storm(client, 10) as storm:
        # WHEN it blocks an address
        result = blocker.block(
            "203.0.113.9", duration_s=3600, reason="sqli", decided_by=POLICY, incident_id="i"
        )
    # THEN the write landed after the storm, and the person's address is still there
    assert storm.injected == 10
    assert result.outcome == "blocked"
    assert sorted(env.stored()) == ["198.51.100.7/32", "203.0.113.9/32"]


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",  # private
        "172.16.0.9",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "127.0.0.1",  # loopback
        "169.254.169.254",  # link-local (the instance metadata service)
        "224.0.0.1",  # multicast: never a source
        "::1",
        "fe80::1",
        "fd00::1",
        "2001:db8::9",  # documentation, not released below
        "::ffff:10.0.0.1",  # a private IPv4 address seen through IPv6
        "198.51.100.20",  # the operator's allowlist
        "not-an-ip",
    ],
)
def test_an_allowlisted_or_reserved_address_is_never_written(env: Env, address: str) -> None:
    # GIVEN an operator's allowlist of 198.51.100.0/24, the reserved ranges in force
    blocker = env.replica(allowlist=Allowlist.build(["198.51.100.0/24"]))
    # WHEN the policy and a person try to block the address
    by_policy = blocker.block(address, duration_s=3600, reason="x", decided_by=POLICY, incident_id="i")
    by_person = blocker.block(address, duration_s=3600, reason="x", decided_by=person("ana"))
    # THEN both are refused and nothing was written anywhere
    assert (by_policy.outcome, by_person.outcome) == ("refused", "refused")
    assert env.stored(env.v4) == [] and env.stored(env.v6) == []
    assert blocker.repo.blocks_in_force() == []


def test_a_network_block_overlapping_the_allowlist_is_refused(env: Env) -> None:
    # GIVEN one allowlisted host, and the policy blocking /24 networks
    blocker = env.replica(
        allowlist=Allowlist.build(["192.0.2.77/32"], release=["documentation"]), prefix="network"
    )
    # WHEN a neighbour of the host and an unrelated address are blocked
    near = blocker.block("192.0.2.5", duration_s=60, reason="x", decided_by=POLICY, incident_id="i")
    far = blocker.block("203.0.113.9", duration_s=60, reason="x", decided_by=POLICY, incident_id="i")
    # THEN the /24 holding the allowlisted host is not written; the other /24 is
    assert (near.outcome, near.reason) == ("refused", "allowlisted")
    assert far.outcome == "blocked"
    assert env.stored() == ["203.0.113.0/24"]


def test_the_hourly_cap_holds_across_racing_replicas(env: Env) -> None:
    # GIVEN a cap of 3 blocks an hour and four replicas each deciding 3 different addresses
    replicas = [env.replica(caps=BlockCaps(per_hour=3, total=100)) for _ in range(4)]

    def decide(i: int) -> list[str]:
        return [
            replicas[i].block(f"203.0.113.{i * 10 + j}", duration_s=60, reason="x", decided_by=POLICY).outcome
            for j in range(3)
        ]

    # WHEN they race
    with ThreadPoolExecutor(4) as pool:
        outcomes = [o for batch in pool.map(decide, range(4)) for o in batch]
    # THEN three were blocked and written; the rest were refused by the cap
    assert outcomes.count("blocked") == 3 and outcomes.count("refused") == 9
    assert len(env.stored()) == 3
    # AND the next clock hour has room again
    env.clock.now += 3600
    assert (
        replicas[0].block("203.0.113.99", duration_s=60, reason="x", decided_by=POLICY).outcome == "blocked"
    )


def test_the_total_cap_counts_blocks_in_force(env: Env) -> None:
    # GIVEN a total cap of 2, reached
    blocker = env.replica(caps=BlockCaps(per_hour=100, total=2))
    for last in (1, 2):
        assert (
            blocker.block(f"203.0.113.{last}", duration_s=60, reason="x", decided_by=POLICY).outcome
            == "blocked"
        )
    # WHEN a third is decided, then one of the first expires and the third is decided again
    refused = blocker.block("203.0.113.3", duration_s=60, reason="x", decided_by=POLICY)
    env.clock.now += 61
    blocker.expire()
    later = blocker.block("203.0.113.3", duration_s=60, reason="x", decided_by=POLICY)
    # THEN it was refused while the cap was reached, and blocked once room was made
    assert (refused.outcome, refused.reason) == ("refused", "total_cap")
    assert later.outcome == "blocked"
    assert env.stored() == ["203.0.113.3/32"]


def test_expiry_removes_once_per_slot_across_replicas(env: Env) -> None:
    # GIVEN an IPv4 and an IPv6 block of 10 minutes, and two replicas' expiry jobs
    blocker = env.replica()
    blocker.block("203.0.113.9", duration_s=600, reason="x", decided_by=POLICY, incident_id="i")
    blocker.block("2001:db8::9", duration_s=600, reason="x", decided_by=POLICY, incident_id="i")
    store = EventStore(env.table, client=env.dynamodb, clock=env.clock)
    jobs = [
        ExpiryJob(blocker=env.replica(), lock=store, owner=f"r{i}", interval_s=60, now=env.clock.dt)
        for i in range(2)
    ]
    # WHEN both tick before the expiry, then both tick in the first slot after it
    early = [job.tick() for job in jobs]
    env.clock.now += 601
    late = [job.tick() for job in jobs]
    # THEN nothing was removed early; one replica removed both blocks, the other found the slot taken
    assert [r.removed for r in early if r.ran] == [[]]
    assert sorted(n for r in late for n in r.removed) == ["2001:db8::9/128", "203.0.113.9/32"]
    assert [r.ran for r in late] == [True, False]
    assert env.stored(env.v4) == [] and env.stored(env.v6) == []
    record = blocker.repo.get_block(f"blk#{env.v4.id}#203.0.113.9/32")
    assert record is not None and record.status == "removed"
    assert [(e.action, e.by) for e in record.history] == [("blocked", "policy"), ("expired", "scheduler")]


def _replica_process(
    env: Env, command: str, address: str, seconds: float
) -> subprocess.CompletedProcess[str]:
    variables = {
        **os.environ,
        "SECOPS_TABLE_NAME": env.table,
        "SECOPS_RESPONSE_IP_SET_V4": env.v4.arn,
        "SECOPS_RESPONSE_IP_SET_V6": env.v6.arn,
        "SECOPS_RESPONSE_BLOCKABLE_RANGES": "documentation",
        "SECOPS_RESPONSE_MODE": "on",
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.fixtures.block_replica", command, address, str(seconds)],
        cwd=ROOT,
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_a_block_is_removed_after_every_worker_was_killed_past_its_expiry(env: Env) -> None:
    # GIVEN a replica that blocked an address for 1 s and was SIGKILLed, and another that
    # was SIGKILLed half-way through removing a second one (marked, the set not written)
    blocked = _replica_process(env, "block", "203.0.113.9", 1)
    assert blocked.stdout.strip().splitlines()[-1] == "blocked" and blocked.returncode == -9
    assert _replica_process(env, "block", "203.0.113.10", 1).returncode == -9
    half = _replica_process(env, "remove-and-die", "203.0.113.10", 1)
    assert half.returncode == -9, half.stderr[-2000:]
    assert sorted(env.stored()) == ["203.0.113.10/32", "203.0.113.9/32"]
    # WHEN no worker runs until past the expiry, and then a fresh replica's pass runs
    time.sleep(1.5)
    store = EventStore(env.table, client=env.dynamodb)
    fresh = Blocker(
        repo=DynamoBlockRepo(env.table, client=env.dynamodb),
        ip_sets=WafIpSets(client=env.wafv2),
        sets={"IPV4": env.v4},
        allowlist=Allowlist.build(release=["documentation"]),
        caps=WIDE,
    )
    run = ExpiryJob(blocker=fresh, lock=store, owner="fresh", interval_s=60).tick()
    # THEN both are out of the set, and their records say so
    assert run.ran and sorted(run.removed) == ["203.0.113.10/32", "203.0.113.9/32"]
    assert env.stored() == []
    assert fresh.repo.blocks_in_force() == []
