"""The S3 chaos scenario end to end, small: one SIGKILL mid-file, every invariant holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos.s3 import run


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_one_kill_mid_file_keeps_every_invariant(tmp_path: Path) -> None:
    # GIVEN a 100,000-record log file and a worker killed once while it reads it
    saved = dict(os.environ)
    try:
        # WHEN the scenario runs (it sets its own environment, restored below)
        report = run(100_000, 1, 3, tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    # THEN the checkpoint completed, nothing was lost or sent twice beyond a batch, DLQ empty
    assert report["ok"], report["invariants"]
    assert report["attempts"] == 2 and report["kept"] == 100
