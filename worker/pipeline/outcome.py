"""What processing one message came to, and what the source should do with it.

Sources (SQS today) act on an ``Outcome``: acknowledge it, or make the message visible
again after ``delay_s`` (docs/architecture.md, "Consumers").
"""

from __future__ import annotations

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
