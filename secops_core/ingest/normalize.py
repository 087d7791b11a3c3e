"""Normalization of incoming events and payloads into the wire contract.

Three event shapes become one :class:`WafEvent` (``events.py``):

1. the simplified event of the original system (``simplified.py``);
2. a native AWS WAF log record (``waf_log.py``);
3. a ``WafEvent`` already normalized by us (the worker sends those back for monitor).

Payload decoding and runtime requests are in ``payload.py``, the field readers both
shapes share in ``fields.py``. Every failure is a :class:`ContractError` with a stable
code and a one-line message. This module is the package's entry point.
"""

from __future__ import annotations

from secops_core.ingest.events import normalize_event
from secops_core.ingest.fields import event_key_for, json_too_deep
from secops_core.ingest.payload import REQUEST_ACTIONS, decode_payload, is_request, parse_request
from secops_core.waf.actions import KNOWN_ACTIONS
from secops_core.waf.names import DEFAULT_ACTION_RULE

__all__ = [
    "DEFAULT_ACTION_RULE",
    "KNOWN_ACTIONS",
    "REQUEST_ACTIONS",
    "decode_payload",
    "event_key_for",
    "is_request",
    "json_too_deep",
    "normalize_event",
    "parse_request",
]
