"""Metrics as CloudWatch Embedded Metric Format (EMF) lines.

On ECS the awslogs driver ships stdout to CloudWatch Logs, which turns each EMF line
into metrics: no agent, no PutMetricData calls, no extra IAM. Counters are also kept
in memory so the demo and the benchmark can print them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

Dimensions = Mapping[str, str]


def emf_wanted(log_format: str, stream: IO[str] | None = None) -> bool:
    """EMF lines belong where logs are JSON for CloudWatch, not on a person's terminal.

    ``auto`` follows the logs' own rule (JSON off a TTY), but looks at the stream the
    metrics go to: stdout.
    """
    if log_format == "json":
        return True
    if log_format == "auto":
        target = stream or sys.stdout
        return not (hasattr(target, "isatty") and target.isatty())
    return False


class Metrics:
    """Thread-safe counters and timers; each observation may also be written as EMF."""

    def __init__(
        self,
        *,
        namespace: str = "SecOpsWorker",
        service: str = "secops-worker",
        enabled: bool = True,
        stream: IO[str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.timings: dict[str, list[float]] = {}
        # EMF lines the stream refused (closed or broken pipe).
        self.dropped = 0

    def count(self, name: str, value: float = 1, *, dimensions: Dimensions | None = None) -> None:
        dims = tuple(sorted((dimensions or {}).items()))
        with self._lock:
            self.counters[(name, dims)] += value
        self._emit(name, value, "Count", dimensions)

    def observe_ms(self, name: str, millis: float, *, dimensions: Dimensions | None = None) -> None:
        with self._lock:
            self.timings.setdefault(name, []).append(millis)
        self._emit(name, millis, "Milliseconds", dimensions)

    def gauge(self, name: str, value: float, *, dimensions: Dimensions | None = None) -> None:
        self._emit(name, value, "None", dimensions)

    @contextmanager
    def timer(self, name: str, *, dimensions: Dimensions | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_ms(name, (time.perf_counter() - start) * 1000, dimensions=dimensions)

    def total(self, name: str) -> float:
        """Sum of a counter over all its dimension values."""
        with self._lock:
            return sum(v for (n, _), v in self.counters.items() if n == name)

    def by_dimension(self, name: str, dimension: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        with self._lock:
            for (n, dims), value in self.counters.items():
                if n == name:
                    out[dict(dims).get(dimension, "-")] += value
        return dict(out)

    def _emit(self, name: str, value: float, unit: str, dimensions: Dimensions | None) -> None:
        if not self.enabled:
            return
        dims = {"Service": self.service, **(dimensions or {})}
        record: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(dims)],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ],
            },
            **dims,
            name: value,
        }
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                # A closed or broken stdout must not stop the work it measures; the
                # in-memory counters still hold the observation.
                self.dropped += 1
