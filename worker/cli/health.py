"""``secops health``: the container health check."""

from __future__ import annotations

import argparse
import sys

from worker.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, settings


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("health", help="exit 0 if the consumer's heartbeat is fresh, else 1")
    parser.set_defaults(handler=cmd_health)


def cmd_health(args: argparse.Namespace) -> int:
    from worker.platform.health import check_health

    current = settings()
    status = check_health(
        current.health_file, max_age_s=current.health_max_age_s, max_stall_s=current.health_max_stall_s
    )
    (sys.stdout if status.healthy else sys.stderr).write(status.message + "\n")
    return EXIT_OK if status.healthy else EXIT_FAILED
