"""The incident channels' names: the one list ``SECOPS_CHANNELS`` is validated against,
the fan-out's channels are registered under (:mod:`worker.notify.registry`) and the
README's channel table documents (a test checks both)."""

from __future__ import annotations

from typing import Literal, get_args

ChannelName = Literal["sns", "chat", "securityhub", "eventbridge"]
CHANNEL_NAMES: tuple[ChannelName, ...] = get_args(ChannelName)
