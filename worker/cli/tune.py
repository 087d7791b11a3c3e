"""``secops tune``: which WAF rules misfire, and the AWS WAF change for each
(docs/architecture.md, "Tuning report").

Reads the stored events of the window, or, with ``--from-s3``, the WAF log files
themselves through the ingestion's reader and filter; prints a table (or ``--json``)
and writes a chart of matches per rule over time (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subparsers,
    command_settings,
    duration,
    out,
    positive_int,
)

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from worker.tuning.inputs import RuleCounts
    from worker.tuning.report import TuningReport

DEFAULT_PLOT = "secops-tune.png"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "tune",
        help="rank the WAF rules most likely misfiring and propose the AWS WAF change",
        description=(
            "Per rule: matches by action, distinct sources, top URI templates and hosts, the share "
            "of sources that look like customers (a browser-like request and no other rule "
            "matched), the suppressions covering it; ranked by how likely the rule misfires, "
            "each with AWS WAF JSON to paste (checked against the WAFv2 API model)."
        ),
    )
    parser.add_argument("--since", type=duration, default=7 * 86400.0, help="look back this far (default 7d)")
    parser.add_argument("--web-acl", help="only this web ACL (its name, or its ARN)")
    parser.add_argument(
        "--from-s3",
        metavar="s3://BUCKET/PREFIX",
        help="read the WAF log files under this prefix instead of the stored events",
    )
    parser.add_argument("--top", type=positive_int, default=15, help="rows in the table (default 15)")
    parser.add_argument(
        "--plot", default=DEFAULT_PLOT, help=f"write the matches-per-rule chart here (default {DEFAULT_PLOT})"
    )
    parser.add_argument("--no-plot", action="store_true", help="write no chart")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.set_defaults(handler=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from worker.daemon import Clients
    from worker.platform import clock
    from worker.store.dynamodb import EventStore
    from worker.suppressions.dynamodb import DynamoSuppressionRepo
    from worker.tuning.aggregates import WindowRuleCounts
    from worker.tuning.history import DynamoEventHistory
    from worker.tuning.inputs import ReadTally, logged_events, stored_events

    settings = command_settings()
    until = clock.now()
    since = until - timedelta(seconds=args.since)
    clients = Clients.from_settings(settings)
    tally = ReadTally()
    counts: RuleCounts | None = None
    if args.from_s3:
        from secops_core.ingest.s3_layout import parse_s3_uri

        try:
            bucket, prefix = parse_s3_uri(args.from_s3)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        events: Iterator[Any] = logged_events(
            _log_keys(clients.s3, bucket, prefix, since, until),
            lambda key: clients.s3.get_object(Bucket=bucket, Key=key)["Body"],
            keep=settings.log_filter,
            tally=tally,
        )
        source = f"s3://{bucket}/{prefix}"
    else:
        history = DynamoEventHistory(settings.table_name, client=clients.dynamodb)
        events = stored_events(history, since=since, until=until, tally=tally)
        source = f"table {settings.table_name}"
        # What ingestion counted per window instead of storing (relevant, never paging).
        counts = WindowRuleCounts(EventStore(settings.table_name, client=clients.dynamodb))
    suppressions = DynamoSuppressionRepo(settings.table_name, client=clients.dynamodb).list()
    report, view = tune(
        events,
        since=since,
        until=until,
        source=source,
        web_acl=args.web_acl,
        suppressions=suppressions,
        counts=counts,
    )
    view["records_read"], view["unreadable"] = tally.records, tally.unreadable
    if not args.no_plot:
        from worker.tuning.plot import plot_matches

        path = Path(args.plot)
        view["plot"] = str(path) if plot_matches(report, path) else None
        if view["plot"] is None:
            view["plot_skipped"] = "matplotlib is not installed (the `plot` extra)"
    if args.json:
        out(json.dumps(view, indent=2, default=str))
    else:
        render(view, top=args.top)
    return EXIT_OK


def _log_keys(s3: S3Client, bucket: str, prefix: str, since: datetime, until: datetime) -> Iterator[str]:
    from worker.cli.backfill import list_log_objects

    for obj in list_log_objects(s3, bucket, prefix, since, until):
        yield obj["Key"]


def tune(
    events: Iterator[Any],
    *,
    since: datetime,
    until: datetime,
    source: str,
    web_acl: str | None = None,
    suppressions: Sequence[Any] = (),
    counts: RuleCounts | None = None,
) -> tuple[TuningReport, dict[str, Any]]:
    """The report, and its view as the CLI shows it (JSON-able)."""
    from worker.tuning.proposals import propose
    from worker.tuning.report import ReportBuilder
    from worker.tuning.waf_shapes import validated

    builder = ReportBuilder(since=since, until=until, web_acl=web_acl)
    for event in events:
        builder.add(event)
    if counts is not None:
        builder.add_counts(counts.iter_rule_counts(since=since, until=until))
    report = builder.build(source=source, suppressions=suppressions)
    rules = []
    for finding in report.findings:
        row = finding.to_dict()
        row["proposals"] = [validated(p).to_dict() for p in propose(finding)]
        top = finding.top_uri
        if finding.verdict == "likely_false_positive" and top is not None:
            row["suppress_command"] = (
                f"secops suppress add --rule {finding.rule.name} --uri '{top[0]}' --reason '...'"
            )
        rules.append(row)
    return report, {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "source": source,
        "web_acl": web_acl,
        "requests_with_matches": report.requests,
        "rules": rules,
    }


_COLUMNS = ("#", "rule", "class", "matches", "BLOCK/COUNT", "sources", "customer-like", "top URI", "verdict")


def _verdict_cell(row: dict[str, Any]) -> str:
    text = str(row["verdict"]).replace("_", " ")
    suppressions = row["suppressions"]
    return text + (f", {len(suppressions)} suppression(s)" if suppressions else "")


def render(view: dict[str, Any], *, top: int) -> None:
    from rich.console import Console
    from rich.table import Table

    # Off a terminal (a pipe, a CI log) rich assumes 80 columns; the table needs more.
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    window = f"{view['since'][:16]} to {view['until'][:16]}"
    table = Table(
        title=f"WAF rules by how likely they misfire: {view['source']}, {window}", title_justify="left"
    )
    for column in _COLUMNS:
        table.add_column(column, overflow="fold", no_wrap=column in {"rule", "BLOCK/COUNT"})
    for row in view["rules"][:top]:
        actions = row["by_action"]
        uri = row["top_uri_templates"][0] if row["top_uri_templates"] else ("-", 0)
        table.add_row(
            str(row["rank"]),
            row["rule"],
            row["attack_class"],
            str(row["matches"]),
            f"{actions.get('BLOCK', 0)}/{actions.get('COUNT', 0)}",
            str(row["distinct_sources"]),
            f"{row['clean_source_share']:.0%}",
            f"{uri[0]} ({uri[1]})",
            _verdict_cell(row),
        )
    console.print(table)
    for row in view["rules"][:top]:
        for proposal in row["proposals"]:
            console.print(f"\n[bold]#{row['rank']} {row['rule']}: {proposal['title']}[/bold]")
            console.print(proposal["detail"], highlight=False)
            payload = proposal.get("rules") or proposal["fragment"]["json"]
            console.print_json(json.dumps(payload))
            if not proposal["validated"]:
                console.print(f"[red]not valid for WAFv2: {proposal['problems']}[/red]")
        if row.get("suppress_command"):
            console.print(f"Silence it in this product meanwhile: [bold]{row['suppress_command']}[/bold]")
    if view.get("plot"):
        console.print(f"\nChart of matches per rule over time: {view['plot']}")
    elif view.get("plot_skipped"):
        console.print(f"\nNo chart: {view['plot_skipped']}")
