"""A small benchmark run end to end, so ``make bench`` keeps working.

The same command as ``make bench`` with a fraction of its load: concurrency 1 and 4,
10 events each, a 10 ms model. It checks that every figure is there for every point and that
the counts add up, not how fast the machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

POINT_FIGURES = {
    "concurrency",
    "model_latency_ms",
    "events",
    "sent",
    "backlog_window",
    "terminal",
    "finished",
    "outcomes",
    "expected_statuses",
    "statuses",
    "escalations_notified",
    "notifications_delivered",
    "model_calls",
    "model_calls_per_event",
    "notifications_critical",
    "incidents",
    "dynamodb_writes_per_event",
    "aws_requests_per_event",
    "lost",
    "drain_s",
    "events_per_s",
    "ideal_events_per_s",
    "efficiency",
    "worker_cpu_s",
    "worker_cpu_ms_per_event",
    "worker_cores_busy",
    "emulator_cpu_s",
    "emulator_cpu_ms_per_event",
    "emulator_cores_busy",
    "emulator_cpu_share",
    "producer_cpu_ms_per_event",
    "machine_cores_busy",
    "machine_steal_share",
    "ceilings_events_per_s",
    "latency_ms",
    "api_requests",
    "bottleneck",
    "bottleneck_figures",
}


def _check_point(point: dict[str, Any], latency_ms: float) -> None:
    events = point["events"]
    assert POINT_FIGURES - point.keys() == set()
    # Every event was sent once, reached a terminal state once, and was analyzed once.
    assert point["finished"] is True
    assert point["sent"] == point["terminal"] == events
    assert point["outcomes"] == {"done": events}
    # The model answers at most once per event (saved analyses are reused, unmatched
    # noise skips it), and never for nothing.
    assert 0 < point["model_calls"] <= events
    assert point["model_calls_per_event"] == pytest.approx(point["model_calls"] / events, abs=1e-3)
    assert point["lost"] == 0
    # The store holds exactly the statuses the generator expects (the model answers 0,
    # so the floor decides), and every escalation was published and delivered once.
    assert sum(point["statuses"].values()) == events
    assert point["statuses"] == point["expected_statuses"]
    escalated = point["statuses"].get("escalated", 0)
    assert point["escalations_notified"] == point["notifications_delivered"] == escalated

    assert point["events_per_s"] > 0
    if latency_ms > 0:
        assert point["ideal_events_per_s"] == pytest.approx(point["concurrency"] * 1000 / latency_ms)
        assert point["efficiency"] == pytest.approx(
            point["events_per_s"] / point["ideal_events_per_s"], abs=0.001
        )
    else:
        assert point["ideal_events_per_s"] is None and point["efficiency"] is None
    assert point["worker_cpu_ms_per_event"] > 0 and point["emulator_cpu_ms_per_event"] > 0
    ceilings = point["ceilings_events_per_s"]
    assert ceilings["worker_one_core"] == pytest.approx(1000 / point["worker_cpu_ms_per_event"], rel=0.05)
    assert ceilings["machine"] > 0

    for name in ("enqueue_to_terminal", "receive_to_terminal"):
        latency = point["latency_ms"][name]
        assert latency["samples"] == events
        assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    # Queueing comes before receiving, so enqueue-to-terminal is never the shorter one.
    assert (
        point["latency_ms"]["enqueue_to_terminal"]["max"] >= point["latency_ms"]["receive_to_terminal"]["max"]
    )

    requests = point["api_requests"]
    by_operation = requests["by_operation"]
    assert sum(op["count"] for op in by_operation.values()) == requests["total"]
    assert sum(s["count"] for s in requests["by_service"].values()) == requests["total"]
    assert requests["per_event"] == pytest.approx(requests["total"] / events, abs=0.001)
    # At least one write per event (the fast path's single put); a publish per
    # escalation at most (incidents fold later events into one notification).
    writes = sum(
        by_operation.get(f"dynamodb.{op}", {"count": 0})["count"] for op in ("PutItem", "UpdateItem")
    )
    assert writes >= events
    assert point["dynamodb_writes_per_event"] == pytest.approx(writes / events, abs=1e-3)
    assert point["aws_requests_per_event"] == requests["per_event"]
    assert by_operation.get("sns.Publish", {"count": 0})["count"] <= max(escalated, 1)
    assert by_operation["sqs.ReceiveMessage"]["count"] >= 1
    assert by_operation["sqs.DeleteMessageBatch"]["count"] >= 1
    assert point["bottleneck"] in {"model latency", "emulator CPU", "worker CPU", "machine CPU", "waits"}


@pytest.mark.timeout(120)
def test_small_bench_run_reports_every_figure_and_the_counts_add_up(tmp_path: Path) -> None:
    # GIVEN the sweep alone over concurrency 1 and 4 (10 events each), a 10 ms model, no second scenario
    output, plot = tmp_path / "results.json", tmp_path / "efficiency.png"
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--scenario",
        "sweep",
        "--events",
        "10",
        "--base-events",
        "10",
        "--events-per-doubling",
        "0",
        "--concurrency",
        "1,4",
        "--latency-ms",
        "10",
        "--no-zero-latency",
        "--output",
        str(output),
        "--plot",
        str(plot),
    ]

    # WHEN it runs
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=110, check=False)

    # THEN it exits 0, prints the table, and the JSON has every figure for every point
    assert result.returncode == 0, result.stderr[-4000:]
    assert "throughput" in result.stdout
    results = json.loads(output.read_text(encoding="utf-8"))
    assert {"nproc", "cpu_model", "python"} <= results["machine"].keys()
    assert results["command"].startswith("python -m bench.run --scenario sweep --events 10")
    [scenario] = results["scenarios"]
    assert scenario["model_latency_ms"] == 10
    assert [p["concurrency"] for p in scenario["points"]] == [1, 4]
    assert [p["events"] for p in scenario["points"]] == [10, 10]
    for point in scenario["points"]:
        _check_point(point, scenario["model_latency_ms"])
    # AND the scenario carries the figures every scenario records, over its points
    assert scenario["events"] == 20 and scenario["lost"] == 0
    assert scenario["decisions_equal_to_no_reuse"] is None  # measured by the flood only
    assert scenario["model_calls_per_event"] == pytest.approx(
        sum(p["model_calls"] for p in scenario["points"]) / 20, abs=1e-3
    )
    assert plot.read_bytes().startswith(b"\x89PNG")


FLOOD_FIGURES = {
    "events",
    "model_calls_per_event",
    "notifications_critical",
    "notifications_critical_scanner",
    "incidents",
    "dynamodb_writes_per_event",
    "aws_requests_per_event",
    "worker_cpu_ms_per_event",
    "lost",
    "decisions_equal_to_no_reuse",
}


@pytest.mark.timeout(150)
def test_a_tiny_flood_records_the_issue_figures_for_both_runs(tmp_path: Path) -> None:
    # GIVEN the flood alone, at 3 % of its size (18 scanner requests, 6 botnet IPs,
    # 2 distinct attacks, 6 noise records), a 5 ms model
    output = tmp_path / "results.json"
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--scenario",
        "flood",
        "--flood-scale",
        "0.03",
        "--flood-concurrency",
        "4",
        "--latency-ms",
        "5",
        "--output",
        str(output),
    ]

    # WHEN it runs
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=140, check=False)

    # THEN it exits 0, prints the figures with their targets, and records only the flood
    assert result.returncode == 0, result.stderr[-4000:]
    assert "decisions_equal_to_no_reuse" in result.stdout
    results = json.loads(output.read_text(encoding="utf-8"))
    [flood] = results["scenarios"]
    assert flood["name"] == "flood" and results["config"]["scenario"] == "flood"
    assert FLOOD_FIGURES - flood.keys() == set()
    assert flood["mix"] == {
        "scanner": 18,
        "botnet": 6,
        "distinct": 2,
        "noise": 6,
        "kinds": flood["mix"]["kinds"],
    }
    # AND every event of both runs reached a terminal state, none lost
    assert flood["events"] == 32 and flood["lost"] == 0 and flood["no_reuse"]["lost"] == 0
    assert all(run["finished"] for run in flood["runs"].values())
    # AND the per-event figures agree with the counts they come from
    reuse = flood["runs"]["reuse"]
    assert flood["model_calls_per_event"] == pytest.approx(reuse["model_calls"] / 32, abs=1e-3)
    assert flood["aws_requests_per_event"] == pytest.approx(reuse["api_requests"]["total"] / 32, abs=1e-3)
    assert 0 < flood["dynamodb_writes_per_event"] <= flood["aws_requests_per_event"]
    assert flood["worker_cpu_ms_per_event"] > 0
    assert 0 <= flood["decisions_equal_to_no_reuse"] <= 1
    # AND the scanner's requests are one incident, every escalated event linked to one
    assert flood["escalated"] >= 18 and flood["escalated_without_incident"] == 0
    assert flood["incidents_by_source"][0]["count"] == 18
    assert flood["notifications_critical_scanner"] <= 3
    # AND reuse never costs more model calls than the baseline it is measured against
    assert flood["runs"]["no_reuse"]["model_calls"] >= reuse["model_calls"]
