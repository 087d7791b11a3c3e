"""``secops stats``: the counted log records, per window (docs/architecture.md, "Relevance").

Records that are relevant but cannot page (blocked for their sender, rate or size;
floors triage closes) are not events: they are counted per web ACL, deciding rule or
label, action, URI template and hour. This reads those windows from the table, merged
across the log objects that added to them; ``--json`` prints them as JSON only.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from secops_core.text import sanitize_text
from worker.cli.common import (
    EXIT_OK,
    Subparsers,
    configure_logs,
    console,
    duration,
    one_shot_settings,
    out,
    positive_int,
)
from worker.store.aggregates import WindowCount, totals_by_rule

_CELL_CHARS = 60
_TIME = "%Y-%m-%d %H:%M"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("stats", help="counted log records (relevant, cannot page) per window")
    parser.add_argument(
        "--since", type=duration, default=duration("24h"), help="windows of this long back (default 24h)"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=30, help="at most this many windows (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.set_defaults(handler=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    from worker.platform import aws, clock
    from worker.store.dynamodb import EventStore

    settings = one_shot_settings()
    # ERROR: the store's own warnings (a throttled query) would only repeat the one-line error.
    configure_logs(settings, one_shot_level="ERROR")
    client = aws.client(
        "dynamodb", session=aws.aws_session(settings.aws_region), localstack=settings.localstack
    )
    store = EventStore(settings.table_name, client=client, ttl_days=settings.event_ttl_days)
    until = clock.now()
    since = until - timedelta(seconds=args.since)
    counts = store.window_counts(since=since, until=until)
    view = stats_view(counts, limit=args.limit)
    view.update({"since": since.isoformat(), "until": until.isoformat()})
    if args.json:
        out(json.dumps(view, indent=2))
    else:
        render(console(), view, title=f"Counted log records since {since:{_TIME}} UTC")
    return EXIT_OK


def window_view(count: WindowCount) -> dict[str, Any]:
    return {
        "hour": count.key.hour,
        "web_acl": count.key.web_acl,
        "rule": count.key.rule,
        "action": count.key.action,
        "uri_template": count.key.uri_template,
        "attack_class": count.attack_class,
        "severity": count.severity,
        "requests": count.requests,
        "distinct_sources": count.distinct_sources,
        "distinct_sources_exact": count.exact,
        "top_sources": [{"source": s, "requests": n} for s, n in count.top_sources()],
        "first_seen": count.first_seen,
        "last_seen": count.last_seen,
    }


def stats_view(counts: list[WindowCount], *, limit: int) -> dict[str, Any]:
    """The JSON of ``secops stats``: totals, per rule, and the largest windows."""
    return {
        "totals": {"requests": sum(c.requests for c in counts), "windows": len(counts)},
        "by_rule": [
            {
                "web_acl": t.web_acl,
                "rule": t.rule,
                "attack_class": t.attack_class,
                "requests": t.requests,
                "windows": t.windows,
                "by_action": t.by_action,
            }
            for t in totals_by_rule(counts)
        ],
        "windows": [window_view(c) for c in counts[:limit]],
    }


def render(console: Console, view: dict[str, Any], *, title: str) -> None:
    totals = view["totals"]
    if not totals["windows"]:
        console.print(f"{title}: none.")
        return
    console.print(Text(f"{title}: {totals['requests']:,} requests in {totals['windows']:,} windows"))
    table = Table(title="Largest windows", title_justify="left")
    for column in ("hour", "rule", "action", "URI template", "class", "requests", "sources", "top sources"):
        table.add_column(column, justify="right" if column in {"requests", "sources"} else "left")
    for window in view["windows"]:
        sources = f"{window['distinct_sources']:,}" + (
            "" if window["distinct_sources_exact"] else " (at most)"
        )
        top = ", ".join(f"{t['source']} ({t['requests']})" for t in window["top_sources"][:3])
        table.add_row(
            window["hour"],
            _cell(window["rule"]),
            window["action"],
            _cell(window["uri_template"]),
            window["attack_class"],
            f"{window['requests']:,}",
            sources,
            _cell(top),
        )
    console.print(table)


def _cell(text: str) -> Text:
    return Text(sanitize_text(text, _CELL_CHARS))
