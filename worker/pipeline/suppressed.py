"""An event an operator's suppression covers: closed at its floor, without a model call
or an incident, counted once for its suppression (docs/architecture.md, "Suppressions").
"""

from __future__ import annotations

from secops_core.contract import TriageDecision, WafEvent
from secops_core.rules_analysis import rules_analysis
from worker.store.records import Decided
from worker.suppressions.model import SuppressionMatch

# ``analyzed_by`` of a suppressed event: the rules' text, the floor's severity.
SUPPRESSED_BY = "suppressed"


def suppressed_decision(event: WafEvent, match: SuppressionMatch) -> Decided:
    """The one write of a suppressed event: its floor kept as the severity, closed by
    the operator's word (the only way an event closes above its floor)."""
    floor = match.floor
    suppression = match.suppression
    analysis = rules_analysis(event, floor).model_copy(update={"analyzed_by": SUPPRESSED_BY})
    decision = TriageDecision(
        action="auto_close",
        status="closed",
        severity_rating=floor.severity,
        reason=(
            f"closed by suppression {suppression.id} ({suppression.scope.text}), created by "
            f"{suppression.created_by}: {suppression.reason}"
        )[:1000],
    )
    return Decided(event, analysis, decision, suppressed_by=suppression.id)
