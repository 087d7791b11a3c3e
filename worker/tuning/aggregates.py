"""The per-window aggregates of counted log records (docs/architecture.md, "Relevance"),
read as the tuning report's rule counts (the :class:`worker.tuning.inputs.RuleCounts` seam).

A window counts one rule (the one that decided the floor) acting one way on one URI
template for an hour; the report adds its requests to that rule's matches, actions,
paths and time series.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from secops_core.waf.names import group_name, is_label
from worker.ports import WindowCountRepo
from worker.tuning.report import RuleCount, RuleId

_HOUR_FORMAT = "%Y-%m-%dT%H"


def rule_of(name: str) -> RuleId:
    """``group:rule`` (or a bare rule, or a label) as the report names rules."""
    if is_label(name):
        return RuleId(None, name)
    group, _, rule_id = name.rpartition(":")
    return RuleId(group_name(group) or None, rule_id)


class WindowRuleCounts:
    """``WindowRuleCounts(repo)``: the aggregates a :class:`WindowCountRepo` holds."""

    def __init__(self, repo: WindowCountRepo) -> None:
        self.repo = repo

    def iter_rule_counts(self, *, since: datetime, until: datetime) -> Iterator[RuleCount]:
        for window in self.repo.window_counts(since=since, until=until):
            key = window.key
            action = key.action.upper()
            yield RuleCount(
                rule=rule_of(key.rule),
                # A match the request was allowed through was counted, not acted on.
                action="COUNT" if action == "ALLOW" else action,
                window_start=datetime.strptime(key.hour, _HOUR_FORMAT).replace(tzinfo=UTC),
                count=window.requests,
                uri_template=key.uri_template or None,
                web_acl=key.web_acl or None,
            )
