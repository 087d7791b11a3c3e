"""Liveness for ECS: the consumer keeps a heartbeat file fresh, ``secops health`` reads it.

A file, not an HTTP port: the ECS container health check runs a command inside the
container, and a file works with no listener and no extra dependency.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class HealthBeacon:
    """Writes ``{"ts": ..., ...}`` atomically; cheap enough to call on every poll."""

    def __init__(self, path: str | Path, *, min_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def beat(self, **state: Any) -> None:
        now = time.time()
        if now - self._last < self.min_interval_s:
            return
        self._last = now
        payload = json.dumps({"ts": now, "pid": os.getpid(), **state})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".health-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            os.replace(tmp, self.path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class HealthStatus:
    healthy: bool
    message: str


def check_health(path: str | Path, *, max_age_s: float) -> HealthStatus:
    """Healthy when the heartbeat is younger than ``max_age_s``."""
    target = Path(path)
    try:
        data = json.loads(target.read_text())
        age = time.time() - float(data["ts"])
    except FileNotFoundError:
        return HealthStatus(False, f"no heartbeat at {target}: the consumer has not started")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return HealthStatus(False, f"unreadable heartbeat at {target}: {exc}")
    if age > max_age_s:
        return HealthStatus(False, f"heartbeat is {age:.0f} s old (limit {max_age_s:.0f} s)")
    circuit = data.get("circuit", "closed")
    return HealthStatus(
        True, f"ok: heartbeat {age:.1f} s old, circuit {circuit}, in flight {data.get('in_flight', 0)}"
    )
