"""The tuning report: per WAF rule, what it matched and from whom, ranked by how likely it
misfires (docs/architecture.md, "Tuning report").

Pure code over normalized events (and, where a deployment keeps them, per-window rule
counts): the stored events, or the log files read with the ingestion's own reader, give
the same report. A rule most likely misfires when the sources it matched look like
customers — a browser-like request profile and no other rule matched anywhere in the
window — and its matches gather on a few paths; a COUNT rule whose every source looked
like an attacker is safe to move to BLOCK.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from secops_core.contract import WafEvent
from secops_core.patterns import normalize_uri
from secops_core.waf.floor import explain_floor
from secops_core.waf.names import clean, group_name, is_default, is_label, key
from worker.suppressions.model import Scope, Suppression, web_acl_name

Verdict = Literal["likely_false_positive", "safe_to_block", "review", "no_change"]

# Rules with fewer distinct sources than this are ranked with less confidence: three
# customers tripping a rule is an anecdote, thirty is a pattern.
CONFIDENT_SOURCES = 20
# A rule is called a likely false positive when at least this share of its sources look
# like customers, and it has at least this many sources.
FALSE_POSITIVE_SHARE = 0.5
FALSE_POSITIVE_MIN_SOURCES = 5
# A COUNT rule is safe to move to BLOCK when none of its sources looked like a customer
# over at least this many matches.
SAFE_TO_BLOCK_MIN_MATCHES = 10
# Matches on one URI template beyond this share make a path exception the proposal;
# below it, the rule misfires broadly and the proposal is to count it.
ONE_PATH_SHARE = 0.8
TOP_ENTRIES = 5

# A browser: Mozilla/5.0 with a platform in parentheses and a rendering engine, and no
# token of a tool, library or crawler.
_BROWSER = re.compile(r"^Mozilla/5\.0 \([^)]+\) .*(AppleWebKit/|Gecko/|Trident/)")
_TOOL = re.compile(
    r"bot|crawl|spider|slurp|curl|wget|python|sqlmap|nikto|nmap|masscan|zgrab|nuclei|scan|"
    r"go-http|java/|okhttp|libwww|headless|phantom|httpclient|postman|insomnia|axios|node-fetch",
    re.IGNORECASE,
)
_COUNTED = frozenset({"COUNT", "EXCLUDED_AS_COUNT"})


def browser_like(event: WafEvent) -> bool:
    """A request profile a browser would send: its user agent, and, where the log holds
    the headers, an Accept-Language (scripts and scanners rarely send one)."""
    agent = event.user_agent or ""
    if not _BROWSER.search(agent) or _TOOL.search(agent):
        return False
    if event.source_format == "waf_log" and event.headers:
        return any(h.name.lower() == "accept-language" and h.value.strip() for h in event.headers)
    return True


@dataclass(frozen=True)
class RuleId:
    """One WAF rule: its managed group (None for a rule of the web ACL) and its id."""

    group: str | None
    rule_id: str

    @property
    def name(self) -> str:
        return f"{self.group}:{self.rule_id}" if self.group else self.rule_id

    @property
    def managed_by_aws(self) -> bool:
        return bool(self.group and self.group.startswith("AWSManagedRules"))


def rule_matches(event: WafEvent) -> list[tuple[RuleId, str]]:
    """Each rule the request matched, with what the rule did: BLOCK, COUNT, CAPTCHA ..."""
    found: dict[RuleId, str] = {}
    for match in event.matches:
        rule = RuleId(group_name(match.rule_group) or None, clean(match.rule_id))
        action = clean(match.action, 40).upper()
        found.setdefault(rule, "COUNT" if action in _COUNTED else action)
    name = clean(event.rule_name)
    if not event.matches and name and not is_default(name) and not is_label(name):
        group, _, rule_id = name.rpartition(":")
        action = clean(event.action, 40).upper()
        # A simplified event's ALLOW with a detection rule named is a counted match.
        found.setdefault(
            RuleId(group_name(group or event.rule_group) or None, rule_id),
            "COUNT" if action in _COUNTED or action == "ALLOW" else action,
        )
    return list(found.items())


@dataclass(frozen=True)
class RuleCount:
    """A window's count of one rule's matches without the requests themselves: the seam
    for per-window noise aggregates (what ingestion counts instead of storing)."""

    rule: RuleId
    action: str
    window_start: datetime
    count: int
    uri_template: str | None = None
    host: str | None = None
    web_acl: str | None = None


@dataclass
class _Source:
    rules: set[RuleId] = field(default_factory=set)
    browser: bool = True


@dataclass
class RuleStats:
    rule: RuleId
    matches: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    sources: set[str] = field(default_factory=set)
    uri_templates: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    series: Counter[datetime] = field(default_factory=Counter)
    # Matches known only as window counts (no source, so not in the shares).
    counted_only: int = 0


@dataclass(frozen=True)
class RuleFinding:
    """One rule's line of the report."""

    rank: int
    stats: RuleStats
    clean_share: float
    score: float
    verdict: Verdict
    suppressions: tuple[Suppression, ...]

    @property
    def rule(self) -> RuleId:
        return self.stats.rule

    @property
    def attack_class(self) -> str:
        common = self.stats.classes.most_common(1)
        return common[0][0] if common else "unknown"

    @property
    def label(self) -> str | None:
        """The label WAF adds for this rule, as the logs spelled it (if seen)."""
        common = self.stats.labels.most_common(1)
        return common[0][0] if common else None

    @property
    def top_uri(self) -> tuple[str, float] | None:
        if not self.stats.uri_templates:
            return None
        uri, count = self.stats.uri_templates.most_common(1)[0]
        return uri, count / max(1, sum(self.stats.uri_templates.values()))

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "rank": self.rank,
            "rule": stats.rule.name,
            "group": stats.rule.group,
            "rule_id": stats.rule.rule_id,
            "attack_class": self.attack_class,
            "label": self.label,
            "matches": stats.matches,
            # Of those, known only from per-window aggregates (no source behind them).
            "matches_from_window_counts": stats.counted_only,
            "by_action": dict(sorted(stats.by_action.items())),
            "distinct_sources": len(stats.sources),
            "clean_source_share": round(self.clean_share, 3),
            "top_uri_templates": stats.uri_templates.most_common(TOP_ENTRIES),
            "top_hosts": stats.hosts.most_common(TOP_ENTRIES),
            "suppressions": [
                {"id": s.id, "scope": s.scope.to_dict(), "hits": s.hits} for s in self.suppressions
            ],
            "misfire_score": round(self.score, 3),
            "verdict": self.verdict,
        }


@dataclass
class TuningReport:
    since: datetime
    until: datetime
    source: str
    requests: int
    findings: list[RuleFinding]
    bucket: timedelta

    def series(self, top: int = 8) -> dict[str, list[tuple[datetime, int]]]:
        """Matches per bucket of the first ``top`` rules, every bucket of the window."""
        start = _floor(self.since, self.bucket)
        steps = max(1, math.ceil((self.until - start) / self.bucket))
        buckets = [start + i * self.bucket for i in range(steps)]
        return {f.rule.name: [(b, f.stats.series.get(b, 0)) for b in buckets] for f in self.findings[:top]}


def _floor(moment: datetime, bucket: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // bucket) * bucket


class ReportBuilder:
    """Feed events (and window counts), then :meth:`build`; memory grows with rules and
    distinct sources, never with requests."""

    def __init__(self, *, since: datetime, until: datetime, web_acl: str | None = None) -> None:
        self.since, self.until, self.web_acl = since, until, web_acl
        span = until - since
        self.bucket = timedelta(hours=1) if span <= timedelta(days=2) else timedelta(hours=6)
        self._rules: dict[RuleId, RuleStats] = {}
        self._sources: defaultdict[str, _Source] = defaultdict(_Source)
        self.requests = 0

    def _in_acl(self, web_acl: str | None) -> bool:
        return self.web_acl is None or self.web_acl in {web_acl or "", web_acl_name(web_acl)}

    def _stats(self, rule: RuleId) -> RuleStats:
        stats = self._rules.get(rule)
        if stats is None:
            stats = self._rules[rule] = RuleStats(rule)
        return stats

    def add(self, event: WafEvent) -> bool:
        """Count one request; False when it is outside the window or the web ACL."""
        if not self.since <= event.timestamp <= self.until:
            return False
        if self.web_acl is not None and self.web_acl not in {
            event.web_acl or "",
            web_acl_name(event.web_acl),
        }:
            return False
        matched = rule_matches(event)
        if not matched:
            return False
        self.requests += 1
        findings = explain_floor(event)[1]
        source = self._sources[event.source_ip]
        source.browser = source.browser and browser_like(event)
        uri = normalize_uri(event.uri)
        bucket = _floor(event.timestamp, self.bucket)
        for rule, action in matched:
            source.rules.add(rule)
            stats = self._stats(rule)
            stats.matches += 1
            stats.by_action[action] += 1
            stats.sources.add(event.source_ip)
            stats.uri_templates[uri] += 1
            if event.host:
                stats.hosts[event.host.lower()] += 1
            stats.series[bucket] += 1
            rule_key = key(rule.rule_id)
            for finding in findings:
                # A finding names "group:rule" or a label, whose last part is the rule.
                if key(finding.rule.rpartition(":")[2]) == rule_key:
                    stats.classes[finding.attack_class] += 1
                    break
            for label in event.labels:
                if key(label.rsplit(":", 1)[-1]) == rule_key:
                    stats.labels[label] += 1
        return True

    def add_counts(self, counts: Iterable[RuleCount]) -> None:
        """Window counts (no requests behind them): matches, actions, paths and time only."""
        for count in counts:
            if not self.since <= count.window_start <= self.until or not self._in_acl(count.web_acl):
                continue
            stats = self._stats(count.rule)
            stats.matches += count.count
            stats.counted_only += count.count
            stats.by_action[count.action] += count.count
            if count.uri_template:
                stats.uri_templates[count.uri_template] += count.count
            if count.host:
                stats.hosts[count.host.lower()] += count.count
            stats.series[_floor(count.window_start, self.bucket)] += count.count

    def build(self, *, source: str, suppressions: Sequence[Suppression] = ()) -> TuningReport:
        scored = []
        for stats in self._rules.values():
            clean_share = self._clean_share(stats)
            scored.append((stats, clean_share, _score(stats, clean_share)))
        scored.sort(key=lambda item: (-item[2], -item[0].matches, item[0].rule.name))
        findings = [
            RuleFinding(
                rank=rank,
                stats=stats,
                clean_share=clean_share,
                score=score,
                verdict=_verdict(stats, clean_share),
                suppressions=tuple(s for s in suppressions if _covers_rule(s.scope, stats.rule)),
            )
            for rank, (stats, clean_share, score) in enumerate(scored, start=1)
        ]
        return TuningReport(self.since, self.until, source, self.requests, findings, self.bucket)

    def _clean_share(self, stats: RuleStats) -> float:
        if not stats.sources:
            return 0.0
        clean_sources = sum(
            1 for ip in stats.sources if self._sources[ip].browser and self._sources[ip].rules == {stats.rule}
        )
        return clean_sources / len(stats.sources)


def _score(stats: RuleStats, clean_share: float) -> float:
    """How likely the rule misfires, 0-1: customers' share, weighed by how many sources
    say so and by how much the matches gather on one path."""
    confidence = min(1.0, len(stats.sources) / CONFIDENT_SOURCES)
    total = max(1, sum(stats.uri_templates.values()))
    concentration = stats.uri_templates.most_common(1)[0][1] / total if stats.uri_templates else 0.0
    return clean_share * confidence * (0.5 + 0.5 * concentration)


def _verdict(stats: RuleStats, clean_share: float) -> Verdict:
    if clean_share >= FALSE_POSITIVE_SHARE and len(stats.sources) >= FALSE_POSITIVE_MIN_SOURCES:
        return "likely_false_positive"
    counted_only = set(stats.by_action) == {"COUNT"}
    if counted_only and clean_share == 0 and stats.matches - stats.counted_only >= SAFE_TO_BLOCK_MIN_MATCHES:
        return "safe_to_block"
    if clean_share > 0:
        return "review"
    return "no_change"


def _covers_rule(scope: Scope, rule: RuleId) -> bool:
    rule_key = key(rule.rule_id)
    if scope.rule is not None:
        group_ok = scope.group_key is None or key(rule.group or "") == scope.group_key
        return scope.rule_key == rule_key and group_ok
    return scope.label_rule_key == rule_key
