"""The DynamoDB backend of the store: one table for events, patterns and slot locks.

Table: partition key ``pk`` (S), on demand, TTL on ``ttl``, and one sparse index
``monitoring-by-time`` (``mon_pk``, ``mon_sk``) holding only events in `monitoring`.
Events, patterns, slot locks, saved analyses (``sig#``), object checkpoints (``obj#``) and
per-window aggregates (``agg#``) live side by side.
Every state change is one conditional write, with ``ReturnValuesOnConditionCheckFailure``
handing back the record that won; the rules themselves are in :mod:`worker.store.records`.
"""

from __future__ import annotations

from worker.store.dynamodb.aggregates import WindowCountOps
from worker.store.dynamodb.events import EventOps
from worker.store.dynamodb.locks import LockOps
from worker.store.dynamodb.patterns import PatternOps
from worker.store.dynamodb.signatures import SignatureOps


class EventStore(EventOps, PatternOps, LockOps, WindowCountOps, SignatureOps):
    """Everything the worker keeps in DynamoDB: the EventRepo, PatternRepo, SlotLock,
    CheckpointRepo, WindowCountRepo and SignatureRepo ports.

    ``EventStore(table_name, client=None, ttl_days=30, clock=worker.clock.epoch)``:
    ``client`` is a low-level boto3 DynamoDB client (default: one from
    :func:`worker.aws.client`); ``clock`` returns epoch seconds and is the seam tests
    move time through.
    """


__all__ = ["EventStore"]
