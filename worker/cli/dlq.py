"""``secops dlq inspect|replay``: wiring and rendering around :mod:`worker.ops.dlq`.

Tables go to stdout, the progress bar to stderr (so ``--json`` output stays clean), and
every failure an operator can fix is a :class:`~worker.cli.common.CliError`: one line,
no traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from worker.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subparsers,
    command_group,
    command_settings,
    console,
    duration,
    json_option,
    out_json,
    positive_float,
    positive_int,
)
from worker.ops.dlq import (
    NOT_RECORDED,
    DlqInspector,
    DlqReplayer,
    InspectionReport,
    NativeMoveUnsupported,
    ProgressCallback,
    ReplayFilter,
    ReplaySummary,
    native_move,
)
from worker.store.keys import REJECTION_HASH_CHARS, REJECTION_PREFIX

EMPTY = "DLQ is empty"
# The keys a DLQ message can have (worker/ops/message_keys.py): an event's, whose id is
# trimmed, or the hash of a body that never yielded one.
_EVENT_KEY = re.compile(
    rf"evt#\S.*|{re.escape(REJECTION_PREFIX)}[0-9a-f]{{{REJECTION_HASH_CHARS}}}", re.DOTALL
)


def register(sub: Subparsers) -> None:
    actions = command_group(sub, "dlq", help="inspect or replay the dead-letter queue", handler=cmd_dlq)
    inspect = actions.add_parser("inspect", help="show what is in the DLQ without consuming it")
    json_option(inspect, help="machine-readable output")
    inspect.add_argument(
        "--limit", type=positive_int, default=1000, help="messages to look at (default 1000)"
    )
    replay = actions.add_parser("replay", help="move messages from the DLQ back to the source queue")
    replay.add_argument("--limit", type=positive_int, help="at most this many messages")
    replay.add_argument("--max-age", type=duration, help="only messages younger than this (90s, 15m, 6h, 2d)")
    replay.add_argument(
        "--reason", action="append", help="only messages whose recorded rejection reason is this"
    )
    replay.add_argument(
        "--event-key",
        type=event_key,
        action="append",
        help="only messages of this event key (evt#... or msg#sha256:..., as `dlq inspect` shows)",
    )
    replay.add_argument("--dry-run", action="store_true", help="show what would move, move nothing")
    replay.add_argument("--rate", type=positive_float, default=50.0, help="messages per second (default 50)")
    replay.add_argument("--native", action="store_true", help="use SQS StartMessageMoveTask (whole DLQ)")
    json_option(replay, help="print the summary as JSON")


def cmd_dlq(args: argparse.Namespace) -> int:
    """Run ``secops dlq <inspect|replay>``; returns the process exit code."""
    from worker.daemon import Clients
    from worker.platform.resources import resolve_queues
    from worker.store.dynamodb import EventStore

    if args.dlq_command == "replay":
        _check_replay_args(args)
    # Quiet like every one-shot command: the tables, the progress bar and the notes below
    # are the output; the inspector's and replayer's INFO summaries would repeat them.
    settings = command_settings()
    clients = Clients.from_settings(settings)
    source_url, dlq_url = resolve_queues(settings, sqs=clients.sqs)
    store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
    out = console()
    if args.dlq_command == "inspect":
        report = DlqInspector(sqs=clients.sqs, store=store, dlq_url=dlq_url).inspect(limit=args.limit)
        if args.json:
            out_json({"empty": report.empty, **report.to_dict()})
        elif report.empty:
            out.print(EMPTY + _in_flight_note(report.approximate_in_flight))
        else:
            render_inspection(out, report)
        return EXIT_OK
    replayer = DlqReplayer(sqs=clients.sqs, store=store, dlq_url=dlq_url, source_url=source_url)
    return _replay(out, replayer, args)


def _check_replay_args(args: argparse.Namespace) -> None:
    if args.native:
        filters = [
            flag
            for flag, value in (
                ("--limit", args.limit),
                ("--max-age", args.max_age),
                ("--reason", args.reason),
                ("--event-key", args.event_key),
            )
            if value
        ]
        if filters:
            raise CliError(
                f"--native cannot be combined with {', '.join(filters)}: an SQS message move task "
                "moves the whole DLQ; drop --native to replay a selection",
                EXIT_USAGE,
            )


def _replay(out: Console, replayer: DlqReplayer, args: argparse.Namespace) -> int:
    visible, _ = replayer.counts()
    total = visible if args.limit is None else min(visible, args.limit)
    with _progress("moving" if not args.dry_run else "scanning", total or None) as on_progress:
        if args.native:
            try:
                summary = native_move(replayer, rate=args.rate, dry_run=args.dry_run, on_progress=on_progress)
            except NativeMoveUnsupported as exc:
                raise CliError(
                    f"this SQS endpoint does not support StartMessageMoveTask ({exc}); "
                    "`secops dlq replay` without --native works everywhere",
                    EXIT_FAILED,
                ) from None
        else:
            where = ReplayFilter(
                reasons=frozenset(args.reason or ()),
                event_keys=frozenset(args.event_key or ()),
                max_age_s=args.max_age,
            )
            summary = replayer.replay(
                rate=args.rate,
                limit=args.limit,
                where=where,
                dry_run=args.dry_run,
                on_progress=on_progress,
            )
    if args.json:
        out_json(summary.to_dict())
    elif summary.scanned == 0 and summary.mode != "native":
        out.print(EMPTY)
    else:
        render_replay(out, summary)
    problems = []
    if summary.failed:
        problems.append(f"{summary.failed} message(s) were refused by the source queue and stay in the DLQ")
    if summary.duplicated:
        problems.append(
            f"{summary.duplicated} message(s) were sent but could not be deleted from the DLQ "
            "(duplicates, processed once): run the replay again"
        )
    if summary.native_status in {"FAILED", "CANCELLED"}:
        problems.append(f"the move task ended {summary.native_status}: {summary.native_failure or ''}")
    if summary.release_failed:
        sys.stderr.write(
            f"secops: note: {summary.release_failed} skipped message(s) could not be made visible "
            "again; they reappear when their visibility timeout ends\n"
        )
    for problem in problems:
        sys.stderr.write(f"secops: error: {problem}\n")
    return EXIT_FAILED if problems else EXIT_OK


# ---- rendering -----------------------------------------------------------------------------


def render_inspection(console: Console, report: InspectionReport) -> None:
    """A line of totals and one table row per recorded reason."""
    data = report.to_dict()
    receives = data["receive_count"] or {}
    more = " (limit reached: there may be more)" if report.limit_reached else ""
    console.print(
        f"[bold]DLQ[/] {report.dlq_url}: {report.inspected} messages inspected{more}, "
        f"oldest {human_age(data['oldest_age_s'])}, newest {human_age(data['newest_age_s'])}, "
        f"receive counts {receives.get('min')}-{receives.get('max')}"
        + _in_flight_note(report.approximate_in_flight)
    )
    table = Table(title="Messages by recorded rejection reason", title_justify="left")
    for column in ("reason", "messages", "status", "oldest", "newest", "receives"):
        table.add_column(column, justify="right" if column == "messages" else "left")
    table.add_column("recorded reason", max_width=44)
    # Whole keys, one a line: they are what `replay --event-key` takes.
    table.add_column("sample event keys", no_wrap=True)
    for group in report.groups:
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(group.statuses.items()))
        table.add_row(
            group.reason if group.reason != NOT_RECORDED else f"[dim]{NOT_RECORDED}[/]",
            str(group.count),
            statuses,
            human_age(group.oldest_age_s),
            human_age(group.newest_age_s),
            f"{group.min_receive_count}-{group.max_receive_count}",
            _reason_text(group.reason_text, len(group.reason_texts)),
            "\n".join(group.sample_event_keys),
        )
    console.print(table)
    console.print(
        "Replay: secops dlq replay [--reason CODE] [--event-key KEY] [--max-age 6h] [--dry-run]",
        style="dim",
    )


def render_replay(console: Console, summary: ReplaySummary) -> None:
    """The counts of a replay, and how many of each reason moved."""
    verb = "would move" if summary.mode == "dry-run" else "moved"
    table = Table(title=f"DLQ replay ({summary.mode})", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, Any]] = [
        ("messages read", summary.scanned),
        ("matching", summary.matched),
        (verb, summary.moved if summary.mode != "dry-run" else summary.matched),
        ("not matching (left in the DLQ, visible)", summary.skipped),
    ]
    if summary.duplicated:
        rows.append(("sent, not deleted (duplicates)", summary.duplicated))
    if summary.failed:
        rows.append(("refused by the source queue", summary.failed))
    if summary.native_status:
        rows.append(("move task status", summary.native_status))
    rows.append(("seconds", f"{summary.elapsed_s:.1f}"))
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    if summary.by_reason:
        reasons = Table(title="By recorded reason", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("messages", justify="right")
        for reason, count in summary.by_reason.most_common():
            reasons.add_row(reason, str(count))
        console.print(reasons)
    if summary.limit_reached:
        console.print("Stopped at --limit; the DLQ may hold more.", style="dim")


def _reason_text(text: str | None, distinct: int) -> str:
    if not text:
        return ""
    shown = text if len(text) <= 60 else text[:59] + "…"
    return shown + (f" (+{distinct - 1} other)" if distinct > 1 else "")


def human_age(seconds: float | None) -> str:
    """``42s``, ``3m 12s``, ``5h 4m``, ``2d 3h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# ---- helpers -------------------------------------------------------------------------------


def event_key(text: str) -> str:
    """An event key as ``dlq inspect`` shows it: ``evt#<id>``, or ``msg#sha256:<40 hex>``
    for a message that never yielded an event. Anything else is a usage error: it could
    match no message."""
    if not _EVENT_KEY.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an event key (evt#<id> or {REJECTION_PREFIX}<{REJECTION_HASH_CHARS} hex>, "
            "as `secops dlq inspect` shows)"
        )
    return text


def _in_flight_note(in_flight: int) -> str:
    return f" ({in_flight} more in flight, hidden by another reader)" if in_flight else ""


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[ProgressCallback]:
    """A progress bar on stderr, shown only on a terminal (logs and pipes stay clean)."""
    stderr = Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("read {task.fields[scanned]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    task = progress.add_task(label, total=total, scanned=0)

    def update(done: int, scanned: int) -> None:
        progress.update(task, completed=done, scanned=scanned)

    with progress:
        yield update
