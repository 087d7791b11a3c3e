"""SNS: the notifier of patterns (monitoring topic) and the ``sns`` incident channel
(milestones as text on the critical topic).

Publishing retries transient failures (throttling, 5xx, connection errors) with
exponential jitter; a permanent failure raises :class:`NotificationRejected` at once,
and exhausted retries raise :class:`~worker.errors.RetryableError` so the consumer
redelivers the message later. Marking a notification as sent is the caller's job.
The fan-out (:mod:`worker.notify.fanout`) is what implements the ``Notifier`` port
(docs/architecture.md, "Ports").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from tenacity.wait import wait_base

from secops_core.contract import Analysis, Pattern, WafEvent
from worker.incidents import IncidentRecord, Milestone
from worker.notify import retry
from worker.notify.channel import ChannelName
from worker.notify.render import (
    Notification,
    incident_notification,
    pattern_notification,
)
from worker.notify.sanitize import sanitize_attributes, sanitize_subject
from worker.platform.aws import client as aws_client

if TYPE_CHECKING:
    from types_boto3_sns.client import SNSClient

log = structlog.get_logger("worker.notifier")

# ---- error classification (what to retry: worker/notify/retry.py) ---------------------------

# Permanent codes and the reason and hint reported for them; others get a generic one.
_PERMANENT: dict[str, tuple[str, str]] = {
    "NotFound": ("notify_topic_not_found", "the topic does not exist; run `secops setup`"),
    "NotFoundException": ("notify_topic_not_found", "the topic does not exist; run `secops setup`"),
    "AuthorizationError": (
        "notify_not_authorized",
        "the worker's role lacks sns:Publish on the topic",
    ),
    "AccessDenied": ("notify_not_authorized", "the worker's role lacks sns:Publish on the topic"),
    "AccessDeniedException": (
        "notify_not_authorized",
        "the worker's role lacks sns:Publish on the topic",
    ),
    "InvalidClientTokenId": ("notify_not_authorized", "the worker's credentials are not valid"),
    "KMSAccessDenied": (
        "notify_not_authorized",
        "the worker's role cannot use the topic's KMS key",
    ),
    "InvalidParameter": ("notify_invalid_parameter", "SNS refused the request's parameters"),
    "InvalidParameterValue": ("notify_invalid_parameter", "SNS refused a parameter value"),
    "ParameterValueInvalid": ("notify_invalid_parameter", "SNS refused a parameter value"),
    "ValidationError": ("notify_invalid_parameter", "SNS refused the request's parameters"),
    # A FIFO topic published to without a group id (a Notification built by hand).
    "MissingParameter": ("notify_invalid_parameter", "SNS needs a parameter the request lacks"),
}
_DEFAULT_PERMANENT = ("notify_rejected", "SNS refused the notification")


class NotificationRejected(retry.Rejected):
    """SNS refused a publish for a reason that retrying cannot fix (topic, IAM, input).

    A configuration error, not bad input: the event's state is saved and the message
    comes back once the deployment is fixed, instead of landing in the DLQ.

    ``reason`` is ``notify_topic_not_found``, ``notify_not_authorized``,
    ``notify_invalid_parameter`` or ``notify_rejected``; ``code`` is SNS's error code.
    """


_FAILURES = retry.Failures(
    events="sns.publish_",
    rejected=NotificationRejected,
    permanent=lambda code: _PERMANENT.get(code, _DEFAULT_PERMANENT),
    invalid_reason="notify_invalid_parameter",
    failed_reason="notify_failed",
)


# ---- publishing ----------------------------------------------------------------------------


class SnsPublisher:
    """Publishes rendered notifications to SNS, with bounded retries; shared by the
    notifier and the channels that publish to topics (``sns``, ``chat``)."""

    def __init__(
        self, *, client: SNSClient | None = None, max_attempts: int = 5, wait: wait_base | None = None
    ) -> None:
        """``client`` is a boto3 SNS client; ``wait`` a tenacity wait (tests pass tiny ones).

        The default client makes a single attempt per call with a short read timeout:
        retries happen here only, so each one is logged and counted against
        ``max_attempts`` instead of multiplying with botocore's own. With the default
        wait (0.5 s doubling to 8 s) five attempts take seconds, well inside a lease.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client or aws_client("sns", max_attempts=1, read_timeout=10.0)
        self._max_attempts = max_attempts
        self._wait = wait or retry.default_wait()

    def publish(self, notification: Notification) -> str:
        """Publish one notification, retrying transient failures; return the MessageId.

        Raises :class:`NotificationRejected` at once when SNS refuses it for good (no
        such topic, not authorized, invalid parameter), and
        :class:`~worker.errors.RetryableError` with reason ``notify_failed`` when retries
        are exhausted or the call could not be made, so the message is redelivered later.
        """
        attributes = sanitize_attributes(notification.attributes)
        logger = log.bind(
            event_key=attributes.get("event_key"),
            action=attributes.get("action"),
            topic_arn=notification.topic_arn,
        )
        request: dict[str, Any] = {
            "TopicArn": notification.topic_arn,
            # Sanitizing again costs nothing and covers a Notification built by hand.
            "Subject": sanitize_subject(notification.subject),
            "Message": notification.message,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        }
        if notification.dedup_id is not None:
            request["MessageDeduplicationId"] = notification.dedup_id
        if notification.group_id is not None:
            request["MessageGroupId"] = notification.group_id

        response, attempts = retry.call(
            partial(self._client.publish, **request),
            failures=_FAILURES,
            max_attempts=self._max_attempts,
            wait=self._wait,
            logger=logger,
            not_sent=f"SNS publish to {notification.topic_arn}",
            refused=f"SNS refused to publish to {notification.topic_arn}",
            failed=f"SNS publish to {notification.topic_arn}",
        )
        message_id = str(response["MessageId"])
        logger.info(
            "sns.published",
            message_id=message_id,
            attempts=attempts,
            fifo=notification.group_id is not None,
        )
        return message_id


class SnsNotifier:
    """Publishes patterns to the monitoring topic.

    Incident milestones go through the channels instead (:class:`SnsChannel` for the
    critical topic, fanned out by :class:`worker.notify.fanout.FanoutNotifier`).
    """

    def __init__(
        self,
        *,
        monitoring_topic_arn: str,
        client: SNSClient | None = None,
        max_attempts: int = 5,
        wait: wait_base | None = None,
        publisher: SnsPublisher | None = None,
    ) -> None:
        """``publisher`` is shared with the topic channels (every SNS publish of a worker
        goes through one); without it, one is made from the other arguments."""
        self.monitoring_topic_arn = monitoring_topic_arn
        self.publisher = publisher or SnsPublisher(client=client, max_attempts=max_attempts, wait=wait)

    def notify_pattern(
        self,
        pattern: Pattern,
        *,
        escalated_keys: Sequence[str],
        grown_from: int | None = None,
    ) -> str:
        """Publish the monitoring notification for ``pattern``; return SNS's MessageId."""
        return self.publish(
            pattern_notification(
                self.monitoring_topic_arn,
                pattern=pattern,
                escalated_keys=escalated_keys,
                grown_from=grown_from,
            )
        )

    def publish(self, notification: Notification) -> str:
        """See :meth:`SnsPublisher.publish`."""
        return self.publisher.publish(notification)


class TopicChannel:
    """An incident channel that renders each milestone and publishes it to one SNS topic
    through the worker's shared :class:`SnsPublisher`; a subclass names the channel and
    renders (the ``sns`` text below, the ``chat`` card in :mod:`worker.notify.chat`)."""

    channel: ClassVar[ChannelName]

    def __init__(self, *, topic_arn: str, publisher: SnsPublisher) -> None:
        self.topic_arn = topic_arn
        self._publisher = publisher

    @property
    def name(self) -> ChannelName:
        return self.channel

    def render(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None,
        analysis: Analysis | None,
    ) -> Notification:
        raise NotImplementedError

    def publish_incident(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None = None,
        analysis: Analysis | None = None,
    ) -> str:
        """Publish one incident milestone to the topic; return SNS's MessageId (errors as
        :meth:`SnsPublisher.publish`)."""
        return self._publisher.publish(self.render(incident, milestone, event=event, analysis=analysis))


class SnsChannel(TopicChannel):
    """The ``sns`` channel: incident milestones as text for e-mail subscribers, on the
    critical topic, exactly as before there were other channels."""

    channel = "sns"

    def render(
        self,
        incident: IncidentRecord,
        milestone: Milestone,
        *,
        event: WafEvent | None,
        analysis: Analysis | None,
    ) -> Notification:
        return incident_notification(
            self.topic_arn, incident=incident, milestone=milestone, event=event, analysis=analysis
        )
