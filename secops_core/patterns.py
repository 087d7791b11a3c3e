"""Pattern identity: which monitored requests count as the same target from one source.

Both sides need the same answer: the runtime groups by it, the worker keys pattern
records and re-reads members by it.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit

_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
_NUMBER = re.compile(r"^\d+$")
_HEX = re.compile(r"^[0-9a-f]{16,}$", re.I)
_MULTI_SLASH = re.compile(r"/{2,}")
# A normalized URI longer than this is hashed in its key; the text keeps a readable prefix.
_MAX_URI_CHARS = 512


def normalize_uri(uri: str) -> str:
    """Path only, query and fragment stripped, ids collapsed.

    ``/api/orders/123?x=1`` and ``/api/orders/456`` are the same target; so are paths that
    differ only by a UUID or a long hex token. Percent-encoding is decoded once so
    ``/%61dmin`` and ``/admin`` group together.
    """
    text = uri.strip()
    if "://" in text[:16]:
        text = urlsplit(text).path or "/"
    text = text.split("#", 1)[0].split("?", 1)[0]
    text = unquote(text)
    text = _MULTI_SLASH.sub("/", text)
    segments = []
    for segment in text.split("/"):
        if _NUMBER.match(segment):
            segments.append("{n}")
        elif _UUID.match(segment):
            segments.append("{uuid}")
        elif _HEX.match(segment):
            segments.append("{hex}")
        else:
            segments.append(segment)
    normalized = "/".join(segments)
    if not normalized.startswith("/"):
        normalized = "/" + normalized
    if len(normalized) > 1:
        normalized = normalized.rstrip("/") or "/"
    return normalized[:_MAX_URI_CHARS]


def pattern_key(source_ip: str, normalized_uri: str) -> str:
    """Stable key of a pattern: readable IP, hashed URI (URIs are long and hostile)."""
    digest = hashlib.sha256(f"{source_ip}\n{normalized_uri}".encode()).hexdigest()[:24]
    return f"pat#{source_ip}#{digest}"
