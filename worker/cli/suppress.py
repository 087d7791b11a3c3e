"""``secops suppress list|add|show|remove|expire``: the operators' suppressions
(docs/architecture.md, "Suppressions").

``add`` shows what the scope would have matched among the stored events of the last
``--preview`` (7 days by default) and refuses a scope that touches a severity-5 event,
or one of another class that reached the application, without ``--force``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from worker.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subparsers,
    actor,
    audit_reason,
    by_option,
    command_group,
    command_settings,
    console,
    duration,
    dynamodb_client,
    json_option,
    out_json,
    print_text,
)
from worker.suppressions.keys import DEFAULT_EXPIRY_DAYS

if TYPE_CHECKING:
    from worker.settings import Settings
    from worker.suppressions.dynamodb import DynamoSuppressionRepo
    from worker.suppressions.model import Scope, Suppression
    from worker.suppressions.preview import Preview

_PREVIEW_DEFAULT = "7d"


def register(sub: Subparsers) -> None:
    actions = command_group(sub, "suppress", help="list, add, show, expire or remove suppressions")

    listing = actions.add_parser("list", help="suppressions in force (--all: expired and removed too)")
    listing.add_argument("--all", action="store_true", help="include expired and removed ones")
    json_option(listing)
    listing.set_defaults(handler=cmd_list)

    add = actions.add_parser(
        "add",
        help="suppress the events of a rule or label within a scope",
        description=(
            "A rule (or label) plus at least one of --uri, --method, --host, --source. Matching "
            "events are closed at their floor, without a model call or an incident, until the "
            "suppression expires; an event that also matched anything outside the scope is never "
            "suppressed."
        ),
    )
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--rule", help="the rule: RuleId or ManagedGroup:RuleId")
    what.add_argument("--label", help="a WAF label, e.g. awswaf:managed:aws:sql-database:SQLi_Body")
    add_decision_arguments(add)
    by_option(add)
    json_option(add)
    add.add_argument("--uri", help="a URI template (/api/orders/{n}); a trailing * makes it a prefix")
    add.add_argument("--method", help="an HTTP method")
    add.add_argument("--host", help="a host; *.example.com for every subdomain")
    add.add_argument("--source", help="a source IP or CIDR")
    add.add_argument("--web-acl", help="only this web ACL (name or ARN)")
    add.set_defaults(handler=cmd_add)

    show = actions.add_parser("show", help="one suppression with its audit and hits")
    show.add_argument("id", type=suppression_id, help="the suppression id (sup-...)")
    json_option(show)
    show.set_defaults(handler=cmd_show)

    for name, verb in (
        ("expire", "expire it now (kept for the audit)"),
        ("remove", "remove it (kept for the audit)"),
    ):
        action = actions.add_parser(name, help=verb)
        action.add_argument("id", type=suppression_id, help="the suppression id (sup-...)")
        by_option(action)
        json_option(action)
        action.set_defaults(handler=cmd_end, how="expired" if name == "expire" else "removed")


def add_decision_arguments(parser: argparse.ArgumentParser) -> None:
    """The decision's own arguments, shared by `suppress add` and `incidents resolve --false-positive`."""
    parser.add_argument(
        "--reason", type=audit_reason, help="why these events are expected (required: the audit)"
    )
    expiry = parser.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires", type=duration, help=f"expire after this long (default {DEFAULT_EXPIRY_DAYS}d)"
    )
    expiry.add_argument("--no-expiry", action="store_true", help="never expire (explicitly)")
    parser.add_argument(
        "--force", action="store_true", help="create it although it touches severity-5 or reached-app events"
    )
    parser.add_argument(
        "--preview",
        type=duration,
        default=duration(_PREVIEW_DEFAULT),
        help=f"how far back to count matching stored events (default {_PREVIEW_DEFAULT})",
    )


# ---- the commands --------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from worker.platform import clock

    settings, repo = repo_of()
    now = clock.now()
    found = [s for s in repo.list() if args.all or s.active(now)]
    if args.json:
        out_json({"suppressions": [view(s, now) for s in found]})
        return EXIT_OK
    if not found:
        print_text("No suppressions in force." if not args.all else "No suppressions.")
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"Suppressions in {settings.table_name}", title_justify="left")
    for column in ("id", "state", "scope", "hits", "last hit", "expires", "by", "reason"):
        table.add_column(column, overflow="fold")
    for s in found:
        table.add_row(
            s.id,
            s.state(now),
            s.scope.text,
            str(s.hits),
            _when(s.last_hit_at),
            _when(s.expires_at) if s.expires_at else "never",
            s.created_by,
            s.reason,
        )
    console().print(table)
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from worker.suppressions.model import Scope, ScopeError

    try:
        scope = Scope.build(
            rule=args.rule,
            label=args.label,
            uri_template=args.uri,
            method=args.method,
            host=args.host,
            source_cidr=args.source,
            web_acl=args.web_acl,
        )
    except ScopeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    settings, repo = repo_of()
    result = create(settings, repo, scope, args)
    _print_created(args, result)
    return EXIT_OK


def create(
    settings: Settings,
    repo: DynamoSuppressionRepo,
    scope: Scope,
    args: argparse.Namespace,
    *,
    incident_id: str | None = None,
    history: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Preview ``scope`` over the stored events, refuse it or create it; the JSON result.

    ``history`` is the stored events already read (the caller's), else they are read here.
    """
    from worker.platform import clock
    from worker.suppressions.model import ScopeError, Suppression
    from worker.suppressions.preview import preview

    if not args.reason:
        raise CliError("--reason is required: the audit says why these events are expected", EXIT_USAGE)
    now = clock.now()
    if history is None:
        history = list(read_history(settings, since=now - timedelta(seconds=args.preview), until=now))
    seen = preview(scope, history)
    if seen.refused and not args.force:
        raise CliError(refusal(scope, seen), EXIT_FAILED)
    expires_in = None if args.no_expiry else timedelta(seconds=args.expires or DEFAULT_EXPIRY_DAYS * 86400)
    try:
        suppression = Suppression.new(
            scope,
            reason=args.reason,
            created_by=actor(args),
            now=now,
            expires_in=expires_in,
            forced=seen.refused,
            incident_id=incident_id,
        )
    except ScopeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    repo.create(suppression)
    return {"suppression": view(suppression, now), "preview": seen.to_dict()}


def refusal(scope: Scope, seen: Preview) -> str:
    worst = max(seen.refusing, key=lambda r: r["severity"])
    return (
        f"refused: the scope {scope.text} touches {len(seen.refusing)} stored event(s) of another class "
        f"that are severity 5 or reached the application (e.g. {worst['event']}: {worst['attack_class']}, "
        f"severity {worst['severity']}); those would still not be suppressed, but the scope is drawn where "
        "real attacks happen: narrow it, or pass --force"
    )


def cmd_show(args: argparse.Namespace) -> int:
    from worker.platform import clock

    _, repo = repo_of()
    found = repo.get(args.id)
    if found is None:
        raise CliError(f"no suppression {args.id}", EXIT_FAILED)
    shown = view(found, clock.now())
    if args.json:
        out_json(shown)
    else:
        for name, value in shown.items():
            print_text(f"{name:>12}: {json.dumps(value) if isinstance(value, dict) else value}")
    return EXIT_OK


def cmd_end(args: argparse.Namespace) -> int:
    from worker.platform import clock
    from worker.suppressions.repo import SuppressionConflict

    _, repo = repo_of()
    now = clock.now()
    try:
        ended = repo.end(args.id, args.how, by=actor(args), at=now)
    except SuppressionConflict as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    if ended is None:
        raise CliError(f"no suppression {args.id}", EXIT_FAILED)
    if args.json:
        out_json({"suppression": view(ended, now)})
    else:
        print_text(
            f"{ended.id} {args.how} by {ended.ended_by}; every replica stops applying it within a minute"
        )
    return EXIT_OK


# ---- shared -------------------------------------------------------------------------------


def view(suppression: Suppression, now: datetime) -> dict[str, Any]:
    return {**suppression.to_dict(), "state": suppression.state(now)}


def read_history(settings: Settings, *, since: datetime, until: datetime) -> Any:
    from worker.tuning.history import DynamoEventHistory

    return DynamoEventHistory(settings.table_name, client=dynamodb_client(settings)).iter_events(
        since=since, until=until
    )


def _print_created(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        out_json(result)
        return
    for line in created_lines(result):
        print_text(line)


def created_lines(result: dict[str, Any]) -> list[str]:
    s, seen = result["suppression"], result["preview"]
    lines = [
        f"created {s['id']}: {' '.join(f'{k}={v}' for k, v in s['scope'].items())}, "
        f"expires {s['expires_at'] or 'never'}, by {s['created_by']}",
        f"it would have matched {seen['would_have_matched']} of {seen['events_examined']} stored events",
    ]
    if seen["in_scope_but_other_class"]:
        lines.append(
            f"{seen['in_scope_but_other_class']} event(s) in scope also matched other classes "
            f"({', '.join(seen['other_classes'])}): they are not suppressed"
        )
    if s["forced"]:
        lines.append("created with --force over severity-5 or reached-app events of another class")
    return lines


def repo_of() -> tuple[Settings, DynamoSuppressionRepo]:
    """The command's settings and the suppressions in the store's table."""
    from worker.suppressions.dynamodb import DynamoSuppressionRepo

    settings = command_settings()
    return settings, DynamoSuppressionRepo(settings.table_name, client=dynamodb_client(settings))


def suppression_id(text: str) -> str:
    """A suppression id as typed (``sup-<10 hex>``); a malformed one is a usage error."""
    from worker.suppressions.keys import is_suppression_id

    if not is_suppression_id(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a suppression id (sup-<10 hex>, as `secops suppress list` shows)"
        )
    return text


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"
