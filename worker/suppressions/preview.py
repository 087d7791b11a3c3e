"""Before a suppression is created: what it would have matched among past events, what
it touches but would never hide, the narrowest scope covering an incident's events, and
the refusal (docs/architecture.md, "Suppressions").

A scope that touches a severity-5 event, or one of another class that reached the
application, is refused without ``--force``: such a suppression would not hide those
events (they matched outside its scope), but it says the scope is drawn where real
attacks happen, and an operator must say so knowingly.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from secops_core.contract import SeverityFloorInfo, WafEvent
from secops_core.patterns import normalize_uri
from secops_core.waf.floor import explain_floor
from secops_core.waf.names import is_label, key
from worker.store.records import EventRecord
from worker.suppressions.matching import Coverage, cover
from worker.suppressions.model import Scope, ScopeError, web_acl_name

# The dimensions `--scope` may name, and the default: a false positive comes from
# customers, so the source is left out unless asked for.
SCOPE_DIMENSIONS = ("rule", "label", "uri", "method", "host", "source", "web-acl")
DEFAULT_DIMENSIONS = ("rule", "uri", "method", "host")
# Events shown as examples in a preview.
MAX_EXAMPLES = 10


def _refusing(finding: SeverityFloorInfo) -> bool:
    """A finding outside the scope that the suppression must not be drawn over lightly."""
    reached = finding.floor_reason is not None and finding.floor_reason.disposition == "reached"
    return finding.severity >= 5 or (reached and finding.severity >= 4)


@dataclass
class Preview:
    """What a scope would have done to past events."""

    examined: int = 0
    would_match: int = 0
    # Events in scope that also matched outside it: never suppressed, listed.
    kept: int = 0
    kept_classes: Counter[str] = field(default_factory=Counter)
    refusing: list[dict[str, Any]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.refusing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_examined": self.examined,
            "would_have_matched": self.would_match,
            "matched_examples": self.examples,
            "in_scope_but_other_class": self.kept,
            "other_classes": dict(self.kept_classes),
            "refusing_events": self.refusing[:MAX_EXAMPLES],
            "refused_without_force": self.refused,
        }


def preview(scope: Scope, records: Iterable[EventRecord]) -> Preview:
    """Run ``scope`` over past events."""
    result = Preview()
    for record in records:
        if record.event is None:
            continue
        result.examined += 1
        coverage = cover(scope, record.event, explain_floor(record.event)[1])
        if coverage.suppresses:
            result.would_match += 1
            if len(result.examples) < MAX_EXAMPLES:
                result.examples.append(record.key)
        elif coverage.touches:
            _note_kept(result, record, coverage)
    return result


def _note_kept(result: Preview, record: EventRecord, coverage: Coverage) -> None:
    result.kept += 1
    result.kept_classes.update({f.attack_class for f in coverage.outside})
    refusing = [f for f in coverage.outside if _refusing(f)]
    if refusing:
        worst = max(refusing, key=lambda f: f.severity)
        result.refusing.append(
            {
                "event": record.key,
                "attack_class": worst.attack_class,
                "severity": worst.severity,
                "reached_app": worst.floor_reason is not None and worst.floor_reason.disposition == "reached",
                "rule": worst.rule,
            }
        )


@dataclass(frozen=True)
class ScopeProposal:
    scope: Scope
    covers: int  # of the incident's events
    events: int


def dimensions(text: str | None) -> tuple[str, ...]:
    """``rule,uri`` -> the dimensions; ScopeError for an unknown one."""
    if not text:
        return DEFAULT_DIMENSIONS
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in SCOPE_DIMENSIONS]
    if unknown:
        raise ScopeError(
            f"unknown scope dimension(s) {', '.join(unknown)}: choose from {', '.join(SCOPE_DIMENSIONS)}"
        )
    return names


def narrowest_scope(records: Sequence[EventRecord], wanted: Collection[str]) -> ScopeProposal:
    """The narrowest scope over ``wanted`` dimensions covering the incident's events:
    their most common deciding rule (or its label), and for each other dimension the one
    value they share, the longest path prefix, the smallest network.
    """
    events = [r.event for r in records if r.event is not None]
    if not events:
        raise ScopeError("the incident has no stored events to draw a scope from")
    deciding = Counter(explain_floor(e)[0].rule for e in events)
    rule = deciding.most_common(1)[0][0]
    values: dict[str, str | None] = {}
    if "label" in wanted or is_label(rule):
        values["label"] = rule if is_label(rule) else _label_of(events, rule)
        if values["label"] is None:
            raise ScopeError(f"no label of {rule} in the incident's events: use --scope rule,...")
    else:
        values["rule"] = rule
    if "uri" in wanted:
        values["uri_template"] = _common_uri([normalize_uri(e.uri) for e in events])
    if "method" in wanted:
        values["method"] = _same([e.http_method for e in events])
    if "host" in wanted:
        values["host"] = _same([(e.host or "").lower() or None for e in events])
    if "source" in wanted:
        values["source_cidr"] = _network([e.source_ip for e in events])
    if "web-acl" in wanted:
        values["web_acl"] = _same([web_acl_name(e.web_acl) or None for e in events])
    scope = Scope.build(**values)
    covered = sum(1 for e in events if cover(scope, e, explain_floor(e)[1]).suppresses)
    return ScopeProposal(scope, covered, len(events))


def _label_of(events: Sequence[WafEvent], rule: str) -> str | None:
    rule_key = key(rule.rpartition(":")[2])
    labels = Counter(label for e in events for label in e.labels if key(label.rsplit(":", 1)[-1]) == rule_key)
    return labels.most_common(1)[0][0] if labels else None


def _same(values: Sequence[str | None]) -> str | None:
    distinct = set(values)
    return values[0] if len(distinct) == 1 else None


def _common_uri(uris: Sequence[str]) -> str | None:
    if len(set(uris)) == 1:
        return uris[0]
    parts = [u.strip("/").split("/") for u in uris]
    common: list[str] = []
    for segments in zip(*parts, strict=False):
        if len(set(segments)) != 1:
            break
        common.append(segments[0])
    return "/" + "/".join(common) + "/*" if common else None


def _network(addresses: Sequence[str]) -> str | None:
    try:
        parsed = [ipaddress.ip_address(a.strip()) for a in addresses]
    except ValueError:
        return None
    if len({a.version for a in parsed}) != 1:
        return None
    bits: int = parsed[0].max_prefixlen
    prefix = bits
    first = int(parsed[0])
    for address in parsed[1:]:
        prefix = min(prefix, bits - (first ^ int(address)).bit_length())
    return str(ipaddress.ip_network((first, prefix), strict=False))
