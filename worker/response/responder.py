"""The policy applied to an incident's milestone: its sources blocked, never an error
for the pipeline (docs/architecture.md, "Response actions").

The incident step calls :meth:`Responder.respond` once per milestone it published (the
milestone's claim makes that once across replicas). A failure to block is logged and
counted; the event and its page go on.
"""

from __future__ import annotations

import structlog

from worker.errors import WorkerError
from worker.incidents.records import IncidentRecord
from worker.ports import Metrics
from worker.response.addresses import AddressRefused
from worker.response.blocker import Blocker
from worker.response.policy import ResponsePolicy
from worker.response.records import POLICY, BlockResult

log = structlog.get_logger("worker.response")


class PolicyResponder:
    """The Responder port: the response policy over a :class:`Blocker`."""

    def __init__(self, *, policy: ResponsePolicy, blocker: Blocker, metrics: Metrics | None = None) -> None:
        self.policy = policy
        self.blocker = blocker
        self.metrics = metrics

    def respond(self, incident: IncidentRecord) -> list[BlockResult]:
        """Block the sources of ``incident`` if the policy selects it."""
        selection = self.policy.select(incident)
        if selection is None:
            return []
        results: list[BlockResult] = []
        for address in selection.addresses:
            try:
                previous = self.blocker.existing(address)
                duration = self.policy.duration([previous], now=self.blocker.now())
                result = self.blocker.block(
                    address,
                    duration_s=duration,
                    reason=selection.reason,
                    decided_by=POLICY,
                    incident_id=incident.id,
                )
            except (WorkerError, AddressRefused) as exc:
                log.warning("block_decision_failed", incident=incident.id, address=address, error=str(exc))
                self._count("BlockFailures")
                continue
            results.append(result)
            self._count("BlockDecisions", outcome=result.outcome)
            log.info("block_decided", incident=incident.id, line=result.line, outcome=result.outcome)
        return results

    def _count(self, name: str, **dimensions: str) -> None:
        if self.metrics is not None:
            self.metrics.count(name, dimensions={k.title(): v for k, v in dimensions.items()} or None)
