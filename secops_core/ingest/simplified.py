"""The simplified event of the original system (``id, timestamp, action, source_ip, uri ...``)."""

from __future__ import annotations

from typing import Any

from secops_core.contract import (
    RuleMatch,
    WafEvent,
)
from secops_core.errors import ErrorCode
from secops_core.ingest.fields import (
    event_key_for,
    event_time,
    fail,
    header_value,
    opt_id,
    opt_str,
    parse_action,
    parse_headers,
    parse_ip,
    parse_labels,
    parse_method,
    required_str,
)
from secops_core.limits import (
    MAX_FIELD_CHARS,
    MAX_ID_CHARS,
)
from secops_core.redaction import redact_query
from secops_core.waf.names import DEFAULT_ACTION_RULE, group_name


def from_simplified(record: dict[str, Any]) -> WafEvent:
    missing = [f for f in ("timestamp", "action", "source_ip", "uri") if record.get(f) in (None, "")]
    if missing:
        raise fail(
            ErrorCode.INVALID_EVENT,
            "not a WAF event: missing "
            + ", ".join(missing)
            + " (expected a simplified event or a WAF log record with httpRequest)",
        )
    headers, headers_cut = parse_headers(record.get("headers"))
    user_agent = opt_str(record, "user_agent") or header_value(headers, "user-agent")
    labels, labels_cut = parse_labels(record.get("labels"))
    rule_name = opt_str(record, "rule_name", max_chars=MAX_ID_CHARS) or opt_str(
        record, "rule", max_chars=MAX_ID_CHARS
    )
    rule_group = group_name(opt_str(record, "rule_group", max_chars=MAX_ID_CHARS))
    action = parse_action(record.get("action"))
    matches: tuple[RuleMatch, ...] = ()
    if rule_name:
        matches = (RuleMatch(rule_id=rule_name, rule_group=rule_group, action=action, terminating=True),)
    args = opt_str(record, "args") or opt_str(record, "query_string") or opt_str(record, "query")
    return WafEvent(
        event_key=event_key_for(record),
        source_format="simplified",
        event_id=opt_id(record.get("id")),
        timestamp=event_time(record.get("timestamp")),
        action=action,
        source_ip=parse_ip(record.get("source_ip")),
        country=opt_str(record, "country", max_chars=8),
        http_method=parse_method(record.get("http_method") or record.get("method")),
        host=opt_str(record, "host") or header_value(headers, "host"),
        uri=required_str(record, "uri"),
        args=redact_query(args) if args else None,
        user_agent=user_agent,
        headers=headers,
        rule_name=rule_name or DEFAULT_ACTION_RULE,
        rule_group=rule_group,
        terminating_rule_type=opt_str(record, "rule_type", max_chars=64),
        matches=matches,
        labels=labels,
        request_id=opt_str(record, "request_id", max_chars=MAX_ID_CHARS),
        web_acl=opt_str(record, "web_acl", max_chars=MAX_FIELD_CHARS),
        truncated=headers_cut or labels_cut,
    )
