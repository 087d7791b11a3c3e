"""Liveness for ECS: the consumer keeps a heartbeat file fresh, ``secops health`` reads it.

A file, not an HTTP port: the ECS container health check runs a command inside the
container, and a file works with no listener and no extra dependency.

The file names its owner (pid and where that pid means something), so a worker that
died without clearing it (SIGKILL, OOM) reads as unhealthy at once instead of after
``max_age_s``. The check can only see processes of its own PID namespace: ECS runs the
health command inside the worker's container, where the pid is meaningful; a reader
elsewhere (another container sharing the file's volume, the host) sees a different
``host`` and falls back to the file's age alone.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.platform import clock


def process_namespace() -> str:
    """Where a pid is meaningful: the host name plus, on Linux, the PID namespace.

    Two containers can share a host name (host networking) yet not each other's pids,
    so the namespace's inode is part of the identity when the system exposes it.
    """
    try:
        namespace = f"/pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}"


class HealthBeacon:
    """Writes ``{"ts": ..., "pid": ..., "host": ..., ...}`` atomically; cheap on every poll."""

    def __init__(self, path: str | Path, *, min_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._host = process_namespace()
        self._cleared = False

    def beat(self, **state: Any) -> None:
        # After clear() the owner is on its way out: a late beat must not revive the file.
        if self._cleared:
            return
        now = clock.epoch()
        if now - self._last < self.min_interval_s:
            return
        self._last = now
        payload = json.dumps({"ts": now, "pid": os.getpid(), "host": self._host, **state})
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
        """Remove the file for good: ``secops health`` fails from now on."""
        self._cleared = True
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class HealthStatus:
    healthy: bool
    message: str


def _owner_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        # It exists, under another user.
        return False
    return False


def check_health(path: str | Path, *, max_age_s: float, max_stall_s: float | None = None) -> HealthStatus:
    """Healthy when the heartbeat is younger than ``max_age_s``, its owner still runs and
    no slot has gone ``max_stall_s`` without progress (a hung read is not healthy).

    The owner is checked only when the file was written in this PID namespace; a pid
    reused by another process after the owner died passes here, and the age catches it.
    """
    target = Path(path)
    try:
        data = json.loads(target.read_text())
        age = clock.epoch() - float(data["ts"])
    except FileNotFoundError:
        return HealthStatus(False, f"no heartbeat at {target}: the consumer has not started")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return HealthStatus(False, f"unreadable heartbeat at {target}: {exc}")
    if age > max_age_s:
        return HealthStatus(False, f"heartbeat is {age:.0f} s old (limit {max_age_s:.0f} s)")
    pid = data.get("pid")
    if isinstance(pid, int) and pid > 0 and data.get("host") == process_namespace() and _owner_gone(pid):
        return HealthStatus(
            False, f"heartbeat owner (pid {pid}) is gone: the worker exited without clearing it"
        )
    stalled_s = data.get("stalled_s", 0)
    stalled_s = float(stalled_s) if isinstance(stalled_s, int | float) else 0.0
    if max_stall_s is not None and stalled_s > max_stall_s:
        return HealthStatus(
            False,
            f"a slot made no progress for {stalled_s:.0f} s (limit {max_stall_s:.0f} s): "
            f"{data.get('stalled') or 'unknown work'}",
        )
    circuit = data.get("circuit", "closed")
    return HealthStatus(
        True,
        f"ok: heartbeat {age:.1f} s old, longest without progress {stalled_s:.0f} s, "
        f"circuit {circuit}, in flight {data.get('in_flight', 0)}",
    )
