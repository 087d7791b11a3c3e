"""Normalization of incoming events and payloads into the wire contract.

Three event shapes become one :class:`WafEvent`:

1. the simplified event of the original system (``id, timestamp, action, source_ip,
   uri, http_method, rule_name, country``, optional ``user_agent`` ...);
2. a native AWS WAF log record (``httpRequest``, ``terminatingRuleId``,
   ``ruleGroupList``, ``nonTerminatingMatchingRules``, ``labels``, epoch-ms
   ``timestamp`` ...);
3. a ``WafEvent`` already normalized by us (the worker sends those back for monitor).

Every failure is a :class:`ContractError` with a stable code and a one-line message.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from secops_core.contract import (
    AnalysisInput,
    AnalyzeRequest,
    Header,
    MonitorRequest,
    Request,
    RuleMatch,
    TriageOnlyRequest,
    WafEvent,
)
from secops_core.errors import ContractError, ErrorCode
from secops_core.limits import (
    MAX_EVENT_DEPTH,
    MAX_EVENT_FIELDS,
    MAX_FIELD_CHARS,
    MAX_HEADERS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_LABELS,
    MAX_MONITOR_EVENTS,
    MAX_PAYLOAD_BYTES,
    MAX_RULE_MATCHES,
)
from secops_core.redaction import redact_header, redact_query
from secops_core.waf.actions import ACTION_ALIASES, INTERRUPTING_ACTIONS, KNOWN_ACTIONS, REACHED_ACTIONS
from secops_core.waf.names import DEFAULT_ACTION_RULE, group_name

__all__ = [
    "DEFAULT_ACTION_RULE",
    "KNOWN_ACTIONS",
    "decode_payload",
    "event_key_for",
    "is_request",
    "json_too_deep",
    "normalize_event",
    "parse_request",
]

_EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST_EVENT = datetime(2200, 1, 1, tzinfo=UTC)
# Control characters (C0 including tab and line breaks, DEL, C1) and the Unicode line
# and paragraph separators never belong in an id, a method, a header name or a label;
# left in, they forge lines in logs, consoles and anything that renders them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# Messages quote input (keys, values, pydantic locations) and travel into logs, rejected
# records and HTTP answers: each is one printable, UTF-8-encodable line of bounded size.
_MESSAGE_CHARS = 300
_MESSAGE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _fail(code: ErrorCode, message: str) -> ContractError:
    text = _MESSAGE_BREAKS.sub(" ", message)
    if _has_surrogate(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return ContractError(code, _clip(text, _MESSAGE_CHARS))


# ---- payloads ------------------------------------------------------------------------


def decode_payload(raw: bytes | str | Mapping[str, Any] | Any, *, parsed: bool = False) -> dict[str, Any]:
    """Turn a request body into a JSON object, unwrapping ``{"prompt": "<json>"}``.

    ``parsed`` says ``raw`` was already decoded from JSON (the HTTP app does that), so
    a ``str`` is a JSON string value, not JSON text to parse again.
    """
    if parsed and isinstance(raw, str):
        raise _fail(ErrorCode.INVALID_PAYLOAD, "payload must be a JSON object, got string")
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise _fail(ErrorCode.PAYLOAD_TOO_LARGE, f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(ErrorCode.INVALID_JSON, f"payload is not UTF-8: {exc.reason}") from None
    if isinstance(raw, str):
        raw = _loads(raw, what="payload")
    if not isinstance(raw, Mapping):
        raise _fail(ErrorCode.INVALID_PAYLOAD, f"payload must be a JSON object, got {_type_name(raw)}")
    payload = dict(raw)
    prompt = payload.get("prompt")
    if "action" not in payload and prompt is not None:
        # The original agent was invoked as {"prompt": "<the request as a JSON string>"}.
        if isinstance(prompt, Mapping):
            inner: Any = prompt
        elif isinstance(prompt, str):
            inner = _loads(prompt, what="prompt")
        else:
            raise _fail(
                ErrorCode.INVALID_PAYLOAD,
                f"prompt must be a JSON string or object, got {_type_name(prompt)}",
            )
        if not isinstance(inner, Mapping):
            raise _fail(
                ErrorCode.INVALID_PAYLOAD,
                f"prompt must hold a JSON object, got {_type_name(inner)}",
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
        raise _fail(
            ErrorCode.UNKNOWN_ACTION,
            "missing 'action' (expected one of: analyze, monitor, triage_only)",
        )
    if not isinstance(action, str) or action not in {"analyze", "monitor", "triage_only"}:
        shown = _clip(repr(action), 60)
        raise _fail(
            ErrorCode.UNKNOWN_ACTION,
            f"unknown action {shown} (expected one of: analyze, monitor, triage_only)",
        )
    if action == "monitor":
        return _parse_monitor(payload)
    if "event" not in payload or payload["event"] is None:
        raise _fail(ErrorCode.MISSING_EVENT, f"action '{action}' needs an 'event' object")
    event = normalize_event(payload["event"], allow_normalized=allow_normalized)
    if action == "analyze":
        return AnalyzeRequest(event=event)
    analysis = payload.get("analysis")
    if not isinstance(analysis, Mapping):
        raise _fail(
            ErrorCode.INVALID_ANALYSIS,
            "triage_only needs an 'analysis' object with an integer 'severity_rating' 0-5",
        )
    try:
        given = AnalysisInput.model_validate(dict(analysis))
    except ValidationError as exc:
        raise _fail(ErrorCode.INVALID_ANALYSIS, _first_error("analysis", exc)) from None
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
        raise _fail(ErrorCode.INVALID_HOURS, "hours must be a whole number of hours")
    events = payload.get("events", [])
    if events is None:
        events = []
    if not isinstance(events, list):
        raise _fail(ErrorCode.INVALID_PAYLOAD, "events must be a list")
    if len(events) > MAX_MONITOR_EVENTS:
        raise _fail(
            ErrorCode.TOO_MANY_EVENTS,
            f"{len(events)} events in one monitor request; send at most {MAX_MONITOR_EVENTS}",
        )
    normalized = []
    for index, item in enumerate(events):
        try:
            normalized.append(normalize_event(item, allow_normalized=True))
        except ContractError as exc:
            raise _fail(exc.code, f"events[{index}]: {exc.message}") from None
    extra: dict[str, Any] = {}
    for name in ("threshold", "now"):
        if payload.get(name) is not None:
            extra[name] = payload[name]
    try:
        request = MonitorRequest(hours=int(hours), events=tuple(normalized), **extra)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"][0] if exc.errors() else ""
        code = ErrorCode.INVALID_HOURS if loc == "hours" else ErrorCode.INVALID_PAYLOAD
        raise _fail(code, _first_error("monitor", exc)) from None
    if request.now is not None and request.now.tzinfo is None:
        # Event times are aware, and comparing them with a naive 'now' raises TypeError:
        # a naive 'now' is taken as UTC, like a naive event time.
        request = request.model_copy(update={"now": request.now.replace(tzinfo=UTC)})
    return request


# ---- events --------------------------------------------------------------------------


def normalize_event(raw: Any, *, allow_normalized: bool = False) -> WafEvent:
    """Normalize one event of any accepted shape, redacting secrets on the way.

    ``allow_normalized`` accepts a ``WafEvent`` as the worker stored it (monitor
    requests carry those); it is validated and redacted again like any input, since
    its key decides which state it touches.
    """
    if isinstance(raw, str):
        raw = _loads(raw, what="event")
    if not isinstance(raw, Mapping):
        raise _fail(ErrorCode.INVALID_EVENT, f"event must be a JSON object, got {_type_name(raw)}")
    _check_sizes(raw)
    record = _scrub(raw)
    if allow_normalized and "event_key" in record and "source_format" in record:
        return _from_normalized(record)
    if isinstance(record.get("httpRequest"), Mapping):
        return _from_waf_log(record)
    if "httpRequest" in record:
        raise _fail(ErrorCode.INVALID_EVENT, "httpRequest must be an object")
    return _from_simplified(record)


def _from_normalized(record: dict[str, Any]) -> WafEvent:
    """A stored event sent back: held to every invariant of a freshly normalized one."""
    try:
        event = WafEvent.model_validate(record)
    except ValidationError as exc:
        raise _fail(ErrorCode.INVALID_EVENT, _first_error("event", exc)) from None
    if not event.event_key.startswith("evt#"):
        raise _fail(ErrorCode.INVALID_EVENT, "event_key must start with 'evt#'")
    key_id = event.event_key.removeprefix("evt#")
    if _clean_id(key_id, "event_key") != key_id:
        raise _fail(ErrorCode.INVALID_EVENT, "event_key has control characters or surrounding spaces")
    labels = tuple(label for label in map(_name, event.labels) if label)
    cut = (
        len(event.headers) > MAX_HEADERS or len(labels) > MAX_LABELS or len(event.matches) > MAX_RULE_MATCHES
    )
    return event.model_copy(
        update={
            "timestamp": _as_utc(event.timestamp, event.timestamp.isoformat()),
            "source_ip": _ip(event.source_ip),
            "action": _action(event.action),
            "args": redact_query(event.args) if event.args else None,
            "headers": tuple(
                Header(name=_name(h.name), value=redact_header(h.name, h.value))
                for h in event.headers[:MAX_HEADERS]
            ),
            "rule_name": event.rule_name or DEFAULT_ACTION_RULE,
            "labels": labels[:MAX_LABELS],
            "matches": event.matches[:MAX_RULE_MATCHES],
            "truncated": event.truncated or cut,
        }
    )


def event_key_for(record: Mapping[str, Any]) -> str:
    """``evt#<id>`` for a simplified event with an id, else a hash of the record.

    The hash covers the canonical JSON of the whole record: ``requestId`` repeats in
    practice, and an SQS MessageId changes on every DLQ redrive, so neither is a key.
    """
    event_id = record.get("id")
    if isinstance(event_id, str | int) and not isinstance(event_id, bool) and str(event_id):
        return f"evt#{_clean_id(str(event_id), 'id')}"
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "evt#sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _from_simplified(record: dict[str, Any]) -> WafEvent:
    missing = [f for f in ("timestamp", "action", "source_ip", "uri") if record.get(f) in (None, "")]
    if missing:
        raise _fail(
            ErrorCode.INVALID_EVENT,
            "not a WAF event: missing "
            + ", ".join(missing)
            + " (expected a simplified event or a WAF log record with httpRequest)",
        )
    headers, headers_cut = _headers(record.get("headers"))
    user_agent = _opt_str(record, "user_agent") or _header_value(headers, "user-agent")
    labels, labels_cut = _labels(record.get("labels"))
    rule_name = _opt_str(record, "rule_name", max_chars=MAX_ID_CHARS) or _opt_str(
        record, "rule", max_chars=MAX_ID_CHARS
    )
    rule_group = group_name(_opt_str(record, "rule_group", max_chars=MAX_ID_CHARS))
    action = _action(record.get("action"))
    matches: tuple[RuleMatch, ...] = ()
    if rule_name:
        matches = (RuleMatch(rule_id=rule_name, rule_group=rule_group, action=action, terminating=True),)
    args = _opt_str(record, "args") or _opt_str(record, "query_string") or _opt_str(record, "query")
    return WafEvent(
        event_key=event_key_for(record),
        source_format="simplified",
        event_id=_opt_id(record.get("id")),
        timestamp=_timestamp(record.get("timestamp")),
        action=action,
        source_ip=_ip(record.get("source_ip")),
        country=_opt_str(record, "country", max_chars=8),
        http_method=_method(record.get("http_method") or record.get("method")),
        host=_opt_str(record, "host") or _header_value(headers, "host"),
        uri=_str(record, "uri"),
        args=redact_query(args) if args else None,
        user_agent=user_agent,
        headers=headers,
        rule_name=rule_name or DEFAULT_ACTION_RULE,
        rule_group=rule_group,
        terminating_rule_type=_opt_str(record, "rule_type", max_chars=64),
        matches=matches,
        labels=labels,
        request_id=_opt_str(record, "request_id", max_chars=MAX_ID_CHARS),
        web_acl=_opt_str(record, "web_acl", max_chars=MAX_FIELD_CHARS),
        truncated=headers_cut or labels_cut,
    )


def _from_waf_log(record: dict[str, Any]) -> WafEvent:
    request: Mapping[str, Any] = record["httpRequest"]
    # AWS documents records with "uri": "" (a JSON-body SQL injection block): the
    # request is kept with an empty path rather than an invented "/".
    missing = [f for f in ("clientIp",) if request.get(f) in (None, "")]
    if record.get("timestamp") in (None, ""):
        missing.insert(0, "timestamp")
    if missing:
        raise _fail(ErrorCode.INVALID_EVENT, "WAF log record without " + ", ".join(missing))
    headers, headers_cut = _headers(request.get("headers"))
    labels, labels_cut = _labels(record.get("labels"))
    action = _action(record.get("action"))
    matches, matches_cut = _waf_matches(record, action)
    terminating_id = _opt_str(record, "terminatingRuleId", max_chars=MAX_ID_CHARS)
    terminating_type = _opt_str(record, "terminatingRuleType", max_chars=64)
    rule_name, rule_group = _deciding_rule(terminating_id, terminating_type, matches)
    args = _opt_str(request, "args")
    return WafEvent(
        event_key=event_key_for(record),
        source_format="waf_log",
        event_id=None,
        timestamp=_timestamp(record.get("timestamp")),
        action=action,
        source_ip=_ip(request.get("clientIp")),
        country=_opt_str(request, "country", max_chars=8),
        http_method=_method(request.get("httpMethod")),
        host=_opt_str(request, "host") or _header_value(headers, "host"),
        uri=_opt_str(request, "uri") or "",
        args=redact_query(args) if args else None,
        user_agent=_header_value(headers, "user-agent"),
        headers=headers,
        rule_name=rule_name,
        rule_group=rule_group,
        terminating_rule_type=terminating_type,
        matches=matches,
        labels=labels,
        request_id=_opt_str(request, "requestId", max_chars=MAX_ID_CHARS),
        web_acl=_opt_str(record, "webaclId", max_chars=MAX_FIELD_CHARS),
        truncated=headers_cut or labels_cut or matches_cut,
    )


def _deciding_rule(
    terminating_id: str | None, terminating_type: str | None, matches: tuple[RuleMatch, ...]
) -> tuple[str, str | None]:
    """The rule that decided, preferring the inner rule of a managed rule group."""
    for match in matches:
        if match.terminating:
            return match.rule_id, match.rule_group
    if terminating_id and terminating_id != DEFAULT_ACTION_RULE:
        if (terminating_type or "").upper() in {"MANAGED_RULE_GROUP", "GROUP"}:
            return terminating_id, group_name(terminating_id)
        return terminating_id, None
    # ALLOW by default action: the first counted match says what was seen.
    for match in matches:
        return match.rule_id, match.rule_group
    return DEFAULT_ACTION_RULE, None


def _waf_matches(record: Mapping[str, Any], action: str) -> tuple[tuple[RuleMatch, ...], bool]:
    found: list[RuleMatch] = []
    terminating_id = record.get("terminatingRuleId")
    terminating_type = str(record.get("terminatingRuleType") or "").upper()
    in_group = False
    for entry in _dicts(record.get("ruleGroupList")):
        group = group_name(_as_str(entry.get("ruleGroupId")))
        terminating = entry.get("terminatingRule")
        if isinstance(terminating, Mapping) and terminating.get("ruleId"):
            match = _match(terminating, group, default_action=action, terminating=True)
            if action in REACHED_ACTIONS and match.action in INTERRUPTING_ACTIONS:
                # The whole group's action was overridden to Count: the log keeps the
                # rule's own BLOCK inside the group, but the request went through.
                match = match.model_copy(update={"action": "COUNT", "terminating": False})
            else:
                in_group = True
            found.append(match)
        for rule in _dicts(entry.get("nonTerminatingMatchingRules")):
            found.append(_match(rule, group, default_action="COUNT"))
        for rule in _dicts(entry.get("excludedRules")):
            found.append(_match(rule, group, default_action="EXCLUDED_AS_COUNT", action_key="exclusionType"))
    for rule in _dicts(record.get("nonTerminatingMatchingRules")):
        found.append(_match(rule, None, default_action="COUNT"))
    for rule in _dicts(record.get("rateBasedRuleList")):
        name = _as_str(rule.get("rateBasedRuleName")) or _as_str(rule.get("rateBasedRuleId"))
        if name and name == terminating_id:
            in_group = True
            found.append(
                RuleMatch(rule_id=_clean_id(name, "rateBasedRuleName"), action=action, terminating=True)
            )
    if (
        not in_group
        and isinstance(terminating_id, str)
        and terminating_id
        and terminating_id != DEFAULT_ACTION_RULE
        and terminating_type not in {"MANAGED_RULE_GROUP", "GROUP"}
    ):
        details = tuple(
            _as_str(d.get("conditionType")) or "" for d in _dicts(record.get("terminatingRuleMatchDetails"))
        )
        found.insert(
            0,
            RuleMatch(
                rule_id=_clean_id(terminating_id, "terminatingRuleId"),
                action=action,
                terminating=True,
                condition_types=tuple(d for d in details if d),
            ),
        )
    cut = len(found) > MAX_RULE_MATCHES
    return tuple(found[:MAX_RULE_MATCHES]), cut


def _match(
    rule: Mapping[str, Any],
    group: str | None,
    *,
    default_action: str,
    terminating: bool = False,
    action_key: str = "action",
) -> RuleMatch:
    rule_action = _as_str(rule.get(action_key)) or default_action
    details = tuple(_as_str(d.get("conditionType")) or "" for d in _dicts(rule.get("ruleMatchDetails")))
    return RuleMatch(
        rule_id=_clean_id(_as_str(rule.get("ruleId")) or "unknown", "ruleId"),
        rule_group=group,
        action=rule_action.upper()[:32],
        terminating=terminating,
        condition_types=tuple(d.upper()[:64] for d in details if d),
    )


# ---- field helpers -------------------------------------------------------------------


def _check_sizes(record: Mapping[str, Any]) -> None:
    """Reject what no real record has, before anything recursive touches the record.

    Strings (values and keys) larger than a request component, nesting deeper than
    ``MAX_EVENT_DEPTH`` (recursion on a 600-level record overflowed the stack) and more
    than ``MAX_EVENT_FIELDS`` values. Iterative, and the paths it reports are clipped,
    so neither depth nor long keys cost more than the input itself.
    """
    stack: list[tuple[str, int, Any]] = [("", 0, record)]
    seen = 1
    while stack:
        path, depth, value = stack.pop()
        if isinstance(value, str):
            _check_length(value, path or "event")
            continue
        if not isinstance(value, Mapping | list):
            continue
        if depth >= MAX_EVENT_DEPTH:
            raise _fail(
                ErrorCode.INVALID_EVENT,
                f"field {path or 'event'} is nested deeper than {MAX_EVENT_DEPTH} levels",
            )
        seen += len(value)
        if seen > MAX_EVENT_FIELDS:
            raise _fail(ErrorCode.FIELD_TOO_LARGE, f"event has more than {MAX_EVENT_FIELDS} fields")
        if isinstance(value, Mapping):
            for key, item in value.items():
                name = str(key)
                _check_length(name, f"name of {_child_path(path, '.', name)}")
                stack.append((_child_path(path, ".", name), depth + 1, item))
        else:
            stack.extend(
                (_child_path(path, "[", str(index)), depth + 1, item) for index, item in enumerate(value)
            )


def _check_length(text: str, where: str) -> None:
    if len(text) > MAX_FIELD_CHARS:
        raise _fail(
            ErrorCode.FIELD_TOO_LARGE,
            f"field {where} has {len(text)} characters (limit {MAX_FIELD_CHARS})",
        )


# A reported path is for a human: enough to find the field, never the size of the input.
_PATH_CHARS = 200
_PATH_PART_CHARS = 40


def _child_path(path: str, kind: str, part: str) -> str:
    if len(path) >= _PATH_CHARS:
        return path
    if kind == "[":
        child = f"{path}[{part}]"
    else:
        child = f"{path}.{_clip(part, _PATH_PART_CHARS)}" if path else _clip(part, _PATH_PART_CHARS)
    return child if len(child) <= _PATH_CHARS else _clip(child, _PATH_CHARS)


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (``"\\ud800"`` in JSON) so every string can be encoded."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(value) else value
    if isinstance(value, Mapping):
        return {_scrub(k) if isinstance(k, str) else k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _headers(raw: Any) -> tuple[tuple[Header, ...], bool]:
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, Mapping):
        pairs = [(str(k), _scalar_str(v)) for k, v in raw.items()]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and item.get("name") is not None:
                pairs.append((str(item.get("name")), _scalar_str(item.get("value"))))
    elif raw is not None:
        raise _fail(ErrorCode.INVALID_EVENT, "headers must be a list of {name, value} or an object")
    cut = len(pairs) > MAX_HEADERS
    headers = tuple(
        Header(name=_name(name), value=redact_header(name, value)) for name, value in pairs[:MAX_HEADERS]
    )
    return headers, cut


def _header_value(headers: Iterable[Header], name: str) -> str | None:
    for header in headers:
        if header.name.lower() == name:
            return header.value or None
    return None


def _labels(raw: Any) -> tuple[tuple[str, ...], bool]:
    names: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        name = item.get("name") if isinstance(item, Mapping) else item
        cleaned = _name(name) if isinstance(name, str) else ""
        if cleaned:
            names.append(cleaned)
    if raw is not None and not isinstance(raw, list):
        raise _fail(ErrorCode.INVALID_EVENT, "labels must be a list")
    return tuple(names[:MAX_LABELS]), len(names) > MAX_LABELS


def _timestamp(raw: Any) -> datetime:
    """Epoch seconds or milliseconds (number or numeric string), or ISO 8601, in range."""
    moment = _parse_timestamp(raw)
    if not _EARLIEST_EVENT <= moment <= _LATEST_EVENT:
        # AWS WAF did not exist before 2015; a year 500 or 9000 is a broken clock or a
        # forged record, and would sort wrongly in the store's time index.
        raise _fail(
            ErrorCode.INVALID_EVENT,
            f"timestamp {moment.isoformat()} is outside {_EARLIEST_EVENT.year}-{_LATEST_EVENT.year}",
        )
    return moment


def _parse_timestamp(raw: Any) -> datetime:
    if isinstance(raw, bool):
        raise _fail(ErrorCode.INVALID_EVENT, "timestamp must be epoch milliseconds or ISO 8601")
    value: Any = raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise _fail(
                    ErrorCode.INVALID_EVENT,
                    f"timestamp {_clip(repr(raw), 40)} is not epoch milliseconds or ISO 8601",
                ) from None
            return _as_utc(parsed, _clip(repr(raw), 40))
    if isinstance(value, int | float):
        try:
            # WAF logs epoch milliseconds; anything below 1e11 is epoch seconds (year 5138+
            # in ms). The division is inside the try: an integer of a few hundred digits
            # (valid JSON) overflows a float before fromtimestamp can reject it.
            seconds = value / 1000 if abs(value) >= 1e11 else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            shown = _clip(repr(value), 40)
            raise _fail(ErrorCode.INVALID_EVENT, f"timestamp {shown} is out of range") from None
    raise _fail(ErrorCode.INVALID_EVENT, "timestamp must be epoch milliseconds or ISO 8601")


def _as_utc(moment: datetime, shown: str) -> datetime:
    """``moment`` in UTC (naive is taken as UTC): the store sorts event times as UTC text
    and the monitor compares them, so an offset near year 1 or 9999 that has no UTC
    equivalent is rejected here rather than overflowing there."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _fail(ErrorCode.INVALID_EVENT, f"timestamp {shown} is out of range") from None


def _ip(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _fail(ErrorCode.INVALID_EVENT, "source IP must be a string")
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        raise _fail(
            ErrorCode.INVALID_EVENT, f"source IP {_clip(repr(raw), 60)} is not an IP address"
        ) from None
    # Python accepts any text as an IPv6 zone index ("fe80::1%<anything>"), which then
    # rode along as the source IP into keys, patterns and notifications. A zone means
    # something only on the local link, never for a client WAF saw: it is dropped.
    return str(address).split("%", 1)[0]


def _action(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(ErrorCode.INVALID_EVENT, "action must be a string such as BLOCK or ALLOW")
    action = raw.strip().upper()
    action = ACTION_ALIASES.get(action, action)
    if action not in KNOWN_ACTIONS:
        raise _fail(
            ErrorCode.INVALID_EVENT,
            f"action {_clip(repr(raw), 40)} is not one of {', '.join(sorted(KNOWN_ACTIONS))}",
        )
    return action


def _method(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise _fail(ErrorCode.INVALID_EVENT, "http method must be a string")
    return _strip(raw).upper()[:32] or None


def _str(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise _fail(ErrorCode.INVALID_EVENT, f"{key} must be a string")
    return value


def _opt_str(record: Mapping[str, Any], key: str, max_chars: int = MAX_FIELD_CHARS) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(ErrorCode.INVALID_EVENT, f"{key} must be a string")
    text = str(value)
    if len(text) > max_chars:
        raise _fail(ErrorCode.FIELD_TOO_LARGE, f"{key} has {len(text)} characters (limit {max_chars})")
    return text


def _opt_id(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _fail(ErrorCode.INVALID_EVENT, f"id must be a string or an integer, got {_type_name(raw)}")
    return _clean_id(str(raw), "id")


def _clean_id(raw: str, what: str) -> str:
    if len(raw) > MAX_ID_CHARS:
        raise _fail(ErrorCode.FIELD_TOO_LARGE, f"{what} has {len(raw)} characters (limit {MAX_ID_CHARS})")
    cleaned = _strip(raw)
    if not cleaned:
        raise _fail(ErrorCode.INVALID_EVENT, f"{what} is empty or only control characters")
    return cleaned


def _strip(text: str) -> str:
    return _CONTROL.sub("", text).strip()


def _name(text: str) -> str:
    """A header name or label: no control characters, at most MAX_ID_CHARS, trimmed after
    the cut too, so normalizing a normalized name changes nothing."""
    return _strip(text)[:MAX_ID_CHARS].rstrip()


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _scalar_str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _dicts(raw: Any) -> list[Mapping[str, Any]]:
    return [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list) else []


def _loads(text: str, *, what: str) -> Any:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise _fail(ErrorCode.PAYLOAD_TOO_LARGE, f"{what} exceeds {MAX_PAYLOAD_BYTES} bytes")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(ErrorCode.INVALID_JSON, f"{what} is not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise _fail(ErrorCode.INVALID_JSON, f"{what} is nested too deeply") from None
    except ValueError as exc:
        # e.g. an integer literal longer than sys.get_int_max_str_digits()
        raise _fail(
            ErrorCode.INVALID_JSON, f"{what} is not acceptable JSON: {_clip(str(exc), 120)}"
        ) from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_too_deep(value):
        raise _fail(ErrorCode.INVALID_JSON, f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests objects and arrays deeper than ``limit``; iterative."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _first_error(what: str, exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return f"{what} is invalid"
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{what}.{loc}: {first.get('msg', 'invalid')}{more}" if loc else f"{what}: {first.get('msg')}"


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
