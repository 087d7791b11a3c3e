"""The ports of the pipeline: what the processor, the monitor job, the scheduler and the
daemon need from the world, as ``typing.Protocol`` (docs/architecture.md, "Ports").

Adapters implement them without inheriting: the DynamoDB store and the in-memory one
(:mod:`worker.store`), the incident repositories (:mod:`worker.incidents`), the
notifier fanning out to the channels (:mod:`worker.notify`), the agent facades over a
transport, the EMF metrics. The pipeline imports this module, never an adapter, so a
new store, channel or model provider plugs in without touching it.

A leaf: this module imports only ``secops_core`` and the worker's record and result
types, never a backend (``tests/unit/test_architecture.py`` checks that importing it
loads no adapter).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Protocol

from secops_core.contract import (
    Analysis,
    AnalysisInput,
    AnalyzeResponse,
    MonitorResponse,
    Pattern,
    TriageDecision,
    TriageOnlyResponse,
    WafEvent,
)
from worker.incidents.grouping import GroupBy, GroupKey
from worker.incidents.milestones import Milestone
from worker.incidents.records import ChannelResult, Contribution, IncidentRecord, IncidentStatus
from worker.incidents.results import EventJoin, JoinResult
from worker.notify.channel import IncidentDelivery
from worker.response.records import (
    AuditAction,
    BlockCaps,
    BlockOpening,
    BlockRecord,
    BlockResult,
    IpSetChange,
    IpSetRef,
)
from worker.store.aggregates import WindowCount, WindowShard
from worker.store.checkpoints import ObjectCheckpoint
from worker.store.records import Decided, EventRecord, PatternRecord, SavedAnalysis
from worker.suppressions.model import EndHow, Suppression, SuppressionMatch

Dimensions = Mapping[str, str]


class EventRepo(Protocol):
    """The per-event state machine; every step is atomic and idempotent.

    A step that finds its work done returns the record as it is; one that finds the
    lease moved on raises :class:`~worker.errors.RetryableError` (``lease_lost``).
    """

    def claim(
        self,
        event: WafEvent,
        *,
        owner: str,
        lease_s: int,
        message_id: str,
        episode_gap_s: float | None = None,
    ) -> EventRecord:
        """Take the lease (creating the record), or raise AlreadyInProgress / PermanentError.

        A claim more than ``episode_gap_s`` after the previous one (longer than any retry
        waits) starts a new retry episode: ``episode_attempts`` counts from 1 again.
        """
        ...

    def decide(self, decided: Decided, *, message_id: str) -> EventRecord | None:
        """The fast path: absent → its terminal status in one conditional put, for an
        event decided without a model call; None if the event has a record already."""
        ...

    def save_analysis(self, key: str, *, owner: str, analysis: Analysis) -> EventRecord:
        """processing → analyzed; adds ``analysis.model_calls`` to the event's ``model_calls``."""
        ...

    def add_model_calls(self, key: str, *, owner: str, calls: int) -> EventRecord:
        """Add ``calls`` to the event's ``model_calls`` for an answer that is not saved.

        Raises RetryableError (``lease_lost``) when the lease is no longer ``owner``'s.
        """
        ...

    def extend_lease(self, key: str, *, owner: str, lease_s: int) -> bool:
        """Push the lease to ``lease_s`` from now while ``owner`` holds it; False if it does not."""
        ...

    def apply_triage(
        self, key: str, *, owner: str, decision: TriageDecision, release: bool = False
    ) -> EventRecord:
        """analyzed → closed | monitoring | escalated; ``release`` frees the lease in the same write."""
        ...

    def link_incident(self, key: str, *, owner: str, incident_id: str, notification_id: str) -> bool:
        """escalated → linked to its incident (freeing our lease); False if linked already."""
        ...

    def finish(
        self,
        key: str,
        *,
        owner: str,
        analysis: Analysis,
        decision: TriageDecision,
        incident_id: str | None = None,
        notification_id: str | None = None,
    ) -> EventRecord:
        """processing → closed | monitoring | escalated in one write after a model call:
        the analysis (adding its ``model_calls``), its triage and, for an escalation, the
        incident it joined; the lease is freed in the same write. An escalation without
        ``incident_id`` stays to be joined by a redelivery. Idempotent like every step.
        """
        ...

    def release(self, key: str, *, owner: str) -> None:
        """Give the lease up if it is still ours; silent otherwise."""
        ...

    def reject(
        self,
        key: str,
        *,
        code: str,
        reason: str,
        message_id: str,
        event: WafEvent | None = None,
        excerpt: str | None = None,
    ) -> EventRecord:
        """Record bad input as `rejected` (never over a triaged event) and free the lease."""
        ...

    def escalate_from_pattern(
        self, key: str, *, pattern_key: str, decision: TriageDecision, incident_id: str
    ) -> bool:
        """monitoring → escalated (and linked) for a pattern over the threshold; False if
        not monitoring."""
        ...

    def get(self, key: str) -> EventRecord | None:
        """One record (strongly consistent), or None."""
        ...

    def get_many(self, keys: list[str]) -> dict[str, EventRecord]:
        """Records by key; absent keys are left out."""
        ...

    def iter_monitoring(
        self, *, since: datetime, until: datetime, page_size: int = 500
    ) -> Iterator[EventRecord]:
        """Events in `monitoring` with event time in [since, until], oldest first."""
        ...


class SignatureRepo(Protocol):
    """Saved analyses by analysis signature, shared by replicas (:mod:`worker.pipeline.reuse`)."""

    def get_signature(self, signature: str) -> SavedAnalysis | None:
        """The analysis saved for ``signature`` (maybe stale: the caller checks its age)."""
        ...

    def put_signature(self, saved: SavedAnalysis, *, ttl_s: float) -> None:
        """Save (or replace) the analysis of a signature; the store may drop it after ``ttl_s``."""
        ...


class PatternRepo(Protocol):
    """Monitor patterns, merged across runs, notified once per growth step."""

    def upsert_pattern(self, pattern: Pattern, *, slot: str) -> PatternRecord:
        """Merge one run's pattern into its record (distinct events counted once)."""
        ...

    def claim_pattern_notification(self, key: str, *, count: int, growth_factor: float) -> bool:
        """True for exactly one caller per growth step: that caller must publish."""
        ...

    def release_pattern_notification(self, key: str, *, count: int, previous: int) -> bool:
        """Give back our claim after a failed publish."""
        ...

    def get_pattern(self, key: str) -> PatternRecord | None:
        """One pattern record, or None."""
        ...


class SlotLock(Protocol):
    """One run per scheduled slot across every replica."""

    def acquire_lock(self, name: str, *, owner: str, ttl_s: int) -> bool:
        """Take ``name`` for ``ttl_s`` seconds; False if another holder has it or it is done."""
        ...

    def complete_lock(self, name: str, *, owner: str) -> None:
        """Mark the slot done, so it never runs again."""
        ...


class MonitorStore(EventRepo, PatternRepo, SlotLock, Protocol):
    """What the monitor job reads and writes: monitored events, patterns, its slot lock."""


class CheckpointRepo(Protocol):
    """Per-object checkpoints of S3 log files, leased like events (docs/architecture.md, "Consumers").

    ``claim_object`` takes the lease (raising :class:`~worker.errors.AlreadyInProgress`
    while another reader's is live) and returns where the last read stopped; a complete
    checkpoint comes back as it is, with no lease. ``save_object`` writes progress only
    while the lease is ours, else raises :class:`~worker.errors.RetryableError` (``lease_lost``).
    """

    def claim_object(
        self, bucket: str, key: str, version: str, *, owner: str, lease_s: int
    ) -> ObjectCheckpoint: ...

    def save_object(
        self,
        checkpoint: ObjectCheckpoint,
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint:
        """Store progress and extend the lease; ``complete`` finishes it, ``release`` gives it up."""
        ...

    def get_object(self, bucket: str, key: str, version: str) -> ObjectCheckpoint | None: ...


class IncidentRepo(Protocol):
    """Where incidents live. Every method is safe across threads and replicas."""

    def join(self, group: GroupKey, contributions: Sequence[Contribution]) -> JoinResult:
        """Fold escalated events of one group into its current incident, opening the
        next when there is none, it is resolved, or an event is past its quiet period.
        """
        ...

    def get(self, incident: str) -> IncidentRecord | None: ...

    def list(
        self,
        *,
        status: IncidentStatus | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[IncidentRecord]:
        """Incidents by last_seen, most recent first."""
        ...

    def claim_milestone(self, incident: str, milestone: str) -> bool:
        """True for exactly one caller per (incident, milestone): that one notifies.

        A claim older than the repository's ``claim_stale_s`` with no notice recorded
        was left by a worker that died before publishing: it can be claimed again.
        """
        ...

    def stale_claims(self, record: IncidentRecord) -> tuple[str, ...]:
        """The milestones of ``record`` claimed, never notified, and stale by now."""
        ...

    def claim_wait(self, record: IncidentRecord, *, besides: Collection[str] = ()) -> float | None:
        """Seconds until a claim of ``record`` not yet notified (other than ``besides``)
        goes stale, or None when none is pending."""
        ...

    def release_milestone(
        self, incident: str, milestone: str, *, failed: Sequence[ChannelResult] = ()
    ) -> bool:
        """Give back a claim whose publish failed; False if it was not claimed.

        ``failed`` (what each channel answered) becomes the incident's ``last_failure``
        in the same write, replacing the previous one.
        """
        ...

    def record_notice(
        self,
        incident: str,
        milestone: str,
        message_id: str | None,
        *,
        channels: Sequence[ChannelResult] = (),
    ) -> None:
        """Note the milestone as sent, with what each channel did (failures included)."""
        ...

    def set_status(
        self,
        incident: str,
        status: IncidentStatus,
        *,
        note: str = "",
        by: str = "",
        expected_status: IncidentStatus | None = None,
    ) -> IncidentRecord:
        """Acknowledge or resolve, conditionally; raises StatusConflict or IncidentNotFound."""
        ...


class WindowCountRepo(Protocol):
    """Per-window aggregates of counted log records (docs/architecture.md, "Relevance").

    ``save_object_counted`` stores an object's checkpoint and the changed shards of window
    counts of its current segment in one atomic step, with the rules of ``CheckpointRepo.save_object``
    (only while the lease is ours, else :class:`~worker.errors.RetryableError`
    ``lease_lost``, and then neither is stored); at most
    :data:`~worker.store.aggregates.MAX_COUNTS_PER_SAVE` shards at a time.
    ``window_counts`` reads the windows from ``since`` to ``until`` merged per key.
    """

    def save_object_counted(
        self,
        checkpoint: ObjectCheckpoint,
        shards: Sequence[WindowShard],
        *,
        owner: str,
        lease_s: int,
        complete: bool = False,
        release: bool = False,
    ) -> ObjectCheckpoint: ...

    def window_counts(self, *, since: datetime, until: datetime) -> list[WindowCount]: ...


class IncidentJoin(Protocol):
    """Where escalated events become incidents (:class:`worker.incidents.IncidentJoiner`):
    a thread-safe group commit over an :class:`IncidentRepo`.
    """

    @property
    def repo(self) -> IncidentRepo: ...

    @property
    def group_by(self) -> GroupBy: ...

    def join(self, contribution: Contribution) -> EventJoin:
        """Count one event in its incident (once, however often it comes); the answer
        carries the milestones this caller must claim and notify."""
        ...


class EventHistory(Protocol):
    """Stored events by event time, for reports that look back (suppression previews,
    the tuning report): a full read of the table, never on the pipeline's path."""

    def iter_events(self, *, since: datetime, until: datetime) -> Iterator[EventRecord]:
        """Every stored event with event time in [since, until], in no particular order."""
        ...


class SuppressionRepo(Protocol):
    """Operators' suppressions and their hits (docs/architecture.md, "Suppressions").

    ``create`` raises :class:`~worker.suppressions.repo.DuplicateSuppression` for an id
    that exists; ``end`` raises :class:`~worker.suppressions.repo.SuppressionConflict`
    when the suppression changed between its read and its write.
    """

    def create(self, suppression: Suppression) -> Suppression: ...

    def get(self, suppression_id: str) -> Suppression | None:
        """One suppression with its hits, or None."""
        ...

    def list(self, *, with_hits: bool = True) -> list[Suppression]:
        """Every kept suppression (active, expired, removed), oldest first."""
        ...

    def end(self, suppression_id: str, how: EndHow, *, by: str, at: datetime) -> Suppression | None:
        """Expire it now or remove it, kept for the audit; None if there is no such one."""
        ...

    def count_hit(self, suppression_id: str, event_key: str, *, at: datetime) -> bool:
        """Count one suppressed event once, however often it is delivered; False if it
        was counted before."""
        ...


class Suppressions(Protocol):
    """What the pipeline asks of the suppressions in force (:class:`worker.suppressions.SuppressionCache`)."""

    def match(self, event: WafEvent) -> SuppressionMatch | None:
        """The suppression that covers ``event`` (with the event's floor), or None."""
        ...

    def count_hit(self, suppression_id: str, event_key: str) -> bool: ...


class Notifier(Protocol):
    """Where incidents and patterns are announced.

    A pattern returns SNS's message id; an incident milestone goes to
    every enabled channel and returns what each did (:class:`IncidentDelivery`). Raises
    :class:`~worker.errors.RetryableError` (try later) or
    :class:`~worker.errors.ConfigurationError` (misconfigured) when nothing was
    delivered; a milestone that some channel took is delivered, its failures recorded.
    """

    def notify_incident(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
    ) -> IncidentDelivery:
        """One incident milestone to every enabled channel: what changed, the totals, and
        the event that crossed it."""
        ...

    def notify_pattern(
        self,
        pattern: Pattern,
        *,
        escalated_keys: Sequence[str],
        grown_from: int | None = None,
    ) -> str: ...


class IpSetWriter(Protocol):
    """A WAF IP set, edited the way several writers can share it (docs/architecture.md,
    "Response actions"): read, merge, write under the set's lock token, retry a lost
    write, read back. Networks are CIDRs; one already present (or already absent) is
    not an error and is not written twice.

    Raises :class:`~worker.errors.RetryableError` (unavailable, or the lock kept being
    lost past the retry budget), :class:`~worker.errors.ConfigurationError` (no such
    set, access denied) or :class:`~worker.errors.PermanentError` (``ip_set_full``: the
    merge would pass WAF's 10,000 addresses per set).
    """

    def add(self, ip_set: IpSetRef, networks: Collection[str]) -> IpSetChange: ...

    def remove(self, ip_set: IpSetRef, networks: Collection[str]) -> IpSetChange: ...

    def addresses(self, ip_set: IpSetRef) -> frozenset[str]:
        """The set's networks, canonical."""
        ...


class BlockRepo(Protocol):
    """Block records and their audit trail; every change is one conditional write."""

    def open_block(self, block: BlockRecord, *, caps: BlockCaps) -> BlockOpening:
        """Record ``block`` as active unless its network is in force in its set already
        (then that record comes back, ``opened=False``) or a cap is reached (``refused``).
        A removed record is reopened as its next generation, its history kept."""
        ...

    def begin_removal(self, key: str, *, generation: int) -> BlockRecord | None:
        """active → removing for generation ``generation`` (removing stays removing);
        None if that generation is no longer in the set."""
        ...

    def finish_removal(
        self,
        key: str,
        *,
        generation: int,
        action: AuditAction,
        by: str,
        reason: str,
        current: BlockRecord | None = None,
    ) -> BlockRecord | None:
        """active|removing → removed, with its audit entry; None if done already.
        ``current`` is the record as ``begin_removal`` returned it (saves a read)."""
        ...

    def finish_removals(
        self, records: Sequence[BlockRecord], *, action: AuditAction, by: str, reason: str
    ) -> list[BlockRecord]:
        """:meth:`finish_removal` of many records (as ``begin_removal`` returned them) at
        once; the ones this call closed."""
        ...

    def get_block(self, key: str) -> BlockRecord | None: ...

    def blocks_in_force(self) -> list[BlockRecord]:
        """Every active or removing block, soonest expiry first."""
        ...

    def expired_blocks(self, *, now: float, limit: int = 500) -> list[BlockRecord]:
        """Blocks in force whose expiry is at or before ``now``, oldest first."""
        ...

    def removed_blocks(self, *, since: float) -> list[BlockRecord]:
        """Blocks removed at or after ``since``, oldest first (the audit)."""
        ...


class Responder(Protocol):
    """What an incident's milestone may do beyond telling: block its sources
    (:class:`worker.response.responder.PolicyResponder`). Never raises for a refusal or
    a failed block: those are logged, counted and returned."""

    def respond(self, incident: IncidentRecord) -> Sequence[BlockResult]: ...


class Analyst(Protocol):
    def analyze(
        self,
        event: WafEvent,
        *,
        model_budget: int | None = None,
        on_lost_calls: Callable[[int], None] | None = None,
    ) -> AnalyzeResponse: ...


class Triager(Protocol):
    def triage_only(self, event: WafEvent, analysis: AnalysisInput) -> TriageOnlyResponse: ...


class Monitor(Protocol):
    def monitor(
        self,
        events: Sequence[WafEvent],
        hours: int,
        threshold: int,
        now: datetime | None = None,
        narrate: Sequence[str] = (),
    ) -> MonitorResponse: ...


class Agents(Protocol):
    """The three logical agents of the runtime (:class:`worker.agents.Agents` over a transport)."""

    @property
    def analyst(self) -> Analyst: ...

    @property
    def triager(self) -> Triager: ...

    @property
    def monitor(self) -> Monitor: ...

    def close(self) -> None: ...


class Metrics(Protocol):
    """Counters and timings (:class:`worker.platform.metrics.Metrics` writes them as EMF)."""

    def count(self, name: str, value: float = 1, *, dimensions: Dimensions | None = None) -> None: ...

    def observe_ms(self, name: str, millis: float, *, dimensions: Dimensions | None = None) -> None: ...

    def timer(self, name: str, *, dimensions: Dimensions | None = None) -> AbstractContextManager[None]: ...


class NullMetrics:
    """Metrics that go nowhere: what a pipeline part counts with when it is given none."""

    def count(self, name: str, value: float = 1, *, dimensions: Dimensions | None = None) -> None:
        return None

    def observe_ms(self, name: str, millis: float, *, dimensions: Dimensions | None = None) -> None:
        return None

    @contextmanager
    def timer(self, name: str, *, dimensions: Dimensions | None = None) -> Iterator[None]:
        yield


NULL_METRICS: Metrics = NullMetrics()
