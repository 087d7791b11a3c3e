"""The enabled incident channels and the notifier over them, built in one place for the
daemon and ``secops incidents resolve`` (``SECOPS_CHANNELS``; docs/architecture.md, "Ports").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from worker.errors import ConfigurationError
from worker.notify.channel import IncidentChannel
from worker.notify.chat import ChatChannel
from worker.notify.fanout import FanoutNotifier
from worker.notify.names import CHANNEL_NAMES, ChannelName
from worker.notify.sns import SnsChannel, SnsNotifier, SnsPublisher
from worker.platform.resources import Resources
from worker.ports import Metrics
from worker.settings import Settings

if TYPE_CHECKING:
    from types_boto3_sns.client import SNSClient


class ChannelClients(Protocol):
    """The AWS clients a channel may need (:class:`worker.daemon.Clients`)."""

    @property
    def sns(self) -> SNSClient: ...


Builder = Callable[[Settings, ChannelClients, Resources, SnsPublisher], IncidentChannel]


def _sns(
    settings: Settings, clients: ChannelClients, resources: Resources, publisher: SnsPublisher
) -> IncidentChannel:
    return SnsChannel(topic_arn=resources.critical_topic_arn, publisher=publisher)


def _chat(
    settings: Settings, clients: ChannelClients, resources: Resources, publisher: SnsPublisher
) -> IncidentChannel:
    if resources.chat_topic_arn is None:
        raise ConfigurationError(
            "the chat channel has no topic: set SECOPS_CHAT_TOPIC_ARN or run `secops setup`",
            reason="chat_topic_missing",
        )
    return ChatChannel(topic_arn=resources.chat_topic_arn, publisher=publisher)


def _securityhub(
    settings: Settings, clients: ChannelClients, resources: Resources, publisher: SnsPublisher
) -> IncidentChannel:
    # Imported when enabled only: a deployment without it never builds its clients.
    from worker.notify.securityhub import SecurityHubChannel

    return SecurityHubChannel.from_settings(settings)


def _eventbridge(
    settings: Settings, clients: ChannelClients, resources: Resources, publisher: SnsPublisher
) -> IncidentChannel:
    from worker.notify.eventbridge import EventBridgeChannel

    return EventBridgeChannel.from_settings(settings)


# A new channel registers its builder here, by its name in worker/notify/names.py.
BUILDERS: Mapping[ChannelName, Builder] = {
    "sns": _sns,
    "chat": _chat,
    "securityhub": _securityhub,
    "eventbridge": _eventbridge,
}


if set(BUILDERS) != set(CHANNEL_NAMES):
    raise RuntimeError(f"channel builders {sorted(BUILDERS)} differ from the names {sorted(CHANNEL_NAMES)}")


def build_channels(
    settings: Settings,
    *,
    clients: ChannelClients,
    resources: Resources,
    publisher: SnsPublisher | None = None,
) -> list[IncidentChannel]:
    """The channels of ``SECOPS_CHANNELS``, in order; the topic channels share one SNS
    publisher (``publisher``, else a new one)."""
    missing = [name for name in settings.enabled_channels if name not in BUILDERS]
    if missing:
        raise ConfigurationError(
            f"SECOPS_CHANNELS names {', '.join(missing)}, which this build does not have "
            f"(available: {', '.join(BUILDERS)})",
            reason="channel_unavailable",
        )
    publisher = publisher or SnsPublisher(client=clients.sns, max_attempts=settings.notify_max_attempts)
    return [BUILDERS[name](settings, clients, resources, publisher) for name in settings.enabled_channels]


def build_notifier(
    settings: Settings,
    *,
    clients: ChannelClients,
    resources: Resources,
    metrics: Metrics | None = None,
) -> FanoutNotifier:
    """The worker's ``Notifier``: milestones to every enabled channel, patterns to SNS,
    every SNS publish through one :class:`SnsPublisher` (``notifier.sns.publisher``)."""
    publisher = SnsPublisher(client=clients.sns, max_attempts=settings.notify_max_attempts)
    sns = SnsNotifier(
        monitoring_topic_arn=resources.monitoring_topic_arn,
        publisher=publisher,
    )
    channels = build_channels(settings, clients=clients, resources=resources, publisher=publisher)
    return FanoutNotifier(channels=channels, sns=sns, metrics=metrics)
