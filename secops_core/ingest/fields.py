"""Field readers shared by the event shapes: each failure is a one-line ContractError."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from secops_core.contract import Header
from secops_core.errors import ContractError, ErrorCode
from secops_core.limits import (
    MAX_EVENT_DEPTH,
    MAX_EVENT_FIELDS,
    MAX_FIELD_CHARS,
    MAX_HEADERS,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_LABELS,
    MAX_PAYLOAD_BYTES,
)
from secops_core.redaction import redact_header
from secops_core.waf.actions import ACTION_ALIASES, KNOWN_ACTIONS

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


def fail(code: ErrorCode, message: str) -> ContractError:
    text = _MESSAGE_BREAKS.sub(" ", message)
    if has_surrogate(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return ContractError(code, clip(text, _MESSAGE_CHARS))


def event_key_for(record: Mapping[str, Any]) -> str:
    """``evt#<id>`` for a simplified event with an id, else a hash of the record.

    The hash covers the canonical JSON of the whole record: ``requestId`` repeats in
    practice, and an SQS MessageId changes on every DLQ redrive, so neither is a key.
    """
    event_id = record.get("id")
    if isinstance(event_id, str | int) and not isinstance(event_id, bool) and str(event_id):
        return f"evt#{clean_id(str(event_id), 'id')}"
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "evt#sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]


# ---- field helpers -------------------------------------------------------------------


def check_sizes(record: Mapping[str, Any]) -> None:
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
            raise fail(
                ErrorCode.INVALID_EVENT,
                f"field {path or 'event'} is nested deeper than {MAX_EVENT_DEPTH} levels",
            )
        seen += len(value)
        if seen > MAX_EVENT_FIELDS:
            raise fail(ErrorCode.FIELD_TOO_LARGE, f"event has more than {MAX_EVENT_FIELDS} fields")
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
        raise fail(
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
        child = f"{path}.{clip(part, _PATH_PART_CHARS)}" if path else clip(part, _PATH_PART_CHARS)
    return child if len(child) <= _PATH_CHARS else clip(child, _PATH_CHARS)


def scrub(value: Any) -> Any:
    """Replace lone surrogates (``"\\ud800"`` in JSON) so every string can be encoded."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if has_surrogate(value) else value
    if isinstance(value, Mapping):
        return {scrub(k) if isinstance(k, str) else k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_headers(raw: Any) -> tuple[tuple[Header, ...], bool]:
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, Mapping):
        pairs = [(str(k), scalar_str(v)) for k, v in raw.items()]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and item.get("name") is not None:
                pairs.append((str(item.get("name")), scalar_str(item.get("value"))))
    elif raw is not None:
        raise fail(ErrorCode.INVALID_EVENT, "headers must be a list of {name, value} or an object")
    cut = len(pairs) > MAX_HEADERS
    headers = tuple(
        Header(name=clean_name(name), value=redact_header(name, value)) for name, value in pairs[:MAX_HEADERS]
    )
    return headers, cut


def header_value(headers: Iterable[Header], name: str) -> str | None:
    for header in headers:
        if header.name.lower() == name:
            return header.value or None
    return None


def parse_labels(raw: Any) -> tuple[tuple[str, ...], bool]:
    names: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        name = item.get("name") if isinstance(item, Mapping) else item
        cleaned = clean_name(name) if isinstance(name, str) else ""
        if cleaned:
            names.append(cleaned)
    if raw is not None and not isinstance(raw, list):
        raise fail(ErrorCode.INVALID_EVENT, "labels must be a list")
    return tuple(names[:MAX_LABELS]), len(names) > MAX_LABELS


def event_time(raw: Any) -> datetime:
    """Epoch seconds or milliseconds (number or numeric string), or ISO 8601, in range."""
    moment = _parse_timestamp(raw)
    if not _EARLIEST_EVENT <= moment <= _LATEST_EVENT:
        # AWS WAF did not exist before 2015; a year 500 or 9000 is a broken clock or a
        # forged record, and would sort wrongly in the store's time index.
        raise fail(
            ErrorCode.INVALID_EVENT,
            f"timestamp {moment.isoformat()} is outside {_EARLIEST_EVENT.year}-{_LATEST_EVENT.year}",
        )
    return moment


def _parse_timestamp(raw: Any) -> datetime:
    if isinstance(raw, bool):
        raise fail(ErrorCode.INVALID_EVENT, "timestamp must be epoch milliseconds or ISO 8601")
    value: Any = raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise fail(
                    ErrorCode.INVALID_EVENT,
                    f"timestamp {clip(repr(raw), 40)} is not epoch milliseconds or ISO 8601",
                ) from None
            return as_utc(parsed, clip(repr(raw), 40))
    if isinstance(value, int | float):
        try:
            # WAF logs epoch milliseconds; anything below 1e11 is epoch seconds (year 5138+
            # in ms). The division is inside the try: an integer of a few hundred digits
            # (valid JSON) overflows a float before fromtimestamp can reject it.
            seconds = value / 1000 if abs(value) >= 1e11 else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            shown = clip(repr(value), 40)
            raise fail(ErrorCode.INVALID_EVENT, f"timestamp {shown} is out of range") from None
    raise fail(ErrorCode.INVALID_EVENT, "timestamp must be epoch milliseconds or ISO 8601")


def as_utc(moment: datetime, shown: str) -> datetime:
    """``moment`` in UTC (naive is taken as UTC): the store sorts event times as UTC text
    and the monitor compares them, so an offset near year 1 or 9999 that has no UTC
    equivalent is rejected here rather than overflowing there."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise fail(ErrorCode.INVALID_EVENT, f"timestamp {shown} is out of range") from None


def parse_ip(raw: Any) -> str:
    if not isinstance(raw, str):
        raise fail(ErrorCode.INVALID_EVENT, "source IP must be a string")
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        raise fail(ErrorCode.INVALID_EVENT, f"source IP {clip(repr(raw), 60)} is not an IP address") from None
    # Python accepts any text as an IPv6 zone index ("fe80::1%<anything>"), which then
    # rode along as the source IP into keys, patterns and notifications. A zone means
    # something only on the local link, never for a client WAF saw: it is dropped.
    return str(address).split("%", 1)[0]


def parse_action(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise fail(ErrorCode.INVALID_EVENT, "action must be a string such as BLOCK or ALLOW")
    action = raw.strip().upper()
    action = ACTION_ALIASES.get(action, action)
    if action not in KNOWN_ACTIONS:
        raise fail(
            ErrorCode.INVALID_EVENT,
            f"action {clip(repr(raw), 40)} is not one of {', '.join(sorted(KNOWN_ACTIONS))}",
        )
    return action


def parse_method(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise fail(ErrorCode.INVALID_EVENT, "http method must be a string")
    return _strip(raw).upper()[:32] or None


def required_str(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise fail(ErrorCode.INVALID_EVENT, f"{key} must be a string")
    return value


def opt_str(record: Mapping[str, Any], key: str, max_chars: int = MAX_FIELD_CHARS) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(ErrorCode.INVALID_EVENT, f"{key} must be a string")
    text = str(value)
    if len(text) > max_chars:
        raise fail(ErrorCode.FIELD_TOO_LARGE, f"{key} has {len(text)} characters (limit {max_chars})")
    return text


def opt_id(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise fail(ErrorCode.INVALID_EVENT, f"id must be a string or an integer, got {type_name(raw)}")
    return clean_id(str(raw), "id")


def clean_id(raw: str, what: str) -> str:
    if len(raw) > MAX_ID_CHARS:
        raise fail(ErrorCode.FIELD_TOO_LARGE, f"{what} has {len(raw)} characters (limit {MAX_ID_CHARS})")
    cleaned = _strip(raw)
    if not cleaned:
        raise fail(ErrorCode.INVALID_EVENT, f"{what} is empty or only control characters")
    return cleaned


def _strip(text: str) -> str:
    return _CONTROL.sub("", text).strip()


def clean_name(text: str) -> str:
    """A header name or label: no control characters, at most MAX_ID_CHARS, trimmed after
    the cut too, so normalizing a normalized name changes nothing."""
    return _strip(text)[:MAX_ID_CHARS].rstrip()


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def scalar_str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def dicts(raw: Any) -> list[Mapping[str, Any]]:
    return [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list) else []


def loads_json(text: str, *, what: str) -> Any:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise fail(ErrorCode.PAYLOAD_TOO_LARGE, f"{what} exceeds {MAX_PAYLOAD_BYTES} bytes")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(ErrorCode.INVALID_JSON, f"{what} is not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise fail(ErrorCode.INVALID_JSON, f"{what} is nested too deeply") from None
    except ValueError as exc:
        # e.g. an integer literal longer than sys.get_int_max_str_digits()
        raise fail(ErrorCode.INVALID_JSON, f"{what} is not acceptable JSON: {clip(str(exc), 120)}") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_too_deep(value):
        raise fail(ErrorCode.INVALID_JSON, f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
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


def first_error(what: str, exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return f"{what} is invalid"
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{what}.{loc}: {first.get('msg', 'invalid')}{more}" if loc else f"{what}: {first.get('msg')}"


def type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
