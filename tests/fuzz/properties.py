"""Assertions shared by the fuzz tests: what every output of the runtime must satisfy."""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from secops_core.contract import (
    AnalyzeResponse,
    ErrorResponse,
    MonitorResponse,
    TriageOnlyResponse,
    WafEvent,
)
from secops_core.errors import RETRYABLE_CODES, ContractError, ErrorCode
from secops_core.ingest.normalize import KNOWN_ACTIONS
from secops_core.limits import MAX_HEADERS, MAX_ID_CHARS, MAX_LABELS, MAX_RULE_MATCHES

# Codes that bad input may produce; the others mean a model or the runtime itself failed.
INPUT_ERROR_CODES = frozenset(ErrorCode) - RETRYABLE_CODES - {ErrorCode.MODEL_OUTPUT_INVALID}
# An error message is one line a log or an operator can read, never a payload echo.
MAX_ERROR_MESSAGE_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# CPython's default. Hypothesis raises the limit by 2000 frames while a test runs, which
# would hide every RecursionError a production process (uvicorn's threads, the worker)
# hits at about 1000 frames.
PRODUCTION_RECURSION_LIMIT = 1000


@contextmanager
def production_recursion_limit() -> Iterator[None]:
    """Run the code under test with the recursion limit a real process has."""
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(PRODUCTION_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def assert_error_message(message: str) -> None:
    assert isinstance(message, str)
    assert message, "an error needs a message"
    assert len(message) <= MAX_ERROR_MESSAGE_CHARS, f"{len(message)} characters: {message[:200]!r}"
    assert not _CONTROL.search(message), f"control character in {message[:200]!r}"
    message.encode("utf-8")  # no lone surrogate


def assert_contract_error(exc: ContractError) -> None:
    """A documented rejection: a stable input error code and a one-line message."""
    assert isinstance(exc.code, ErrorCode)
    assert exc.code in INPUT_ERROR_CODES, exc.code
    assert not exc.retryable
    assert_error_message(exc.message)


def assert_valid_event(event: WafEvent) -> None:
    """What every normalized event satisfies, whatever it was made from."""
    assert isinstance(event, WafEvent)
    dumped = event.model_dump_json()
    dumped.encode("utf-8")
    assert WafEvent.model_validate_json(dumped) == event, "the event does not round-trip through JSON"
    assert event.event_key.startswith("evt#")
    assert len(event.event_key) <= len("evt#") + MAX_ID_CHARS
    # A source IP is an address in its canonical form: no zone id, no whitespace.
    assert str(ipaddress.ip_address(event.source_ip)) == event.source_ip
    assert "%" not in event.source_ip
    assert event.action in KNOWN_ACTIONS
    # Timestamps are aware and in UTC: the store sorts and the monitor compares them.
    assert event.timestamp.utcoffset() == timedelta(0), event.timestamp
    assert len(event.headers) <= MAX_HEADERS
    assert len(event.labels) <= MAX_LABELS
    assert len(event.matches) <= MAX_RULE_MATCHES
    for header in event.headers:
        assert not _CONTROL.search(header.name), header.name
    assert event.rule_name


def assert_response(body: Any) -> Any:
    """The service's answer: JSON-serializable as UTF-8 and one of the contract's shapes."""
    assert isinstance(body, dict)
    json.dumps(body, ensure_ascii=False).encode("utf-8")
    if body.get("status") == "error":
        error = ErrorResponse.model_validate(body).error
        assert error.code in INPUT_ERROR_CODES, (error.code, error.message)
        assert error.retryable is False
        assert_error_message(error.message)
        return ErrorResponse.model_validate(body)
    model = {
        "analyze": AnalyzeResponse,
        "triage_only": TriageOnlyResponse,
        "monitor": MonitorResponse,
    }[body["workflow"]]
    return model.model_validate(body)
