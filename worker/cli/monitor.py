"""``secops monitor``: one monitor pass now, the patterns as a table (or JSON)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from worker.cli.common import EXIT_OK, Subparsers, command_settings, out, positive_int
from worker.notify.render import narrative_label
from worker.notify.sanitize import clean
from worker.pipeline.monitor_job import MonitorRun

# Enough of a narrative for a terminal; the notification carries the whole of it.
NARRATIVE_CHARS = 2000


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("monitor", help="run one monitor pass now and print the patterns")
    parser.add_argument("--hours", type=positive_int, help="look-back window (default SECOPS_MONITOR_HOURS)")
    parser.add_argument("--force", action="store_true", help="run even if this slot already ran")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=cmd_monitor)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run one pass; respects the slot lock unless ``--force``. Exit 0 unless it failed."""
    from worker.daemon import build_worker

    worker = build_worker(command_settings())
    try:
        run = worker.monitor.run_once(force=args.force, hours=args.hours)
    finally:
        worker.agents.close()
    if args.json:
        payload = {**run.summary(), "patterns": [p.model_dump(mode="json") for p in run.patterns]}
        out(json.dumps(payload, indent=2))
    else:
        render(Console(highlight=False), run)
    return EXIT_OK


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
    for pattern in run.patterns:
        if pattern.pattern_key in notified:
            # A model-written narrative is untrusted prose about attacker-controlled traffic.
            label = narrative_label(pattern) or " (template)"
            console.print(f"\n{pattern.pattern_key} narrative{label}:", markup=False)
            console.print(f"  {clean(pattern.narrative, NARRATIVE_CHARS)}", markup=False)
