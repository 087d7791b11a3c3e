"""A small circuit breaker: stop pulling messages while the agent runtime is down.

Pulling while the runtime is down only burns ApproximateReceiveCount until healthy
events land in the DLQ. Open after N consecutive unavailability failures; after
``open_s`` let one probe through (half-open); close on the first success.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import structlog

from worker.platform import clock
from worker.platform.metrics import Metrics

log = structlog.get_logger("worker.consumer")

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int,
        open_s: float,
        now: Callable[[], float] = clock.epoch,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._now = now
        self._on_change = on_change
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._state: State = "closed"

    @property
    def state(self) -> State:
        with self._lock:
            return self._current()

    def seconds_until_probe(self) -> float:
        with self._lock:
            if self._current() != "open" or self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.open_s - self._now())

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._set("closed")

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._current() == "half_open" or self._failures >= self.failure_threshold:
                self._opened_at = self._now()
                self._set("open")

    def _current(self) -> State:
        if (
            self._state == "open"
            and self._opened_at is not None
            and self._now() >= self._opened_at + self.open_s
        ):
            self._set("half_open")
        return self._state

    def _set(self, state: State) -> None:
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)


def circuit_logger(metrics: Metrics) -> Callable[[State], None]:
    """Log and count every circuit transition; ``CircuitOpen`` is 1 until it closes again."""

    def on_change(state: State) -> None:
        log.warning("circuit_state_changed", state=state)
        metrics.count("CircuitStateChanges", dimensions={"State": state})
        # A gauge an alarm can watch ("open for 5 minutes") without summing transitions.
        metrics.gauge("CircuitOpen", 0 if state == "closed" else 1)

    return on_change
