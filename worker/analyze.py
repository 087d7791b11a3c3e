"""``secops analyze``: run the analyze workflow in-process over a stream of events."""

from __future__ import annotations

import json
from typing import IO, Any

from secops_core.contract import error_body
from secops_core.errors import ErrorCode
from secops_core.ingest.normalize import is_request
from worker.agents.transport import Transport
from worker.inputs import read_records


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The fields an operator scans for, from a full analyze response."""
    analysis = result.get("analysis", {})
    return {
        "event_key": result.get("event_key"),
        "severity_floor": analysis.get("severity_floor"),
        "model_severity": analysis.get("model_severity"),
        "severity_rating": analysis.get("severity_rating"),
        "triage": result.get("triage", {}).get("action"),
        "attack_type": analysis.get("attack_type"),
        "analyzed_by": analysis.get("analyzed_by"),
        "degraded": analysis.get("degraded", False),
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
