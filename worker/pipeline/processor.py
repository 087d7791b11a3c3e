"""One message through the per-event state machine (docs/architecture.md, "Event state machine").

absent ─claim─► processing ─save analysis─► analyzed ─apply triage─► closed | monitoring | escalated
                                                                      └─ escalated: joins its incident

Each step is a conditional write, so a redelivered message resumes from the last
completed step: the model is never called again for a saved analysis. An event decided
without a model call (an analysis reused from its signature, the rules, a skipped
model) takes the fast path instead: one conditional put from absent to its terminal
status (:meth:`EventProcessor._fast_path`). An escalation
joins its incident (:mod:`worker.pipeline.incident_step`), which notifies per incident
milestone, each once, and the event keeps the incident's id; a redelivery of an
escalation without that link joins again, and the join counts it once.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

import structlog

from secops_core.contract import (
    OUTAGE_REASONS,
    Analysis,
    AnalysisInput,
    DegradedReason,
    SeverityFloorInfo,
    WafEvent,
)
from secops_core.errors import ContractError
from secops_core.ingest.normalize import decode_payload, is_request, normalize_event, parse_request
from secops_core.triage import triage
from secops_core.waf.floor import explain_floor
from worker.errors import (
    AlreadyInProgress,
    ConfigurationError,
    PermanentError,
    RetryableError,
    RuntimeUnavailable,
    WorkerError,
)
from worker.pipeline.incident_step import IncidentStep
from worker.pipeline.outcome import Outcome
from worker.pipeline.reuse import AnalysisReuse, Lead, Reused, SkipPolicy, skipped_analysis
from worker.pipeline.suppressed import suppressed_decision
from worker.ports import (
    NULL_METRICS,
    Agents,
    EventRepo,
    IncidentJoin,
    Metrics,
    Notifier,
    Responder,
    Suppressions,
)
from worker.retry import backoff, retried
from worker.store.keys import MAX_EXCERPT_BYTES, rejection_key
from worker.store.records import Decided, EventRecord

log = structlog.get_logger("worker.processor")

# Lease releases are small idempotent writes worth a quick retry before the message goes
# back to the queue: 0.1 s, 0.3 s, 0.9 s.
_SMALL_WRITE_ATTEMPTS = 4
_SMALL_WRITE_BACKOFF_S = 0.1
# While a runtime call runs the claim is extended this often (in leases): three chances
# to extend before it could expire, whatever a store hiccup costs one of them.
_HEARTBEAT_FRACTION = 1 / 3


@dataclass(frozen=True)
class ParsedMessage:
    event: WafEvent
    workflow: Literal["analyze", "triage_only"]
    supplied_analysis: AnalysisInput | None = None


def parse_message(body: str) -> ParsedMessage:
    """Accept the seed payloads, the wrapped form, a bare simplified event or a WAF record."""
    payload = decode_payload(body)
    if not is_request(payload):
        return ParsedMessage(event=normalize_event(payload), workflow="analyze")
    request = parse_request(payload, allow_normalized=False)
    if request.action == "analyze":
        return ParsedMessage(event=request.event, workflow="analyze")
    if request.action == "triage_only":
        return ParsedMessage(event=request.event, workflow="triage_only", supplied_analysis=request.analysis)
    raise PermanentError(
        "monitor requests are not queue messages: the scheduler runs the monitor",
        reason="unsupported_action",
    )


class EventProcessor:
    """Drives one message through claim, analysis, triage and notification."""

    def __init__(
        self,
        *,
        store: EventRepo,
        agents: Agents,
        notifier: Notifier,
        incidents: IncidentJoin,
        owner: str,
        lease_s: int,
        fallback_to_rules: bool = False,
        metrics: Metrics | None = None,
        model_call_budget: int = 3,
        max_deliveries: int | None = None,
        reuse: AnalysisReuse | None = None,
        skip: SkipPolicy | None = None,
        model_free: bool = False,
        retry_episode_gap_s: float | None = None,
        suppressions: Suppressions | None = None,
        responder: Responder | None = None,
    ) -> None:
        """``reuse`` shares model analyses by signature (None: every event asks);
        ``skip`` names the events the rules decide without a model (None: none);
        ``model_free`` says the runtime answers without a model (the in-process rules
        provider), so asking it before any write is cheap and every event takes the
        fast path; ``retry_episode_gap_s`` is the longest a retry can wait between two
        claims: a longer gap (a replay) restarts the event's back-off;
        ``suppressions`` are the operator's, in force (None: none); ``responder``
        applies the response policy to each incident milestone published (None: off).
        """
        self.store = store
        self.agents = agents
        self.notifier = notifier
        self.owner = owner
        self.lease_s = lease_s
        self.fallback_to_rules = fallback_to_rules
        # Model requests per event across every delivery (docs/architecture.md, "Model fail-safe").
        self.model_call_budget = model_call_budget
        # The queue's receives before its redrive: an event still waiting for an
        # unreachable runtime on its last delivery is decided by the floor instead.
        self.max_deliveries = max_deliveries
        self.metrics: Metrics = metrics or NULL_METRICS
        self.incidents = IncidentStep(
            incidents=incidents, notifier=notifier, metrics=self.metrics, responder=responder
        )
        self.reuse = reuse
        self.skip = skip
        self.model_free = model_free
        self.retry_episode_gap_s = retry_episode_gap_s
        self.suppressions = suppressions
        # Leases held by work in progress (owner -> event key), so the ones a shutdown
        # abandons can be given back instead of blocking redeliveries for lease_s.
        self._claims: dict[str, str] = {}
        self._claims_lock = threading.Lock()

    def process(self, body: str, message_id: str) -> Outcome:
        """Process one message body; never raises for input or dependency failures."""
        try:
            parsed = parse_message(body)
        except (ContractError, PermanentError) as exc:
            return self._reject_unparsed(body, message_id, exc)
        event = parsed.event
        # One lease holder per delivery, not per process: two copies of an event that
        # arrive in one batch must not both pass the claim.
        owner = f"{self.owner}#{uuid.uuid4().hex[:8]}"
        with structlog.contextvars.bound_contextvars(event_key=event.event_key):
            suppressed = self._suppressed(event, message_id)
            if isinstance(suppressed, Outcome):
                return suppressed
            lead = None
            # A covered event with a record already skips the fast path, whose join (before
            # its write) would count in an incident an event the suppression closed.
            if parsed.workflow == "analyze" and not suppressed:
                fast = self._fast_path(event, message_id)
                if isinstance(fast, Outcome):
                    return fast
                lead = fast
            try:
                return self._full_path(parsed, body, message_id, owner)
            finally:
                # Saved for reuse by now, or given up: the signature's waiters go on.
                if lead is not None:
                    lead.release()

    def _full_path(self, parsed: ParsedMessage, body: str, message_id: str, owner: str) -> Outcome:
        """Claim, then resume the state machine from wherever the event's record is."""
        event = parsed.event
        try:
            record = self.store.claim(
                event,
                owner=owner,
                lease_s=self.lease_s,
                message_id=message_id,
                episode_gap_s=self.retry_episode_gap_s,
            )
        except AlreadyInProgress as exc:
            # A message that claimed the event before is the holder's own (redelivered
            # while its work runs on); any other is a duplicate copy that can look again
            # soon, since the holder may be about to finish.
            other = message_id not in exc.message_ids
            log.info(
                "event_in_progress_elsewhere",
                lease_expires_in_s=exc.lease_expires_in_s,
                lease_held_by_other=other,
            )
            return Outcome(
                "in_progress",
                event.event_key,
                reason="in_progress",
                delay_s=max(1.0, exc.lease_expires_in_s or self.lease_s),
                lease_held_by_other=other,
            )
        except RetryableError as exc:
            return Outcome("retry", event.event_key, reason=exc.reason)
        except PermanentError as exc:
            # Valid, but too big to store (event_too_large): bad input all the same.
            return self._reject_unclaimed(event, body, message_id, exc)
        except ConfigurationError as exc:
            # The table is missing or not ours: the deployment is wrong, not the event,
            # so it must not be retried into the DLQ. Open the circuit like an outage.
            log.error("store_unusable", reason=exc.reason, error=exc.message)
            return Outcome("unavailable", event.event_key, reason=exc.reason)
        with self._claims_lock:
            self._claims[owner] = event.event_key
        try:
            outcome = self._advance(record, parsed, message_id, owner)
        except BaseException:
            self._release(event.event_key, owner)
            raise
        finally:
            with self._claims_lock:
                self._claims.pop(owner, None)
        # The last step gave the lease back in its own write (closed, monitoring), or
        # we never held one (a finished event is returned without a lease).
        if record.lease_owner == owner and not outcome.lease_released:
            self._release(event.event_key, owner)
        return outcome

    # ---- the fast path --------------------------------------------------------------------

    def _fast_path(self, event: WafEvent, message_id: str) -> Outcome | Lead | None:
        """Decide without a model and write the event once; else take the full path,
        with the signature's :class:`Lead` if this caller is to ask the model for it.

        An escalation joins its incident (and notifies what it crossed) before the
        write, so the write carries the link: one write for the event. If the event has
        a record already (a redelivery, a copy in another replica), the join counted
        it once and the full path finds out what is left to do.
        """
        key = event.event_key
        try:
            decided = self._decide_without_model(event)
            if not isinstance(decided, Decided):
                return decided
            if decided.decision.status == "escalated":
                joined = self.incidents.join(
                    event, decided.analysis, severity=decided.decision.severity_rating
                )
                decided = replace(
                    decided, incident_id=joined.incident_id, notification_id=joined.notification_id
                )
                notified = bool(joined.message_ids)
            else:
                notified = False
            record = self.store.decide(decided, message_id=message_id)
        except (PermanentError, RuntimeUnavailable):
            # Too large to keep, or the runtime is down: the full path records or
            # retries it with the usual rules.
            return None
        except (ConfigurationError, RetryableError) as exc:
            return _step_failed(key, exc)
        if record is None:
            return None
        severity = decided.analysis.severity_rating
        log.info(
            "event_processed",
            status=record.status,
            severity=severity,
            analyzed_by=decided.analysis.analyzed_by,
            reused_from=decided.reused_from,
            incident_id=decided.incident_id,
            notified=notified,
            fast_path=True,
        )
        self.metrics.count("EventsProcessed", dimensions={"Status": record.status, "Severity": str(severity)})
        return Outcome(
            "done", key, status=record.status, severity=severity, notified=notified, lease_released=True
        )

    def _suppressed(self, event: WafEvent, message_id: str) -> Outcome | bool:
        """Close an event an operator's suppression covers, in one write at its floor,
        and count it for the suppression. False when none covers it; True when one does
        but the event has a record already: the full path resumes it (and counts a
        suppressed one's hit).
        """
        match = self.suppressions.match(event) if self.suppressions is not None else None
        if match is None:
            return False
        key = event.event_key
        try:
            record = self.store.decide(suppressed_decision(event, match), message_id=message_id)
        except PermanentError:
            return True  # too large to keep: the full path records the rejection
        except (ConfigurationError, RetryableError) as exc:
            return _step_failed(key, exc)
        if record is None:
            return True
        severity = match.floor.severity
        log.info("event_suppressed", suppressed_by=match.suppression.id, severity_floor=severity)
        self.metrics.count("EventsSuppressed")
        done = Outcome("done", key, status=record.status, severity=severity, lease_released=True)
        return self._count_hit(key, match.suppression.id) or done

    def _count_hit(self, key: str, suppression_id: str) -> Outcome | None:
        """Count a suppressed event for its suppression (once, however often it comes);
        an Outcome to retry when the count could not be written, so a redelivery does."""
        if self.suppressions is None:
            return None
        try:
            self.suppressions.count_hit(suppression_id, key)
        except (ConfigurationError, RetryableError) as exc:
            return _step_failed(key, exc, retry_event="suppression_hit_failed")
        return None

    def _decide_without_model(self, event: WafEvent) -> Decided | Lead | None:
        """The event's analysis and triage if no model call is needed for them; else
        the signature's lead if this caller is to ask the model, or None."""
        floor, findings = explain_floor(event)
        reused_from = None
        if self.skip is not None and self.skip.skips(event, floor, findings):
            analysis = skipped_analysis(event, floor)
            self.metrics.count("ModelSkipped")
        elif self.model_free:
            # Asking a runtime without a model costs less than reading a saved analysis.
            analysis = self.agents.analyst.analyze(event).analysis
        else:
            found = self._find_reusable(event, floor)
            if not isinstance(found, Reused):
                return found
            analysis, reused_from = found.analysis, found.origin
            self.metrics.count("AnalysesReused")
        # The worker triages from the severity, as on the full path.
        return Decided(event, analysis, triage(analysis.severity_rating), reused_from=reused_from)

    def _find_reusable(self, event: WafEvent, floor: SeverityFloorInfo) -> Reused | Lead | None:
        if self.reuse is None:
            return None
        try:
            return self.reuse.find(event, floor)
        except WorkerError as exc:
            # A saved analysis we cannot read costs a model call, not the event.
            log.warning("reuse_lookup_failed", error=str(exc))
            return None

    def _save_for_reuse(self, event: WafEvent, analysis: Analysis) -> None:
        if self.reuse is None:
            return
        try:
            self.reuse.save(event, analysis)
        except WorkerError as exc:
            log.warning("reuse_save_failed", error=str(exc))

    def _release(self, key: str, owner: str) -> None:
        """Give the lease back, retrying briefly: a lease left behind by one failed write
        makes every redelivery back off until it expires, spending receive counts."""
        try:
            retried(
                lambda: self.store.release(key, owner=owner),
                attempts=_SMALL_WRITE_ATTEMPTS,
                wait=backoff(_SMALL_WRITE_BACKOFF_S, factor=3),
                retry_on=WorkerError,
            )
        except WorkerError as exc:
            log.warning("lease_release_failed", error=str(exc))

    def release_claims(self) -> int:
        """Give back every lease still held; returns how many. For work the shutdown abandoned.

        The consumer released those messages at its drain deadline; without this, each
        redelivery would meet our lease and back off (burning a receive count) until
        ``lease_s`` ran out. The abandoned call may still finish and write its step:
        the store accepts it only while no new claim has taken the event.
        """
        with self._claims_lock:
            claims, self._claims = dict(self._claims), {}
        for owner, key in claims.items():
            try:
                self.store.release(key, owner=owner)
            except WorkerError as exc:
                log.warning("lease_release_failed", event_key=key, error=str(exc))
        if claims:
            log.info("abandoned_leases_released", count=len(claims))
        return len(claims)

    # ---- steps ------------------------------------------------------------------------

    def _advance(self, record: EventRecord, parsed: ParsedMessage, message_id: str, owner: str) -> Outcome:
        event = parsed.event
        key = event.event_key
        if record.status == "rejected":
            # Bad input stays bad: reject again with the recorded reason, no model call.
            return self._rejected(record, message_id)
        if record.is_terminal and not record.needs_notification:
            if record.suppressed_by is not None:
                # The delivery that closed it may have died before counting it.
                not_counted = self._count_hit(key, record.suppressed_by)
                if not_counted is not None:
                    return not_counted
            log.info("duplicate_acknowledged", status=record.status, attempts=record.attempts)
            self.metrics.count("Duplicates")
            return Outcome("duplicate", key, status=record.status, severity=record.severity)
        model_called = degraded = lease_released = False
        try:
            notified = False
            if record.status == "processing":
                analysis, model_called = self._analyze(parsed, record, owner)
                degraded = analysis.degraded
                if model_called and parsed.workflow == "analyze":
                    self._save_for_reuse(event, analysis)
                record, notified = self._finish(record, analysis, owner)
                lease_released = True
            if record.status == "analyzed":
                # Saved by a step of its own (an older worker, or a crash between steps).
                assert record.analysis is not None
                # The worker triages, once, from the severity it stored; the runtime's
                # `triage` answer is not read. The status drives the worker's own side
                # effects (the monitoring index, the critical notice), so it must exist
                # where the runtime is not (rules fallback, a saved analysis resumed
                # after a crash), and derived here it can never disagree with the stored
                # severity, whatever runtime version answered. The runtime keeps `triage`
                # in its response for the seed's callers (docs/architecture.md, "Severity").
                decision = triage(record.analysis.severity_rating)
                last_step = decision.status != "escalated"
                record = self.store.apply_triage(key, owner=owner, decision=decision, release=last_step)
                lease_released = last_step and record.lease_expires_at == 0
            if record.needs_notification and not lease_released:
                assert record.event is not None and record.analysis is not None
                assert record.triage is not None
                joined = self.incidents.join(
                    record.event, record.analysis, severity=record.triage.severity_rating
                )
                notified = bool(joined.message_ids)
                # Freed in the same write, unless the lease moved on during the join.
                self.store.link_incident(
                    key, owner=owner, incident_id=joined.incident_id, notification_id=joined.notification_id
                )
                lease_released = True
        except PermanentError as exc:
            self.store.reject(key, code=exc.reason, reason=exc.message, message_id=message_id, event=event)
            self.metrics.count("Rejections", dimensions={"Reason": exc.reason})
            log.warning("event_rejected", reason=exc.reason, error=exc.message)
            # reject() gives the lease back in the same write.
            return Outcome(
                "rejected",
                key,
                status="rejected",
                reason=exc.reason,
                model_called=model_called,
                lease_released=True,
            )
        except RuntimeUnavailable as exc:
            log.warning("runtime_unavailable", error=exc.message)
            return Outcome("unavailable", key, reason=exc.reason, delay_s=exc.delay_s)
        except ConfigurationError as exc:
            # The event is fine, the deployment is not: never reject it into the DLQ.
            log.error("configuration_error", reason=exc.reason, error=exc.message)
            return Outcome("unavailable", key, reason=exc.reason, model_called=model_called)
        except RetryableError as exc:
            log.warning("step_failed_retryable", reason=exc.reason, error=exc.message)
            return Outcome(
                "retry",
                key,
                reason=exc.reason,
                delay_s=exc.delay_s,
                model_called=model_called,
                attempts=record.episode_attempts,
            )
        severity = record.severity
        log.info(
            "event_processed",
            status=record.status,
            severity=severity,
            analyzed_by=record.analysis.analyzed_by if record.analysis else None,
            notified=notified,
        )
        self.metrics.count("EventsProcessed", dimensions={"Status": record.status, "Severity": str(severity)})
        return Outcome(
            "done",
            key,
            status=record.status,
            severity=severity,
            model_called=model_called,
            notified=notified,
            degraded=degraded,
            lease_released=lease_released,
        )

    def _finish(self, record: EventRecord, analysis: Analysis, owner: str) -> tuple[EventRecord, bool]:
        """Save ``analysis``, its triage and, for an escalation, its incident in one write;
        the record and whether this caller notified.

        An escalation joins its incident first, so the write carries the link. If the
        join fails, the analysis is saved all the same (the model is never asked twice
        for it) and the join's error is raised after the write: the event stays
        escalated without its incident, and the redelivery joins it.
        """
        assert record.event is not None
        decision = triage(analysis.severity_rating)
        incident_id = notification_id = None
        notified = False
        failed: WorkerError | None = None
        if decision.status == "escalated":
            try:
                joined = self.incidents.join(record.event, analysis, severity=decision.severity_rating)
            except WorkerError as exc:
                failed = exc
            else:
                incident_id, notification_id = joined.incident_id, joined.notification_id
                notified = bool(joined.message_ids)
        record = self.store.finish(
            record.key,
            owner=owner,
            analysis=analysis,
            decision=decision,
            incident_id=incident_id,
            notification_id=notification_id,
        )
        if failed is not None:
            raise failed
        return record, notified

    def _analyze(self, parsed: ParsedMessage, record: EventRecord, owner: str) -> tuple[Analysis, bool]:
        """The analysis to save, within the event's model budget (docs/architecture.md,
        "Model fail-safe").

        The runtime answers a valid event with at least its floor whatever the model does.
        An outage (``OUTAGE_REASONS``) is waited out only under the ``wait`` policy and
        only while budget is left: its calls are counted and the circuit opens. An
        unusable answer, a spent budget and the ``rules`` policy save what came back.
        A runtime that cannot be reached falls back to the rules under ``rules``, and
        under ``wait`` once the event's budget or its last delivery is reached.
        """
        event = parsed.event
        left = max(0, self.model_call_budget - record.model_calls)
        lost = [0]

        def count_lost(calls: int) -> None:
            lost[0] += calls

        try:
            with (
                self._heartbeat(event.event_key, owner),
                self.metrics.timer("RuntimeLatency", dimensions={"Workflow": parsed.workflow}),
            ):
                if parsed.workflow == "triage_only":
                    assert parsed.supplied_analysis is not None
                    return self.agents.triager.triage_only(event, parsed.supplied_analysis).analysis, False
                analysis = self.agents.analyst.analyze(
                    event, model_budget=left, on_lost_calls=count_lost
                ).analysis
        except RetryableError as exc:
            # No answer from the runtime (unreachable, timed out, a 5xx).
            spent = record.model_calls
            if lost[0]:
                self.metrics.count("ModelCalls", lost[0])
                spent = self._spend(event.event_key, owner, lost[0])
            # This retry episode's deliveries: a message replayed from the DLQ has a fresh
            # receive count, so the event's all-time attempts would end it on its first.
            last_delivery = self.max_deliveries is not None and record.episode_attempts >= self.max_deliveries
            by_policy = self.fallback_to_rules and isinstance(exc, RuntimeUnavailable)
            if not (by_policy or spent >= self.model_call_budget or last_delivery):
                raise
            log.warning("runtime_unavailable_fallback_rules", reason=exc.reason, model_calls=spent)
            reason: DegradedReason = (
                "model_budget_spent" if spent >= self.model_call_budget else "model_error"
            )
            return self._degraded(_local_rules(event, reason)), False
        if lost[0]:
            analysis = analysis.model_copy(update={"model_calls": analysis.model_calls + lost[0]})
        self.metrics.count("ModelCalls", analysis.model_calls)
        left_after = left - analysis.model_calls
        if analysis.degraded_reason in OUTAGE_REASONS and not self.fallback_to_rules and left_after > 0:
            # An outage with budget left: wait for the model (circuit open) rather than
            # decide by the floor now; the calls count against the next request.
            self._spend(event.event_key, owner, analysis.model_calls)
            log.warning("model_outage_wait", reason=analysis.degraded_reason, model_calls_left=left_after)
            raise RuntimeUnavailable(
                f"model outage ({analysis.degraded_reason}); {left_after} model call(s) left for this event",
                reason=str(analysis.degraded_reason),
            )
        if analysis.model_overruled:
            # A model rating below the floor most likely obeyed the request's text.
            log.warning("model_overruled", model_severity=analysis.model_severity)
            self.metrics.count("ModelOverruled")
        return self._degraded(analysis), True

    def _degraded(self, analysis: Analysis) -> Analysis:
        if analysis.degraded:
            log.warning("analysis_degraded", reason=analysis.degraded_reason)
            self.metrics.count(
                "DegradedAnalyses",
                dimensions={"Reason": str(analysis.degraded_reason or "runtime_unavailable")},
            )
        return analysis

    def _spend(self, key: str, owner: str, calls: int) -> int:
        """Count ``calls`` of an answer that is not saved; the event's total after them."""
        return self.store.add_model_calls(key, owner=owner, calls=calls).model_calls

    @contextmanager
    def _heartbeat(self, key: str, owner: str) -> Iterator[None]:
        """Extend the claim while a runtime call runs, so a slow model cannot outlive it and
        let a redelivery analyze the event a second time."""
        stop = threading.Event()
        interval = self.lease_s * _HEARTBEAT_FRACTION

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    if not self.store.extend_lease(key, owner=owner, lease_s=self.lease_s):
                        log.warning("lease_extend_lost")
                        return
                except WorkerError as exc:
                    log.warning("lease_extend_failed", error=str(exc))

        thread = threading.Thread(target=beat, name=f"lease-{owner}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # ---- rejections ---------------------------------------------------------------------

    def _reject_unparsed(self, body: str, message_id: str, exc: ContractError | PermanentError) -> Outcome:
        code = str(exc.code) if isinstance(exc, ContractError) else exc.reason
        key = key_of_unparsed(body) or rejection_key(body)
        with structlog.contextvars.bound_contextvars(event_key=key):
            excerpt = _excerpt(body)
            try:
                self.store.reject(key, code=code, reason=exc.message, message_id=message_id, excerpt=excerpt)
            except RetryableError as store_exc:
                return Outcome("retry", key, reason=store_exc.reason)
            self.metrics.count("Rejections", dimensions={"Reason": code})
            log.warning("message_rejected", reason=code, error=exc.message)
            return Outcome("rejected", key, status="rejected", reason=code)

    def _reject_unclaimed(self, event: WafEvent, body: str, message_id: str, exc: PermanentError) -> Outcome:
        """Record a rejection the claim itself raised; only an excerpt of the body is kept."""
        excerpt = _excerpt(body)
        try:
            self.store.reject(
                event.event_key, code=exc.reason, reason=exc.message, message_id=message_id, excerpt=excerpt
            )
        except RetryableError as store_exc:
            return Outcome("retry", event.event_key, reason=store_exc.reason)
        self.metrics.count("Rejections", dimensions={"Reason": exc.reason})
        log.warning("event_rejected", reason=exc.reason, error=exc.message)
        return Outcome("rejected", event.event_key, status="rejected", reason=exc.reason)

    def _rejected(self, record: EventRecord, message_id: str) -> Outcome:
        code = record.rejection_code or "invalid_input"
        reason = record.rejection_reason or "rejected earlier"
        self.store.reject(record.key, code=code, reason=reason, message_id=message_id)
        self.metrics.count("Rejections", dimensions={"Reason": code})
        log.warning("message_rejected_again", reason=code)
        return Outcome("rejected", record.key, status="rejected", reason=code)


def _local_rules(event: WafEvent, reason: DegradedReason) -> Analysis:
    """The floor and the rules text, decided here because the runtime cannot be reached."""
    from secops_core.rules_analysis import rules_analysis
    from secops_core.waf.floor import severity_floor

    return rules_analysis(event, severity_floor(event), degraded=True).model_copy(
        update={"degraded_reason": reason}
    )


def _excerpt(body: str) -> str:
    """What a rejection keeps of a body: enough to see what it was and who sent it."""
    return body.encode("utf-8", "replace")[:MAX_EXCERPT_BYTES].decode("utf-8", "replace")


def key_of_unparsed(body: str) -> str | None:
    """The event key of a body that is an object with an ``id`` (so rejections group)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(payload, dict) and isinstance(payload.get("event"), dict):
        payload = payload["event"]
    if isinstance(payload, dict) and isinstance(payload.get("id"), str | int):
        from secops_core.ingest.normalize import event_key_for

        try:
            return event_key_for(payload)
        except ContractError:
            return None
    return None


def _step_failed(
    key: str, exc: ConfigurationError | RetryableError, *, retry_event: str = "step_failed_retryable"
) -> Outcome:
    """A store step that could not be written: a wrong deployment opens the circuit (the
    event is fine, so it never goes to the DLQ); anything else comes back after a delay."""
    if isinstance(exc, ConfigurationError):
        log.error("configuration_error", reason=exc.reason, error=exc.message)
        return Outcome("unavailable", key, reason=exc.reason)
    log.warning(retry_event, reason=exc.reason, error=exc.message)
    return Outcome("retry", key, reason=exc.reason, delay_s=exc.delay_s)
