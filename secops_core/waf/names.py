"""Rule, group and label names: the one place they are cleaned, keyed and split.

Rule names travel on the wire and into logs, so they are cleaned here; the floor
compares them by key (case and separators ignored) and reads custom names by token.
"""

from __future__ import annotations

import re
import unicodedata

from secops_core.limits import MAX_ID_CHARS

DEFAULT_ACTION_RULE = "Default_Action"

# "AWS#AWSManagedRulesCommonRuleSet#Version_1.4", "AWS-AWSManagedRulesSQLiRuleSet",
# "arn:aws:wafv2:...:managedruleset/..." -> the bare group name.
_GROUP_PREFIX = re.compile(r"^(?:(?:AWS[#-])+|[A-Za-z0-9]+#)", re.IGNORECASE)
_GROUP_VERSION = re.compile(r"#Version_[^#]*$|#v\d[^#]*$", re.IGNORECASE)


def clean(text: object, limit: int = MAX_ID_CHARS) -> str:
    """Printable, trimmed, bounded text: rule names travel on the wire and into logs."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    printable = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in raw[: limit * 4])
    cleaned = " ".join(printable.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def group_name(raw: str | None) -> str | None:
    """The bare managed group name: no ARN, vendor prefix or version; None when empty."""
    if not raw:
        return None
    name = raw.rsplit("/", 1)[-1] if raw.startswith("arn:") else raw
    name = _GROUP_VERSION.sub("", name)
    name = _GROUP_PREFIX.sub("", name)
    name = name.split("#", 1)[0].strip()
    return name or None


def key(text: str) -> str:
    """Case- and separator-insensitive key: ``SQLi_Body`` and ``sqli-BODY`` -> ``sqlibody``."""
    return "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())


# Known suffixes glued to a word ("ReactJSRCE", "LegacySQLi", "blockXSS"): split off so
# the short token is a word of its own.
_GLUED_SUFFIXES = ("rce", "sqli", "xss", "xxe", "ssti", "ssrf", "lfi", "rfi", "cmdi")
_WORD_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]+(?![a-z])|[A-Z][a-z]+|[a-z]+|[0-9]+")


def words(name: str) -> list[str]:
    """Tokens of a rule name, lower case.

    Splits on separators, camelCase, acronyms and digits (``RateLimit-1000`` -> rate,
    limit, 1000). An upper-case run ending in a known attack suffix is split too
    (``ReactJSRCE_Custom`` -> react, js, rce, custom); a lower-case word is not
    ("source" does not hide "rce").
    """
    tokens: list[str] = []
    for raw in _WORD_RE.findall(name):
        word = raw.lower()
        suffix = next(
            (s for s in _GLUED_SUFFIXES if raw.isupper() and len(word) > len(s) + 1 and word.endswith(s)),
            None,
        )
        tokens.extend((word[: -len(suffix)], suffix) if suffix else (word,))
    return tokens


def is_default(rule_name: str) -> bool:
    return key(rule_name) in {"", "defaultaction", "default"}


def is_label(name: str) -> bool:
    return name.lower().startswith("awswaf:")
