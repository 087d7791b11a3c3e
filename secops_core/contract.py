"""The wire contract between the worker and the agent runtime.

Owned by the runtime, imported by the worker. Only pydantic and the standard library
are imported here so the worker can use it without pulling in Strands or a model SDK.

Requests (each also accepted wrapped as ``{"prompt": "<the same JSON as a string>"}``):

- ``{"action": "analyze", "event": {...}}``
- ``{"action": "monitor", "hours": 24, "events": [...]}``
- ``{"action": "triage_only", "event": {...}, "analysis": {"severity_rating": 4, ...}}``

Responses are ``{"status": "success", "workflow": ..., ...}`` or
``{"status": "error", "error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from secops_core.errors import RETRYABLE_CODES, ErrorCode
from secops_core.limits import MAX_MONITOR_HOURS

Severity = Annotated[int, Field(ge=0, le=5)]
TriageAction = Literal["auto_close", "monitor", "escalate"]
EventStatus = Literal["closed", "monitoring", "escalated"]
Workflow = Literal["analyze", "monitor", "triage_only"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Header(_Frozen):
    name: str
    value: str


class RuleMatch(_Frozen):
    """One rule that matched the request, wherever the WAF log recorded it."""

    rule_id: str
    # Rule group without vendor prefix or version, e.g. ``AWSManagedRulesSQLiRuleSet``;
    # None for a rule of the web ACL itself.
    rule_group: str | None = None
    # BLOCK, ALLOW, COUNT, CAPTCHA, CHALLENGE, or EXCLUDED_AS_COUNT for an excluded rule.
    action: str
    terminating: bool = False
    # Match details (``conditionType``): SQL_INJECTION, XSS, ...
    condition_types: tuple[str, ...] = ()


class WafEvent(_Frozen):
    """One WAF event, normalized from either input shape and already redacted."""

    event_key: str
    source_format: Literal["simplified", "waf_log"]
    event_id: str | None = None
    timestamp: datetime
    # What the WAF did to the request: ALLOW, BLOCK, COUNT, CAPTCHA, CHALLENGE.
    action: str
    source_ip: str
    country: str | None = None
    http_method: str | None = None
    host: str | None = None
    uri: str
    args: str | None = None
    user_agent: str | None = None
    headers: tuple[Header, ...] = ()
    # The rule that decided: the inner rule of a managed group when known,
    # ``Default_Action`` when nothing matched.
    rule_name: str
    rule_group: str | None = None
    terminating_rule_type: str | None = None
    matches: tuple[RuleMatch, ...] = ()
    labels: tuple[str, ...] = ()
    request_id: str | None = None
    web_acl: str | None = None
    # True when headers, labels or matches were cut to the limits in ``limits.py``.
    truncated: bool = False


FloorSource = Literal[
    "rule", "label", "condition", "group", "name", "rate_based", "operator", "default", "action"
]
FloorDisposition = Literal["blocked", "reached", "interrupted", "unknown"]


class FloorReason(_Frozen):
    """What decided the floor, for the record and ``secops rules explain``."""

    # rule: a managed rule id; label: a WAF label; condition: a custom rule's match
    # details; group: a managed group whose inner rule is unknown; name: a token of a
    # custom rule's name; rate_based: a rate-based rule; operator: the operator's own
    # catalog; default: the documented default for an unrecognized rule; action: no
    # rule, only the web ACL's action.
    source: FloorSource
    # The rule, label or pattern that matched, as written in the event or the catalog.
    matched: str
    attack_class: str
    disposition: FloorDisposition
    # The operator catalog entry ("<file> line N") when source is "operator".
    entry: str | None = None


class SeverityFloorInfo(_Frozen):
    """The deterministic floor as it travels on the wire."""

    severity: Severity
    attack_class: str
    reason: str
    rule: str
    # Absent in records written before it existed.
    floor_reason: FloorReason | None = None


class Analysis(_Frozen):
    """The security analyst's result, with the floor and the model's own rating."""

    severity_rating: Severity
    severity_floor: Severity
    model_severity: Severity | None = None
    security_analysis: str
    follow_up_suggestion: str
    attack_type: str
    analyzed_by: str
    floor: SeverityFloorInfo | None = None
    # True when the configured model was not used (it failed and the rules answered).
    degraded: bool = False


class AnalysisInput(BaseModel):
    """An analysis supplied by the caller for ``triage_only`` (the seed's shape)."""

    model_config = ConfigDict(extra="allow")

    # Strict: ``true`` or ``"4"`` is a caller's mistake, not a severity.
    severity_rating: Annotated[int, Field(ge=0, le=5, strict=True)]
    security_analysis: str | None = None
    follow_up_suggestion: str | None = None
    attack_type: str | None = None


class TriageDecision(_Frozen):
    action: TriageAction
    status: EventStatus
    severity_rating: Severity
    reason: str


class Pattern(_Frozen):
    """A group of monitored events from one source IP to one normalized URI."""

    pattern_key: str
    source_ip: str
    normalized_uri: str
    count: int
    first_seen: datetime
    last_seen: datetime
    rules: tuple[str, ...]
    event_keys: tuple[str, ...]
    max_severity: Severity
    threshold: int
    threshold_met: bool
    narrative: str


# ---- requests ------------------------------------------------------------------------


class AnalyzeRequest(_Frozen):
    action: Literal["analyze"] = "analyze"
    event: WafEvent


class TriageOnlyRequest(_Frozen):
    action: Literal["triage_only"] = "triage_only"
    event: WafEvent
    analysis: AnalysisInput


class MonitorRequest(_Frozen):
    action: Literal["monitor"] = "monitor"
    hours: Annotated[int, Field(ge=1, le=MAX_MONITOR_HOURS)] = 24
    events: tuple[WafEvent, ...] = ()
    # Minimum events per pattern for the threshold; the worker passes its setting.
    threshold: Annotated[int, Field(ge=1)] | None = None
    # When the window ends (defaults to the runtime's clock): events older than
    # ``hours`` before it are ignored, so a stale list cannot escalate.
    now: datetime | None = None


Request = AnalyzeRequest | TriageOnlyRequest | MonitorRequest


# ---- responses -----------------------------------------------------------------------


class AnalyzeResponse(_Frozen):
    status: Literal["success"] = "success"
    workflow: Literal["analyze"] = "analyze"
    event_key: str
    event: WafEvent
    analysis: Analysis
    triage: TriageDecision


class TriageOnlyResponse(_Frozen):
    status: Literal["success"] = "success"
    workflow: Literal["triage_only"] = "triage_only"
    event_key: str
    analysis: Analysis
    triage: TriageDecision


class MonitorResponse(_Frozen):
    status: Literal["success"] = "success"
    workflow: Literal["monitor"] = "monitor"
    hours: int
    events_considered: int
    events_in_window: int
    threshold: int
    patterns: tuple[Pattern, ...]


class ErrorBody(_Frozen):
    code: ErrorCode
    message: str
    retryable: bool = False


class ErrorResponse(_Frozen):
    status: Literal["error"] = "error"
    error: ErrorBody


Response = AnalyzeResponse | TriageOnlyResponse | MonitorResponse


def parse_response(data: dict[str, Any]) -> Response | ErrorResponse:
    """Parse a runtime response body (used by the worker's transports)."""
    if data.get("status") == "error":
        return ErrorResponse.model_validate(data)
    workflow = data.get("workflow")
    models: dict[object, type[Response]] = {
        "analyze": AnalyzeResponse,
        "triage_only": TriageOnlyResponse,
        "monitor": MonitorResponse,
    }
    model = models.get(workflow, AnalyzeResponse)
    return model.model_validate(data)


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    return ErrorResponse(
        error=ErrorBody(code=code, message=message, retryable=code in RETRYABLE_CODES)
    ).model_dump(mode="json")
