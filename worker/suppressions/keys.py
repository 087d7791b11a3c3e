"""Key formats and limits of suppression items, each with why it is so.

Suppressions live in the store's one table beside events and incidents:

- ``sup#<id>``: one suppression (scope, who, why, created, expires, how it ended);
- ``supcnt#<id>``: its hit counter, apart from the suppression so a flood of suppressed
  events does not rewrite the suppression (nor its index entry) on every hit;
- ``suphit#<id>#<event key>``: the mark of one event counted, so a redelivery of that
  event never counts it twice.
"""

from __future__ import annotations

import re

SUPPRESSION_PREFIX = "sup#"
COUNTER_PREFIX = "supcnt#"
HIT_PREFIX = "suphit#"

# Suppressions share the table's sparse time index with monitored events and incidents,
# under their own partition value: listing them (every replica, each refresh) is one
# query, never a scan of the events.
INDEX_PK = "suppression"

# An operator's decision that a false positive is expected is reviewed within a month
# unless they say otherwise (`--no-expiry` is explicit).
DEFAULT_EXPIRY_DAYS = 30
# An ended suppression (expired or removed) stays readable this long for the audit,
# then DynamoDB's TTL may delete it.
AUDIT_RETENTION_DAYS = 90
# A hit mark must outlive every redelivery of its event: SQS keeps a message at most
# 14 days, a DLQ replay restarts that, so marks live 30 days.
HIT_MARK_DAYS = 30

# Every replica reads the list again at least this often: an operator's new, expired or
# removed suppression applies everywhere within a minute.
MAX_REFRESH_S = 60

# 10 hex characters name a suppression: short enough to type, collision-free for the
# few hundred an operator keeps.
ID_HEX_CHARS = 10
_ID = re.compile(rf"^sup-[0-9a-f]{{{ID_HEX_CHARS}}}$")

# What an operator writes is a sentence; more is noise in the list.
MAX_REASON_CHARS = 500
MAX_WHO_CHARS = 128


def suppression_key(suppression_id: str) -> str:
    return SUPPRESSION_PREFIX + suppression_id


def counter_key(suppression_id: str) -> str:
    return COUNTER_PREFIX + suppression_id


def hit_key(suppression_id: str, event_key: str) -> str:
    return f"{HIT_PREFIX}{suppression_id}#{event_key}"


def is_suppression_id(text: str) -> bool:
    return bool(_ID.match(text))
