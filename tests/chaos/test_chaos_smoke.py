"""A small chaos run end to end: real worker processes, faults, one SIGKILL.

The same orchestrator as ``make chaos`` with a fraction of its load, so the suite
proves the harness still runs and the invariants still hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.fleet import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(200)
def test_small_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    # GIVEN two workers, 30 events with copies, re-sends and poison, 5 % faults and
    # one SIGKILL during a 12 s chaos phase (make chaos adds the SIGTERM drain)
    command = [
        sys.executable,
        "-m",
        "chaos.run",
        "--seed",
        "20240611",
        "--events",
        "30",
        "--workers",
        "2",
        "--duration",
        "12",
        "--kills",
        "1",
        "--no-sigterm",
        "--lease-s",
        "10",
        "--out",
        str(tmp_path),
    ]

    # WHEN the run completes
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=190, check=False)

    # THEN it exits 0 and its report shows every invariant holding
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True
    failed = {name: check for name, check in report["invariants"].items() if not check["ok"]}
    assert failed == {}
    assert report["lost"] == 0
    assert report["terminal"] == report["events"]["distinct_valid_events"] == 30
    assert report["model_calls"]["after_analysis_saved"] == 0
    assert report["notifications"]["duplicate_notifications"] == 0
    assert report["monitor"]["slots_run_more_than_once"] == 0
    assert report["processes"]["sigkills"] >= 1
    # Every poison message ended in the DLQ with the reason the store recorded.
    assert report["dlq"]["messages"] >= report["events"]["poison_messages"]
    assert not any(reason.startswith("not_rejected") for reason in report["dlq"]["by_reason"])
    assert sum(report["faults_injected"].values()) > 0
