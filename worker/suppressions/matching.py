"""Which events a suppression covers (docs/architecture.md, "Suppressions").

An event is suppressed only when all of these hold:

- its request is within the scope (URI template, method, host, source, web ACL);
- at least one finding of its floor is the scope's rule or label (a managed rule's
  own label counts as that rule: WAF adds it to every request the rule matches);
- no other finding that grades above 0 is outside the scope: a second rule, another
  label, a different attack class. Such an event is what the suppression was never
  about, so it keeps its floor and its triage.

The floor's findings (:func:`secops_core.waf.floor.explain_floor`) are the one
reading of what matched, the same the severity comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from secops_core.contract import SeverityFloorInfo, WafEvent
from secops_core.waf.names import group_name, is_label, key
from worker.suppressions.model import Scope

# A finding of the bare action (no rule matched) is not something that matched.
_NOT_A_MATCH = frozenset({"action"})


@dataclass(frozen=True)
class Coverage:
    """How one scope relates to one event."""

    request_in_scope: bool
    in_scope: tuple[SeverityFloorInfo, ...]
    # Findings above 0 that the scope does not cover: while any is here, no suppression.
    outside: tuple[SeverityFloorInfo, ...]

    @property
    def suppresses(self) -> bool:
        return self.request_in_scope and bool(self.in_scope) and not self.outside

    @property
    def touches(self) -> bool:
        """The scope's rule matched a request within its scope, suppressed or not."""
        return self.request_in_scope and bool(self.in_scope)


def finding_in_scope(scope: Scope, finding: SeverityFloorInfo) -> bool:
    """Whether one finding of the floor is the scope's rule or label."""
    name = finding.rule
    if is_label(name):
        last = key(name.rsplit(":", 1)[-1])
        if scope.label is not None:
            return name.lower() == scope.label.lower()
        return last == scope.rule_key
    group, _, rule_id = name.rpartition(":")
    if scope.label is not None:
        return key(rule_id) == scope.label_rule_key
    if key(rule_id) != scope.rule_key:
        return False
    return scope.group_key is None or key(group_name(group) or "") == scope.group_key


def cover(scope: Scope, event: WafEvent, findings: Sequence[SeverityFloorInfo]) -> Coverage:
    """How ``scope`` relates to ``event``, given the floor's ``findings`` for it."""
    request = scope.matches_request(
        uri=event.uri,
        method=event.http_method,
        host=event.host,
        source_ip=event.source_ip,
        web_acl=event.web_acl,
    )
    inside: list[SeverityFloorInfo] = []
    outside: list[SeverityFloorInfo] = []
    for finding in findings:
        if finding.floor_reason is not None and finding.floor_reason.source in _NOT_A_MATCH:
            continue
        if finding_in_scope(scope, finding):
            inside.append(finding)
        elif finding.severity > 0:
            outside.append(finding)
    return Coverage(request, tuple(inside), tuple(outside))
