"""``secops incidents resolve ID --false-positive [--scope rule,uri,...]``: resolve the
incident and create the suppression its events call for (docs/architecture.md,
"Suppressions").

The narrowest scope over the chosen dimensions that covers the incident's stored events
is proposed, previewed over the stored events (how many it would have matched, which of
another class it touches) and checked before the incident's status changes, so a refused
scope leaves the incident as it was. The suppression is created after the resolution,
as one step of it: other steps of a resolution (unblocking a source, say) hang on the
same list.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from worker.cli.common import EXIT_FAILED, EXIT_USAGE, CliError
from worker.cli.suppress import add_decision_arguments

if TYPE_CHECKING:
    from worker.incidents import IncidentRecord

# One step run after an incident was resolved: its record in, (JSON key, JSON value,
# lines for the terminal) out.
ResolveStep = Callable[["IncidentRecord"], tuple[str, Any, list[str]]]


def add_false_positive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--false-positive",
        action="store_true",
        help="the incident's events are expected: create a suppression covering them",
    )
    parser.add_argument(
        "--scope",
        help="with --false-positive: the dimensions of the suppression, from rule,label,uri,method,"
        "host,source,web-acl (default rule,uri,method,host)",
    )
    add_decision_arguments(parser)


def prepare(args: argparse.Namespace, incident_id: str) -> ResolveStep:
    """Propose and check the suppression now (a refusal raises before anything changes);
    the returned step creates it once the incident is resolved."""
    from worker import clock
    from worker.cli.suppress import _dynamodb, _repo, create, created_lines, read_history, refusal
    from worker.incidents.factory import dynamo_repo
    from worker.suppressions.model import ScopeError
    from worker.suppressions.preview import dimensions, narrowest_scope, preview

    settings, repo = _repo()
    incident = dynamo_repo(settings, client=_dynamodb(settings)).get(incident_id)
    if incident is None:
        raise CliError(f"no incident {incident_id}", EXIT_FAILED)
    now = clock.now()
    since = min(now - timedelta(seconds=args.preview), incident.first_seen)
    history = list(read_history(settings, since=since, until=now))
    members = [r for r in history if r.incident_id == incident_id]
    try:
        proposal = narrowest_scope(members, dimensions(args.scope))
    except ScopeError as exc:
        raise CliError(f"no suppression for {incident_id}: {exc}", EXIT_USAGE) from None
    seen = preview(proposal.scope, history)
    if seen.refused and not args.force:
        raise CliError(refusal(proposal.scope, seen) + " (the incident was not resolved)", EXIT_FAILED)
    args.reason = args.reason or args.note or f"false positive: incident {incident_id} resolved as such"

    def step(record: IncidentRecord) -> tuple[str, Any, list[str]]:
        result = create(settings, repo, proposal.scope, args, incident_id=record.id, history=history)
        result["covers_incident_events"] = {"covered": proposal.covers, "events": proposal.events}
        lines = [
            f"proposed the narrowest scope covering {proposal.covers} of the incident's "
            f"{proposal.events} stored events",
            *created_lines(result),
        ]
        return "false_positive", result, lines

    return step
