"""``secops incidents list|show|ack|resolve``: the operator's view of incidents.

An incident is many escalated events of one attack (``worker.incidents``). ``list`` and
``show`` read the store's table; ``ack`` and ``resolve`` are conditional on the status
they read, so two operators acting at once cannot both win. Every command takes
``--json``, which makes the result the only thing on stdout. Untrusted text (URIs,
rules, a model's analysis) is cleaned and shown as plain text, never as console markup.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from secops_core.text import sanitize_text
from worker.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Subparsers,
    actor,
    by_option,
    command_group,
    duration,
    incident_id,
    json_option,
    out_json,
    positive_int,
    print_text,
)
from worker.cli.common import command_settings as _settings
from worker.cli.common import console as _console
from worker.cli.common import dynamodb_client as _dynamodb
from worker.cli.false_positive import add_suppression_arguments
from worker.cli.false_positive import prepare as prepare_suppression
from worker.incidents import (
    INCIDENT_STATUSES,
    RESOLVED,
    IncidentNotFound,
    IncidentRecord,
    IncidentStatus,
    StatusConflict,
)
from worker.incidents.dynamodb import DynamoIncidentRepo
from worker.incidents.factory import dynamo_repo
from worker.incidents.records import ChannelResult, Notice
from worker.notify.channel import ChannelsRejected, ChannelsUnavailable, IncidentDelivery
from worker.notify.fanout import FanoutNotifier
from worker.response.records import BlockRecord
from worker.settings import Settings
from worker.store import EventRecord
from worker.store.aggregates import WindowCount, counted_from

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

# Untrusted text in a table cell or a paragraph: long enough to recognize, short enough to scan.
_CELL_CHARS = 60
_PARAGRAPH_CHARS = 2000
# How many entries of each count map `show` prints (the record keeps the top 20).
_TOP_SHOWN = 10
_TIME = "%Y-%m-%d %H:%M:%S"


def register(sub: Subparsers) -> None:
    actions = command_group(sub, "incidents", help="list, show, acknowledge or resolve incidents")

    listing = actions.add_parser("list", help="open and recent incidents, most recent first")
    listing.add_argument("--status", choices=INCIDENT_STATUSES, help="only incidents in this status")
    listing.add_argument(
        "--since", type=duration, default=duration("7d"), help="last event within this long (default 7d)"
    )
    listing.add_argument("--limit", type=positive_int, default=50, help="at most this many (default 50)")
    json_option(listing)
    listing.set_defaults(handler=cmd_list)

    show = actions.add_parser("show", help="one incident: timeline, targets, rules, samples, analysis")
    show.add_argument("incident", type=incident_id, help="the incident id (inc#<hash>#<n>)")
    json_option(show)
    show.set_defaults(handler=cmd_show)

    for name, verb in (("ack", "acknowledge"), ("resolve", "resolve")):
        action = actions.add_parser(name, help=f"{verb} an incident (conditional on its current status)")
        action.add_argument("incident", type=incident_id, help="the incident id (inc#<hash>#<n>)")
        action.add_argument("--note", default="", help="why, for the status history")
        by_option(action)
        json_option(action)
        if name == "resolve":
            action.add_argument(
                "--false-positive",
                action="store_true",
                help="it was no attack: also undo what it caused (its sources' blocks go at once) "
                "and suppress events like its own (see --scope)",
            )
        action.set_defaults(handler=cmd_ack if name == "ack" else cmd_resolve)
        if name == "resolve":
            add_suppression_arguments(action)


# ---- the commands ----------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from worker.platform import clock

    settings = _settings()
    since = clock.now() - timedelta(seconds=args.since)
    records = _repo(settings, _dynamodb(settings)).list(status=args.status, since=since, limit=args.limit)
    if args.json:
        out_json({"incidents": [listed(r) for r in records]})
    else:
        console = _console()
        if records:
            console.print(
                incidents_table(
                    [listed(r) for r in records], title=f"Incidents with events since {since:{_TIME}}"
                )
            )
        else:
            console.print(f"No incidents with events since {since:{_TIME}} UTC.")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from worker.store.dynamodb import EventStore

    settings = _settings()
    client = _dynamodb(settings)
    record = _repo(settings, client).get(args.incident)
    if record is None:
        raise CliError(f"no incident {args.incident}", EXIT_FAILED)
    keys = list(dict.fromkeys((*record.first_events, *record.latest_events)))
    store = EventStore(settings.table_name, client=client, ttl_days=settings.event_ttl_days)
    samples = store.get_many(keys) if keys else {}
    # What the source also sent that was counted, not stored as events (docs/architecture.md,
    # "Relevance"): the reputation or rate blocks beside the attack, say.
    counted = counted_from(
        store.window_counts(since=record.first_seen, until=record.last_seen), record.source
    )
    view = incident_view(record, [samples[k] for k in keys if k in samples], counted)
    blocks = incident_blocks(settings, client, record)
    view["blocks"] = [b.to_dict() for b in blocks]
    if args.json:
        out_json(view, default=str)
    else:
        console = _console()
        render_incident(console, record, view)
        for block in blocks:
            state = (
                block.line if block.in_set else f"{block.target} in ipset {block.ip_set.name}: {block.status}"
            )
            reason = sanitize_text(block.reason, _CELL_CHARS)
            console.print(Text(f"Block: {state} ({reason}); undo: {block.undo_command}"))
    return EXIT_OK


def incident_blocks(settings: Settings, client: DynamoDBClient, record: IncidentRecord) -> list[BlockRecord]:
    """The blocks ``record`` decided, in force or removed since it began."""
    from worker.response.dynamodb import DynamoBlockRepo

    repo = DynamoBlockRepo(settings.table_name, client=client, ttl_days=settings.event_ttl_days)
    since = record.first_seen.timestamp() - 60
    found = [*repo.blocks_in_force(), *repo.removed_blocks(since=since)]
    return [b for b in found if b.incident_id == record.id]


def cmd_ack(args: argparse.Namespace) -> int:
    return _set_status(args, "acknowledged")


def cmd_resolve(args: argparse.Namespace) -> int:
    steps: dict[str, FalsePositiveStep] = {}
    if args.false_positive:
        steps = dict(FALSE_POSITIVE_STEPS)
        # Checked now, so a refused scope leaves the incident as it was.
        steps["suppression"] = prepare_suppression(args, args.incident)
    return _set_status(args, "resolved", steps=steps)


def _set_status(
    args: argparse.Namespace, status: IncidentStatus, *, steps: Mapping[str, FalsePositiveStep] | None = None
) -> int:
    settings = _settings()
    incident = args.incident
    repo = _repo(settings, _dynamodb(settings))
    by = actor(args)
    try:
        record = repo.set_status(incident, status, note=args.note, by=by)
    except IncidentNotFound:
        raise CliError(f"no incident {incident}", EXIT_FAILED) from None
    except StatusConflict as conflict:
        current = conflict.current
        owed = _owed_resolution_channels(settings, current) if status == current.status == "resolved" else ()
        if not (status == current.status == "resolved" and (RESOLVED.id not in current.claimed or owed)):
            # Refused by the incident's state, not by how the request was typed.
            raise CliError(
                f"incident {incident} is {current.status}: it cannot be made {status}", EXIT_FAILED
            ) from None
        # Resolved before, but its announcement failed (given back), or some channel
        # failed it while others had it: send it now, to those channels only.
        record = current
    notification = None
    if status == "resolved":
        owed = _owed_resolution_channels(settings, record) if RESOLVED.id in record.claimed else ()
        notification = (
            _resend_resolution(settings, repo, record, owed)
            if owed
            else _announce_resolution(settings, repo, record)
        )
    result: dict[str, Any] = {"incident": listed(record), "notification": notification}
    if steps:
        result["false_positive"] = {name: step(settings, record, by) for name, step in steps.items()}
    if args.json:
        out_json(result)
    else:
        verb = "acknowledged" if status == "acknowledged" else "resolved"
        line = f"{incident} {verb} by {by}" + (f": {args.note}" if args.note else "")
        if notification is not None:
            line += "; " + ("notified" if notification["sent"] else "already announced")
        for name, outcome in result.get("false_positive", {}).items():
            line += f"; {name}: {outcome['summary']}"
        print_text(line)
    return EXIT_OK


def _unblock_sources(settings: Settings, record: IncidentRecord, by: str) -> dict[str, Any]:
    """Remove the blocks the incident decided, at once (they were a mistake)."""
    from worker.cli.block import blocker_from_settings
    from worker.response.config import ip_sets
    from worker.response.records import person

    if not ip_sets(settings):
        return {"summary": "no IP set configured", "removed": []}
    removed = blocker_from_settings(settings).unblock_incident(
        record.id, by=person(by), reason="incident resolved as a false positive"
    )
    networks = [r.network for r in removed]
    return {
        "summary": f"unblocked {', '.join(networks)}" if networks else "nothing was blocked",
        "removed": networks,
    }


# What `resolve --false-positive` does besides resolving: each step undoes or prevents
# one consequence of the incident and returns its part of the output ({"summary": ...}).
# The suppression of what matched is prepared (and checked) before the status changes,
# then joins these (worker/cli/false_positive.py).
FalsePositiveStep = Callable[[Settings, IncidentRecord, str], dict[str, Any]]
FALSE_POSITIVE_STEPS: dict[str, FalsePositiveStep] = {
    "blocks": _unblock_sources,
}


def _owed_resolution_channels(settings: Settings, record: IncidentRecord) -> tuple[str, ...]:
    """The enabled channels whose latest answer to ``resolved`` was a failure.

    There is no milestone after ``resolved`` to catch them up (a Security Hub finding
    would stay unresolved), so `resolve` run again sends it to them.
    """
    latest: dict[str, bool] = {}
    for notice in record.notices:
        if notice.milestone == RESOLVED.id:
            latest.update({c.channel: c.ok for c in notice.channels})
    return tuple(name for name, ok in latest.items() if not ok and name in settings.enabled_channels)


def _resend_resolution(
    settings: Settings, repo: DynamoIncidentRepo, record: IncidentRecord, channels: tuple[str, ...]
) -> dict[str, Any]:
    """``resolved`` again, to the channels that failed it only, and noted like the first.

    Operator-driven and rare, so it takes no claim: two operators resending at once
    may both reach a channel (a state channel takes it twice harmlessly).
    """
    try:
        delivery = _notifier(settings).notify_incident(record, RESOLVED, only=channels)
    except (ChannelsUnavailable, ChannelsRejected) as exc:
        repo.record_notice(record.id, RESOLVED.id, None, channels=exc.results)
        raise CliError(
            f"{record.id} is resolved, but {', '.join(channels)} failed its notification again "
            f"({exc.message}); run `secops incidents resolve {record.id}` again to retry",
            EXIT_FAILED,
        ) from None
    return _note_resolution(repo, record, delivery)


def _note_resolution(
    repo: DynamoIncidentRepo, record: IncidentRecord, delivery: IncidentDelivery
) -> dict[str, Any]:
    """Record the delivered ``resolved`` milestone and describe it for the command's output."""
    repo.record_notice(record.id, RESOLVED.id, delivery.message_id, channels=delivery.results)
    return {
        "milestone": RESOLVED.id,
        "sent": True,
        "message_id": delivery.message_id,
        "channels": [r.to_dict() for r in delivery.results],
    }


def _announce_resolution(
    settings: Settings, repo: DynamoIncidentRepo, record: IncidentRecord
) -> dict[str, Any]:
    """The ``resolved`` milestone, like every milestone: claimed by exactly one caller,
    published, then noted; a failed publish gives the claim back so a later ``resolve``
    can send it.
    """
    from worker.cli.errors import explain

    if not repo.claim_milestone(record.id, RESOLVED.id):
        return {"milestone": RESOLVED.id, "sent": False, "message_id": None, "channels": []}
    try:
        delivery = _notifier(settings).notify_incident(record, RESOLVED)
    except Exception as exc:
        failed = exc.results if isinstance(exc, ChannelsUnavailable | ChannelsRejected) else ()
        repo.release_milestone(record.id, RESOLVED.id, failed=failed)
        explained = explain(exc)
        if explained is None:
            raise
        raise CliError(
            f"{record.id} is resolved, but its notification failed ({explained.message}); "
            f"run `secops incidents resolve {record.id}` again to send it",
            EXIT_FAILED,
        ) from None
    return _note_resolution(repo, record, delivery)


# ---- wiring ----------------------------------------------------------------------------------


def _notifier(settings: Settings) -> FanoutNotifier:
    """The worker's notifier: the same channels, on the same topics, as the worker's."""
    from worker.daemon import Clients
    from worker.notify.registry import build_notifier
    from worker.platform.resources import resolve_resources

    clients = Clients.from_settings(settings)
    resources = resolve_resources(settings, sqs=clients.sqs, sns=clients.sns)
    return build_notifier(settings, clients=clients, resources=resources)


def _repo(settings: Settings, client: DynamoDBClient) -> DynamoIncidentRepo:
    """The incident repository over the store's table, as the worker configures it."""
    return dynamo_repo(settings, client=client)


# ---- views (JSON-able) ---------------------------------------------------------------------


def listed(record: IncidentRecord) -> dict[str, Any]:
    """The columns of ``list`` as JSON: what an operator scans, without the samples."""
    return {
        "id": record.id,
        "source": record.source,
        "attack_class": record.attack_class,
        "target": record.target,
        "group_by": record.group_by,
        "severity": record.max_severity,
        "count": record.count,
        "reached_app": record.reached_app,
        "first_seen": record.first_seen.isoformat(),
        "last_seen": record.last_seen.isoformat(),
        "open_until": record.open_until.isoformat(),
        "status": record.status,
        "notices": len(record.notices),
    }


def _failed_text(notice: Notice) -> str:
    return ", ".join(f"{c.channel} failed: {c.reason}" for c in notice.channels if not c.ok)


def timeline(record: IncidentRecord) -> list[dict[str, Any]]:
    """What happened, in time order: first event, notifications (and the channels that
    failed them), status changes, last event."""
    entries: list[dict[str, Any]] = [
        {"at": record.first_seen.isoformat(), "what": "first event", "detail": ""},
    ]
    for n in record.notices:
        failed = _failed_text(n)
        detail = (n.message_id or "") + (f" ({failed})" if failed else "")
        # A resend that every channel failed again is noted too (`resolve` run again).
        delivered = not n.channels or any(c.ok for c in n.channels)
        what = f"notified: {n.milestone}" if delivered else f"not delivered: {n.milestone}"
        entries.append({"at": n.at, "what": what, "detail": detail.strip()})
    if record.last_failure is not None:
        entries.append(
            {
                "at": record.last_failure.at,
                "what": f"not delivered: {record.last_failure.milestone}",
                "detail": f"every channel failed ({_failed_text(record.last_failure)}); retried",
            }
        )
    entries += [
        {"at": s.at, "what": s.status, "detail": f"by {s.by}" + (f": {s.note}" if s.note else "")}
        for s in record.status_history
    ]
    if record.count > 1:
        entries.append({"at": record.last_seen.isoformat(), "what": "last event", "detail": ""})
    return sorted(entries, key=lambda e: _instant(e["at"]))


def channel_report(record: IncidentRecord) -> list[dict[str, Any]]:
    """Per channel, in the order they first answered: the last milestone it delivered
    and every failure recorded for it (``undelivered``: no channel took that milestone,
    so it is retried; otherwise the others had it and this channel gets the next one).
    """
    report: dict[str, dict[str, Any]] = {}

    def entry(channel: str) -> dict[str, Any]:
        return report.setdefault(channel, {"channel": channel, "last_delivered": None, "failures": []})

    for notice in record.notices:
        # A notice from before there were channels went to SNS alone.
        outcomes = notice.channels or (ChannelResult("sns", ok=True, id=notice.message_id),)
        for outcome in outcomes:
            if outcome.ok:
                entry(outcome.channel)["last_delivered"] = {
                    "milestone": notice.milestone,
                    "at": notice.at,
                    "id": outcome.id,
                }
            else:
                entry(outcome.channel)["failures"].append(_failure(notice, outcome, undelivered=False))
    if record.last_failure is not None:
        for outcome in record.last_failure.channels:
            entry(outcome.channel)["failures"].append(
                _failure(record.last_failure, outcome, undelivered=True)
            )
    for item in report.values():
        item["failures"].sort(key=lambda f: _instant(f["at"]))
    return list(report.values())


def _failure(notice: Notice, outcome: ChannelResult, *, undelivered: bool) -> dict[str, Any]:
    return {
        "milestone": notice.milestone,
        "at": notice.at,
        "reason": outcome.reason,
        "error": outcome.error,
        "undelivered": undelivered,
    }


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def sample_view(record: EventRecord) -> dict[str, Any]:
    event, triage = record.event, record.triage
    return {
        "event_key": record.key,
        "status": record.status,
        "at": event.timestamp.isoformat() if event else None,
        "source_ip": event.source_ip if event else None,
        "method": event.http_method if event else None,
        "uri": event.uri if event else None,
        "action": event.action if event else None,
        "rule": event.rule_name if event else None,
        "severity": record.severity,
        "triage": triage.action if triage else None,
    }


def analysis_view(record: EventRecord) -> dict[str, Any] | None:
    if record.analysis is None:
        return None
    # The event's one severity beside what the analysis rated, and why they differ.
    return {
        "event_key": record.key,
        **record.analysis.model_dump(mode="json"),
        "event_severity": record.severity,
        "severity_change": record.severity_change,
    }


def incident_view(
    record: IncidentRecord, samples: Sequence[EventRecord], counted: Sequence[WindowCount] = ()
) -> dict[str, Any]:
    """Everything ``show`` prints, as JSON; ``counted``: the windows of counted log records
    (blocked for the sender, rate or size) in which the incident's source appears."""
    analysed = next((s for s in samples if s.analysis is not None), None)
    return {
        **record.to_dict(),
        "channels": channel_report(record),
        "timeline": timeline(record),
        "samples": [sample_view(s) for s in samples],
        "analysis": analysis_view(analysed) if analysed else None,
        "counted_from_source": [
            {
                "hour": c.key.hour,
                "rule": c.key.rule,
                "action": c.key.action,
                "uri_template": c.key.uri_template,
                "attack_class": c.attack_class,
                "requests": c.sources.get(record.source, 0),
            }
            for c in counted
        ],
    }


# ---- rendering -----------------------------------------------------------------------------


def _cell(value: object, limit: int = _CELL_CHARS) -> Text:
    """Untrusted text as a plain cell: cleaned, bounded, never read as markup."""
    return Text(sanitize_text("" if value is None else str(value), limit))


def _when(text: str) -> str:
    return _instant(text).strftime(_TIME)


def incidents_table(incidents: Sequence[Mapping[str, Any]], *, title: str) -> Table:
    """The incident table ``list`` and the demo print, from :func:`listed` views."""
    table = Table(title=title, title_justify="left")
    for column in ("id", "source", "class", "sev.", "count", "first seen", "last seen", "status"):
        table.add_column(column, justify="right" if column in {"sev.", "count"} else "left")
    for incident in incidents:
        target = incident["target"]
        table.add_row(
            Text(incident["id"], no_wrap=True),
            _cell(incident["source"], 43),
            _cell(incident["attack_class"] + (f" → {target}" if target else ""), 40),
            str(incident["severity"]),
            str(incident["count"]),
            _when(incident["first_seen"]),
            _when(incident["last_seen"]),
            incident["status"],
        )
    return table


def _counts_table(title: str, counts: Mapping[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("value")
    table.add_column("events", justify="right")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for name, count in ranked[:_TOP_SHOWN]:
        table.add_row(_cell(name), str(count))
    if len(ranked) > _TOP_SHOWN:
        table.add_row(f"… {len(ranked) - _TOP_SHOWN} more", str(sum(c for _, c in ranked[_TOP_SHOWN:])))
    return table


def _channels_table(channels: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Channels", title_justify="left")
    for column in ("channel", "last delivered", "at", "failures", "last failure"):
        table.add_column(column, justify="right" if column == "failures" else "left")
    for item in channels:
        delivered = item["last_delivered"]
        failures = item["failures"]
        last = failures[-1] if failures else None
        table.add_row(
            item["channel"],
            _cell(delivered["milestone"]) if delivered else "-",
            _when(delivered["at"]) if delivered else "",
            str(len(failures)),
            _cell(f"{last['milestone']} at {_when(last['at'])}: {last['reason']} ({last['error']})", 80)
            if last
            else "",
        )
    return table


def render_incident(console: Console, record: IncidentRecord, view: Mapping[str, Any]) -> None:
    head = Text()
    head.append(record.id, style="bold")
    head.append(
        f"  {record.status}, severity {record.max_severity}, {record.count} events "
        f"({record.reached_app} reached the application), grouped by {record.group_by}: "
    )
    head.append(sanitize_text(record.group.text, 200))
    console.print(head)
    console.print(
        f"first {record.first_seen:{_TIME}}, last {record.last_seen:{_TIME}}, "
        f"open until {record.open_until:{_TIME}} UTC"
    )
    events = Table(title="Timeline", title_justify="left")
    for column in ("at", "what", "detail"):
        events.add_column(column)
    for entry in view["timeline"]:
        events.add_row(_when(entry["at"]), entry["what"], _cell(entry["detail"], 80))
    console.print(events)
    if view["channels"]:
        console.print(_channels_table(view["channels"]))
    for title, counts in (
        ("URI templates", record.uri_templates),
        ("Rules", record.rules),
        ("Attack classes", record.classes),
        ("Countries", record.countries),
        ("Sources", record.source_ips),
    ):
        if counts:
            console.print(_counts_table(title, counts))
    counted = view.get("counted_from_source") or []
    if counted:
        table = Table(title="Also counted from this source (not events)", title_justify="left")
        for column in ("hour", "rule", "action", "URI template", "requests"):
            table.add_column(column, justify="right" if column == "requests" else "left")
        for c in counted[:_TOP_SHOWN]:
            table.add_row(
                c["hour"], _cell(c["rule"], 48), c["action"], _cell(c["uri_template"], 40), str(c["requests"])
            )
        console.print(table)
    if view["samples"]:
        samples = Table(title="Sample events (the first and the latest)", title_justify="left")
        # Whole keys, folded if need be: they are what an operator looks up next.
        samples.add_column("event", overflow="fold")
        for column in ("at", "source", "request", "rule", "sev.", "triage"):
            samples.add_column(column, justify="right" if column == "sev." else "left")
        for s in view["samples"]:
            samples.add_row(
                Text(s["event_key"]),
                _when(s["at"]) if s["at"] else "",
                _cell(s["source_ip"], 43),
                _cell(f"{s['method'] or ''} {s['uri'] or ''}", 48),
                _cell(s["rule"], 40),
                "" if s["severity"] is None else str(s["severity"]),
                s["triage"] or "",
            )
        console.print(samples)
    analysis = view["analysis"]
    if analysis:
        text = Text()
        text.append(f"Analysis of {analysis['event_key']}", style="bold")
        change = analysis.get("severity_change")
        why = sanitize_text(str(change.get("reason") or ""), 160) if change else ""
        raised = f"; raised to {change['to']} by the {change['by']}: {why}" if change else ""
        text.append(
            f" (severity {analysis['severity_rating']}, floor {analysis['severity_floor']}, "
            f"by {analysis['analyzed_by']}{', degraded' if analysis.get('degraded') else ''}{raised}): "
        )
        text.append(sanitize_text(analysis["security_analysis"], _PARAGRAPH_CHARS))
        text.append("\nFollow-up: ", style="bold")
        text.append(sanitize_text(analysis["follow_up_suggestion"], _PARAGRAPH_CHARS))
        console.print(text)
