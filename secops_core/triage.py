"""incident_triager: the deterministic routing of a severity to an action and status."""

from __future__ import annotations

from secops_core.contract import TriageDecision

# docs/architecture.md, "Severity": 0-2 close, 3 monitor, 4-5 escalate.
CLOSE_MAX = 2
MONITOR_SEVERITY = 3


def triage(severity: int) -> TriageDecision:
    """Route a final severity (0-5) to auto_close, monitor or escalate."""
    if not 0 <= severity <= 5:
        raise ValueError(f"severity must be 0-5, got {severity}")
    if severity <= CLOSE_MAX:
        return TriageDecision(
            action="auto_close",
            status="closed",
            severity_rating=severity,
            reason=f"severity {severity} is at most {CLOSE_MAX}: no action needed",
        )
    if severity == MONITOR_SEVERITY:
        return TriageDecision(
            action="monitor",
            status="monitoring",
            severity_rating=severity,
            reason="severity 3: watched by the monitor for repeated source IP + URI patterns",
        )
    return TriageDecision(
        action="escalate",
        status="escalated",
        severity_rating=severity,
        reason=f"severity {severity}: escalated to the critical topic",
    )
