"""The heartbeat file and ``check_health``: age, owner process, and clearing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from worker.platform.health import HealthBeacon, check_health, process_namespace


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write(path: Path, **fields: object) -> None:
    path.write_text(json.dumps({"ts": time.time(), "circuit": "closed", "in_flight": 0, **fields}))


def test_a_beat_names_its_owner_and_reads_healthy_while_the_owner_runs(tmp_path: Path) -> None:
    # GIVEN a beat from this process
    beacon = HealthBeacon(tmp_path / "health", min_interval_s=0)
    beacon.beat(circuit="closed", in_flight=2)

    # THEN the file names this pid where it is meaningful, and the check passes
    data = json.loads(beacon.path.read_text())
    assert data["pid"] == os.getpid() and data["host"] == process_namespace()
    status = check_health(beacon.path, max_age_s=90)
    assert status.healthy and status.message.endswith("circuit closed, in flight 2")


def test_a_fresh_file_whose_owner_is_gone_is_unhealthy(tmp_path: Path) -> None:
    # GIVEN a fresh heartbeat written here by a process that has since died (SIGKILL, OOM)
    path = tmp_path / "health"
    pid = _dead_pid()
    _write(path, pid=pid, host=process_namespace())

    # WHEN the health check runs
    status = check_health(path, max_age_s=90)

    # THEN it fails at once, naming the missing owner, without waiting for the age limit
    assert not status.healthy
    assert status.message == f"heartbeat owner (pid {pid}) is gone: the worker exited without clearing it"


def test_a_file_written_in_another_pid_namespace_is_judged_by_its_age_alone(tmp_path: Path) -> None:
    # GIVEN a fresh heartbeat from another host or container (its pid means nothing here)
    path = tmp_path / "health"
    _write(path, pid=_dead_pid(), host="another-task/pidns:1")

    # THEN the pid is not checked: fresh is healthy
    assert check_health(path, max_age_s=90).healthy


def test_a_file_without_an_owner_is_judged_by_its_age_alone(tmp_path: Path) -> None:
    # GIVEN a fresh heartbeat in the format before owners were recorded
    path = tmp_path / "health"
    _write(path)

    # THEN it is healthy by age
    assert check_health(path, max_age_s=90).healthy


def test_clear_removes_the_file_and_a_late_beat_does_not_bring_it_back(tmp_path: Path) -> None:
    # GIVEN a beacon that has beaten
    beacon = HealthBeacon(tmp_path / "health", min_interval_s=0)
    beacon.beat()

    # WHEN it is cleared and something beats afterwards
    beacon.clear()
    beacon.beat()

    # THEN the file stays gone and the check says so
    assert not beacon.path.exists()
    assert not check_health(beacon.path, max_age_s=90).healthy


def test_a_slot_without_progress_past_the_bound_is_unhealthy(tmp_path: Path) -> None:
    # GIVEN a fresh beat from a live worker whose slowest slot made no progress for 700 s
    path = tmp_path / "health"
    _write(
        path,
        pid=os.getpid(),
        host=process_namespace(),
        in_flight=2,
        stalled_s=700.0,
        stalled="reading s3://b/k: framing, frame 0",
    )
    # WHEN checked with a 600 s bound THEN it fails, saying which work is stuck
    status = check_health(path, max_age_s=90, max_stall_s=600)
    assert not status.healthy and "700 s" in status.message and "s3://b/k" in status.message
    # AND within the bound it passes
    assert check_health(path, max_age_s=90, max_stall_s=900).healthy
