"""A native AWS WAF log record (``httpRequest``, ``terminatingRuleId``, ``ruleGroupList`` ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secops_core.contract import (
    RuleMatch,
    WafEvent,
)
from secops_core.errors import ErrorCode
from secops_core.ingest.fields import (
    as_str,
    clean_id,
    dicts,
    event_key_for,
    event_time,
    fail,
    header_value,
    opt_str,
    parse_action,
    parse_headers,
    parse_ip,
    parse_labels,
    parse_method,
)
from secops_core.limits import (
    MAX_FIELD_CHARS,
    MAX_ID_CHARS,
    MAX_RULE_MATCHES,
)
from secops_core.redaction import redact_query
from secops_core.waf.actions import INTERRUPTING_ACTIONS, REACHED_ACTIONS
from secops_core.waf.names import DEFAULT_ACTION_RULE, group_name


def from_waf_log(record: dict[str, Any]) -> WafEvent:
    request: Mapping[str, Any] = record["httpRequest"]
    # AWS documents records with "uri": "" (a JSON-body SQL injection block): the
    # request is kept with an empty path rather than an invented "/".
    missing = [f for f in ("clientIp",) if request.get(f) in (None, "")]
    if record.get("timestamp") in (None, ""):
        missing.insert(0, "timestamp")
    if missing:
        raise fail(ErrorCode.INVALID_EVENT, "WAF log record without " + ", ".join(missing))
    headers, headers_cut = parse_headers(request.get("headers"))
    labels, labels_cut = parse_labels(record.get("labels"))
    action = parse_action(record.get("action"))
    matches, matches_cut = _waf_matches(record, action)
    terminating_id = opt_str(record, "terminatingRuleId", max_chars=MAX_ID_CHARS)
    terminating_type = opt_str(record, "terminatingRuleType", max_chars=64)
    rule_name, rule_group = _deciding_rule(terminating_id, terminating_type, matches)
    args = opt_str(request, "args")
    return WafEvent(
        event_key=event_key_for(record),
        source_format="waf_log",
        event_id=None,
        timestamp=event_time(record.get("timestamp")),
        action=action,
        source_ip=parse_ip(request.get("clientIp")),
        country=opt_str(request, "country", max_chars=8),
        http_method=parse_method(request.get("httpMethod")),
        host=opt_str(request, "host") or header_value(headers, "host"),
        uri=opt_str(request, "uri") or "",
        args=redact_query(args) if args else None,
        user_agent=header_value(headers, "user-agent"),
        headers=headers,
        rule_name=rule_name,
        rule_group=rule_group,
        terminating_rule_type=terminating_type,
        matches=matches,
        labels=labels,
        request_id=opt_str(request, "requestId", max_chars=MAX_ID_CHARS),
        web_acl=opt_str(record, "webaclId", max_chars=MAX_FIELD_CHARS),
        truncated=headers_cut or labels_cut or matches_cut,
    )


def _deciding_rule(
    terminating_id: str | None, terminating_type: str | None, matches: tuple[RuleMatch, ...]
) -> tuple[str, str | None]:
    """The rule that decided, preferring the inner rule of a managed rule group."""
    for match in matches:
        if match.terminating:
            return match.rule_id, match.rule_group
    if terminating_id and terminating_id != DEFAULT_ACTION_RULE:
        if (terminating_type or "").upper() in {"MANAGED_RULE_GROUP", "GROUP"}:
            return terminating_id, group_name(terminating_id)
        return terminating_id, None
    # ALLOW by default action: the first counted match says what was seen.
    for match in matches:
        return match.rule_id, match.rule_group
    return DEFAULT_ACTION_RULE, None


def _waf_matches(record: Mapping[str, Any], action: str) -> tuple[tuple[RuleMatch, ...], bool]:
    found: list[RuleMatch] = []
    terminating_id = record.get("terminatingRuleId")
    terminating_type = str(record.get("terminatingRuleType") or "").upper()
    in_group = False
    for entry in dicts(record.get("ruleGroupList")):
        group = group_name(as_str(entry.get("ruleGroupId")))
        terminating = entry.get("terminatingRule")
        if isinstance(terminating, Mapping) and terminating.get("ruleId"):
            match = _match(terminating, group, default_action=action, terminating=True)
            if action in REACHED_ACTIONS and match.action in INTERRUPTING_ACTIONS:
                # The whole group's action was overridden to Count: the log keeps the
                # rule's own BLOCK inside the group, but the request went through.
                match = match.model_copy(update={"action": "COUNT", "terminating": False})
            else:
                in_group = True
            found.append(match)
        for rule in dicts(entry.get("nonTerminatingMatchingRules")):
            found.append(_match(rule, group, default_action="COUNT"))
        for rule in dicts(entry.get("excludedRules")):
            found.append(_match(rule, group, default_action="EXCLUDED_AS_COUNT", action_key="exclusionType"))
    for rule in dicts(record.get("nonTerminatingMatchingRules")):
        found.append(_match(rule, None, default_action="COUNT"))
    for rule in dicts(record.get("rateBasedRuleList")):
        name = as_str(rule.get("rateBasedRuleName")) or as_str(rule.get("rateBasedRuleId"))
        if name and name == terminating_id:
            in_group = True
            found.append(
                RuleMatch(rule_id=clean_id(name, "rateBasedRuleName"), action=action, terminating=True)
            )
    if (
        not in_group
        and isinstance(terminating_id, str)
        and terminating_id
        and terminating_id != DEFAULT_ACTION_RULE
        and terminating_type not in {"MANAGED_RULE_GROUP", "GROUP"}
    ):
        details = tuple(
            as_str(d.get("conditionType")) or "" for d in dicts(record.get("terminatingRuleMatchDetails"))
        )
        found.insert(
            0,
            RuleMatch(
                rule_id=clean_id(terminating_id, "terminatingRuleId"),
                action=action,
                terminating=True,
                condition_types=tuple(d for d in details if d),
            ),
        )
    cut = len(found) > MAX_RULE_MATCHES
    return tuple(found[:MAX_RULE_MATCHES]), cut


def _match(
    rule: Mapping[str, Any],
    group: str | None,
    *,
    default_action: str,
    terminating: bool = False,
    action_key: str = "action",
) -> RuleMatch:
    rule_action = as_str(rule.get(action_key)) or default_action
    details = tuple(as_str(d.get("conditionType")) or "" for d in dicts(rule.get("ruleMatchDetails")))
    return RuleMatch(
        rule_id=clean_id(as_str(rule.get("ruleId")) or "unknown", "ruleId"),
        rule_group=group,
        action=rule_action.upper()[:32],
        terminating=terminating,
        condition_types=tuple(d.upper()[:64] for d in details if d),
    )
