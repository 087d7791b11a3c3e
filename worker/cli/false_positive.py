"""``secops incidents resolve ID --false-positive [--scope rule,uri,...]``: besides
resolving the incident (and the other false-positive steps), create the suppression its
events call for (docs/architecture.md, "Suppressions").

The narrowest scope over the chosen dimensions that covers the incident's stored events
is proposed, previewed over the stored events (how many it would have matched, which of
another class it touches) and checked before the incident's status changes, so a refused
scope leaves the incident as it was; the suppression is created after the resolution.
When no scope can be drawn (no stored events of the incident, nothing they share), the
incident is resolved all the same and the step says why there is no suppression.
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
    from worker.settings import Settings


def add_suppression_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scope",
        help="with --false-positive: the dimensions of the suppression, from rule,label,uri,method,"
        "host,source,web-acl (default rule,uri,method,host)",
    )
    add_decision_arguments(parser)


def prepare(
    args: argparse.Namespace, incident_id: str
) -> Callable[[Settings, IncidentRecord, str], dict[str, Any]]:
    """Propose and check the suppression now (a refusal raises before anything changes);
    the returned step creates it once the incident is resolved."""
    from worker.cli.common import dynamodb_client
    from worker.cli.suppress import create, created_lines, read_history, refusal, repo_of
    from worker.incidents.factory import dynamo_repo
    from worker.platform import clock
    from worker.suppressions.model import ScopeError
    from worker.suppressions.preview import dimensions, narrowest_scope, preview

    settings, repo = repo_of()
    incident = dynamo_repo(settings, client=dynamodb_client(settings)).get(incident_id)
    if incident is None:
        raise CliError(f"no incident {incident_id}", EXIT_FAILED)
    now = clock.now()
    since = min(now - timedelta(seconds=args.preview), incident.first_seen)
    history = list(read_history(settings, since=since, until=now))
    members = [r for r in history if r.incident_id == incident_id]
    try:
        wanted = dimensions(args.scope)
    except ScopeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        proposal = narrowest_scope(members, wanted)
    except ScopeError as exc:
        # The resolution and its other steps stand; the operator can draw one by hand.
        summary = f"no suppression ({exc}); create one with `secops suppress add`"
        return lambda _settings, _record, _by: {"created": False, "summary": summary}
    seen = preview(proposal.scope, history)
    if seen.refused and not args.force:
        raise CliError(refusal(proposal.scope, seen) + " (the incident was not resolved)", EXIT_FAILED)
    args.reason = args.reason or args.note or f"false positive: incident {incident_id} resolved as such"

    def step(_settings: Settings, record: IncidentRecord, by: str) -> dict[str, Any]:
        args.by = args.by or by
        result = create(settings, repo, proposal.scope, args, incident_id=record.id, history=history)
        result["created"] = True
        result["covers_incident_events"] = {"covered": proposal.covers, "events": proposal.events}
        result["summary"] = "; ".join(
            [
                f"the narrowest scope covers {proposal.covers} of the incident's "
                f"{proposal.events} stored events",
                *created_lines(result),
            ]
        )
        return result

    return step
