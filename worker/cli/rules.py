"""``secops rules explain RECORD|-``: which rule, label or pattern decided the floor."""

from __future__ import annotations

import argparse
import sys

from worker.cli.common import Subparsers, command_group, configure_logs, json_option, one_shot_settings


def register(sub: Subparsers) -> None:
    actions = command_group(sub, "rules", help="explain how the severity floor grades a record")
    explain = actions.add_parser("explain", help="which rule, label or pattern decided the floor, and why")
    explain.add_argument("record", help="a WAF event or log record as JSON (a file, or - for stdin)")
    json_option(explain)
    explain.set_defaults(handler=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from secops_core.waf.operator import load_operator_catalog
    from worker.ops.inputs import open_input
    from worker.ops.rules_explain import run_rules_explain

    # Building the settings validates SECOPS_RULES_CATALOG as the daemon would.
    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    operator = load_operator_catalog(settings.rules_catalog or "")
    with open_input(args.record) as stream:
        source = "stdin" if args.record == "-" else args.record
        return run_rules_explain(stream, source, operator, sys.stdout, as_json=args.json)
