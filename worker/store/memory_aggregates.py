"""The WindowCountRepo port in memory, with the DynamoDB backend's rules.

Object checkpoints (:class:`worker.store.memory.MemoryCheckpoints`) plus the window
counts saved with them: a save whose lease is lost stores neither, as the DynamoDB
transaction does (docs/architecture.md, "Relevance").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

import worker.platform.clock
from worker.store.aggregates import MAX_COUNTS_PER_SAVE, WindowCount, WindowShard, hours_between, merge_counts
from worker.store.checkpoints import ObjectCheckpoint
from worker.store.memory import MemoryCheckpoints


class MemoryWindowCounts(MemoryCheckpoints):
    """Checkpoints and per-window aggregates in dicts, for tests and the embedded demo."""

    def __init__(self, *, clock: Callable[[], float] = worker.platform.clock.epoch) -> None:
        super().__init__(clock=clock)
        self._shards: dict[str, WindowShard] = {}
        self._counts_lock = threading.Lock()

    def save_object_counted(
        self,
        checkpoint: ObjectCheckpoint,
        shards: Sequence[WindowShard],
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        if len(shards) > MAX_COUNTS_PER_SAVE:
            raise ValueError(f"at most {MAX_COUNTS_PER_SAVE} shards per save, got {len(shards)}")
        # Raises (lease lost) before any count is stored.
        saved = self.save_object(checkpoint, owner=owner, lease_s=lease_s, complete=complete, release=release)
        with self._counts_lock:
            for shard in shards:
                # A copy, as a store holds it: the caller's counter goes on counting.
                self._shards[shard.pk] = WindowShard.from_item(shard.to_item())
        return saved

    def window_counts(self, *, since: datetime, until: datetime) -> list[WindowCount]:
        hours = set(hours_between(since, until))
        with self._counts_lock:
            items = [w for shard in self._shards.values() if shard.hour in hours for w in shard.windows]
        return merge_counts(items)
