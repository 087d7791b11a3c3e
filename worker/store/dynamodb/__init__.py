"""The DynamoDB backend of the store: one table for events, patterns and slot locks.

Table: partition key ``pk`` (S), on demand, TTL on ``ttl``, and one sparse index
``monitoring-by-time`` (``mon_pk``, ``mon_sk``) holding only events in `monitoring`.
Events, patterns, slot locks, saved analyses (``sig#``), object checkpoints (``obj#``) and
per-window aggregates (``agg#``) live side by side.
The steps are :mod:`worker.store.steps`; this backend implements their storage
operations (:mod:`worker.store.dynamodb.storage`), each one conditional write; a
checkpoint saved with window counts is one transaction (:mod:`worker.store.dynamodb.aggregates`).
"""

from __future__ import annotations

from worker.store.dynamodb.aggregates import WindowCountOps
from worker.store.dynamodb.storage import DynamoStorage


class EventStore(DynamoStorage, WindowCountOps):
    """Everything the worker keeps in DynamoDB: the EventRepo, PatternRepo, SlotLock,
    CheckpointRepo, WindowCountRepo and SignatureRepo ports.

    ``EventStore(table_name, client=None, ttl_days=30, clock=worker.platform.clock.epoch)``:
    ``client`` is a low-level boto3 DynamoDB client (default: one from
    :func:`worker.platform.aws.client`); ``clock`` returns epoch seconds and is the seam tests
    move time through.
    """


__all__ = ["EventStore"]
