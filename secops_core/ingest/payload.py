"""Payload decoding and runtime requests: bytes or JSON text -> a validated request."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from pydantic import ValidationError

from secops_core.contract import (
    AnalysisInput,
    AnalyzeRequest,
    MonitorRequest,
    Request,
    TriageOnlyRequest,
)
from secops_core.errors import ContractError, ErrorCode
from secops_core.ingest.events import normalize_event
from secops_core.ingest.fields import (
    clip,
    fail,
    first_error,
    loads_json,
    type_name,
)
from secops_core.limits import (
    MAX_MONITOR_EVENTS,
    MAX_PAYLOAD_BYTES,
)


def decode_payload(raw: bytes | str | Mapping[str, Any] | Any, *, parsed: bool = False) -> dict[str, Any]:
    """Turn a request body into a JSON object, unwrapping ``{"prompt": "<json>"}``.

    ``parsed`` says ``raw`` was already decoded from JSON (the HTTP app does that), so
    a ``str`` is a JSON string value, not JSON text to parse again.
    """
    if parsed and isinstance(raw, str):
        raise fail(ErrorCode.INVALID_PAYLOAD, "payload must be a JSON object, got string")
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise fail(ErrorCode.PAYLOAD_TOO_LARGE, f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(ErrorCode.INVALID_JSON, f"payload is not UTF-8: {exc.reason}") from None
    if isinstance(raw, str):
        raw = loads_json(raw, what="payload")
    if not isinstance(raw, Mapping):
        raise fail(ErrorCode.INVALID_PAYLOAD, f"payload must be a JSON object, got {type_name(raw)}")
    payload = dict(raw)
    prompt = payload.get("prompt")
    if "action" not in payload and prompt is not None:
        # The original agent was invoked as {"prompt": "<the request as a JSON string>"}.
        if isinstance(prompt, Mapping):
            inner: Any = prompt
        elif isinstance(prompt, str):
            inner = loads_json(prompt, what="prompt")
        else:
            raise fail(
                ErrorCode.INVALID_PAYLOAD,
                f"prompt must be a JSON string or object, got {type_name(prompt)}",
            )
        if not isinstance(inner, Mapping):
            raise fail(
                ErrorCode.INVALID_PAYLOAD,
                f"prompt must hold a JSON object, got {type_name(inner)}",
            )
        payload = dict(inner)
    return payload


REQUEST_ACTIONS = frozenset({"analyze", "monitor", "triage_only"})


def is_request(payload: Mapping[str, Any]) -> bool:
    """A runtime request rather than a bare event.

    Both carry an ``action`` (an event's is BLOCK, ALLOW ...), so a request is one
    whose action names a workflow, or that carries ``event``/``events``.
    """
    action = payload.get("action")
    return (isinstance(action, str) and action in REQUEST_ACTIONS) or any(
        key in payload for key in ("event", "events")
    )


def parse_request(
    raw: bytes | str | Mapping[str, Any] | Any, *, parsed: bool = False, allow_normalized: bool = True
) -> Request:
    """Parse and validate a runtime request of any accepted form.

    The worker sends events it normalized itself, so the runtime accepts that shape
    (validated and redacted again). Queue messages pass ``allow_normalized=False``:
    a message must not choose its own event key.
    """
    payload = decode_payload(raw, parsed=parsed)
    action = payload.get("action")
    if action is None:
        raise fail(
            ErrorCode.UNKNOWN_ACTION,
            "missing 'action' (expected one of: analyze, monitor, triage_only)",
        )
    if not isinstance(action, str) or action not in {"analyze", "monitor", "triage_only"}:
        shown = clip(repr(action), 60)
        raise fail(
            ErrorCode.UNKNOWN_ACTION,
            f"unknown action {shown} (expected one of: analyze, monitor, triage_only)",
        )
    if action == "monitor":
        return _parse_monitor(payload)
    if "event" not in payload or payload["event"] is None:
        raise fail(ErrorCode.MISSING_EVENT, f"action '{action}' needs an 'event' object")
    event = normalize_event(payload["event"], allow_normalized=allow_normalized)
    if action == "analyze":
        try:
            return AnalyzeRequest(event=event, model_budget=payload.get("model_budget"))
        except ValidationError as exc:
            raise fail(ErrorCode.INVALID_PAYLOAD, first_error("analyze", exc)) from None
    analysis = payload.get("analysis")
    if not isinstance(analysis, Mapping):
        raise fail(
            ErrorCode.INVALID_ANALYSIS,
            "triage_only needs an 'analysis' object with an integer 'severity_rating' 0-5",
        )
    try:
        given = AnalysisInput.model_validate(dict(analysis))
    except ValidationError as exc:
        raise fail(ErrorCode.INVALID_ANALYSIS, first_error("analysis", exc)) from None
    return TriageOnlyRequest(event=event, analysis=given)


def _parse_monitor(payload: Mapping[str, Any]) -> MonitorRequest:
    hours = payload.get("hours", 24)
    # Python's json accepts NaN and Infinity (and 1e400 becomes inf): int() of those raises.
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or (isinstance(hours, float) and not math.isfinite(hours))
        or hours != int(hours)
    ):
        raise fail(ErrorCode.INVALID_HOURS, "hours must be a whole number of hours")
    events = payload.get("events", [])
    if events is None:
        events = []
    if not isinstance(events, list):
        raise fail(ErrorCode.INVALID_PAYLOAD, "events must be a list")
    if len(events) > MAX_MONITOR_EVENTS:
        raise fail(
            ErrorCode.TOO_MANY_EVENTS,
            f"{len(events)} events in one monitor request; send at most {MAX_MONITOR_EVENTS}",
        )
    normalized = []
    for index, item in enumerate(events):
        try:
            normalized.append(normalize_event(item, allow_normalized=True))
        except ContractError as exc:
            raise fail(exc.code, f"events[{index}]: {exc.message}") from None
    extra: dict[str, Any] = {}
    for name in ("threshold", "now", "narrate"):
        if payload.get(name) is not None:
            extra[name] = payload[name]
    try:
        request = MonitorRequest(hours=int(hours), events=tuple(normalized), **extra)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"][0] if exc.errors() else ""
        code = ErrorCode.INVALID_HOURS if loc == "hours" else ErrorCode.INVALID_PAYLOAD
        raise fail(code, first_error("monitor", exc)) from None
    if request.now is not None and request.now.tzinfo is None:
        # Event times are aware, and comparing them with a naive 'now' raises TypeError:
        # a naive 'now' is taken as UTC, like a naive event time.
        request = request.model_copy(update={"now": request.now.replace(tzinfo=UTC)})
    return request
