"""The monitor workflow, run once per slot across all replicas (docs/architecture.md).

Every ``monitor_interval_s`` each replica computes the same slot start (the time
floored to the interval) and tries a conditional write of ``lock#monitor#<slot>``.
One wins and runs; the others log that the slot is taken. A lock carries a TTL, so a
replica that died mid-run blocks nothing: the next slot is a different lock, and an
uncompleted lock of the same slot can be taken again once it expired.

A run reads the monitored events of the window through the sparse index, asks the
runtime to group them (in chunks), and applies the result idempotently: pattern
records are merged, member events of patterns over the threshold join incidents (one
concept for every escalation, notified per incident milestone) and move to
``escalated`` linked to them, and a monitoring notification goes out once per new
pattern and again only when it has grown past the growth factor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from tenacity import RetryCallState

from secops_core.contract import Pattern, TriageDecision, WafEvent
from secops_core.patterns import normalize_uri
from worker.errors import RetryableError, StoreError, WorkerError
from worker.pipeline.incident_step import IncidentStep
from worker.platform import clock
from worker.ports import (
    NULL_METRICS,
    IncidentJoin,
    Metrics,
    Monitor,
    MonitorStore,
    Notifier,
    Responder,
    Suppressions,
    WindowCountRepo,
)
from worker.retry import backoff, retrying
from worker.store.aggregates import totals_by_rule
from worker.store.records import EventRecord

log = structlog.get_logger("worker.monitor")

JOB_NAME = "monitor"
# The rules a run's summary names among the window's counted records.
_COUNTED_TOP_RULES = 3
# Narratives kept for notices whose publish may be retried: a few slots' worth of patterns.
_NARRATIVE_CACHE = 1024

# A slot's store calls are retried within the slot, after 0.2 s, 0.4 s and 0.8 s: a
# transient DynamoDB fault (throttling, a 5xx) then costs under 1.5 s, not the slot,
# whose patterns would otherwise wait a whole interval. Every call retried is
# idempotent: reads, merges of the same event keys, conditional claims and escalations.
WRITE_ATTEMPTS = 4
WRITE_BACKOFF_S = 0.2

T = TypeVar("T")


def slot_start(moment: datetime, interval_s: int) -> datetime:
    """The start of the slot holding ``moment``: every replica derives the same value."""
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval_s, tz=UTC)


def lock_name(slot: datetime) -> str:
    return f"lock#{JOB_NAME}#{slot.strftime('%Y-%m-%dT%H:%M:%SZ')}"


@dataclass
class MonitorRun:
    slot: str
    ran: bool
    events_read: int = 0
    patterns: list[Pattern] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    skipped_reason: str | None = None
    # Log records of the window that were counted, not stored as events (blocked for the
    # sender, rate or size), and the rules that counted most of them.
    counted_requests: int = 0
    counted_top_rules: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "ran": self.ran,
            "skipped_reason": self.skipped_reason,
            "events_read": self.events_read,
            "patterns": len(self.patterns),
            "over_threshold": sum(p.threshold_met for p in self.patterns),
            "escalated_events": len(self.escalated),
            "notifications": len(self.notified),
            "counted_requests": self.counted_requests,
            "counted_top_rules": self.counted_top_rules,
        }


class MonitorJob:
    def __init__(
        self,
        *,
        store: MonitorStore,
        monitor_agent: Monitor,
        notifier: Notifier,
        incidents: IncidentJoin,
        owner: str,
        interval_s: int,
        hours: int,
        threshold: int,
        growth_factor: float,
        chunk_size: int,
        now: Callable[[], datetime] = clock.now,
        metrics: Metrics | None = None,
        write_attempts: int = WRITE_ATTEMPTS,
        write_backoff_s: float = WRITE_BACKOFF_S,
        suppressions: Suppressions | None = None,
        counts: WindowCountRepo | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.store = store
        # Monitored events an operator has since suppressed form no pattern.
        self.suppressions = suppressions
        self.counts = counts
        self.monitor_agent = monitor_agent
        self.notifier = notifier
        self.owner = owner
        self.interval_s = interval_s
        self.hours = hours
        self.threshold = threshold
        self.growth_factor = growth_factor
        self.chunk_size = chunk_size
        self.now = now
        self.metrics = metrics
        self.write_attempts = max(1, write_attempts)
        self.write_backoff_s = write_backoff_s
        self.incidents = IncidentStep(
            incidents=incidents,
            notifier=notifier,
            metrics=metrics or NULL_METRICS,
            responder=responder,
        )
        # Set on shutdown: a long run stops between chunks/patterns instead of holding
        # the process past the drain timeout.
        self.stop_event = threading.Event()
        # Narratives by (pattern key, notified count): a notice whose publish failed is
        # claimed again by a later slot and reuses its narrative, not a new model call.
        self._narratives: OrderedDict[tuple[str, int], Pattern] = OrderedDict()
        # The run in progress: its window and its events by group, for the narrative request.
        self._window: tuple[int, datetime] = (hours, now())
        self._members: dict[tuple[str, str], list[WafEvent]] = {}

    # ---- entry points -----------------------------------------------------------------

    def tick(self) -> MonitorRun:
        """The scheduled entry: run the current slot if no replica has taken it."""
        return self.run_once(force=False)

    def run_once(self, *, force: bool = False, hours: int | None = None) -> MonitorRun:
        """One pass now; ``force`` skips the slot lock (an operator's explicit request)."""
        now = self.now()
        slot = slot_start(now, self.interval_s)
        name = lock_name(slot)
        with structlog.contextvars.bound_contextvars(slot=name):
            if not force and not self._retrying(
                "acquire_lock", lambda: self.store.acquire_lock(name, owner=self.owner, ttl_s=self.interval_s)
            ):
                log.info("monitor_slot_taken")
                return MonitorRun(slot=name, ran=False, skipped_reason="slot already taken")
            run = self._run(name, now, hours or self.hours)
            if not force:
                self._retrying("complete_lock", lambda: self.store.complete_lock(name, owner=self.owner))
            log.info("monitor_run_done", **run.summary())
            if self.metrics is not None:
                self.metrics.count("MonitorRuns")
                self.metrics.count("PatternEscalations", len(run.escalated))
            return run

    # ---- the run --------------------------------------------------------------------

    def _run(self, slot: str, now: datetime, hours: int) -> MonitorRun:
        since = now - timedelta(hours=hours)
        records = {
            r.key: r
            for r in self._retrying(
                "iter_monitoring", lambda: list(self.store.iter_monitoring(since=since, until=now))
            )
            if r.event is not None and not self._suppressed(r.event)
        }
        events = [r.event for r in records.values() if r.event is not None]
        run = MonitorRun(slot=slot, ran=True, events_read=len(events))
        self._counted(run, since, now)
        if not events:
            return run
        patterns: list[Pattern] = []
        members: dict[tuple[str, str], list[WafEvent]] = defaultdict(list)
        for event in events:
            members[(event.source_ip, normalize_uri(event.uri))].append(slim(event))
        self._members, self._window = members, (hours, now)
        for chunk in chunk_by_group(events, self.chunk_size):
            self._check_stop()
            response = self.monitor_agent.monitor(chunk, hours=hours, threshold=self.threshold, now=now)
            patterns.extend(response.patterns)
        failures = 0
        for pattern in merge_patterns(patterns, self.threshold):
            self._check_stop()
            try:
                run.patterns.append(self._apply(pattern, slot, run, records))
            except RetryableError as exc:
                # Its writes were retried already: a pattern that still failed must not
                # cost the others their run; it is read again by the next slot (its
                # events are still monitored).
                failures += 1
                log.warning("pattern_apply_failed", pattern_key=pattern.pattern_key, error=exc.message)
        if failures:
            raise RetryableError(f"{failures} patterns could not be applied", reason="monitor_partial")
        return run

    def _counted(self, run: MonitorRun, since: datetime, now: datetime) -> None:
        """The window's counted log records (docs/architecture.md, "Relevance"): how much
        the WAF stopped without an event, beside the patterns of what it did not."""
        repo = self.counts
        if repo is None:
            return
        counts = self._retrying("window_counts", lambda: repo.window_counts(since=since, until=now))
        run.counted_requests = sum(c.requests for c in counts)
        run.counted_top_rules = [
            {"rule": t.rule, "attack_class": t.attack_class, "requests": t.requests}
            for t in totals_by_rule(counts)[:_COUNTED_TOP_RULES]
        ]
        if self.metrics is not None and run.counted_requests:
            self.metrics.count("CountedLogRecords", run.counted_requests)

    def _suppressed(self, event: WafEvent) -> bool:
        return self.suppressions is not None and self.suppressions.match(event) is not None

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise MonitorStopped("shutting down: the next slot takes over")

    def _retrying(self, operation: str, call: Callable[[], T]) -> T:
        """``call``, retried with backoff on a transient store fault; the last one is raised.

        Only for idempotent calls: an attempt whose answer was lost may have been applied.
        The waits end early on shutdown, which stops the run instead.
        """

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            attempt = state.attempt_number
            log.info("monitor_store_call_retried", operation=operation, attempt=attempt, error=str(exc))
            if self.metrics is not None:
                self.metrics.count("MonitorStoreRetries", dimensions={"Operation": operation})

        def sleep(seconds: float) -> None:
            if self.stop_event.wait(seconds):
                raise MonitorStopped("shutting down: the next slot takes over")

        loop = retrying(
            max_attempts=self.write_attempts,
            wait=backoff(self.write_backoff_s, factor=2),
            # An error the store could not classify as transient is retried too: the
            # calls are idempotent and the budget small.
            retry_on=lambda exc: isinstance(exc, RetryableError | StoreError),
            before_sleep=before_sleep,
            sleep=sleep,
        )
        return loop(call)

    def _narrated(self, pattern: Pattern) -> Pattern:
        """``pattern`` with the narrative of its notice, asked of the runtime only now that
        the notice is ours to send (docs/architecture.md, "Model fail-safe")."""
        cache_key = (pattern.pattern_key, pattern.count)
        cached = self._narratives.get(cache_key)
        if cached is None:
            hours, now = self._window
            members = self._members.get((pattern.source_ip, pattern.normalized_uri), [])
            try:
                response = self.monitor_agent.monitor(
                    members[-self.chunk_size :],
                    hours=hours,
                    threshold=self.threshold,
                    now=now,
                    narrate=(pattern.pattern_key,),
                )
            except RetryableError as exc:
                # The notice matters more than its prose: send it with the template.
                log.warning("pattern_narrative_failed", error=exc.message)
                return pattern
            if self.metrics is not None and response.model_calls:
                self.metrics.count("ModelCalls", response.model_calls, dimensions={"Workflow": "monitor"})
            cached = next((p for p in response.patterns if p.pattern_key == pattern.pattern_key), pattern)
            self._narratives[cache_key] = cached
            while len(self._narratives) > _NARRATIVE_CACHE:
                self._narratives.popitem(last=False)
        return pattern.model_copy(
            update={
                "narrative": cached.narrative,
                "narrative_by": cached.narrative_by,
                "narrative_model_written": cached.narrative_model_written,
            }
        )

    def _apply(
        self, pattern: Pattern, slot: str, run: MonitorRun, records: dict[str, EventRecord]
    ) -> Pattern:
        with structlog.contextvars.bound_contextvars(pattern_key=pattern.pattern_key):
            stored = self._retrying("upsert_pattern", lambda: self.store.upsert_pattern(pattern, slot=slot))
            # The stored count spans earlier slots: a slow campaign still adds up.
            merged = pattern.model_copy(
                update={
                    "count": stored.count,
                    "first_seen": min(pattern.first_seen, stored.first_seen),
                    "last_seen": max(pattern.last_seen, stored.last_seen),
                    "threshold_met": stored.count >= self.threshold,
                }
            )
            if not merged.threshold_met:
                return merged
            # Notify before escalating: an escalated member counts as notified through
            # its pattern, so a notice lost after the escalation would never be sent.
            # If the publish fails, the claim is given back and nothing is escalated;
            # the next slot does both.
            previous = stored.notified_count
            if self._retrying(
                "claim_pattern_notification",
                lambda: self.store.claim_pattern_notification(
                    pattern.pattern_key, count=merged.count, growth_factor=self.growth_factor
                ),
            ):
                try:
                    merged = self._narrated(merged)
                    self.notifier.notify_pattern(
                        merged, escalated_keys=list(pattern.event_keys), grown_from=previous or None
                    )
                except WorkerError:
                    # A claim kept after a failed publish would hold the notice back for good.
                    self._retrying(
                        "release_pattern_notification",
                        lambda: self.store.release_pattern_notification(
                            pattern.pattern_key, count=merged.count, previous=previous
                        ),
                    )
                    raise
                run.notified.append(pattern.pattern_key)
            decision = TriageDecision(
                action="escalate",
                status="escalated",
                severity_rating=max(4, pattern.max_severity),
                reason=(
                    f"pattern {pattern.pattern_key}: {merged.count} monitored events from "
                    f"{pattern.source_ip} to {pattern.normalized_uri} (threshold {self.threshold})"
                ),
            )
            # Join before escalating: an escalated member is linked, so an incident
            # write lost after its escalation would leave it out for good. A member that
            # joined but was not escalated (a crash) joins again next slot, counted once.
            members = [
                (r.event, r.analysis)
                for r in (records[key] for key in pattern.event_keys if key in records)
                if r.event is not None and r.analysis is not None
            ]
            # Retrying is safe: the join counts an event once, a milestone is claimed once.
            placed = self._retrying(
                "join_incidents", lambda: self.incidents.join_many(members, severity=decision.severity_rating)
            )
            run.escalated.extend(
                key
                for key in pattern.event_keys
                if key in placed and self._escalate(key, pattern.pattern_key, decision, placed[key])
            )
            return merged

    def _escalate(self, key: str, pattern_key: str, decision: TriageDecision, incident_id: str) -> bool:
        return self._retrying(
            "escalate_from_pattern",
            lambda: self.store.escalate_from_pattern(
                key, pattern_key=pattern_key, decision=decision, incident_id=incident_id
            ),
        )


class MonitorStopped(Exception):
    """The process is shutting down; the slot's lock expires and the next slot runs."""


# A monitor request must stay well under the runtime's 1 MiB payload limit.
MAX_CHUNK_BYTES = 512 * 1024


def slim(event: WafEvent) -> WafEvent:
    """What grouping needs of an event: headers, args and user agent are dead weight."""
    return event.model_copy(update={"headers": (), "args": None, "user_agent": None})


def chunk_by_group(
    events: Iterable[WafEvent], size: int, *, max_bytes: int = MAX_CHUNK_BYTES
) -> list[list[WafEvent]]:
    """Chunks of at most ``size`` events and ``max_bytes`` that keep each group together.

    A group larger than a chunk is split; :func:`merge_patterns` joins its parts.
    """
    groups: dict[tuple[str, str], list[WafEvent]] = defaultdict(list)
    for event in events:
        groups[(event.source_ip, normalize_uri(event.uri))].append(slim(event))
    chunks: list[list[WafEvent]] = []
    current: list[WafEvent] = []
    current_bytes = 0
    for members in groups.values():
        weights = [len(event.model_dump_json()) + 2 for event in members]
        # Start a new chunk rather than split a group that would fit whole in one.
        if current and (len(current) + len(members) > size or current_bytes + sum(weights) > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        for event, weight in zip(members, weights, strict=True):
            if current and (len(current) >= size or current_bytes + weight > max_bytes):
                chunks.append(current)
                current, current_bytes = [], 0
            current.append(event)
            current_bytes += weight
    if current:
        chunks.append(current)
    return chunks


def merge_patterns(patterns: Sequence[Pattern], threshold: int) -> list[Pattern]:
    """Join the parts of a pattern that arrived in several chunks."""
    merged: dict[str, Pattern] = {}
    for pattern in patterns:
        seen = merged.get(pattern.pattern_key)
        if seen is None:
            merged[pattern.pattern_key] = pattern
            continue
        keys = tuple(dict.fromkeys(seen.event_keys + pattern.event_keys))
        merged[pattern.pattern_key] = seen.model_copy(
            update={
                "count": len(keys),
                "event_keys": keys,
                "first_seen": min(seen.first_seen, pattern.first_seen),
                "last_seen": max(seen.last_seen, pattern.last_seen),
                "rules": tuple(sorted(set(seen.rules) | set(pattern.rules))),
                "max_severity": max(seen.max_severity, pattern.max_severity),
                "threshold_met": len(keys) >= threshold,
            }
        )
    return sorted(merged.values(), key=lambda p: (-p.count, p.pattern_key))
