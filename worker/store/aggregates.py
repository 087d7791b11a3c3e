"""Per-window aggregates of log records that are relevant but cannot page.

docs/architecture.md, "Relevance". A record the catalog calls *counted* (blocked for its
sender, rate or size; a floor triage closes) is not an event: it adds to the aggregate
of its window key (web ACL, the rule or label that decided its floor, action, URI
template, hour of its own timestamp), which holds how many requests, how many distinct
sources and the top sources.

Exactly once: a log object's read is a *segment* from the position it resumed at (0 for
a first read). A segment's counts are cumulative and stored packed, up to
:data:`SHARD_WINDOWS` windows an item (``agg#<hour>#<segment>#<shard>``, a
:class:`WindowShard`), overwritten, never incremented, in the same transaction as the
object's checkpoint (:class:`worker.ports.WindowCountRepo`): a save writes the shards its
frames changed, however many windows one frame (a CloudWatch envelope) touched. A crash
after a save resumes at that checkpoint as a new segment; a crash before it loses both the
counts and the progress, so the frames are read and counted again once. Readers merge
the windows of an hour per key (:func:`merge_counts`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from secops_core.patterns import normalize_uri
from secops_core.waf.relevance import Verdict
from worker.store.keys import sort_time

AGGREGATE_PREFIX = "agg#"
# The items of one hour share this ``mon_pk`` in the sparse index, so an hour is one Query.
AGGREGATE_INDEX_PREFIX = "agg#"
# TransactWriteItems takes 100 actions: the checkpoint and at most 99 shards.
MAX_COUNTS_PER_SAVE = 99
# Windows packed in one item: at most ~650 bytes each, so a shard stays far below
# DynamoDB's 400 KB item limit; 99 shards hold 19,800 windows of one hour and segment.
SHARD_WINDOWS = 200
# Windows one segment counts in one hour; past it, the rest of the hour's counted records
# go to one overflow window per hour (rule "(other)"), so memory and shards stay bounded.
MAX_WINDOWS_PER_HOUR = SHARD_WINDOWS * MAX_COUNTS_PER_SAVE - 1
# Sources a window lists with their request counts (sorted by count); the distinct count
# stays exact past it (up to MAX_TRACKED_SOURCES per key and segment).
MAX_LISTED_SOURCES = 20
# Sources one segment tracks per key in memory; past it, requests are still counted.
MAX_TRACKED_SOURCES = 10_000
# The top sources a reader shows.
TOP_SOURCES = 5
_HOUR_FORMAT = "%Y-%m-%dT%H"
_DIGEST_CHARS = 16


def hour_of(moment: datetime) -> str:
    """The window of a timestamp: its UTC hour, ``2026-12-06T21``."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime(_HOUR_FORMAT)


def hours_between(since: datetime, until: datetime) -> list[str]:
    """Every window from ``since`` to ``until``, both included."""
    start = datetime.strptime(hour_of(since), _HOUR_FORMAT).replace(tzinfo=UTC)
    end = datetime.strptime(hour_of(until), _HOUR_FORMAT).replace(tzinfo=UTC)
    hours = []
    while start <= end:
        hours.append(start.strftime(_HOUR_FORMAT))
        start += timedelta(hours=1)
    return hours


def _digest(*parts: str) -> str:
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()[:_DIGEST_CHARS]


@dataclass(frozen=True, slots=True)
class WindowKey:
    """What a window counts: one rule (or label) acting one way on one URI template."""

    web_acl: str
    rule: str
    action: str
    uri_template: str
    hour: str

    @property
    def digest(self) -> str:
        return _digest(self.web_acl, self.rule, self.action, self.uri_template, self.hour)


class CountedEvent(Protocol):
    """What a window count reads of a record: a WafEvent, or the log filter's
    :class:`~secops_core.ingest.log_filter.CountedRequest`."""

    @property
    def web_acl(self) -> str | None: ...
    @property
    def action(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def source_ip(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...


def window_key(event: CountedEvent, verdict: Verdict) -> WindowKey:
    return WindowKey(
        web_acl=event.web_acl or "",
        rule=verdict.floor.rule,
        action=event.action.strip().upper(),
        uri_template=normalize_uri(event.uri),
        hour=hour_of(event.timestamp),
    )


@dataclass
class WindowCount:
    """One window's counts: a segment's contribution, or the merge of an hour's."""

    key: WindowKey
    attack_class: str
    severity: int
    requests: int = 0
    distinct_sources: int = 0
    # Request counts of the listed sources (all of them when distinct_sources is small).
    sources: dict[str, int] = field(default_factory=dict)
    first_seen: str = ""
    last_seen: str = ""
    # The segment (object read) a contribution belongs to; "" once merged.
    segment: str = ""
    # False when a merge had to estimate distinct sources (an upper bound then).
    exact: bool = True

    def top_sources(self, limit: int = TOP_SOURCES) -> list[tuple[str, int]]:
        return sorted(self.sources.items(), key=lambda item: (-item[1], item[0]))[:limit]

    def to_item(self) -> dict[str, Any]:
        """One window as a shard stores it (plain values)."""
        return {
            "web_acl": self.key.web_acl,
            "rule": self.key.rule,
            "action": self.key.action,
            "uri_template": self.key.uri_template,
            "hour": self.key.hour,
            "attack_class": self.attack_class,
            "severity": self.severity,
            "requests": self.requests,
            "distinct_sources": self.distinct_sources,
            "sources": dict(self.top_sources(MAX_LISTED_SOURCES)),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> WindowCount:
        sources = item.get("sources") or {}
        return cls(
            key=WindowKey(
                web_acl=str(item.get("web_acl", "")),
                rule=str(item.get("rule", "")),
                action=str(item.get("action", "")),
                uri_template=str(item.get("uri_template", "")),
                hour=str(item.get("hour", "")),
            ),
            attack_class=str(item.get("attack_class", "")),
            severity=int(item.get("severity", 0)),
            requests=int(item.get("requests", 0)),
            distinct_sources=int(item.get("distinct_sources", 0)),
            sources={str(k): int(v) for k, v in sources.items()} if isinstance(sources, Mapping) else {},
            first_seen=str(item.get("first_seen", "")),
            last_seen=str(item.get("last_seen", "")),
            segment=str(item.get("segment", "")),
        )


@dataclass
class WindowShard:
    """Up to :data:`SHARD_WINDOWS` windows of one hour and one segment: one stored item."""

    segment: str
    hour: str
    index: int
    windows: list[WindowCount]

    @property
    def pk(self) -> str:
        return f"{AGGREGATE_PREFIX}{self.hour}#{_digest(self.segment)}#{self.index}"

    def to_item(self) -> dict[str, Any]:
        """The attributes both backends store (plain values)."""
        return {
            "kind": "window_counts",
            "hour": self.hour,
            "segment": self.segment,
            "shard": self.index,
            "windows": [window.to_item() for window in self.windows],
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> WindowShard:
        segment = str(item.get("segment", ""))
        windows = [
            WindowCount.from_item({**entry, "segment": segment})
            for entry in item.get("windows") or ()
            if isinstance(entry, Mapping)
        ]
        return cls(segment, str(item.get("hour", "")), int(item.get("shard", 0)), windows)


class WindowCounter:
    """The counts of one segment of one object read, and which shards changed since the last save.

    ``WindowCounter(segment)``; :meth:`add` each counted record, :meth:`take_dirty` at
    each checkpoint: the cumulative shards that changed since the last take.
    """

    def __init__(self, segment: str) -> None:
        self.segment = segment
        self._counts: dict[WindowKey, WindowCount] = {}
        self._sources: dict[WindowKey, Counter[str]] = {}
        # Per hour, its windows in the order they appeared: a window's shard is its place.
        self._order: dict[str, list[WindowKey]] = {}
        self._shard_of: dict[WindowKey, tuple[str, int]] = {}
        self._dirty: set[tuple[str, int]] = set()
        self.added = 0

    def add(self, event: CountedEvent, verdict: Verdict) -> None:
        key = window_key(event, verdict)
        count = self._counts.get(key)
        if count is None:
            order = self._order.setdefault(key.hour, [])
            if len(order) >= MAX_WINDOWS_PER_HOUR:
                key = WindowKey(key.web_acl, "(other)", "", "", key.hour)
                count = self._counts.get(key)
        seen = sort_time(event.timestamp)
        if count is None:
            count = WindowCount(
                key,
                attack_class=verdict.floor.attack_class,
                severity=verdict.floor.severity,
                first_seen=seen,
                last_seen=seen,
                segment=self.segment,
            )
            self._counts[key] = count
            self._sources[key] = Counter()
            order = self._order.setdefault(key.hour, [])
            self._shard_of[key] = (key.hour, len(order) // SHARD_WINDOWS)
            order.append(key)
        sources = self._sources[key]
        if event.source_ip in sources or len(sources) < MAX_TRACKED_SOURCES:
            sources[event.source_ip] += 1
        count.requests += 1
        count.severity = max(count.severity, verdict.floor.severity)
        count.first_seen = min(count.first_seen, seen)
        count.last_seen = max(count.last_seen, seen)
        self._dirty.add(self._shard_of[key])
        self.added += 1

    def dirty(self) -> int:
        """How many shards changed since the last :meth:`take_dirty`."""
        return len(self._dirty)

    def take_dirty(self) -> list[WindowShard]:
        """The shards that changed, with every window they hold (cumulative counts)."""
        taken = []
        for hour, index in sorted(self._dirty):
            keys = self._order[hour][index * SHARD_WINDOWS : (index + 1) * SHARD_WINDOWS]
            windows = []
            for key in keys:
                count, sources = self._counts[key], self._sources[key]
                count.distinct_sources = len(sources)
                count.sources = dict(sources.most_common(MAX_LISTED_SOURCES))
                windows.append(count)
            taken.append(WindowShard(self.segment, hour, index, windows))
        self._dirty.clear()
        return taken


def merge_counts(counts: Iterable[WindowCount]) -> list[WindowCount]:
    """The items of a window merged per key, most requests first.

    Requests add up. Distinct sources are exact while every item lists all its sources
    (the union is counted); past that, the sources an item did not list are added as if
    new, an upper bound, and ``exact`` is False.
    """
    merged: dict[WindowKey, WindowCount] = {}
    unlisted: Counter[WindowKey] = Counter()
    most: Counter[WindowKey] = Counter()  # the largest one item counted exactly
    for count in counts:
        into = merged.get(count.key)
        if into is None:
            into = merged[count.key] = WindowCount(
                count.key,
                attack_class=count.attack_class,
                severity=count.severity,
                first_seen=count.first_seen,
                last_seen=count.last_seen,
            )
        into.requests += count.requests
        into.severity = max(into.severity, count.severity)
        into.first_seen = min(into.first_seen, count.first_seen) if into.first_seen else count.first_seen
        into.last_seen = max(into.last_seen, count.last_seen)
        for source, requests in count.sources.items():
            into.sources[source] = into.sources.get(source, 0) + requests
        unlisted[count.key] += max(0, count.distinct_sources - len(count.sources))
        most[count.key] = max(most[count.key], count.distinct_sources)
    for key, into in merged.items():
        union = len(into.sources)
        into.distinct_sources = max(union + unlisted[key], most[key])
        into.exact = unlisted[key] == 0 or most[key] >= union + unlisted[key]
    return sorted(merged.values(), key=lambda c: (-c.requests, c.key.hour, c.key.rule, c.key.uri_template))


@dataclass(frozen=True)
class RuleTotal:
    """One rule's (or label's) counted requests over a span of windows."""

    web_acl: str
    rule: str
    attack_class: str
    requests: int
    windows: int
    by_action: dict[str, int]


def totals_by_rule(counts: Iterable[WindowCount]) -> list[RuleTotal]:
    """Counted requests per web ACL and rule, most first: the read seam for reports that
    ask how much a rule acts without becoming events (the tuning report, ``secops stats``)."""
    grouped: dict[tuple[str, str], list[WindowCount]] = {}
    for count in counts:
        grouped.setdefault((count.key.web_acl, count.key.rule), []).append(count)
    totals = []
    for (web_acl, rule), members in grouped.items():
        by_action: Counter[str] = Counter()
        for member in members:
            by_action[member.key.action] += member.requests
        totals.append(
            RuleTotal(
                web_acl=web_acl,
                rule=rule,
                attack_class=members[0].attack_class,
                requests=sum(by_action.values()),
                windows=len(members),
                by_action=dict(by_action),
            )
        )
    return sorted(totals, key=lambda t: (-t.requests, t.web_acl, t.rule))


def counted_from(counts: Iterable[WindowCount], source: str) -> list[WindowCount]:
    """The windows in which ``source`` is a listed source (its requests, not the window's)."""
    return [count for count in counts if source in count.sources]
