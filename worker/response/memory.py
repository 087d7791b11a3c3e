"""The response actions in memory: IP sets with lock tokens, and block records with the
DynamoDB repository's conditions, for millisecond tests and dry runs.

Each method does under one lock what the DynamoDB repository does in one conditional
write (or transaction); ``tests/integration/response`` runs the same contract tests
against both, and the IP set contract against this and moto's WAFv2.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import worker.platform.clock
from worker.errors import ConfigurationError
from worker.response.ipset import IpSetEditor, LockLost
from worker.response.keys import hour_key
from worker.response.records import (
    AuditAction,
    BlockCaps,
    BlockOpening,
    BlockRecord,
    IpSetRef,
)


class MemoryIpSets(IpSetEditor):
    """IP sets whose writes present a lock token, like WAF's; ``create`` makes one."""

    def __init__(self, **options: Any) -> None:
        """``options`` are :class:`IpSetEditor`'s (attempts, wait, sleep, max_addresses)."""
        super().__init__(**options)
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[list[str], str]] = {}
        self._tokens = itertools.count(1)
        # Tests make writes lose: called before each write, True makes it lose its lock.
        self.lose_write: Callable[[IpSetRef], bool] = lambda _ip_set: False

    def create(self, ip_set: IpSetRef, addresses: list[str] | None = None) -> IpSetRef:
        with self._lock:
            self._sets[ip_set.id] = (list(addresses or []), str(next(self._tokens)))
        return ip_set

    def _read(self, ip_set: IpSetRef) -> tuple[list[str], str]:
        with self._lock:
            if ip_set.id not in self._sets:
                raise ConfigurationError(f"no IP set {ip_set.label}", reason="waf_misconfigured")
            addresses, token = self._sets[ip_set.id]
            return list(addresses), token

    def _write(self, ip_set: IpSetRef, addresses: list[str], token: str) -> None:
        if self.lose_write(ip_set):
            raise LockLost(f"IP set {ip_set.label} changed since it was read")
        with self._lock:
            current = self._sets.get(ip_set.id)
            if current is None:
                raise ConfigurationError(f"no IP set {ip_set.label}", reason="waf_misconfigured")
            if current[1] != token:
                raise LockLost(f"IP set {ip_set.label} changed since it was read")
            self._sets[ip_set.id] = (list(addresses), str(next(self._tokens)))


class MemoryBlockRepo:
    """The BlockRepo port in memory, with the DynamoDB repository's semantics."""

    def __init__(self, *, clock: Callable[[], float] = worker.platform.clock.epoch) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._blocks: dict[str, BlockRecord] = {}
        self._hours: dict[str, int] = {}
        self._active = 0

    def open_block(self, block: BlockRecord, *, caps: BlockCaps) -> BlockOpening:
        with self._lock:
            existing = self._blocks.get(block.key)
            if existing is not None and existing.in_set:
                return BlockOpening(existing, opened=False)
            hour = hour_key(block.created_at)
            if self._hours.get(hour, 0) >= caps.per_hour:
                return BlockOpening(None, opened=False, refused="hourly_cap")
            if self._active >= caps.total:
                return BlockOpening(None, opened=False, refused="total_cap")
            record = block.opened(existing)
            self._blocks[block.key] = record
            self._hours[hour] = self._hours.get(hour, 0) + 1
            self._active += 1
            return BlockOpening(record, opened=True)

    def begin_removal(self, key: str, *, generation: int) -> BlockRecord | None:
        with self._lock:
            record = self._blocks.get(key)
            if record is None or not record.in_set or record.generation != generation:
                return None
            record = replace(record, status="removing")
            self._blocks[key] = record
            return record

    def finish_removal(
        self,
        key: str,
        *,
        generation: int,
        action: AuditAction,
        by: str,
        reason: str,
        current: BlockRecord | None = None,
    ) -> BlockRecord | None:
        with self._lock:
            record = self._blocks.get(key)
            if record is None or not record.in_set or record.generation != generation:
                return None
            record = record.closed(now=self._clock(), action=action, by=by, reason=reason)
            self._blocks[key] = record
            self._active -= 1
            return record

    def finish_removals(
        self, records: Sequence[BlockRecord], *, action: AuditAction, by: str, reason: str
    ) -> list[BlockRecord]:
        done = []
        for record in records:
            closed = self.finish_removal(
                record.key, generation=record.generation, action=action, by=by, reason=reason
            )
            if closed is not None:
                done.append(closed)
        return done

    def get_block(self, key: str) -> BlockRecord | None:
        with self._lock:
            return self._blocks.get(key)

    def blocks_in_force(self) -> list[BlockRecord]:
        with self._lock:
            return sorted((b for b in self._blocks.values() if b.in_set), key=_by_expiry)

    def expired_blocks(self, *, now: float, limit: int = 500) -> list[BlockRecord]:
        return [b for b in self.blocks_in_force() if b.expires_at <= now][:limit]

    def removed_blocks(self, *, since: float) -> list[BlockRecord]:
        with self._lock:
            removed = [b for b in self._blocks.values() if b.removed_at is not None and not b.in_set]
        return sorted((b for b in removed if (b.removed_at or 0) >= since), key=lambda b: b.removed_at or 0)


def _by_expiry(block: BlockRecord) -> tuple[float, str]:
    return block.expires_at, block.key
