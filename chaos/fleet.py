"""The worker processes of a chaos run: start, SIGKILL, SIGTERM, reap, restart.

Every process runs ``python -m chaos.worker`` from the repository root with its own
evidence file and log file; the fleet keeps a timeline of what it did to them, which
the checks read to tell a killed publisher from a misbehaving one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class WorkerProcess:
    name: str  # e.g. "w1.3": slot 1, third incarnation; drain workers are "d<slot>"
    slot: str
    faults: bool
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started_at: float
    signalled: str | None = None  # "SIGKILL" | "SIGTERM"
    signalled_at: float | None = None
    exit_code: int | None = None
    ended_at: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.exit_code is None


@dataclass
class Fleet:
    """Starts workers with ``env`` and records a timeline of every action and exit."""

    env: dict[str, str]
    evidence_dir: Path
    logs_dir: Path
    fault_env: dict[str, str]
    processes: list[WorkerProcess] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    _incarnations: dict[str, int] = field(default_factory=dict)

    def note(self, event: str, process: WorkerProcess, **fields: Any) -> None:
        self.timeline.append(
            {"t": time.time(), "event": event, "proc": process.name, "pid": process.pid, **fields}
        )

    def start(self, slot: str, *, faults: bool, seed: int) -> WorkerProcess:
        incarnation = self._incarnations.get(slot, 0) + 1
        self._incarnations[slot] = incarnation
        name = f"{slot}.{incarnation}"
        env = {
            **self.env,
            **(self.fault_env if faults else {"CHAOS_FAULT_RATE": "0"}),
            "CHAOS_PROCESS": name,
            "CHAOS_SEED": str(seed),
            "CHAOS_EVIDENCE_DIR": str(self.evidence_dir),
            "SECOPS_HEALTH_FILE": str(self.logs_dir / f"{name}.health"),
        }
        log = (self.logs_dir / f"{name}.log").open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "chaos.worker"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process = WorkerProcess(name, slot, faults, popen, log, time.time())
        self.processes.append(process)
        self.note("start", process, faults=faults)
        return process

    def kill(self, process: WorkerProcess) -> None:
        self._signal(process, signal.SIGKILL)

    def terminate(self, process: WorkerProcess) -> None:
        self._signal(process, signal.SIGTERM)

    def _signal(self, process: WorkerProcess, sig: signal.Signals) -> None:
        if not process.alive:
            return
        process.signalled = sig.name
        if process.signalled_at is None:  # exit latency counts from the first signal
            process.signalled_at = time.time()
        self.note(sig.name.lower(), process)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)

    def reap(self) -> list[WorkerProcess]:
        """Collect exits without blocking; returns the processes that just ended."""
        ended = []
        for process in self.processes:
            if process.alive and process.popen.poll() is not None:
                self._ended(process)
                ended.append(process)
        return ended

    def wait(self, process: WorkerProcess, timeout_s: float) -> bool:
        """Wait for ``process`` to end; False if it is still running after ``timeout_s``."""
        try:
            process.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        if process.alive:
            self._ended(process)
        return True

    def _ended(self, process: WorkerProcess) -> None:
        process.exit_code = process.popen.returncode
        process.ended_at = time.time()
        process.log.close()
        self.note("exit", process, code=process.exit_code)

    def live(self, *, faults: bool | None = None) -> list[WorkerProcess]:
        return [p for p in self.processes if p.alive and (faults is None or p.faults == faults)]

    def started(self, process: WorkerProcess) -> bool:
        """True once the worker wrote ``worker_started`` (its imports and clients are done)."""
        path = self.evidence_dir / f"{process.name}.jsonl"
        try:
            return b'"worker_started"' in path.read_bytes()
        except FileNotFoundError:
            return False

    def stop_all(self, timeout_s: float) -> None:
        """SIGTERM whatever still runs, SIGKILL what outlives ``timeout_s``."""
        for process in self.live():
            if process.signalled is None:  # a second SIGTERM would cut a drain short
                self.terminate(process)
        deadline = time.monotonic() + timeout_s
        for process in list(self.live()):
            if not self.wait(process, max(0.1, deadline - time.monotonic())):
                self.kill(process)
                self.wait(process, 10)
