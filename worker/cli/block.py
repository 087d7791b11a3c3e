"""``secops block list|add|remove|sync``: a person's hand on the response actions.

Every command works on the IP sets of ``SECOPS_RESPONSE_IP_SET_V4/V6`` and the block
records in the store's table, behind the same guards as the policy (allowlist, caps,
WAF's size limit), whatever ``SECOPS_RESPONSE_MODE`` says: a person may block with the
automatic response off. Each change is recorded with ``person:<login>`` and the reason,
and announced on the enabled channels. ``--json`` makes the result the only thing on
stdout (docs/architecture.md, "Response actions").
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from secops_core.text import sanitize_text
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
    incident_id,
    json_option,
    out_json,
    print_text,
)
from worker.response.addresses import parse_network
from worker.response.blocker import Blocker
from worker.response.records import BlockRecord, iso, person
from worker.settings import Settings

_REMOVED_SINCE = "7d"

# What --json prints, in each action's --help (docs/architecture.md, "Response actions").
_LIST_JSON = """\
--json prints {"blocks": [...], "removed": [...]}: block records (network, address,
ip_set, incident_id, reason, decided_by, created_at, expires_at, status, generation,
removed_at, removed_by, history), times in epoch seconds."""
_ADD_JSON = """\
--json prints one object:
  outcome         blocked | already (the network was blocked before) | pending (recorded,
                  the IP set write not yet confirmed) | dry_run | refused
  outcome_reason  why it was refused or is pending (allowlisted, hourly_cap,
                  total_cap, no_ipv6_set, ...); null otherwise
  line            the sentence printed without --json
  address         the address as given
  network, ip_set where it is (or would be) blocked; null if refused before they were known
  block           the block record in force, or with --dry-run the one that would be
                  written; its reason is why it is blocked; null when refused
Exit status 1 when refused; 2, one line on stderr and no JSON, when ADDRESS is
not an address or CIDR."""
_REMOVE_JSON = """\
--json prints {"removed": [...]}: the block records taken out, with their history.
Exit status 1 when nothing of the address was blocked; 2 when ADDRESS is not an
address or CIDR."""
_SYNC_JSON = """\
--json prints one object:
  drift     true when a block in force is missing from its set, or a removed one is in it
  repaired  true when this run wrote that drift back (never with --check, nor without drift)
  missing   recorded in force, absent from the set ("<cidr> (<ip set>)")
  stale     in the set, recorded as removed by secops
  foreign   in the set, never blocked by secops (left alone)
  expired   blocks past their expiry that this run took out (none with --check)
Exit status 1 when drift remains (found with --check)."""


def register(sub: Subparsers) -> None:
    actions = command_group(
        sub, "block", help="list, add, remove or reconcile blocked sources in the WAF IP sets"
    )

    listing = _action(actions, "list", help="blocks in force, soonest expiry first", json_shape=_LIST_JSON)
    listing.add_argument(
        "--removed",
        type=duration,
        metavar="SINCE",
        help=f"also blocks removed within this long, with their audit trail (e.g. {_REMOVED_SINCE})",
    )
    json_option(listing)
    listing.set_defaults(handler=cmd_list)

    add = _action(actions, "add", help="block an address (or CIDR) for a bounded time", json_shape=_ADD_JSON)
    add.add_argument("address", type=block_target, help="an IPv4/IPv6 address, or a CIDR")
    add.add_argument("--for", dest="for_s", type=duration, required=True, help="how long: 90m, 4h, 2d")
    add.add_argument(
        "--reason", type=audit_reason, required=True, help="why, for the audit trail and the notification"
    )
    add.add_argument(
        "--incident", type=incident_id, default=None, help="the incident it answers (inc#<hash>#<n>)"
    )
    add.add_argument(
        "--network", action="store_true", help="block the /24 (IPv4) or /64 (IPv6) of the address"
    )
    by_option(add)
    add.add_argument("--dry-run", action="store_true", help="show what would be blocked, write nothing")
    json_option(add)
    add.set_defaults(handler=cmd_add)

    remove = _action(
        actions,
        "remove",
        help="unblock an address (whatever network of it is blocked) or CIDR",
        json_shape=_REMOVE_JSON,
    )
    remove.add_argument("address", type=unblock_target, help="an address, or the CIDR as `list` shows it")
    remove.add_argument(
        "--reason", type=audit_reason, default="removed by hand", help="why, for the audit trail"
    )
    by_option(remove)
    json_option(remove)
    remove.set_defaults(handler=cmd_remove)

    sync = _action(
        actions,
        "sync",
        help="reconcile the records with the IP sets: expired out, missing in; report drift",
        json_shape=_SYNC_JSON,
    )
    sync.add_argument("--check", action="store_true", help="report the drift only, change nothing")
    json_option(sync)
    sync.set_defaults(handler=cmd_sync)


# ---- the commands ----------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from worker.platform import clock

    blocker = blocker_from_settings(command_settings())
    in_force = blocker.repo.blocks_in_force()
    removed = blocker.repo.removed_blocks(since=clock.epoch() - args.removed) if args.removed else []
    if args.json:
        out_json(
            {"blocks": [b.to_dict() for b in in_force], "removed": [b.to_dict() for b in removed]},
            indent=None,
        )
        return EXIT_OK
    screen = console()
    if in_force:
        screen.print(blocks_table(in_force, title="Blocks in force"))
    else:
        screen.print("No blocks in force.")
    if removed:
        screen.print(blocks_table(removed, title="Removed"))
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    blocker = blocker_from_settings(command_settings(), dry_run=args.dry_run)
    result = blocker.block(
        args.address,
        duration_s=args.for_s,
        reason=args.reason,
        decided_by=person(actor(args)),
        incident_id=args.incident,
        prefix="network" if args.network else "address",
    )
    if args.json:
        out_json(result.to_dict(), indent=None)
    elif result.outcome == "refused":
        raise CliError(result.line, EXIT_FAILED)
    else:
        lines = [result.line]
        if result.record is not None and result.outcome != "dry_run":
            lines.append(f"undo: {result.record.undo_command}")
        print_text("\n".join(lines))
    return EXIT_FAILED if result.outcome == "refused" else EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    blocker = blocker_from_settings(command_settings())
    removed = blocker.unblock(args.address, by=person(actor(args)), reason=args.reason)
    if args.json:
        out_json({"removed": [r.to_dict() for r in removed]}, indent=None)
    elif not removed:
        raise CliError(f"{args.address} is not blocked by secops (see `secops block list`)", EXIT_FAILED)
    else:
        print_text("\n".join(f"unblocked {r.target} from ipset {r.ip_set.name}" for r in removed))
    return EXIT_OK if removed else EXIT_FAILED


def cmd_sync(args: argparse.Namespace) -> int:
    blocker = blocker_from_settings(command_settings())
    report = blocker.sync(repair=not args.check)
    if args.json:
        out_json(report.to_dict(), indent=None)
    else:
        verb = "repaired" if report.repaired else "found (not changed: --check)"
        for label, items in (
            ("expired, removed now", report.expired),
            (f"recorded in force but missing from the set, {verb}", report.missing),
            (f"in the set but removed by secops, {verb}", report.stale),
            ("in the set, never blocked by secops (left alone)", report.foreign),
        ):
            if items:
                print_text(f"{label}: {', '.join(items)}")
        if not (report.drift or report.expired or report.foreign):
            print_text("The IP sets match the block records.")
    return EXIT_FAILED if report.drift and not report.repaired else EXIT_OK


# ---- arguments -------------------------------------------------------------------------------


def block_target(text: str) -> str:
    """What ``block add`` takes, as typed: an address, or a network with its host bits
    zero (the blocker's own reading). Anything else is a usage error, not a refusal:
    refusals are for addresses that could be blocked but may not (the allowlist, caps)."""
    try:
        if "/" in text:
            parse_network(text)
        else:
            ipaddress.ip_address(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(_not_an_address(text)) from None
    return text


def unblock_target(text: str) -> str:
    """What ``block remove`` takes: an address, or a CIDR as written (host bits allowed)."""
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or CIDR") from None
    return text


def _not_an_address(text: str) -> str:
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return f"{text!r} is not an IP address or CIDR"
    return f"{text!r} has host bits set: the network is {network}"


# ---- helpers ---------------------------------------------------------------------------------


def _action(actions: Subparsers, name: str, *, help: str, json_shape: str) -> argparse.ArgumentParser:
    """An action whose --help ends with what its --json prints, laid out by hand (a field
    a line); the options are wrapped as usual."""
    parser: argparse.ArgumentParser = actions.add_parser(
        name, help=help, epilog=json_shape, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser


def blocker_from_settings(settings: Settings, *, dry_run: bool = False) -> Blocker:
    """The blocker a person's command uses: never the policy's dry run, announced on the channels."""
    from worker.daemon import Clients
    from worker.notify.blocks import build_block_announcer
    from worker.platform.resources import resolve_resources
    from worker.response.factory import build_blocker

    clients = Clients.from_settings(settings)
    listener = None
    if not dry_run:
        resources = resolve_resources(settings, sqs=clients.sqs, sns=clients.sns)
        listener = build_block_announcer(settings, sns_client=clients.sns, resources=resources)
    blocker = build_blocker(settings, dynamodb=dynamodb_client(settings), dry_run=dry_run, listener=listener)
    if blocker is None:
        raise CliError(
            "no IP set configured: set SECOPS_RESPONSE_IP_SET_V4 and/or SECOPS_RESPONSE_IP_SET_V6 "
            "(`secops setup --ip-set NAME` creates them and prints their ARNs)",
            EXIT_USAGE,
        )
    return blocker


def blocks_table(blocks: Sequence[BlockRecord], *, title: str) -> Table:
    table = Table(title=title)
    for column in ("network", "ip set", "until", "incident", "decided by", "reason", "status"):
        table.add_column(column)
    for block in blocks:
        table.add_row(
            Text(block.network),
            Text(block.ip_set.label),
            Text(iso(block.removed_at if block.removed_at is not None else block.expires_at)),
            Text(block.incident_id or "-"),
            Text(block.decided_by),
            # The reason names an attack class, which a model may have written.
            Text(sanitize_text(block.reason, 60)),
            Text(block.status),
        )
    return table
