"""``secops monitor``: one monitor pass now, the patterns as a table (or JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.monitor_job import MonitorJob, MonitorRun


def run_monitor_command(settings: Any, *, hours: int | None, force: bool, as_json: bool) -> int:
    """Run one pass; respects the slot lock unless ``force``. Exit 0 unless it failed."""
    from worker.daemon import build_worker

    worker = build_worker(settings)
    try:
        run = MonitorJob.from_worker(worker).run_once(force=force, hours=hours)
    finally:
        worker.agents.close()
    if as_json:
        payload = {**run.summary(), "patterns": [p.model_dump(mode="json") for p in run.patterns]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        render(Console(highlight=False), run)
    return 0


def render(console: Console, run: MonitorRun) -> None:
    if not run.ran:
        console.print(f"Slot {run.slot} was already taken by another replica: nothing run (use --force).")
        return
    summary = run.summary()
    console.print(
        f"[bold]monitor[/] {run.slot}: {summary['events_read']} monitored events, "
        f"{summary['patterns']} patterns, {summary['over_threshold']} over the threshold, "
        f"{summary['escalated_events']} events escalated, {summary['notifications']} notifications"
    )
    if not run.patterns:
        return
    table = Table(title="Source IP + URI patterns", title_justify="left")
    for column in (
        "source",
        "target",
        "count",
        "first seen",
        "last seen",
        "rules",
        "over threshold",
        "notified",
    ):
        table.add_column(column, justify="right" if column == "count" else "left")
    notified = set(run.notified)
    for pattern in run.patterns:
        table.add_row(
            pattern.source_ip,
            pattern.normalized_uri[:48],
            str(pattern.count),
            pattern.first_seen.strftime("%Y-%m-%d %H:%M:%S"),
            pattern.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(pattern.rules)[:40],
            "yes" if pattern.threshold_met else "no",
            "now" if pattern.pattern_key in notified else "",
        )
    console.print(table)
