"""Redaction of secrets that ride along with logged requests.

Runs during normalization, so neither a model nor the store ever sees a credential.
"""

from __future__ import annotations

import re
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


def is_secret_header(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _SECRET_HEADERS or bool(_SECRET_NAME.search(lowered))


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
