"""What processing one message came to, and what the source should do with it.

Sources (SQS today) act on an ``Outcome``: acknowledge it, or make the message visible
again after ``delay_s`` (docs/architecture.md, "Consumers").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

OutcomeKind = Literal["done", "duplicate", "rejected", "retry", "in_progress", "unavailable"]
# Outcomes after which the message may be deleted: the state is durable.
ACK_OUTCOMES = frozenset({"done", "duplicate"})


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    event_key: str | None = None
    status: str | None = None
    severity: int | None = None
    reason: str | None = None
    # Seconds until the message should be seen again (retry, in_progress, unavailable).
    delay_s: float | None = None
    model_called: bool = False
    notified: bool = False
    degraded: bool = False
    # The final write already gave the event's lease back (no separate release needed).
    lease_released: bool = False

    @property
    def ack(self) -> bool:
        return self.kind in ACK_OUTCOMES


@dataclass(frozen=True)
class DelayPolicy:
    """How long a message that was not acknowledged stays out of sight."""

    base_s: int = 10
    max_s: int = 600
    # Used when an ``unavailable`` outcome names no delay: the circuit's open time, so the
    # message comes back about when the runtime is probed again.
    unavailable_s: float = 30.0

    def backoff_s(self, receive_count: int, jitter: float = 1.0) -> int:
        """base * 2^(n-1), capped; ``jitter`` (0.8-1.0) spreads a burst of failures out."""
        exponent = min(max(receive_count - 1, 0), 16)
        return int(min(self.max_s, self.base_s * (2**exponent)) * jitter)


def redelivery_delay(
    outcome: Outcome, *, receive_count: int, policy: DelayPolicy, jitter: float = 1.0
) -> int | None:
    """Seconds until the message should be seen again, or None when it is to be acknowledged.

    A pure function of the outcome and the message's delivery count, so every branch is a
    table test and the dispatcher only draws the jitter.
    """
    if outcome.ack:
        return None
    if outcome.kind == "rejected":
        # Bad input: visible again now, so the source's redrive moves it to the DLQ after
        # its maximum receives instead of parking it for a whole lease each time.
        delay = 0
    elif outcome.kind == "unavailable":
        delay = int(outcome.delay_s or policy.unavailable_s)
    elif outcome.kind == "in_progress":
        # Another delivery holds a live lease. Look again only when it has run out: a
        # holder that finishes releases it early (and the copy is then acknowledged as a
        # duplicate), while one that died leaves it until expiry, and every look before
        # then would spend a receive towards the DLQ.
        delay = math.ceil(outcome.delay_s or 0) + 1
    elif outcome.delay_s is not None:
        delay = int(outcome.delay_s)
    else:
        delay = policy.backoff_s(receive_count, jitter)
    return max(0, min(delay, policy.max_s))
