"""Key formats and limits of the response actions, each with why it is so.

Block items live in the store's one table beside events and incidents:

- ``blk#<ip set id>#<cidr>``: one network in one IP set (reopened by a later block);
- ``blkcap#hour#<YYYY-MM-DDTHH>``: how many blocks were opened in that clock hour;
- ``blkcap#active``: how many blocks are in force, across every set.
"""

from __future__ import annotations

from datetime import UTC, datetime

BLOCK_PREFIX = "blk#"
HOUR_CAP_PREFIX = "blkcap#hour#"
ACTIVE_COUNT_KEY = "blkcap#active"

# Blocks in force share the table's sparse time index under their own partition value,
# sorted by expiry, so the expiry pass reads exactly the expired ones without a scan;
# removed blocks move to a second partition sorted by removal time, for the audit.
ACTIVE_INDEX_PK = "block"
REMOVED_INDEX_PK = "block#removed"

# AWS WAF holds at most 10,000 addresses (CIDRs) in one IP set.
WAF_MAX_ADDRESSES = 10_000
# A record keeps its last decisions; a network blocked more often than this is a
# repeat offender whose oldest decisions are of little use (and the item stays small).
MAX_HISTORY = 50
# An hourly counter is read only within its hour; two days leaves room for clock skew.
HOUR_CAP_RETENTION_S = 2 * 24 * 3600

# UpdateIPSet replaces the whole list under a LockToken: several replicas and people
# editing one set make some writes lose. Each lost write re-reads and tries again after
# a jittered backoff (50 ms doubling to 2 s): 12 attempts ride out a storm of about
# 10 s, inside the expiry pass's slot and a message's visibility timeout.
LOCK_ATTEMPTS = 12
LOCK_BACKOFF_BASE_S = 0.05
LOCK_BACKOFF_MAX_S = 2.0
# The longest the attempts above can wait in all: part of how late an expiry may be.
LOCK_RETRY_BUDGET_S = 20.0


# A removal step (a read, a conditional write) is retried this often within a pass, after
# 0.1 s doubling: a transient DynamoDB fault costs a fraction of a second, not a slot.
STORE_ATTEMPTS = 4
STORE_BACKOFF_S = 0.1


def block_key(ip_set_id: str, network: str) -> str:
    return f"{BLOCK_PREFIX}{ip_set_id}#{network}"


def hour_key(epoch: float) -> str:
    return HOUR_CAP_PREFIX + datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H")
