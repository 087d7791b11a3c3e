"""What a benchmark run is configured with, and what driving one point yields: shared
by the throughput sweep (:mod:`bench.run`) and the scenarios it drives (:mod:`bench.flood`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BenchConfig:
    events: int = 2000
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    latency_ms: float = 200.0
    zero_latency: bool = True
    base_events: int = 100
    events_per_doubling: int = 50
    seed: int = 7
    point_timeout_s: float = 600.0

    def events_for(self, concurrency: int) -> int:
        """How many events one sweep point drains: ``min(events, base + per_doubling x log2 c)``.

        Logarithmic, not linear, in the concurrency because on a small machine the
        emulator, not the worker, caps throughput (about 10 events/s on 2 cores): 2000
        events would take over 3 minutes per point whatever the concurrency. The default
        (100 at concurrency 1, 400 at 64) keeps every point at 30-60 s, and the largest
        still holds six times its concurrency, so the ramp-up is a small part of it.
        """
        doublings = math.log2(concurrency)
        return min(self.events, self.base_events + math.ceil(self.events_per_doubling * doublings))

    def event_count_rule(self) -> str:
        return (
            f"events per point = min({self.events}, {self.base_events} + "
            f"{self.events_per_doubling} x log2(concurrency)), the same in both scenarios"
        )


@dataclass(frozen=True)
class Driven:
    """One point's figures and what they were read from (the store's records by key)."""

    point: dict[str, Any]
    records: Mapping[str, Any]
    incidents: Sequence[Any]
