"""The analysis written without a model: the floor is the severity, the text is templated.

The runtime's ``rules`` provider answers with it, and the worker decides with it when a
model cannot (docs/architecture.md, "Severity").
"""

from __future__ import annotations

from secops_core.contract import Analysis, SeverityFloorInfo, WafEvent
from secops_core.text import sanitize_text
from secops_core.waf.actions import COUNTED_ACTIONS, INTERSTITIAL_ACTIONS, REACHED_ACTIONS
from secops_core.waf.catalog import CLASSES

RULES_PROVIDER = "rules"
# Operators read these in a console and in notifications: long enough for a paragraph,
# short enough that a model cannot paste a payload essay into an alert.
ANALYSIS_TEXT_CHARS = 4000
ATTACK_TYPE_CHARS = 120
# Text the rules provider quotes from the request (target, source) or the floor.
_RULES_TARGET_CHARS = 200
_RULES_FIELD_CHARS = 120
_RULES_REASON_CHARS = 500

# Classes, their operator wording, kind and checks come from the WAF catalog.


def _attack_type(attack_class: str) -> str:
    key = attack_class.strip().lower()
    if key in CLASSES:
        return CLASSES[key].title
    readable = sanitize_text(key.replace("_", " ").replace("-", " "), ATTACK_TYPE_CHARS)
    return readable.capitalize() or CLASSES["unknown"].title


def _target(event: WafEvent) -> str:
    method = sanitize_text(event.http_method or "", _RULES_FIELD_CHARS)
    host = sanitize_text(event.host or "", _RULES_FIELD_CHARS)
    uri = sanitize_text(event.uri, _RULES_TARGET_CHARS)
    return " ".join(part for part in (method, f"{host}{uri}") if part)


def _source(event: WafEvent) -> str:
    ip = sanitize_text(event.source_ip, _RULES_FIELD_CHARS)
    country = sanitize_text(event.country or "", _RULES_FIELD_CHARS)
    return f"{ip} ({country})" if country else ip


def _request_ref(event: WafEvent) -> str:
    if event.request_id:
        return f"request id {sanitize_text(event.request_id, _RULES_FIELD_CHARS)}"
    return f"requests from {_source(event)} at {event.timestamp.isoformat()}"


def _was_counted(event: WafEvent) -> bool:
    """True when a rule matched in COUNT mode: the request went on to the application."""
    return event.action.upper() == "COUNT" or any(
        match.action.upper() in COUNTED_ACTIONS for match in event.matches
    )


def _disposition(event: WafEvent) -> str:
    action = event.action.upper()
    if action in REACHED_ACTIONS:
        return f"WAF action {action}: the request reached the application"
    if action in INTERSTITIAL_ACTIONS:
        return f"WAF action {action}: the client had to pass a {action.lower()} first"
    return f"WAF action {sanitize_text(action, _RULES_FIELD_CHARS)}: the request was stopped"


def _follow_up(event: WafEvent, floor: SeverityFloorInfo) -> str:
    attack_class = floor.attack_class.strip().lower()
    action = event.action.upper()
    rule = sanitize_text(floor.rule, _RULES_FIELD_CHARS)
    reached = action in REACHED_ACTIONS
    known = CLASSES.get(attack_class)
    check = known.follow_up if known is not None else None
    if reached and check:
        steps = [f"Review the application logs for {_request_ref(event)}", check]
        if _was_counted(event):
            steps.append(f"consider switching rule {rule} from COUNT to BLOCK")
        else:
            steps.append(
                f"find out why rule {rule} did not block it (rule action, scope-down statement, "
                "an earlier allow rule) and consider making it BLOCK"
            )
        return "; ".join(steps) + "."
    if known is not None and known.attack:
        return (
            f"No action needed for this request: WAF stopped it. The monitor escalates if "
            f"{_source(event)} keeps sending it; if the source keeps probing, consider adding it "
            "to a blocking IP set."
        )
    if attack_class == "none":
        return "No action needed: no rule matched and the default action allowed the request."
    if floor.severity == 0:
        return "No action needed: the web ACL's own allow rule admitted the request."
    if attack_class == "unknown":
        return (
            f"Classify rule {rule} (managed group, rule type or naming) so its events get a "
            "meaningful severity, then review whether this request was legitimate."
        )
    if action in INTERSTITIAL_ACTIONS or floor.severity <= 1:
        return "No action needed; review bot-control metrics if the volume from this source grows."
    if reached:
        return (
            f"Check whether traffic from {_source(event)} is legitimate; if not, consider "
            f"switching rule {rule} to BLOCK."
        )
    return (
        f"No action needed unless legitimate clients are affected; check rule {rule} for false "
        f"positives if {_source(event)} is a known client."
    )


def rules_analysis(event: WafEvent, floor: SeverityFloorInfo, degraded: bool = False) -> Analysis:
    """Analyze without a model: the floor is the severity, the text is templated.

    ``degraded`` marks an analysis made because the configured model failed.
    """
    rule = sanitize_text(floor.rule, _RULES_FIELD_CHARS)
    reason = sanitize_text(floor.reason, _RULES_REASON_CHARS).rstrip(".")
    attack_type = _attack_type(floor.attack_class)
    if floor.attack_class.strip().lower() == "none":
        matched = f"No rule matched {_target(event)} from {_source(event)}."
    else:
        matched = f"{attack_type}: rule {rule} matched {_target(event)} from {_source(event)}."
    analysis = (
        f"{matched} {_disposition(event)}. Severity {floor.severity} (deterministic floor): "
        f"{reason}. Assessed by rules, without a model."
    )
    return Analysis(
        severity_rating=floor.severity,
        severity_floor=floor.severity,
        model_severity=None,
        security_analysis=sanitize_text(analysis, ANALYSIS_TEXT_CHARS),
        follow_up_suggestion=sanitize_text(_follow_up(event, floor), ANALYSIS_TEXT_CHARS),
        attack_type=attack_type,
        analyzed_by=RULES_PROVIDER,
        floor=floor,
        degraded=degraded,
    )
