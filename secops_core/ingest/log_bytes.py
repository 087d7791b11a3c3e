"""WAF log records told apart on their bytes, before any parse (docs/architecture.md, "Consumers").

The byte prefilter of :mod:`secops_core.ingest.s3_logs` and of the catalog's filter
(:mod:`secops_core.ingest.log_filter`): both read the same compact-form checks here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from secops_core.waf.names import DEFAULT_ACTION_RULE

# A record is certainly default-allow noise when its bytes are in WAF's compact form and
# hold the default action's ALLOW and no trace of any rule. The form is checked, never
# assumed: ``terminatingRuleId`` and ``action`` each once (a duplicate key would let the
# parse take another value), no ``\u`` escape anywhere (it could spell a key), no labels,
# and every rule list or rule entry (keys ending ``Rule``, ``Rules``, ``RuleList``) empty
# or null. Anything else, spacing included, means a full parse, never a wrong skip. Quotes
# inside a JSON string are escaped, so request data (URI, headers, args) cannot forge any
# of these patterns.
_TERMINATING = '"terminatingRuleId":'
_DEFAULT_RULE = _TERMINATING + '"' + DEFAULT_ACTION_RULE + '"'
_ACTION = '"action":'
_ALLOW = _ACTION + '"ALLOW"'
_LABELS = '"labels"'
_RULE_ENTRY = r'Rule(?:s|List)?":(?!\[\]|null)'
_ESCAPE = r"\\u"


@dataclass(frozen=True)
class _NoisePatterns:
    terminating: Any
    default_rule: Any
    action: Any
    allow: Any
    labels: Any
    rule_entry: re.Pattern[Any]
    escape: re.Pattern[Any]
    backslash: Any


_BYTES = _NoisePatterns(
    _TERMINATING.encode(),
    _DEFAULT_RULE.encode(),
    _ACTION.encode(),
    _ALLOW.encode(),
    _LABELS.encode(),
    re.compile(_RULE_ENTRY.encode()),
    re.compile(_ESCAPE.encode()),
    b"\\",
)
_STR = _NoisePatterns(
    _TERMINATING,
    _DEFAULT_RULE,
    _ACTION,
    _ALLOW,
    _LABELS,
    re.compile(_RULE_ENTRY),
    re.compile(_ESCAPE),
    "\\",
)


def certainly_noise(raw: bytes | str) -> bool:
    """True only for a compact default-action ALLOW record with no rule or label in it."""
    p = _BYTES if isinstance(raw, bytes) else _STR
    return p.labels not in raw and compact_default_allow(raw)


def compact_default_allow(raw: bytes | str) -> bool:
    """True only for a compact default-action ALLOW record with no rule in it, whatever
    its labels (the catalog's filter reads those: secops_core.ingest.log_filter)."""
    p = _BYTES if isinstance(raw, bytes) else _STR
    # Spelled out rather than looped: this runs on every line of every log object.
    first = raw.find(p.terminating)
    if first < 0 or not raw.startswith(p.default_rule, first) or raw.find(p.terminating, first + 1) >= 0:
        return False
    first = raw.find(p.action)
    if first < 0 or not raw.startswith(p.allow, first) or raw.find(p.action, first + 1) >= 0:
        return False
    # The escape scan only when a backslash is there at all (most records have none).
    if p.backslash in raw and p.escape.search(raw) is not None:
        return False
    return p.rule_entry.search(raw) is None


_B = _BYTES
_B_TERMINATING, _B_DEFAULT_RULE, _B_ACTION, _B_ALLOW = _B.terminating, _B.default_rule, _B.action, _B.allow
_B_LABELS, _B_RULE_ENTRY, _B_ESCAPE = _B.labels, _B.rule_entry.search, _B.escape.search


def compact_default_allow_bytes(raw: bytes) -> bool:
    """:func:`compact_default_allow` of bytes, the same checks with no dispatch: the
    reader's hot path runs it on nearly every line."""
    first = raw.find(_B_TERMINATING)
    if first < 0 or not raw.startswith(_B_DEFAULT_RULE, first) or raw.find(_B_TERMINATING, first + 1) >= 0:
        return False
    first = raw.find(_B_ACTION)
    if first < 0 or not raw.startswith(_B_ALLOW, first) or raw.find(_B_ACTION, first + 1) >= 0:
        return False
    if b"\\" in raw and _B_ESCAPE(raw) is not None:
        return False
    return _B_RULE_ENTRY(raw) is None


def certainly_noise_bytes(raw: bytes) -> bool:
    """:func:`certainly_noise` of bytes (the reader's hot path)."""
    return _B_LABELS not in raw and compact_default_allow_bytes(raw)
