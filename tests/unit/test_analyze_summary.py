"""What `secops analyze` prints per event: who decided and why, not only the numbers."""

from __future__ import annotations

import io
import json
from typing import Any

from secops_core.contract import Analysis, FloorReason, ModelOpinion, SeverityFloorInfo
from testkit.events import waf_record
from worker.agents.inprocess import InProcessTransport
from worker.ops.analyze import analyze_stream, summarize
from worker.settings import Settings

FLOOR = SeverityFloorInfo(
    severity=3,
    attack_class="sqli",
    reason="SQL injection blocked",
    rule="SQLi_BODY",
    floor_reason=FloorReason(source="rule", matched="SQLi_BODY", attack_class="sqli", disposition="blocked"),
)


def response(analysis: Analysis) -> dict[str, Any]:
    return {
        "status": "success",
        "workflow": "analyze",
        "event_key": "evt#1",
        "analysis": analysis.model_dump(mode="json"),
        "triage": {"action": "monitor"},
    }


def rules_text(**fields: Any) -> Analysis:
    return Analysis(
        severity_rating=3,
        severity_floor=3,
        security_analysis="rules",
        follow_up_suggestion="rules",
        attack_type="SQL injection",
        analyzed_by="rules",
        floor=FLOOR,
        **fields,
    )


def test_an_overruled_model_is_shown_as_overruled() -> None:
    # GIVEN a model that answered 0 below a floor of 3 (the rules text stands)
    opinion = ModelOpinion(
        model_id="m", severity=0, attack_type="none", security_analysis="benign", follow_up_suggestion="-"
    )
    overruled = rules_text(model_severity=0, model_overruled=True, model_opinion=opinion)
    # WHEN summarized
    line = summarize(response(overruled))
    # THEN the operator sees that a model answered and was overruled, and what set the floor
    assert line["model_severity"] == 0 and line["severity_rating"] == 3
    assert line["analyzed_by"] == "rules" and line["model_overruled"] is True
    assert line["degraded"] is False and line["degraded_reason"] is None
    assert line["floor_reason"] == {
        "source": "rule",
        "matched": "SQLi_BODY",
        "attack_class": "sqli",
        "disposition": "blocked",
        "entry": None,
    }


def test_a_degraded_analysis_says_why() -> None:
    # GIVEN no usable answer: the model timed out through its budget
    degraded = rules_text(degraded=True, degraded_reason="model_timeout")
    # THEN the reason is printed beside the flag
    line = summarize(response(degraded))
    assert line["degraded"] is True and line["degraded_reason"] == "model_timeout"
    assert line["model_overruled"] is False


def test_analyze_stream_prints_the_flags_as_json_lines() -> None:
    # GIVEN the in-process runtime with the rules provider, and a blocked SQLi record
    transport = InProcessTransport.from_settings(Settings(provider="rules"))
    out = io.StringIO()
    # WHEN the record is analyzed
    failures = analyze_stream(transport, io.StringIO(json.dumps(waf_record()) + "\n"), out)
    # THEN its line carries both flags, the degraded reason and the floor's reason
    line = json.loads(out.getvalue())
    assert failures == 0
    assert line["model_overruled"] is False and line["degraded"] is False
    assert line["degraded_reason"] is None
    assert line["floor_reason"]["source"] and line["floor_reason"]["matched"]
