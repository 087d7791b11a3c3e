"""Why a record got its floor: the pure part of ``secops rules explain``."""

from __future__ import annotations

from typing import Any

from secops_core.contract import SeverityFloorInfo
from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import explain_floor
from secops_core.waf.operator import OperatorCatalog

# A record rarely has more; the table stays readable and the JSON bounded.
MAX_FINDINGS_SHOWN = 20


def _finding(info: SeverityFloorInfo) -> dict[str, Any]:
    reason = info.floor_reason
    return {
        "severity": info.severity,
        "attack_class": info.attack_class,
        "source": reason.source if reason else None,
        "matched": reason.matched if reason else info.rule,
        "entry": reason.entry if reason else None,
        "reason": info.reason,
    }


def explain_record(raw: Any, operator: OperatorCatalog) -> dict[str, Any]:
    """Normalize one record and say which rule, label or pattern decided its floor.

    Raises ``ContractError`` for a record the pipeline would reject, with the same
    message the dead-letter queue would record.
    """
    event = normalize_event(raw)
    floor, findings = explain_floor(event, operator)
    decided = floor.floor_reason
    return {
        "event_key": event.event_key,
        "action": event.action,
        "rule": event.rule_name,
        "rule_group": event.rule_group,
        "severity": floor.severity,
        "attack_class": floor.attack_class,
        "disposition": decided.disposition if decided else None,
        "decided_by": _finding(floor),
        "operator_catalog": operator.path or None,
        "findings": [_finding(info) for info in findings[:MAX_FINDINGS_SHOWN]],
    }


def render_explanation(explanation: dict[str, Any]) -> str:
    """The explanation as a short text table for a terminal."""
    decided = explanation["decided_by"]
    by = f"{decided['source']} {decided['matched']}"
    if decided.get("entry"):
        by += f" ({decided['entry']})"
    lines = [
        f"event     {explanation['event_key']}",
        f"action    {explanation['action']} ({explanation['disposition']})",
        f"floor     {explanation['severity']} {explanation['attack_class']}",
        f"decided   {by}",
        f"why       {decided['reason']}",
        f"catalog   {explanation['operator_catalog'] or 'built-in only (SECOPS_RULES_CATALOG unset)'}",
        "",
        f"{'sev':<4}{'class':<24}{'source':<11}matched",
    ]
    lines += [
        f"{f['severity']:<4}{f['attack_class']:<24}{f['source'] or '-':<11}{f['matched']}"
        for f in explanation["findings"]
    ]
    return "\n".join(lines)
