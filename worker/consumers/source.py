"""The port a message source implements, so the dispatcher never knows where work comes from.

SQS is one source (``worker/consumers/sqs.py``); the S3 log-object source plugs in beside
it. A source leases messages: a received message stays hidden from other consumers until
it is acknowledged, released, or its lease runs out, and ``extend`` pushes that lease out
while work is in progress (docs/architecture.md, "Consumers").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# The message attribute that says what a message is. The S3 fan-out marks every record it
# sends as an event, so no record is ever read as an S3 notification, whatever it holds.
KIND_ATTRIBUTE = "secops.kind"
EVENT_KIND = "event"


@dataclass(frozen=True)
class Delivery:
    """One received message, as the dispatcher sees it whatever its source."""

    message_id: str
    # Names this delivery, not the message: each receive of the same message has its own,
    # and only the latest one may extend, acknowledge or release it.
    handle: str
    body: str
    # How many times the source has handed this message out, this delivery included.
    receive_count: int = 1
    # Whatever else the source knows (e.g. SQS system attributes, ``KIND_ATTRIBUTE``), for
    # policies, routing and logs.
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtendResult:
    extended: int
    # Handles the source says no longer lease their message (deleted, expired, taken by
    # another consumer): extending them again can only fail again.
    lost: frozenset[str] = frozenset()


class SourceError(Exception):
    """A receive failed for a reason that may pass (network, throttling); try again later."""


class Source(Protocol):
    """What the dispatcher needs from a source of leased messages.

    ``extend``, ``ack`` and ``release`` log and absorb transport failures rather than
    raise: an unacknowledged or unreleased message comes back when its lease runs out,
    and a redelivery resumes from the state already made durable.
    """

    @property
    def name(self) -> str:
        """Where messages come from, for logs (e.g. the queue URL)."""
        ...

    @property
    def max_batch(self) -> int:
        """The most messages one receive, extend or ack call may carry."""
        ...

    def receive(self, max_messages: int, wait_s: float) -> list[Delivery]:
        """At most ``max_messages``, waiting up to ``wait_s`` for the first; raises SourceError."""
        ...

    def extend(self, messages: Sequence[Delivery]) -> ExtendResult:
        """Push out the lease of messages whose work is still running."""
        ...

    def ack(self, messages: Sequence[Delivery]) -> int:
        """Remove messages whose outcome is durable; returns how many the source confirmed."""
        ...

    def release(self, message: Delivery, delay_s: int) -> None:
        """Give a message back, deliverable again after ``delay_s`` seconds (0: now)."""
        ...
