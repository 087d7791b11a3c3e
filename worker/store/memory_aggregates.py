"""The WindowCountRepo port in memory, with the DynamoDB backend's rules.

Object checkpoints (:class:`worker.store.memory.MemoryCheckpoints`) plus the window
counts saved with them: a save whose lease is lost stores neither, as the DynamoDB
transaction does (docs/architecture.md, "Relevance").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

import worker.clock
from worker.store.aggregates import MAX_COUNTS_PER_SAVE, WindowCount, hours_between, merge_counts
from worker.store.checkpoints import ObjectCheckpoint
from worker.store.memory import MemoryCheckpoints


class MemoryWindowCounts(MemoryCheckpoints):
    """Checkpoints and per-window aggregates in dicts, for tests and the embedded demo."""

    def __init__(self, *, clock: Callable[[], float] = worker.clock.epoch) -> None:
        super().__init__(clock=clock)
        self._counts: dict[str, WindowCount] = {}
        self._counts_lock = threading.Lock()

    def save_object_counted(
        self,
        checkpoint: ObjectCheckpoint,
        counts: Sequence[WindowCount],
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        if len(counts) > MAX_COUNTS_PER_SAVE:
            raise ValueError(f"at most {MAX_COUNTS_PER_SAVE} window counts per save, got {len(counts)}")
        # Raises (lease lost) before any count is stored.
        saved = self.save_object(checkpoint, owner=owner, lease_s=lease_s, complete=complete, release=release)
        with self._counts_lock:
            for count in counts:
                self._counts[count.pk] = WindowCount.from_item(count.to_item())
        return saved

    def window_counts(self, *, since: datetime, until: datetime) -> list[WindowCount]:
        hours = set(hours_between(since, until))
        with self._counts_lock:
            items = [count for count in self._counts.values() if count.key.hour in hours]
        return merge_counts(items)
