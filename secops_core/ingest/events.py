"""One event of any accepted shape -> a redacted ``WafEvent``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from secops_core.contract import (
    Header,
    WafEvent,
)
from secops_core.errors import ErrorCode
from secops_core.ingest.fields import (
    as_utc,
    check_sizes,
    clean_id,
    clean_name,
    fail,
    first_error,
    loads_json,
    parse_action,
    parse_ip,
    scrub,
    type_name,
)
from secops_core.ingest.simplified import from_simplified
from secops_core.ingest.waf_log import from_waf_log
from secops_core.limits import (
    MAX_HEADERS,
    MAX_LABELS,
    MAX_RULE_MATCHES,
)
from secops_core.redaction import redact_event, redact_header, redact_query
from secops_core.waf.names import DEFAULT_ACTION_RULE


def normalize_event(raw: Any, *, allow_normalized: bool = False) -> WafEvent:
    """Normalize one event of any accepted shape, redacting secrets on the way.

    ``allow_normalized`` accepts a ``WafEvent`` as the worker stored it (monitor
    requests carry those); it is validated and redacted again like any input, since
    its key decides which state it touches.
    """
    if isinstance(raw, str):
        raw = loads_json(raw, what="event")
    if not isinstance(raw, Mapping):
        raise fail(ErrorCode.INVALID_EVENT, f"event must be a JSON object, got {type_name(raw)}")
    check_sizes(raw)
    record = scrub(raw)
    if allow_normalized and "event_key" in record and "source_format" in record:
        return redact_event(_from_normalized(record))
    if isinstance(record.get("httpRequest"), Mapping):
        return redact_event(from_waf_log(record))
    if "httpRequest" in record:
        raise fail(ErrorCode.INVALID_EVENT, "httpRequest must be an object")
    return redact_event(from_simplified(record))


def _from_normalized(record: dict[str, Any]) -> WafEvent:
    """A stored event sent back: held to every invariant of a freshly normalized one."""
    try:
        event = WafEvent.model_validate(record)
    except ValidationError as exc:
        raise fail(ErrorCode.INVALID_EVENT, first_error("event", exc)) from None
    if not event.event_key.startswith("evt#"):
        raise fail(ErrorCode.INVALID_EVENT, "event_key must start with 'evt#'")
    key_id = event.event_key.removeprefix("evt#")
    if clean_id(key_id, "event_key") != key_id:
        raise fail(ErrorCode.INVALID_EVENT, "event_key has control characters or surrounding spaces")
    labels = tuple(label for label in map(clean_name, event.labels) if label)
    cut = (
        len(event.headers) > MAX_HEADERS or len(labels) > MAX_LABELS or len(event.matches) > MAX_RULE_MATCHES
    )
    return event.model_copy(
        update={
            "timestamp": as_utc(event.timestamp, event.timestamp.isoformat()),
            "source_ip": parse_ip(event.source_ip),
            "action": parse_action(event.action),
            "args": redact_query(event.args) if event.args else None,
            "headers": tuple(
                Header(name=clean_name(h.name), value=redact_header(h.name, h.value))
                for h in event.headers[:MAX_HEADERS]
            ),
            "rule_name": event.rule_name or DEFAULT_ACTION_RULE,
            "labels": labels[:MAX_LABELS],
            "matches": event.matches[:MAX_RULE_MATCHES],
            "truncated": event.truncated or cut,
        }
    )
