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
    # How many times the event has been claimed in its current retry episode, as its
    # store record counts them; None when the claim itself did not happen. Retries back
    # off by this, not by the source's receive count, which a DLQ replay carries over,
    # and a replay starts a new episode (docs/architecture.md, "Consumers").
    attempts: int | None = None
    # in_progress only: the live lease belongs to another delivery (a duplicate copy),
    # not to an earlier delivery of this very message.
    lease_held_by_other: bool = False

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

    # A duplicate copy that meets another delivery's lease looks again after 1, 2, 4 ...
    # seconds (capped here) for its first ``recheck_receives`` receives, so it is
    # acknowledged within seconds of the first copy finishing. Later receives wait for
    # the lease to run out: every look spends a receive towards the DLQ, so the default
    # leaves most of the queue's five for a holder that died and for real retries.
    recheck_receives: int = 2
    recheck_max_s: int = 8

    @classmethod
    def for_queue(
        cls, *, base_s: int, max_s: int, unavailable_s: float, max_receive_count: int
    ) -> DelayPolicy:
        """The policy for a queue that dead-letters after ``max_receive_count`` receives.

        Quick re-checks take at most half of the receives beyond the first, so a duplicate
        whose holder died still has receives left to wait out the lease and retry.
        """
        return cls(
            base_s=base_s,
            max_s=max_s,
            unavailable_s=unavailable_s,
            recheck_receives=max(0, (max_receive_count - 1) // 2),
        )

    def backoff_s(self, attempt: int, jitter: float = 1.0) -> int:
        """base * 2^(n-1), capped; ``jitter`` (0.8-1.0) spreads a burst of failures out."""
        exponent = min(max(attempt - 1, 0), 16)
        return int(min(self.max_s, self.base_s * (2**exponent)) * jitter)

    def recheck_s(self, receive_count: int) -> int | None:
        """The short look-again delay of a duplicate copy, or None once its budget is spent."""
        if receive_count > self.recheck_receives:
            return None
        exponent = min(max(receive_count - 1, 0), 16)
        return max(1, min(self.recheck_max_s, int(2**exponent)))


def redelivery_delay(
    outcome: Outcome, *, receive_count: int, policy: DelayPolicy, jitter: float = 1.0
) -> int | None:
    """Seconds until the message should be seen again, or None when it is to be acknowledged.

    A pure function of the outcome and the message's delivery count, so every branch is a
    table test and the dispatcher only draws the jitter. Retries count the event's own
    attempts when the outcome carries them; the receive count bounds how many quick looks
    a duplicate copy takes.
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
        # Another delivery holds a live lease until ``delay_s`` from now. A holder that
        # finishes releases it early (and this copy is then acknowledged as a duplicate),
        # while one that died leaves it until expiry, and every look spends a receive
        # towards the DLQ. So a duplicate copy looks again soon, a few times, and then
        # waits for the expiry; a redelivery of the holder's own message waits at once,
        # since its holder is usually still at work on it.
        until_expiry = math.ceil(outcome.delay_s or 0) + 1
        recheck = policy.recheck_s(receive_count) if outcome.lease_held_by_other else None
        delay = until_expiry if recheck is None else min(recheck, until_expiry)
    elif outcome.delay_s is not None:
        delay = int(outcome.delay_s)
    else:
        # The event's own attempts, so a replayed message starts from the base delay.
        # Without them (the claim itself failed, or processing crashed) the receive count
        # is all there is: a store outage still backs off instead of dead-lettering
        # valid events within a minute.
        delay = policy.backoff_s(outcome.attempts or receive_count, jitter)
    return max(0, min(delay, policy.max_s))
