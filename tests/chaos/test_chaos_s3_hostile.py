"""The hostile-objects scenario end to end, small: a bomb, an amplifier, a quadratic join."""

from __future__ import annotations

import os

import pytest

from chaos.s3_hostile import run


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hostile_objects_stay_within_their_bounds() -> None:
    # GIVEN three hostile objects in a log bucket, each read by its own `secops backfill`
    saved = dict(os.environ)
    try:
        # WHEN the scenario runs (it sets its own environment, restored below)
        report = run(["bomb", "amplifier_copies", "quadratic_join"], max_rss_mb=256, max_join_s=60)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    # THEN every invariant holds: bounded time, memory and records sent
    assert report["ok"], report["invariants"]
    objects = report["objects"]
    assert objects["amplifier_copies"]["records_sent"] == 1
    assert objects["quadratic_join"]["records_sent"] == 1
    assert "inflation_ratio" in objects["bomb"]["limits"]
