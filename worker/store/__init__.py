"""The DynamoDB store: one table for events, patterns and slot locks.

Table: partition key ``pk`` (S), on demand, TTL on ``ttl``, and one sparse index
``monitoring-by-time`` (``mon_pk``, ``mon_sk``) holding only events in `monitoring`.
Every state change is one conditional write; see :mod:`worker.store.events`.
"""

from __future__ import annotations

from worker.store.events import EventOps, EventRecord
from worker.store.keys import EVENT_STATUSES, TERMINAL, rejection_key
from worker.store.locks import LockOps
from worker.store.patterns import PatternOps, PatternRecord


class EventStore(EventOps, PatternOps, LockOps):
    """Everything the worker keeps in DynamoDB.

    ``EventStore(table_name, client=None, ttl_days=30, clock=worker.clock.epoch)``:
    ``client`` is a low-level boto3 DynamoDB client (default: one from
    :func:`worker.aws.client`); ``clock`` returns epoch seconds and is the seam tests
    move time through.
    """


__all__ = [
    "EVENT_STATUSES",
    "TERMINAL",
    "EventRecord",
    "EventStore",
    "PatternRecord",
    "rejection_key",
]
