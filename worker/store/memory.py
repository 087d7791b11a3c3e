"""The store in memory: the EventRepo, PatternRepo, SlotLock and SignatureRepo ports with DynamoDB's
semantics, for millisecond tests of the pipeline.

Only the storage operations are here: the steps are :class:`worker.store.steps.StoreSteps`,
the same code the DynamoDB backend runs. Each write happens under one lock, as DynamoDB
does one conditional write; ``tests/integration/test_store.py`` runs one set of tests
against both backends to keep it so.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import worker.platform.clock
from worker.errors import AlreadyInProgress, RetryableError
from worker.store.checkpoints import ObjectCheckpoint, checkpoint_key
from worker.store.keys import MONITORING_PK, iso_from_epoch
from worker.store.steps import StoreSteps
from worker.store.writes import Change, Condition, ConditionLost, Item


class MemoryStore(StoreSteps):
    """Events, patterns and slot locks in a dict; thread-safe, so races can be tested."""

    def __init__(
        self, *, ttl_days: int = 30, clock: Callable[[], float] = worker.platform.clock.epoch
    ) -> None:
        self.ttl_days = ttl_days
        self._clock = clock
        self._items: dict[str, Item] = {}
        self._lock = threading.Lock()

    def _write(
        self, key: str, change: Change, *, when: Condition | None = None, read_back: bool = True
    ) -> Item:
        with self._lock:
            old = self._items.get(key)
            if when is not None and not when.holds(old):
                raise ConditionLost(copy.deepcopy(old))
            new = change.applied_to(old or {}, key)
            self._items[key] = new
            return copy.deepcopy(new) if read_back else {}

    def _put(self, item: Item, *, when: Condition | None = None) -> None:
        with self._lock:
            old = self._items.get(item["pk"])
            if when is not None and not when.holds(old):
                raise ConditionLost(copy.deepcopy(old))
            self._items[item["pk"]] = copy.deepcopy(item)

    def _read(self, key: str, *, consistent: bool = True) -> Item | None:
        with self._lock:
            item = self._items.get(key)
            return copy.deepcopy(item) if item is not None else None

    def _read_many(self, keys: list[str]) -> list[Item]:
        with self._lock:
            return [copy.deepcopy(self._items[k]) for k in keys if k in self._items]

    def _read_monitoring(self, low: str, high: str, *, page_size: int) -> Iterator[Item]:
        with self._lock:
            found = [
                copy.deepcopy(item)
                for item in self._items.values()
                if item.get("mon_pk") == MONITORING_PK and low <= item["mon_sk"] <= high
            ]
        return iter(sorted(found, key=lambda item: str(item["mon_sk"])))


if TYPE_CHECKING:
    # mypy proves the memory store fills the same ports as the DynamoDB one.
    from worker.ports import MonitorStore, SignatureRepo

    _PORTS: MonitorStore = MemoryStore()
    _SIGNATURES: SignatureRepo = MemoryStore()


class MemoryCheckpoints:
    """The CheckpointRepo port in a dict, with the DynamoDB backend's conditions."""

    def __init__(self, *, clock: Callable[[], float] = worker.platform.clock.epoch) -> None:
        self._clock = clock
        self._items: dict[str, ObjectCheckpoint] = {}
        self._lock = threading.Lock()

    def claim_object(
        self, bucket: str, key: str, version: str, *, owner: str, lease_s: int
    ) -> ObjectCheckpoint:
        now = self._clock()
        pk = checkpoint_key(bucket, key, version)
        with self._lock:
            old = self._items.get(pk) or ObjectCheckpoint(
                bucket, key, version, started_at=iso_from_epoch(now)
            )
            if old.complete:
                return old
            if old.lease_owner not in (None, owner) and old.lease_expires_at >= now:
                raise AlreadyInProgress(
                    f"{bucket}/{key} is being read by another consumer",
                    lease_expires_in_s=max(0.0, old.lease_expires_at - now),
                )
            claimed = replace(
                old, lease_owner=owner, lease_expires_at=now + lease_s, attempts=old.attempts + 1
            )
            self._items[pk] = claimed
            return claimed

    def save_object(
        self,
        checkpoint: ObjectCheckpoint,
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        now = self._clock()
        with self._lock:
            old = self._items.get(checkpoint.pk)
            if old is None or old.lease_owner != owner:
                raise RetryableError(
                    f"lease on {checkpoint.bucket}/{checkpoint.key} lost to another reader",
                    reason="lease_lost",
                )
            saved = replace(
                checkpoint, status=old.status, attempts=old.attempts, started_at=old.started_at
            ).saved(owner=owner, lease_s=lease_s, complete=complete, release=release, now=now)
            self._items[checkpoint.pk] = saved
            return saved

    def get_object(self, bucket: str, key: str, version: str) -> ObjectCheckpoint | None:
        with self._lock:
            return self._items.get(checkpoint_key(bucket, key, version))
