"""The seam every incident output channel implements (docs/architecture.md, "Ports").

SNS e-mail text, the chat card, the Security Hub finding and the EventBridge event are
four renderings of the same incident milestone. Each channel renders and publishes on
its own, retrying transient failures within its own budget; the fan-out over the
enabled channels makes sure one failing channel never blocks the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from secops_core.contract import Analysis, WafEvent
from worker.errors import ConfigurationError, RetryableError
from worker.incidents.milestones import Milestone
from worker.incidents.records import ChannelResult, IncidentRecord
from worker.notify.names import CHANNEL_NAMES, ChannelName

__all__ = [
    "CHANNEL_NAMES",
    "ChannelName",
    "ChannelResult",
    "ChannelsRejected",
    "ChannelsUnavailable",
    "Delivery",
    "IncidentChannel",
]


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


# ChannelResult lives with the incident record, which stores one per channel in each
# notice; it is re-exported here, beside the protocol whose outcome it describes.


@dataclass(frozen=True, slots=True)
class Delivery:
    """One milestone delivered to at least one channel: what each enabled channel did.

    ``message_id`` is the first successful channel's id, in the configured order (SNS's
    when SNS is enabled and took it), which the event record keeps as its notice.
    """

    results: tuple[ChannelResult, ...]

    @property
    def message_id(self) -> str | None:
        return next((r.id for r in self.results if r.ok), None)

    @property
    def failed(self) -> tuple[ChannelResult, ...]:
        return tuple(r for r in self.results if not r.ok)


class ChannelsUnavailable(RetryableError):
    """Every enabled channel failed and at least one may take it later: retry the milestone."""

    def __init__(self, message: str, *, reason: str, results: tuple[ChannelResult, ...]) -> None:
        super().__init__(message, reason=reason)
        self.results = results


class ChannelsRejected(ConfigurationError):
    """Every enabled channel failed for a reason retrying cannot fix (topic, IAM, setup)."""

    def __init__(self, message: str, *, reason: str, results: tuple[ChannelResult, ...]) -> None:
        super().__init__(message, reason=reason)
        self.results = results
