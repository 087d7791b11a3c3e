"""An escalated event joins its incident; the incident's milestones are what gets notified
(docs/architecture.md, "Event state machine").

One attack is one incident and a handful of notices, not one critical notice per
request: the first escalation opens the incident and is notified at once, later ones
fold in and notify only when the incident crosses a milestone (growth, severity rise,
new class, a request that reached the application). Each milestone is claimed before
it is published, so across replicas it is sent exactly once. It goes to every enabled
channel: if one took it, it is sent, and the channels that failed are recorded on the
incident (each gets the incident's next milestone, with the totals); if none did, the
claim is given back and the delivery is retried. A claimer killed before its publish leaves
a claim without a notice: once stale, the incident's next event claims it again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import structlog

from secops_core.contract import Analysis, WafEvent
from worker.errors import RetryableError, WorkerError
from worker.incidents import OPENED, RESOLVED, Contribution, Crossing, GroupKey, IncidentRecord, Milestone
from worker.incidents.milestones import milestone_named
from worker.notify.channel import ChannelsRejected, ChannelsUnavailable
from worker.ports import IncidentJoin, Metrics, Notifier, Responder
from worker.retry import backoff, retried

log = structlog.get_logger("worker.incidents")

# Recording a notice is a small idempotent write worth a few quick tries (0.1, 0.3,
# 0.9 s): a notice left unrecorded makes its milestone be sent a second time.
_NOTICE_ATTEMPTS = 4
_NOTICE_BACKOFF_S = 0.1


@dataclass(frozen=True)
class Joined:
    """Where an event went and what was published for it."""

    incident_id: str
    new: bool  # False: the incident had counted it already (a redelivery)
    message_ids: tuple[str, ...]  # the notices this caller published

    @property
    def notification_id(self) -> str:
        """What the event record keeps as its notice: ours, or the incident's."""
        return self.message_ids[0] if self.message_ids else f"incident:{self.incident_id}"


class IncidentStep:
    """Join, then claim -> publish -> record each milestone this caller owns."""

    def __init__(
        self,
        *,
        incidents: IncidentJoin,
        notifier: Notifier,
        metrics: Metrics,
        responder: Responder | None = None,
    ) -> None:
        self.incidents = incidents
        self.notifier = notifier
        self.metrics = metrics
        # Response actions (off by default): the milestone's publisher applies the
        # response policy to the incident, once per milestone across replicas.
        self.responder = responder

    def join(self, event: WafEvent, analysis: Analysis, *, severity: int) -> Joined:
        """Count ``event`` (escalated at ``severity``) in its incident and notify what it crossed.

        Raises what the join or the publish raised (retryable, or a configuration
        error); the event then stays unlinked and its redelivery joins again.
        """
        contribution = replace(Contribution.from_event(event, analysis), severity=severity)
        joined = self.incidents.join(contribution)
        incident = joined.incident
        crossings: Sequence[Crossing] = joined.crossings
        if not joined.new:
            # A redelivery (rare): what is owed is read fresh, since the join may have
            # answered from a cache that predates a failed publish giving its claim back.
            incident = self.incidents.repo.get(incident.id) or incident
            crossings = _owed_openings([incident])
        crossings = (*crossings, *self._stale([incident], crossings))
        sent = tuple(
            message_id
            for crossing in crossings
            if (
                message_id := self.notify(
                    crossing.incident, crossing.milestone, event, analysis, claimed=crossing.claimed
                )
            )
            is not None
        )
        if not joined.new:
            self._wait_for_pending(incident, crossings)
        return Joined(incident.id, joined.new, sent)

    def _wait_for_pending(self, incident: IncidentRecord, crossings: Sequence[Crossing]) -> None:
        """A redelivery finds a milestone claimed but not yet notified: its claimer may
        still be publishing, or may have died after the claim (a SIGKILL between the
        join that claimed it and the publish). Acknowledging now could lose that page
        for good (an attack that stopped brings no later event to take the claim over),
        so the delivery comes back once the claim is stale, and then takes it over.
        """
        wait = self.incidents.repo.claim_wait(incident, besides={c.milestone.id for c in crossings})
        if wait is None:
            return
        log.info("incident_milestone_pending", incident=incident.id, stale_in_s=round(wait, 1))
        raise RetryableError(
            f"incident {incident.id} has a milestone claimed and not yet notified; "
            f"looking again once the claim is stale ({wait:.0f} s)",
            reason="milestone_pending",
            delay_s=wait + 1,
        )

    def join_many(self, members: Iterable[tuple[WafEvent, Analysis]], *, severity: int) -> Mapping[str, str]:
        """Join many events at once (the monitor's escalated patterns), one repository
        join per group, and notify the milestones crossed; event key -> incident id.
        """
        groups: dict[GroupKey, list[Contribution]] = defaultdict(list)
        for event, analysis in members:
            contribution = replace(Contribution.from_event(event, analysis), severity=severity)
            groups[contribution.group(self.incidents.group_by)].append(contribution)
        placed: dict[str, str] = {}
        for group, contributions in groups.items():
            result = self.incidents.repo.join(group, contributions)
            placed.update(result.placed)
            opened_now = {c.incident.id for c in result.crossings if c.milestone.id == OPENED.id}
            owed = _owed_openings(r for r in result.records if r.id not in opened_now)
            stale = self._stale(result.records, (*result.crossings, *owed))
            for crossing in (*result.crossings, *owed, *stale):
                self.notify(crossing.incident, crossing.milestone, claimed=crossing.claimed)
        return placed

    def _stale(
        self, records: Iterable[IncidentRecord], crossings: Sequence[Crossing]
    ) -> tuple[Crossing, ...]:
        """The milestones of ``records`` whose claimer died before publishing (claimed,
        never notified, stale), read off the records the join returned: no extra read.
        """
        taken = {(c.incident.id, c.milestone.id) for c in crossings}
        return tuple(
            Crossing(record, milestone_named(milestone, record))
            for record in records
            for milestone in self.incidents.repo.stale_claims(record)
            if (record.id, milestone) not in taken
        )

    def notify(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
        *,
        claimed: bool = False,
    ) -> str | None:
        """Publish one milestone if this caller wins its claim (or ``claimed``: its join
        claimed it already); the message id, or None."""
        repo = self.incidents.repo
        if not claimed and not repo.claim_milestone(incident.id, milestone.id):
            return None
        try:
            delivery = self.notifier.notify_incident(incident, milestone, event=event, analysis=analysis)
        except (ChannelsUnavailable, ChannelsRejected) as exc:
            repo.release_milestone(incident.id, milestone.id, failed=exc.results)
            raise
        except BaseException:
            repo.release_milestone(incident.id, milestone.id)
            raise
        message_id = delivery.message_id or f"incident:{incident.id}"
        self.metrics.count("Notifications", dimensions={"Topic": "critical"})
        try:
            retried(
                lambda: repo.record_notice(incident.id, milestone.id, message_id, channels=delivery.results),
                attempts=_NOTICE_ATTEMPTS,
                wait=backoff(_NOTICE_BACKOFF_S, factor=3),
                retry_on=WorkerError,
            )
        except WorkerError as exc:
            # The claim stays without its notice: once stale, it is sent again (a
            # duplicate beats a lost page), so a lost notice costs a second page.
            log.warning(
                "incident_notice_not_recorded",
                incident=incident.id,
                milestone=milestone.id,
                error=str(exc),
            )
        log.info(
            "incident_notified",
            incident=incident.id,
            milestone=milestone.id,
            count=incident.count,
            failed=[r.channel for r in delivery.failed],
        )
        if self.responder is not None and milestone.id != RESOLVED.id:
            self.responder.respond(incident)
        return message_id


def _owed_openings(incidents: Iterable[IncidentRecord]) -> tuple[Crossing, ...]:
    """The openings nobody holds: a publish failed and gave its claim back, and the
    event that opened the incident will not cross `opened` again, so a redelivery (or
    the next monitor run) joining it sends it.
    """
    return tuple(Crossing(i, OPENED) for i in incidents if OPENED.id not in i.claimed)
