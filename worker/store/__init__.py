"""The store: records and state-machine rules (:mod:`worker.store.records`), the key
formats and limits (:mod:`worker.store.keys`), and two backends with one behaviour:
DynamoDB (:mod:`worker.store.dynamodb`, production) and memory
(:mod:`worker.store.memory`, unit tests), both running the steps of
:mod:`worker.store.steps`. The backends are imported by name where they are built,
never by this package. See docs/architecture.md, "Event state machine".
"""

from __future__ import annotations

from worker.store.keys import EVENT_STATUSES, TERMINAL, rejection_key
from worker.store.records import EventRecord, PatternRecord

__all__ = [
    "EVENT_STATUSES",
    "TERMINAL",
    "EventRecord",
    "PatternRecord",
    "rejection_key",
]
