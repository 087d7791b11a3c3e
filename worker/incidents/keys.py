"""Key formats and limits of incident items, each with why it is so.

Incidents live in the store's one table beside events and patterns:

- ``inc#<group hash>#<seq>``: one incident, the ``seq``-th of its group;
- ``incgrp#<group hash>``: the group's pointer, holding the ``seq`` of its current
  incident, so that opening the next one is one conditional increment.
"""

from __future__ import annotations

from worker.store.keys import EVENT_DIGEST_BYTES

INCIDENT_PREFIX = "inc#"
GROUP_POINTER_PREFIX = "incgrp#"

# Incidents share the table's sparse time index with monitored events, under their own
# partition value, so listing them needs no index of their own.
INDEX_PK = "incident"

# 80 bits of SHA-256 name a group: collision-free for any realistic number of attackers,
# short enough to read in a console and type in `secops incidents show`.
GROUP_HASH_CHARS = 20

# The count maps (classes, rules, URI templates, countries, sources) keep their largest
# entries; the rest fold into OTHER, so a botnet of 100 000 IPs stays a small item.
MAX_TOP_ENTRIES = 20
OTHER = "(other)"
# The first events show how it started, the latest how it goes on.
SAMPLE_FIRST = 5
SAMPLE_LATEST = 5

# Distinct events are counted through 8-byte digests of their keys, kept in the item.
# An update rewrites the whole item and DynamoDB bills 1 KB per write unit, so the
# digests are bounded well below the 400 KB item limit: 4096 of them are 32 KB. Past
# that the oldest are dropped; only a redelivery of an event older than the last 4096
# could then count twice, and redeliveries come within a visibility timeout.
DIGEST_BYTES = EVENT_DIGEST_BYTES
MAX_DIGESTS = 4096

# A join re-reads and retries when another writer moved the incident first; beyond this
# many conflicts in one call the caller gets a retryable error (the message comes back).
# Each replica's joiner makes one write per batch, so conflicts grow with the replicas
# flooding one incident: 16 rounds (about 10 s of capped backoff at most) covers a fleet.
JOIN_ATTEMPTS = 16
# Lost writes back off exponentially from the time a write took (at least a few
# milliseconds, one DynamoDB round trip) up to a cap that keeps a join within seconds,
# far inside a message's visibility timeout.
JOIN_BACKOFF_BASE_S = 0.005
JOIN_BACKOFF_MAX_S = 1.0
# How many groups' current incidents a repository remembers, so a flood's joins skip
# the read: a write conditional on the remembered version is right or hands back the
# item as it is (ReturnValuesOnConditionCheckFailure).
CACHED_GROUPS = 1024

# A status note is a sentence or two; more is noise in the console.
MAX_NOTE_CHARS = 1000


def incident_id(group_hash: str, seq: int) -> str:
    """The key of the ``seq``-th incident of a group."""
    return f"{INCIDENT_PREFIX}{group_hash}#{seq}"


def pointer_key(group_hash: str) -> str:
    """The key of a group's pointer item."""
    return f"{GROUP_POINTER_PREFIX}{group_hash}"


def parse_incident_id(value: str) -> tuple[str, int]:
    """``(group hash, seq)`` of an incident id; ValueError if it is not one."""
    if not value.startswith(INCIDENT_PREFIX):
        raise ValueError(f"not an incident id: {value!r}")
    group_hash, _, seq = value[len(INCIDENT_PREFIX) :].rpartition("#")
    if not group_hash or not seq.isdigit() or int(seq) < 1:
        raise ValueError(f"not an incident id: {value!r}")
    return group_hash, int(seq)
