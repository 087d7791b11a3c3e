"""The expiry pass in memory: transient store faults cost a retry, not the slot; a step
that keeps failing leaves its block for the next pass and never fails the others."""

from __future__ import annotations

from typing import Any

import pytest
from tenacity import wait_none

from tests.fixtures.fakes import FakeClock
from worker.errors import RetryableError
from worker.response import blocker as blocker_module
from worker.response.addresses import Allowlist
from worker.response.blocker import Blocker
from worker.response.memory import MemoryBlockRepo, MemoryIpSets
from worker.response.records import POLICY, BlockCaps, BlockRecord, IpSetRef

V4 = IpSetRef(name="s", id="s", scope="REGIONAL", version="IPV4")


class FlakyRepo(MemoryBlockRepo):
    """Fails the queued calls of a method (by name) before acting."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults: dict[str, int] = {}

    def _fault(self, method: str) -> None:
        if self.faults.get(method, 0) > 0:
            self.faults[method] -= 1
            raise RetryableError("injected", reason="store_unavailable")

    def get_block(self, key: str) -> BlockRecord | None:
        self._fault("get_block")
        return super().get_block(key)

    def begin_removal(self, key: str, *, generation: int) -> BlockRecord | None:
        self._fault("begin_removal")
        return super().begin_removal(key, generation=generation)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocker_module, "STORE_BACKOFF_S", 0)


def setup(clock: FakeClock) -> tuple[Blocker, FlakyRepo, MemoryIpSets]:
    repo = FlakyRepo(clock=clock)
    ip_sets = MemoryIpSets(wait=wait_none())
    ip_sets.create(V4)
    blocker = Blocker(
        repo=repo,
        ip_sets=ip_sets,
        sets={"IPV4": V4},
        allowlist=Allowlist.build(release=["documentation"]),
        caps=BlockCaps(per_hour=10, total=10),
        now=clock,
    )
    for last in (1, 2):
        blocker.block(f"203.0.113.{last}", duration_s=60, reason="r", decided_by=POLICY, incident_id="i")
    clock.now += 61
    return blocker, repo, ip_sets


def test_a_transient_fault_is_retried_within_the_pass() -> None:
    # GIVEN two expired blocks and a store failing twice on reads and once on a removal step
    blocker, repo, ip_sets = setup(FakeClock(1_796_000_000.0))
    repo.faults = {"get_block": 2, "begin_removal": 1}
    # WHEN the pass runs
    removed = blocker.expire()
    # THEN both are out of the set, in this pass
    assert sorted(r.network for r in removed) == ["203.0.113.1/32", "203.0.113.2/32"]
    assert ip_sets.addresses(V4) == frozenset()


def test_a_step_that_keeps_failing_is_left_for_the_next_pass() -> None:
    # GIVEN a store whose first record's removal step fails past the retries
    blocker, repo, ip_sets = setup(FakeClock(1_796_000_000.0))
    repo.faults = {"begin_removal": 4}
    # WHEN the pass runs, then the next one
    first = blocker.expire()
    second = blocker.expire()
    # THEN the other block went in the first pass, and the stubborn one in the second
    assert len(first) == 1 and len(second) == 1
    assert ip_sets.addresses(V4) == frozenset()
