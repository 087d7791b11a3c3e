"""Redaction of secrets that ride along with logged requests.

Runs during normalization, so neither a model nor the store ever sees a credential.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"

# Exact header names that always carry credentials or session state.
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "x-auth-token",
        "x-amz-security-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-access-token",
        "x-refresh-token",
        "x-session-token",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
    }
)
# Any header or query parameter whose name contains one of these is treated as secret.
_SECRET_NAME = re.compile(
    r"(auth|token|secret|passw|pwd|api[-_]?key|session|credential|signature|sig$|jwt|bearer)",
    re.IGNORECASE,
)


# Characters that do not show in a header name: a name like "Cook\x00ie" or
# "Co\u200bokie" is displayed (and stored, once normalization strips controls) as
# "Cookie", so it is matched without them.
_ASCII_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# Only this much of a non-ASCII name is scanned character by character; normalization
# keeps far less of a name than that.
_NAME_SCAN_CHARS = 4096


def _visible(name: str) -> str:
    if name.isascii():
        return _ASCII_INVISIBLE.sub("", name).lower()
    return "".join(
        ch for ch in name[:_NAME_SCAN_CHARS] if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
    ).lower()


def _is_secret_name(lowered: str) -> bool:
    return lowered in _SECRET_HEADERS or bool(_SECRET_NAME.search(lowered))


def is_secret_header(name: str) -> bool:
    return _is_secret_name(name.strip().lower()) or _is_secret_name(_visible(name))


def redact_header(name: str, value: str) -> str:
    return REDACTED if is_secret_header(name) else value


def redact_query(args: str) -> str:
    """Redact the values of secret-looking query parameters, keeping the rest verbatim."""
    if not args or not _SECRET_NAME.search(args):
        return args
    try:
        pairs = parse_qsl(args, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        return args
    if not pairs:
        return args
    changed = False
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if _SECRET_NAME.search(key):
            out.append((key, REDACTED))
            changed = True
        else:
            out.append((key, value))
    return urlencode(out, safe="/[]:@,") if changed else args
