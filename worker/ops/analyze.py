"""``secops analyze``: run the analyze workflow in-process over a stream of events."""

from __future__ import annotations

import json
from typing import IO, Any

from secops_core.contract import error_body
from secops_core.errors import ErrorCode
from secops_core.ingest.normalize import is_request
from worker.agents.transport import Transport
from worker.ops.inputs import read_records


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The fields an operator scans for, from a full analyze response.

    Who decided, and why, is explicit: ``model_overruled`` (a model answered and rated
    below the floor, so the rules text stands and ``model_severity`` is its rating),
    ``degraded`` with ``degraded_reason`` (no usable answer: the rules decided), and
    ``floor_reason`` (the rule, label or pattern that set the floor).
    """
    analysis = result.get("analysis", {})
    floor = analysis.get("floor") or {}
    return {
        "event_key": result.get("event_key"),
        "severity_floor": analysis.get("severity_floor"),
        "model_severity": analysis.get("model_severity"),
        "severity_rating": analysis.get("severity_rating"),
        "triage": result.get("triage", {}).get("action"),
        "attack_type": analysis.get("attack_type"),
        "analyzed_by": analysis.get("analyzed_by"),
        "model_overruled": analysis.get("model_overruled", False),
        "degraded": analysis.get("degraded", False),
        "degraded_reason": analysis.get("degraded_reason"),
        "floor_reason": floor.get("floor_reason"),
    }


def analyze_stream(runtime: Transport, stream: IO[str], out: IO[str]) -> int:
    """Print one JSON result per input record; returns how many records failed."""
    failures = 0
    for record in read_records(stream):
        if record.error is not None:
            body: dict[str, Any] = {"line": record.line, **error_body(ErrorCode.INVALID_JSON, record.error)}
        else:
            payload = record.value
            if isinstance(payload, dict) and "prompt" not in payload and not is_request(payload):
                payload = {"action": "analyze", "event": payload}
            result = runtime.invoke(payload)
            if result.get("status") == "success" and result.get("workflow") == "analyze":
                body = {"line": record.line, "status": "success", **summarize(result)}
            elif result.get("status") == "success":
                body = {"line": record.line, **result}
            else:
                body = {"line": record.line, **result}
        if body.get("status") != "success":
            failures += 1
        out.write(json.dumps(body, ensure_ascii=False) + "\n")
        out.flush()
    return failures
