"""Suppressions in process memory, with the DynamoDB repository's semantics (one lock
stands in for its conditional writes and transactions): for unit tests and the demo.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

from worker.suppressions.keys import hit_key
from worker.suppressions.model import EndHow, Suppression
from worker.suppressions.repo import DuplicateSuppression


class MemorySuppressionRepo:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Suppression] = {}
        self._marks: set[str] = set()

    def create(self, suppression: Suppression) -> Suppression:
        with self._lock:
            if suppression.id in self._items:
                raise DuplicateSuppression(suppression.id)
            self._items[suppression.id] = replace(suppression, hits=0, last_hit_at=None)
            return self._items[suppression.id]

    def get(self, suppression_id: str) -> Suppression | None:
        with self._lock:
            return self._items.get(suppression_id)

    def list(self, *, with_hits: bool = True) -> list[Suppression]:
        with self._lock:
            return sorted(self._items.values(), key=lambda s: (s.created_at, s.id))

    def end(self, suppression_id: str, how: EndHow, *, by: str, at: datetime) -> Suppression | None:
        with self._lock:
            current = self._items.get(suppression_id)
            if current is None:
                return None
            self._items[suppression_id] = current.ended(how, by=by, at=at)
            return self._items[suppression_id]

    def count_hit(self, suppression_id: str, event_key: str, *, at: datetime) -> bool:
        mark = hit_key(suppression_id, event_key)
        with self._lock:
            if mark in self._marks:
                return False
            self._marks.add(mark)
            current = self._items.get(suppression_id)
            if current is not None:
                self._items[suppression_id] = replace(current, hits=current.hits + 1, last_hit_at=at)
            return True
