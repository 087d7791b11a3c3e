"""The expiry pass: blocks whose period is over taken out of their IP sets, once per
slot across every replica (docs/architecture.md, "Response actions").

Every ``interval_s`` each replica derives the same slot and tries the slot lock
``lock#blocks#<slot>`` (the monitor's lock, another name); the winner removes every
expired block. The pass reads the records, not a memory of what this process blocked,
so a block whose expiry passed while every worker was down is removed by the first
pass after they are back, and a pass killed half-way is finished by the next one
(removal is idempotent). A block therefore outlives its expiry by at most one slot plus
the IP set write's retry budget, one slot more if the replica running the pass dies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from worker.errors import WorkerError
from worker.pipeline.monitor_job import slot_start
from worker.platform import clock
from worker.ports import Metrics, SlotLock
from worker.response.blocker import Blocker, retrying_store

log = structlog.get_logger("worker.response")

JOB_NAME = "blocks"


def lock_name(slot: datetime) -> str:
    return f"lock#{JOB_NAME}#{slot.strftime('%Y-%m-%dT%H:%M:%SZ')}"


@dataclass
class ExpiryRun:
    slot: str
    ran: bool
    removed: list[str] = field(default_factory=list)


class ExpiryJob:
    def __init__(
        self,
        *,
        blocker: Blocker,
        lock: SlotLock,
        owner: str,
        interval_s: int,
        now: Callable[[], datetime] = clock.now,
        metrics: Metrics | None = None,
    ) -> None:
        self.blocker = blocker
        self.lock = lock
        self.owner = owner
        self.interval_s = interval_s
        self.now = now
        self.metrics = metrics

    def tick(self) -> ExpiryRun:
        """Run this slot's pass if no replica has taken it."""
        name = lock_name(slot_start(self.now(), self.interval_s))
        if not retrying_store(lambda: self.lock.acquire_lock(name, owner=self.owner, ttl_s=self.interval_s)):
            return ExpiryRun(slot=name, ran=False)
        removed = self.blocker.expire()
        retrying_store(lambda: self.lock.complete_lock(name, owner=self.owner))
        if removed:
            log.info("blocks_expired", slot=name, removed=[r.network for r in removed])
        if self.metrics is not None:
            self.metrics.count("BlocksExpired", len(removed))
        return ExpiryRun(slot=name, ran=True, removed=[r.network for r in removed])


def safe_tick(job: ExpiryJob) -> None:
    """The scheduler's entry: a failed pass must not kill its thread; the next slot retries."""
    try:
        job.tick()
    except WorkerError as exc:
        log.warning("expiry_run_failed", reason=exc.reason, error=exc.message)
    except Exception:
        log.exception("expiry_run_crashed")
