"""Key formats, statuses and limits of the one DynamoDB table, each with why it is so.

One table holds four kinds of item, told apart by the prefix of their partition key:

- ``evt#<id>`` / ``evt#sha256:...``: one WAF event (the key comes from the runtime);
- ``msg#sha256:<40 hex>``: a message that never yielded an event (not JSON ...);
- ``pat#<ip>#<hash>``: one monitored pattern (the key comes from the runtime);
- ``lock#<job>#<slot>``: one run of a scheduled job;
- ``sig#<hash>``: a model's analysis saved for reuse by its analysis signature;
- ``inc#...``: incidents (their formats are in :mod:`worker.incidents.keys`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import get_args

from secops_core.contract import EventStatus

# The triage statuses are the contract's (secops_core.contract.EventStatus); the store
# adds the steps before them and the rejection.
TRIAGE_STATUSES: frozenset[str] = frozenset(get_args(EventStatus))
EVENT_STATUSES = ("processing", "analyzed", *get_args(EventStatus), "rejected")
TERMINAL = TRIAGE_STATUSES | {"rejected"}

# The sparse index of events waiting in `monitoring`: only those items carry mon_pk, so
# the monitor job reads exactly them, in event-time order, without a scan.
MONITORING_INDEX = "monitoring-by-time"
MONITORING_PK = "monitoring"

REJECTION_PREFIX = "msg#sha256:"
# 160 bits of SHA-256: collision-free for any realistic volume, short in the console.
REJECTION_HASH_CHARS = 40

# A reason is a sentence, a validation dump at most; more is noise in the console.
MAX_REJECTION_REASON_CHARS = 1000
# Enough of a bad body to see what it was (and which producer sent it).
MAX_EXCERPT_BYTES = 2 * 1024
# DynamoDB caps an item at 400 KB; the event shares it with the analysis, the
# triage and the history, so a larger event (a flood of huge headers) is refused.
MAX_EVENT_JSON_BYTES = 256 * 1024
# BatchGetItem's own limit.
BATCH_GET_MAX_KEYS = 100
# BatchGetItem may hand back keys it did not read (throttling); retried this often.
BATCH_GET_MAX_ROUNDS = 8

# A pattern shows its most recent event keys; the monitor escalates from these.
MAX_PATTERN_EVENT_KEYS = 1000
# A pattern counts distinct events through 8-byte digests of their keys, so the count
# stays exact far beyond the keys it shows: 20 000 digests are 160 KB of the item.
MAX_PATTERN_DIGESTS = 20_000
PATTERN_DIGEST_BYTES = 8
# Incidents count their events by the same digest (see worker.incidents.keys.DIGEST_BYTES).
EVENT_DIGEST_BYTES = PATTERN_DIGEST_BYTES
# Concurrent upserts of one pattern (overlapping slots) retry on a version conflict.
PATTERN_UPSERT_ATTEMPTS = 5

# A completed lock must outlive any scheduler that could still try its slot
# (APScheduler's misfire grace is minutes); two days is plenty and keeps the table small.
LOCK_RETENTION_S = 2 * 24 * 3600

_DAY_S = 24 * 3600

SIGNATURE_PREFIX = "sig#"


def signature_key(signature: str) -> str:
    """The item of a saved analysis."""
    return SIGNATURE_PREFIX + signature


def ttl_after(now_epoch: float, days: int) -> int:
    """The TTL attribute value (epoch seconds) ``days`` after ``now_epoch``."""
    return int(now_epoch + days * _DAY_S)


def rejection_key(body: str | bytes) -> str:
    """The key of a message that has no event key: a hash of its raw body.

    A redelivery (or a DLQ replay) of the same body lands on the same record.
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return REJECTION_PREFIX + hashlib.sha256(raw).hexdigest()[:REJECTION_HASH_CHARS]


def sort_time(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so string order is time order in the index.

    A naive datetime is taken as UTC (the normalizer produces aware ones).
    """
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def monitoring_sort_key(timestamp: datetime, event_key: str) -> str:
    """``mon_sk``: event time first for range queries, the key to make it unique."""
    return f"{sort_time(timestamp)}#{event_key}"


def monitoring_range(since: datetime, until: datetime) -> tuple[str, str]:
    """Inclusive ``mon_sk`` bounds covering every event with since <= time <= until.

    ``$`` sorts right after ``#``, so every ``<until>#<key>`` is below the upper bound.
    """
    return sort_time(since), sort_time(until) + "$"


def event_digest(event_key: str) -> bytes:
    """The 8-byte digest a pattern and an incident count an event by: exact far beyond
    the keys either can show, and small enough to keep tens of thousands in one item."""
    return hashlib.blake2b(event_key.encode(), digest_size=EVENT_DIGEST_BYTES).digest()


def iso_from_epoch(epoch: float) -> str:
    """An ISO-8601 UTC timestamp for created_at / updated_at and the history."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
