"""The fan-out: every incident milestone to each enabled channel, independently
(docs/architecture.md, "Ports" and "Incidents").

It implements the ``Notifier`` port. Each channel retries within its own budget; what
it finally answers (an id, or an error) becomes its :class:`ChannelResult`, and one
channel failing never stops the others. The channels are called in parallel, so the
slowest budget, not their sum, bounds a milestone's publish (which must stay below the
staleness of a milestone claim).

Whether the milestone counts as sent:

- at least one channel took it: delivered. The failures are returned, recorded on the
  incident and counted, not raised: raising would give the claim back and publish the
  milestone again to the channels that already have it;
- every channel failed: :class:`ChannelsUnavailable` (a ``RetryableError``) if any
  failure may pass, else :class:`ChannelsRejected` (a ``ConfigurationError``), so the
  claim is given back and the delivery retried as with one channel.

Escalations and monitor patterns stay on SNS (:class:`worker.notify.sns.SnsNotifier`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog

from secops_core.contract import Analysis, Pattern, WafEvent
from secops_core.text import sanitize_text
from worker.errors import RetryableError, WorkerError
from worker.incidents import IncidentRecord, Milestone
from worker.notify.channel import (
    ChannelResult,
    ChannelsRejected,
    ChannelsUnavailable,
    IncidentChannel,
    IncidentDelivery,
)
from worker.notify.sns import SnsNotifier
from worker.ports import Metrics

log = structlog.get_logger("worker.notify.fanout")

# An operator reads the error in `secops incidents show`; the stored line stays short.
_ERROR_CHARS = 300
# Threads shared by every worker thread's milestones; milestones are rare beside events.
_MAX_THREADS = 16
# The reason recorded for an exception that is not one of ours (a bug in a channel).
UNEXPECTED_REASON = "channel_error"


class FanoutNotifier:
    """``FanoutNotifier(channels=[...], sns=<SNS notifier>, metrics=None)``: the port over
    the enabled channels (in their configured order) and SNS for everything else."""

    def __init__(
        self,
        *,
        channels: Sequence[IncidentChannel],
        sns: SnsNotifier,
        metrics: Metrics | None = None,
    ) -> None:
        if not channels:
            raise ValueError("at least one incident channel must be enabled")
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"a channel is enabled twice: {names}")
        self.channels = tuple(channels)
        self.sns = sns
        self.metrics = metrics
        self._pool = (
            ThreadPoolExecutor(max_workers=min(4 * len(channels), _MAX_THREADS), thread_name_prefix="channel")
            if len(channels) > 1
            else None
        )

    def notify_pattern(
        self,
        pattern: Pattern,
        *,
        escalated_keys: Sequence[str],
        grown_from: int | None = None,
    ) -> str:
        return self.sns.notify_pattern(pattern, escalated_keys=escalated_keys, grown_from=grown_from)

    def notify_incident(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
        only: Collection[str] | None = None,
    ) -> IncidentDelivery:
        """Publish ``milestone`` to every channel (or to those named in ``only``: a
        resend to the channels that failed it); what each did, or raise when none took it.
        """
        chosen = [c for c in self.channels if only is None or c.name in only]
        if not chosen:
            raise ValueError(f"no enabled channel among {sorted(only or ())}")

        def publish(channel: IncidentChannel) -> tuple[ChannelResult, Exception | None]:
            return self._publish(channel, incident, milestone, event, analysis)

        if self._pool is None or len(chosen) == 1:
            outcomes = [publish(chosen[0])]
        else:
            # Each task runs in a copy of the caller's context, so its logs keep the
            # event's bound fields.
            futures = [
                self._pool.submit(contextvars.copy_context().run, publish, channel) for channel in chosen
            ]
            outcomes = [future.result() for future in futures]
        results = tuple(result for result, _ in outcomes)
        if any(result.ok for result in results):
            return IncidentDelivery(results)
        raise _undelivered(results, [exc for _, exc in outcomes if exc is not None])

    def _publish(
        self,
        channel: IncidentChannel,
        incident: IncidentRecord,
        milestone: Milestone,
        event: WafEvent | None,
        analysis: Analysis | None,
    ) -> tuple[ChannelResult, Exception | None]:
        name = channel.name
        try:
            channel_id = channel.publish_incident(incident, milestone, event=event, analysis=analysis)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, WorkerError) else UNEXPECTED_REASON
            log.warning(
                "channel_failed",
                channel=name,
                incident=incident.id,
                milestone=milestone.id,
                reason=reason,
                error=str(exc)[:_ERROR_CHARS],
                exc_info=not isinstance(exc, WorkerError),
            )
            self._count("ChannelFailed", name)
            error = sanitize_text(f"{type(exc).__name__}: {exc}", _ERROR_CHARS)
            return ChannelResult(name, ok=False, reason=reason, error=error), exc
        self._count("ChannelPublished", name)
        log.info(
            "channel_published", channel=name, incident=incident.id, milestone=milestone.id, id=channel_id
        )
        return ChannelResult(name, ok=True, id=channel_id), None

    def _count(self, metric: str, channel: str) -> None:
        if self.metrics is not None:
            self.metrics.count(metric, dimensions={"Channel": channel})

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _retryable(exc: Exception) -> bool:
    """Whether a channel's failure may pass by itself: throttling and outages past the
    budget, and what is not ours (a bug or an SDK surprise is not a deployment to fix)."""
    return isinstance(exc, RetryableError) or not isinstance(exc, WorkerError)


def _undelivered(results: tuple[ChannelResult, ...], errors: Sequence[Exception]) -> WorkerError:
    """The error for a milestone no channel took, carrying every channel's result."""
    if len(errors) == 1:
        # One channel: its own words and reason, as before there were several.
        only = errors[0]
        message = only.message if isinstance(only, WorkerError) else f"{type(only).__name__}: {only}"
        reason = results[0].reason or UNEXPECTED_REASON
        if _retryable(only):
            return ChannelsUnavailable(message, reason=reason, results=results)
        return ChannelsRejected(message, reason=reason, results=results)
    summary = "; ".join(f"{r.channel}: {r.reason}" for r in results)
    message = f"no channel took the notification ({summary})"
    retryable = [r for r, exc in zip(results, errors, strict=True) if _retryable(exc)]
    if retryable:
        return ChannelsUnavailable(message, reason="notify_failed", results=results)
    return ChannelsRejected(message, reason=results[0].reason or "notify_rejected", results=results)
