"""Text made safe to show to a model or an operator: one implementation for both sides.

Attacker-written fields (URI, user agent, headers) and model-written text are both
cleaned here before a person or a model reads them (docs/architecture.md, "Untrusted text").
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

TRUNCATION_SUFFIX = "…[truncated]"

# Line and paragraph breaks become a space so words stay apart; runs of whitespace then
# collapse, which blunts newline floods meant to push the fence out of the model's view.
_BREAKS = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
_WHITESPACE_RUN = re.compile(r"\s{2,}")
# Control (Cc, including C0, DEL and C1), format (Cf: bidi overrides and isolates,
# zero-width characters, soft hyphen, BOM, Unicode tag characters used to smuggle
# invisible ASCII), surrogates and private-use characters never belong in a logged
# request and can hide text from an operator while a model still reads it.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
# Variation selectors are combining marks (Mn) that can also carry invisible payloads.
_VARIATION_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
# Bounds the work on a huge field: only this many times the limit is examined.
_SCAN_FACTOR = 4


@lru_cache(maxsize=4096)
def _safe_char(ch: str) -> str:
    """The replacement for one character: itself, a space, or nothing."""
    if ch in _BREAKS:
        return " "
    code = ord(ch)
    if any(low <= code <= high for low, high in _VARIATION_SELECTORS):
        return ""
    return "" if unicodedata.category(ch) in _DROPPED_CATEGORIES else ch


def strip_unsafe(s: str, limit: int) -> tuple[str, bool]:
    """Remove unsafe characters; also say whether the input was cut before scanning."""
    # Whitespace runs collapse first (cheap, in C), so a flood of line breaks cannot push
    # the rest of the text out of the scanned part; anything further past the limit
    # would be cut anyway, so it is not scanned character by character.
    s = _WHITESPACE_RUN.sub(" ", s)
    scanned = s[: limit * _SCAN_FACTOR + len(TRUNCATION_SUFFIX)]
    kept = "".join(map(_safe_char, scanned))
    return _WHITESPACE_RUN.sub(" ", kept).strip(), len(scanned) < len(s)


def truncate(text: str, limit: int, cut: bool) -> str:
    if len(text) <= limit and not cut:
        return text
    if limit <= len(TRUNCATION_SUFFIX):
        return text[:limit]
    return text[: limit - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX


def sanitize_text(s: str, limit: int) -> str:
    """Return ``s`` made safe to show to a model or an operator, at most ``limit`` chars.

    Line breaks and tabs become spaces and whitespace runs collapse; control characters
    (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width characters,
    Unicode tags), surrogates, private-use characters and variation selectors are removed.
    Ordinary Unicode (accents, CJK, emoji) is kept. A longer result is cut and ends with
    ``TRUNCATION_SUFFIX``, still within ``limit``.
    """
    if limit <= 0:
        return ""
    text, cut = strip_unsafe(s, limit)
    return truncate(text, limit, cut)
