"""The seam every incident output channel implements (docs/architecture.md, "Ports").

SNS e-mail text, the chat card, the Security Hub finding and the EventBridge event are
four renderings of the same incident milestone. Each channel renders and publishes on
its own, retrying transient failures within its own budget; the fan-out over the
enabled channels makes sure one failing channel never blocks the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from secops_core.contract import Analysis, WafEvent
from worker.incidents.milestones import Milestone
from worker.incidents.records import IncidentRecord

ChannelName = Literal["sns", "chat", "securityhub", "eventbridge"]
CHANNEL_NAMES: tuple[ChannelName, ...] = ("sns", "chat", "securityhub", "eventbridge")


class IncidentChannel(Protocol):
    """One place incidents are published to."""

    @property
    def name(self) -> ChannelName: ...

    def publish_incident(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
    ) -> str:
        """Publish one milestone of ``incident``; return the channel's id for it (an SNS
        message id, a finding id, an EventBridge event id).

        Transient failures (throttling, 5xx, connection errors) are retried inside,
        with exponential jitter, up to the channel's attempt budget. Raises
        :class:`~worker.errors.RetryableError` once that budget is spent and
        :class:`~worker.errors.ConfigurationError` when retrying cannot help (access
        denied, a missing topic or bus, Security Hub not enabled).
        """
        ...


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """What one channel did with one milestone."""

    channel: ChannelName
    ok: bool
    id: str | None = None  # the channel's id when ok
    reason: str | None = None  # the error's reason code when not ok
    error: str | None = None  # one line for an operator when not ok
