"""Untrusted text made safe for SNS: subjects, single-line fields, attributes, FIFO ids.

Everything an attacker wrote (URI, user agent, rule names of custom rules, the model's
text about them) ends up in an e-mail subject or a chat message, so every string is
cleaned before it leaves: the subject is reduced to what SNS accepts (printable ASCII,
at most 100 characters), other values to single lines with control and invisible
characters removed (docs/architecture.md, "Untrusted text").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

from secops_core.text import sanitize_text

NotificationKind = Literal["escalation", "pattern", "incident"]

# SNS subjects are printable ASCII and "must be less than 100 characters long" (the
# Publish API reference): 99 at most, whatever a particular endpoint lets through.
SUBJECT_MAX_CHARS = 99
SUBJECT_FALLBACK = "SecOps notification"
SUBJECT_ELLIPSIS = "..."
# Work on a hostile subject is bounded: only this much of the input is examined.
_SUBJECT_SCAN_CHARS = 4096

# SNS attribute values may be long, but these are filter keys, not payloads.
_ATTRIBUTE_MAX_CHARS = 256
_ATTRIBUTE_FALLBACK = "unknown"
# FIFO message group ids: at most 128 printable ASCII characters without spaces.
_GROUP_ID_MAX_CHARS = 128


# Line breaks (including NEL and the file/group/record separators that str.splitlines
# honours), tabs and every other Unicode space become a plain space, so words stay apart.
_BREAKS = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x85")
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
# characters have no visible ASCII form; combining marks are what NFKD split off a letter.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
# Valid in a Python str and kept by ``sanitize_text``, but not in SNS's XML character set.
_XML_ILLEGAL = {0xFFFE: None, 0xFFFF: None}


def _subject_char(ch: str) -> str:
    """One NFKD-decomposed character as printable ASCII, a space, nothing, or ``?``."""
    if " " <= ch <= "~":
        return ch
    if ch in _BREAKS or unicodedata.category(ch) in _SPACE_CATEGORIES:
        return " "
    if unicodedata.category(ch) in _DROPPED_CATEGORIES:
        return ""
    return "?"


def _ascii_line(text: str) -> tuple[str, bool]:
    """``text`` as one line of printable ASCII (maybe empty), and whether it was cut."""
    window = text[:_SUBJECT_SCAN_CHARS]
    decomposed = unicodedata.normalize("NFKD", window)
    return " ".join("".join(map(_subject_char, decomposed)).split()), len(window) < len(text)


def _shorten(text: str, limit: int, cut: bool) -> str:
    if len(text) <= limit and not cut:
        return text
    return text[: limit - len(SUBJECT_ELLIPSIS)].rstrip() + SUBJECT_ELLIPSIS


def sanitize_subject(text: str) -> str:
    """Return ``text`` as a valid SNS subject: 1 to 99 printable ASCII characters.

    Line breaks, tabs and Unicode spaces become single spaces; control and invisible
    characters are removed; accented letters lose their accents (NFKD) and any other
    non-ASCII character becomes ``?``. The result never starts or ends with whitespace,
    is cut to 99 characters ending in ``...`` when longer, and falls back to
    ``SUBJECT_FALLBACK`` when nothing printable is left. Only the first few KiB of the
    input are examined, so a huge hostile value costs no more than a short one.
    """
    ascii_text, cut = _ascii_line(text)
    if not ascii_text:
        return SUBJECT_FALLBACK
    return _shorten(ascii_text, SUBJECT_MAX_CHARS, cut)


def subject_part(value: str | None, limit: int) -> str:
    """One untrusted piece of a subject, so a long rule name cannot crowd out the rest."""
    ascii_text, cut = _ascii_line(value or "")
    return _shorten(ascii_text, limit, cut) if ascii_text else ""


def clean(value: object, limit: int) -> str:
    """One untrusted value as a single line without control or invisible characters."""
    if value is None:
        return ""
    return sanitize_text(str(value), limit).translate(_XML_ILLEGAL)


def _attribute_value(value: object) -> str:
    """A String message attribute value: never empty, within SNS's character set."""
    return clean(value, _ATTRIBUTE_MAX_CHARS) or _ATTRIBUTE_FALLBACK


def sanitize_attributes(attributes: dict[str, str]) -> dict[str, str]:
    return {name: _attribute_value(value) for name, value in attributes.items()}


def dedup_id(kind: NotificationKind, *parts: object) -> str:
    """A stable id for one notification, so SNS drops a retried publish of it."""
    material = "\x00".join([kind, *map(str, parts)])
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def group_id(preferred: str, fallback: str) -> str:
    """A FIFO message group id (printable ASCII without spaces), from an IP if usable."""
    cleaned = "".join(ch for ch in preferred[:_GROUP_ID_MAX_CHARS] if "!" <= ch <= "~")
    return cleaned or hashlib.sha256(fallback.encode("utf-8", "surrogatepass")).hexdigest()


def is_fifo(topic_arn: str) -> bool:
    return topic_arn.endswith(".fifo")


# ---- chat (Slack and Teams markdown, through Amazon Q Developer in chat applications) ----

# Characters with a meaning in Slack's mrkdwn or Teams' markdown, each replaced by a
# look-alike that has none: an attacker's URI or rule name can then neither mention
# (@channel, <!here>, <@U123>, <at>), link (<http://x|text>, [text](url)), close our
# code span (`), nor format (*bold*, _italic_, ~strike~, > quote, | table).
_CHAT_CODE = str.maketrans(
    {
        "`": "\u02cb",  # modifier letter grave accent
        "<": "\u2039",  # single left-pointing angle quotation mark
        ">": "\u203a",
        "@": "\uff20",  # fullwidth commercial at
        "&": "\uff06",  # so no HTML entity (&lt;!channel&gt;) can be decoded into markup
        # Links are not rendered in code spans; a client that renders them anyway finds none.
        "[": "\uff3b",
        "]": "\uff3d",
    }
)
_CHAT_PROSE = str.maketrans(
    {
        **{chr(k): v for k, v in _CHAT_CODE.items()},
        "*": "\u2217",  # asterisk operator
        "~": "\u223c",  # tilde operator
        "|": "\u01c0",  # latin letter dental click
        "#": "\uff03",
    }
)
# A URL in attacker text is shown, never linked: the scheme is defanged (hxxp://), the
# way security tools quote indicators.
_SCHEME = re.compile(r"(?i)\b(h)tt(ps?)(:/+)")
# An underscore between two letters or digits (SQLi_BODY) formats nothing in Slack or
# CommonMark and stays; one that could open or close italics becomes a look-alike.
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")


def _defang(text: str) -> str:
    return _SCHEME.sub(lambda m: f"{m.group(1)}xx{m.group(2)}{m.group(3)}", text)


def chat_code(value: object, limit: int) -> str:
    """One untrusted value as an inline code span of chat markdown: a single line,
    cleaned, at most ``limit`` characters inside, nothing in it that markdown or the
    chat client would act on. Empty values become ``-`` (outside any span)."""
    text = _defang(clean(value, limit)).translate(_CHAT_CODE).strip()
    return f"`{text}`" if text else "-"


def chat_prose(value: object, limit: int) -> str:
    """Untrusted prose (a model's analysis, a milestone summary naming a rule) as plain
    text of chat markdown: one line, cleaned, without formatting, links or mentions."""
    text = _EDGE_UNDERSCORE.sub("\uff3f", _defang(clean(value, limit)))
    return text.translate(_CHAT_PROSE).strip()


def ascii_token(value: object, limit: int) -> str:
    """An untrusted value as printable ASCII without spaces (``[!-~]+``), for keys that
    chat custom actions read; ``-`` when nothing printable is left."""
    ascii_text, _ = _ascii_line("" if value is None else str(value))
    token = "".join(ch if ch != " " else "_" for ch in ascii_text)[:limit]
    return token or "-"
