"""Move recorded events in time, keeping their spacing: the newest lands on "now".

Samples and captured logs go stale: a few days after they were written the monitor's
look-back window no longer covers them. ``secops demo`` and ``secops send --now`` both
shift every timestamp by the same amount, so a campaign keeps its rhythm and the
newest record reads as just received. Both event shapes are handled (ISO strings of
simplified events, epoch milliseconds of WAF log records), also inside request
envelopes and ``{"prompt": "<JSON>"}`` wrappers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

_TIMESTAMP = "timestamp"
_PROMPT = "prompt"


def shift(record: Any, delta: timedelta) -> Any:
    """``record`` with every event timestamp moved by ``delta``; anything else unchanged."""
    if isinstance(record, dict):
        return {key: _shift_field(key, value, delta) for key, value in record.items()}
    if isinstance(record, list):
        return [shift(item, delta) for item in record]
    return record


def _shift_field(key: str, value: Any, delta: timedelta) -> Any:
    if key == _TIMESTAMP:
        if _moment(value) is None:
            return value
        if isinstance(value, int):
            return value + int(delta.total_seconds() * 1000)
        try:
            # Same shape out as in: a string without an offset stays without one.
            return (_parse_iso(value) + delta).isoformat().replace("+00:00", "Z")
        except OverflowError:
            return value  # out of datetime's range: the normalizer rejects it either way
    if key == _PROMPT and isinstance(value, str):
        inner = _loads(value)
        return value if inner is None else json.dumps(shift(inner, delta))
    return shift(value, delta)


def timestamps(record: Any) -> Iterator[datetime]:
    """Every event timestamp ``record`` holds (see :func:`shift` for where they are)."""
    if isinstance(record, dict):
        for key, value in record.items():
            if key == _TIMESTAMP:
                moment = _moment(value)
                if moment is not None:
                    yield moment
            elif key == _PROMPT and isinstance(value, str):
                yield from timestamps(_loads(value))
            else:
                yield from timestamps(value)
    elif isinstance(record, list):
        for item in record:
            yield from timestamps(item)


def delta_to(records: Iterable[Any], now: datetime) -> timedelta:
    """How far to move ``records`` so the newest timestamp among them becomes ``now``."""
    newest = max((moment for record in records for moment in timestamps(record)), default=None)
    if newest is None:
        return timedelta(0)
    # Whole milliseconds, the resolution of WAF log records, so both shapes move alike.
    return timedelta(milliseconds=round((now - newest) / timedelta(milliseconds=1)))


def _moment(value: Any) -> datetime | None:
    """A timestamp as an aware datetime; None when it is not one we can move."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = _parse_iso(value)
        except ValueError:
            return None
        # The normalizer reads a timestamp without an offset as UTC.
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
