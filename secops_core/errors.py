"""The runtime's typed errors. Each carries a stable code that reaches the wire."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes of the wire contract. Never rename one; add new ones."""

    INVALID_JSON = "invalid_json"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_ACTION = "unknown_action"
    MISSING_EVENT = "missing_event"
    INVALID_EVENT = "invalid_event"
    INVALID_ANALYSIS = "invalid_analysis"
    INVALID_HOURS = "invalid_hours"
    TOO_MANY_EVENTS = "too_many_events"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    FIELD_TOO_LARGE = "field_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    MODEL_ERROR = "model_error"
    MODEL_THROTTLED = "model_throttled"
    MODEL_OUTPUT_INVALID = "model_output_invalid"
    INTERNAL_ERROR = "internal_error"


# Errors the caller may retry: the input was fine, something behind the runtime was not.
RETRYABLE_CODES = frozenset({ErrorCode.MODEL_ERROR, ErrorCode.MODEL_THROTTLED, ErrorCode.INTERNAL_ERROR})

# HTTP status for each code on the runtime's endpoint: 4xx for bad input, 5xx (never
# 500 for input) when a dependency failed, so HTTP-level tooling classifies correctly.
HTTP_STATUS = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_PAYLOAD: 400,
    ErrorCode.UNKNOWN_ACTION: 400,
    ErrorCode.MISSING_EVENT: 400,
    ErrorCode.INVALID_EVENT: 422,
    ErrorCode.INVALID_ANALYSIS: 422,
    ErrorCode.INVALID_HOURS: 422,
    ErrorCode.TOO_MANY_EVENTS: 413,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.FIELD_TOO_LARGE: 413,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.MODEL_ERROR: 502,
    ErrorCode.MODEL_THROTTLED: 503,
    ErrorCode.MODEL_OUTPUT_INVALID: 502,
    ErrorCode.INTERNAL_ERROR: 500,
}


class AgentRuntimeError(Exception):
    """Base of the runtime's errors: a code from ErrorCode and a one-line message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class ContractError(AgentRuntimeError):
    """The request is not acceptable: retrying the same input fails the same way."""


class ModelError(AgentRuntimeError):
    """The model failed or answered something unusable; the input may be fine."""
