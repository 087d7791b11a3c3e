"""security_monitor: deterministic grouping of monitored events into patterns.

Grouping is code, never a model: the same events always give the same patterns, so
the worker can upsert them idempotently. A model may only add a narrative, and only to
the patterns the request names in ``narrate`` (the ones the worker will notify); every
other pattern gets the template at no model cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from secops_core.contract import MonitorRequest, MonitorResponse, Pattern, WafEvent
from secops_core.errors import ContractError, ErrorCode
from secops_core.patterns import normalize_uri, pattern_key


@dataclass(frozen=True)
class Narration:
    """A narrative (empty when the model gave none), who wrote it, and what it cost."""

    text: str
    written_by: str
    model_calls: int


class Narrator(Protocol):
    def narrate(self, pattern: Pattern) -> Narration: ...


def template_narrative(pattern: Pattern) -> str:
    """The narrative the rules provider writes (and the fallback for a model narrative)."""
    span = pattern.last_seen - pattern.first_seen
    rules = ", ".join(pattern.rules[:5]) + (" …" if len(pattern.rules) > 5 else "")
    verdict = (
        f"meets the escalation threshold of {pattern.threshold}"
        if pattern.threshold_met
        else f"is below the escalation threshold of {pattern.threshold}"
    )
    return (
        f"{pattern.count} monitored requests from {pattern.source_ip} to {pattern.normalized_uri} "
        f"over {_human(span)} matched {rules}; the pattern {verdict}. Repeated attempts "
        "against one target from one address suggest a deliberate probe rather than noise."
    )


def detect_patterns(
    request: MonitorRequest,
    *,
    default_threshold: int,
    severity_of: Callable[[WafEvent], int],
    narrator: Narrator | None = None,
    now: datetime | None = None,
) -> MonitorResponse:
    """Group the request's events by source IP + normalized URI within the window."""
    threshold = request.threshold or default_threshold
    end = request.now or now or datetime.now(UTC)
    try:
        start = end - timedelta(hours=request.hours)
    except OverflowError:
        raise ContractError(
            ErrorCode.INVALID_PAYLOAD, f"now {end.isoformat()} minus {request.hours} h is out of range"
        ) from None
    in_window = _unique(e for e in request.events if start <= e.timestamp <= end)
    groups: dict[tuple[str, str], list[WafEvent]] = defaultdict(list)
    for event in in_window:
        groups[(event.source_ip, normalize_uri(event.uri))].append(event)
    narrate = frozenset(request.narrate)
    model_calls = 0
    patterns = []
    for (source_ip, uri), members in sorted(groups.items()):
        members.sort(key=lambda e: (e.timestamp, e.event_key))
        pattern = Pattern(
            pattern_key=pattern_key(source_ip, uri),
            source_ip=source_ip,
            normalized_uri=uri,
            count=len(members),
            first_seen=members[0].timestamp,
            last_seen=members[-1].timestamp,
            rules=tuple(sorted({e.rule_name for e in members})),
            event_keys=tuple(e.event_key for e in members),
            max_severity=max(severity_of(e) for e in members),
            threshold=threshold,
            threshold_met=len(members) >= threshold,
            narrative="",
        )
        update: dict[str, object] = {"narrative": template_narrative(pattern)}
        if narrator is not None and pattern.pattern_key in narrate:
            narration = narrator.narrate(pattern)
            model_calls += narration.model_calls
            if narration.text:
                update = {
                    "narrative": narration.text,
                    "narrative_by": narration.written_by,
                    "narrative_model_written": True,
                }
        patterns.append(pattern.model_copy(update=update))
    patterns.sort(key=lambda p: (-p.count, p.pattern_key))
    return MonitorResponse(
        hours=request.hours,
        events_considered=len(request.events),
        events_in_window=len(in_window),
        threshold=threshold,
        patterns=tuple(patterns),
        model_calls=model_calls,
    )


def _unique(events: Iterable[WafEvent]) -> list[WafEvent]:
    """One entry per event key: a list read twice (overlapping pages) counts once."""
    seen: dict[str, WafEvent] = {}
    for event in events:
        seen.setdefault(event.event_key, event)
    return list(seen.values())


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
