"""The AWS WAF change the tuning report proposes for a rule, as JSON an operator pastes
into the web ACL (docs/architecture.md, "Tuning report").

The patterns are AWS WAF's own tuning guidance:

- **label-match exception** (a managed rule misfiring on one path): the rule is set to
  COUNT in its group (``RuleActionOverrides``), and a rule placed right after the group
  blocks requests carrying the rule's label unless they are for that path;
- **scope-down statement**: the whole managed group skips the path (``ScopeDownStatement``
  with a ``NotStatement``) — simpler, and broader: every rule of the group stops there;
- **rule action override to COUNT**: the rule misfires on many paths; count it while
  the rule is reviewed;
- **safe to move to BLOCK**: a COUNT rule whose every source looked like an attacker.

A rule of the web ACL's own (not a managed group) gets fragments instead: its action,
or the path's ``NotStatement`` to AND into its statement, since the report cannot know
the rest of its statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.tuning.report import ONE_PATH_SHARE, RuleFinding, RuleId

ProposalKind = Literal[
    "label_match_exception", "scope_down", "rule_action_override", "safe_to_block", "custom_rule"
]

# Rule names and metric names: letters, digits, _ and -, at most 128 characters (WAFv2).
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_PLACEHOLDERS = {"{n}": "[0-9]+", "{uuid}": "[0-9a-fA-F-]{32,36}", "{hex}": "[0-9a-fA-F]{16,}"}


@dataclass(frozen=True)
class Proposal:
    kind: ProposalKind
    title: str
    detail: str
    # Whole WAFv2 Rule objects for the web ACL's Rules list (validated as UpdateWebACL).
    rules: tuple[dict[str, Any], ...] = ()
    # Or one fragment of the named WAFv2 shape (validated against that shape).
    fragment: dict[str, Any] | None = None
    fragment_shape: str | None = None
    problems: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "title": self.title, "detail": self.detail}
        if self.rules:
            data["rules"] = list(self.rules)
        if self.fragment is not None:
            data["fragment"] = {"shape": self.fragment_shape, "json": self.fragment}
        data["validated"] = not self.problems
        if self.problems:
            data["problems"] = list(self.problems)
        return data


def waf_name(text: str) -> str:
    return _NAME_CHARS.sub("-", text)[:128] or "rule"


def path_statement(uri_template: str) -> dict[str, Any]:
    """A statement matching the URI path of a template: exact, a prefix (``/x/*``), or a
    regular expression where ids were collapsed (``/orders/{n}``)."""
    transformations = [{"Priority": 0, "Type": "NONE"}]
    if uri_template.endswith("/*"):
        return {
            "ByteMatchStatement": {
                "SearchString": uri_template[:-1],
                "FieldToMatch": {"UriPath": {}},
                "TextTransformations": transformations,
                "PositionalConstraint": "STARTS_WITH",
            }
        }
    if not any(p in uri_template for p in _PLACEHOLDERS):
        return {
            "ByteMatchStatement": {
                "SearchString": uri_template,
                "FieldToMatch": {"UriPath": {}},
                "TextTransformations": transformations,
                "PositionalConstraint": "EXACTLY",
            }
        }
    pattern = re.escape(uri_template)
    for placeholder, regex in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape(placeholder), regex)
    return {
        "RegexMatchStatement": {
            "RegexString": f"^{pattern}$",
            "FieldToMatch": {"UriPath": {}},
            "TextTransformations": transformations,
        }
    }


def _visibility(name: str) -> dict[str, Any]:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": waf_name(name)}


def _group_rule(rule: RuleId, **statement: Any) -> dict[str, Any]:
    """The managed group's entry in the web ACL (named as the console names it)."""
    name = f"AWS-{rule.group}"
    return {
        "Name": waf_name(name),
        "Priority": 0,
        "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": rule.group, **statement}},
        "OverrideAction": {"None": {}},
        "VisibilityConfig": _visibility(name),
    }


def _not(path: str) -> dict[str, Any]:
    return {"NotStatement": {"Statement": path_statement(path)}}


def _count_override(rule: RuleId) -> dict[str, Any]:
    return {"Name": rule.rule_id, "ActionToUse": {"Count": {}}}


_KEEP_PRIORITY = (
    "Replace the group's entry in the web ACL, keeping its Priority (shown as 0) and any "
    "other RuleActionOverrides it has."
)


def propose(finding: RuleFinding) -> list[Proposal]:
    """The changes worth proposing for one rule of the report (none for most rules)."""
    rule = finding.rule
    if finding.verdict == "safe_to_block":
        return [_safe_to_block(rule)]
    if finding.verdict != "likely_false_positive":
        return []
    top = finding.top_uri
    one_path = top is not None and top[1] >= ONE_PATH_SHARE
    if not rule.managed_by_aws:
        return [_custom_rule(rule, top[0] if top and one_path else None)]
    proposals = []
    if one_path and top is not None:
        path = top[0]
        if finding.label is not None:
            proposals.append(_label_match_exception(rule, finding.label, path))
        proposals.append(
            Proposal(
                "scope_down",
                f"Skip {path} for the whole {rule.group} group",
                "A scope-down statement: the group no longer inspects requests for this path, so "
                f"none of its rules protect it (broader than the label-match exception). {_KEEP_PRIORITY}",
                rules=(
                    _group_rule(
                        rule, ScopeDownStatement={"NotStatement": {"Statement": path_statement(path)}}
                    ),
                ),
            )
        )
    if set(finding.stats.by_action) == {"COUNT"}:
        return proposals  # counted already: an override to COUNT would change nothing
    proposals.append(
        Proposal(
            "rule_action_override",
            f"Count {rule.rule_id} instead of acting on it",
            "A rule action override: the rule's matches are counted and labelled, never blocked, "
            f"while it is reviewed. {_KEEP_PRIORITY}",
            rules=(_group_rule(rule, RuleActionOverrides=[_count_override(rule)]),),
        )
    )
    return proposals


def _label_match_exception(rule: RuleId, label: str, path: str) -> Proposal:
    name = f"{rule.rule_id}-except-path"
    exception = {
        "Name": waf_name(name),
        "Priority": 1,
        "Statement": {
            "AndStatement": {
                "Statements": [
                    {"LabelMatchStatement": {"Scope": "LABEL", "Key": label}},
                    _not(path),
                ]
            }
        },
        "Action": {"Block": {}},
        "VisibilityConfig": _visibility(name),
    }
    return Proposal(
        "label_match_exception",
        f"Block {rule.rule_id} everywhere except {path}",
        "The label-match exception: the rule is counted in its group (it still adds its label), "
        "and a rule right after the group blocks requests with that label unless they are for "
        f"the path. {_KEEP_PRIORITY} Give the new rule the next Priority after the group's.",
        rules=(_group_rule(rule, RuleActionOverrides=[_count_override(rule)]), exception),
    )


def _safe_to_block(rule: RuleId) -> Proposal:
    if rule.managed_by_aws:
        return Proposal(
            "safe_to_block",
            f"Safe to move {rule.rule_id} to BLOCK",
            "Every source it matched in the window looked like an attacker (another rule matched "
            "it, or a tool's request profile). In the group's RuleActionOverrides, replace the "
            "Count override of this rule with this one (or remove it: the rule's own action "
            "is Block).",
            fragment={"Name": rule.rule_id, "ActionToUse": {"Block": {}}},
            fragment_shape="RuleActionOverride",
        )
    return Proposal(
        "safe_to_block",
        f"Safe to move {rule.rule_id} to BLOCK",
        "Every source it matched in the window looked like an attacker. Set the rule's Action to this.",
        fragment={"Block": {}},
        fragment_shape="RuleAction",
    )


def _custom_rule(rule: RuleId, path: str | None) -> Proposal:
    if path is not None:
        return Proposal(
            "custom_rule",
            f"Exclude {path} from {rule.rule_id}",
            "The web ACL's own rule: AND this statement into its Statement (an AndStatement of "
            "its current statement and this one), so the rule skips the path.",
            fragment=_not(path),
            fragment_shape="Statement",
        )
    return Proposal(
        "custom_rule",
        f"Count {rule.rule_id} instead of acting on it",
        "The web ACL's own rule misfires on many paths: set its Action to Count while it is reviewed.",
        fragment={"Count": {}},
        fragment_shape="RuleAction",
    )
