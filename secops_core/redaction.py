"""Redaction of secrets that ride along with logged requests, by name and by value.

Runs during normalization (and again on the prompt), so neither a model, the store, a log
line nor a notification ever sees a credential (docs/architecture.md, "Untrusted text"):

- by name: a header whose name contains cookie/key/token/secret/auth/session/
  signature/password/credential (``Cookie2``, ``X-Forwarded-Cookie``, ``X-Functions-Key``),
  and a query, path (``;jsessionid=``), form or JSON parameter such as ``key``, ``sid``,
  ``code``, ``state``, ``access_token``, ``password``;
- by value, anywhere (URI path included): bearer/basic credentials, JWTs, AWS access key
  ids and secret-shaped keys, and a few well-known API key formats.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from secops_core.contract import WafEvent

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
# A header whose name contains one of these carries a credential or session state. Header
# names are chosen by servers, not users, so "key" anywhere (X-Functions-Key,
# Sec-WebSocket-Key) costs no evidence an analyst needs.
_SECRET_HEADER_NAME = re.compile(
    r"(cookie|key|token|secret|auth|session|signature|passw|pwd|credential|jwt|bearer|csrf|xsrf)",
    re.IGNORECASE,
)
# A parameter whose name contains one of these is secret ("access_token", "sessionid",
# "X-Amz-Signature")...
_SECRET_PARAM_PART = re.compile(
    r"(token|secret|auth|session|signature|passw|pwd|credential|jwt|bearer|cookie|api[-_]?key|csrf|xsrf)",
    re.IGNORECASE,
)
# ... and so is one with one of these as a whole word: "key" or "code" inside "keyword" or
# "zipcode" are ordinary search fields whose values may hold the very attack to analyze.
_SECRET_PARAM_WORDS = frozenset({"key", "sid", "code", "state", "sig", "pass", "otp", "sas", "ticket"})
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")

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


def _is_secret_header_name(lowered: str) -> bool:
    return lowered in _SECRET_HEADERS or bool(_SECRET_HEADER_NAME.search(lowered))


def is_secret_header(name: str) -> bool:
    return _is_secret_header_name(name.strip().lower()) or _is_secret_header_name(_visible(name))


def is_secret_param(name: str) -> bool:
    """True for a query, form, path or JSON parameter name that carries a credential."""
    name = name[:_NAME_SCAN_CHARS]
    if _SECRET_PARAM_PART.search(name):
        return True
    return any(word.lower() in _SECRET_PARAM_WORDS for word in _WORDS.findall(name))


def redact_header(name: str, value: str) -> str:
    return REDACTED if is_secret_header(name) else redact_text(value)


# ---- by value ---------------------------------------------------------------------------

# A separator may be percent-encoded or a "+" in a URL.
_SPACE = r"(?:\s|%20|\+)+"
_VALUE_SHAPES = re.compile(
    "|".join(
        (
            # Authorization schemes written out, in a header value, a cookie or a URL.
            rf"(?i:\b(?:bearer|basic|token|digest){_SPACE})[A-Za-z0-9._~+/=-]{{6,}}",
            # JWT / JWS / JWE: base64url JSON header "eyJ", then dot-separated parts.
            r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)*",
            # AWS access key ids (long-term, temporary, and other principal ids).
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b",
            # An AWS secret access key: exactly 40 base64 characters with upper case, lower
            # case and digits (a hex digest such as a git sha has no upper case).
            # A "/" may also delimit it, as a URI path segment.
            r"(?<![A-Za-z0-9+])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
            r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9+])",
            # Well-known API key formats: OpenAI/Anthropic-style, GitHub, Slack, Google.
            r"\bsk-[A-Za-z0-9_-]{16,}",
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
            r"\bAIza[A-Za-z0-9_-]{30,}",
        )
    )
)
_SCHEME_PREFIX = re.compile(rf"(?i)^(?:bearer|basic|token|digest){_SPACE}")

# name=value in a query string, a form body, a path parameter (";jsessionid=") or a
# cookie; "=" may be percent-encoded.
_PAIR = re.compile(
    r"(?P<name>[A-Za-z0-9_.\-\[\]]{1,128})(?P<sep>\s*(?:=|%3[dD])\s*)(?P<value>[^&;#?/\s\"',]*)"
)
# "name": "value" or "name": literal, in a JSON-shaped query string or body.
_JSON_PAIR = re.compile(
    r"(?P<q>[\"'])(?P<name>[^\"'\\]{1,128})(?P=q)(?P<sep>\s*:\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^,}\]\s]+)"
)


def _redact_value_shapes(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        prefix = _SCHEME_PREFIX.match(match.group(0))
        return (prefix.group(0) if prefix else "") + REDACTED

    return _VALUE_SHAPES.sub(replace, text)


def _redact_pairs(text: str) -> str:
    def pair(match: re.Match[str]) -> str:
        if not match.group("value") or not is_secret_param(match.group("name")):
            return match.group(0)
        return f"{match.group('name')}{match.group('sep')}{REDACTED}"

    def json_pair(match: re.Match[str]) -> str:
        if not is_secret_param(match.group("name")):
            return match.group(0)
        quote = match.group("q")
        return f'{quote}{match.group("name")}{quote}{match.group("sep")}"{REDACTED}"'

    return _PAIR.sub(pair, _JSON_PAIR.sub(json_pair, text))


def _redact_once(text: str) -> str:
    return _redact_value_shapes(_redact_pairs(text))


def redact_text(text: str) -> str:
    """Redact secret-shaped values and values of secret-named parameters anywhere in ``text``.

    A percent-encoded secret (``%22token%22%3A%22…``) is found in the decoded text; the
    text is then kept decoded, since the encoded form would still carry the secret.
    """
    if not text:
        return text
    redacted = _redact_once(text)
    if "%" in redacted:
        decoded = unquote(redacted)
        if decoded != redacted:
            again = _redact_once(decoded)
            if again != decoded:
                return again
    return redacted


def redact_query(args: str) -> str:
    """Redact the values of secret query parameters and secret-shaped values in ``args``."""
    return redact_text(args)


def redact_event(event: WafEvent) -> WafEvent:
    """``event`` with every attacker-controlled text redacted by name and by value."""
    from secops_core.contract import Header

    def text(value: str | None) -> str | None:
        return redact_text(value) if value else value

    return event.model_copy(
        update={
            "uri": redact_text(event.uri),
            "args": text(event.args),
            "user_agent": text(event.user_agent),
            "host": text(event.host),
            "headers": tuple(
                Header(name=redact_text(h.name), value=redact_header(h.name, h.value)) for h in event.headers
            ),
        }
    )
