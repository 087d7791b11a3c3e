"""Where WAF's S3 logging puts files, and the prefixes that cover a time range.

``AWSLogs/<account>/WAFLogs/<region>/<web-acl>/YYYY/MM/dd/HH/mm/<file>.log.gz``: listing
one hour prefix per hour of the range reads only what the range holds, however many
years the bucket keeps. Pure: no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

_WEB_ACL_PREFIX = re.compile(r"^(?:.*/)?AWSLogs/[^/]+/WAFLogs/[^/]+/[^/]+/$")
_KEY_TIME = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/[^/]*$")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); raises ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3://BUCKET/PREFIX address")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, prefix


def is_web_acl_prefix(prefix: str) -> bool:
    """The prefix ends at a web ACL of the date-partitioned layout (the hours follow)."""
    return bool(_WEB_ACL_PREFIX.match(prefix))


def hour_prefixes(prefix: str, since: datetime, until: datetime) -> Iterator[str]:
    """One ``<prefix>YYYY/MM/dd/HH/`` per hour that overlaps [since, until] (UTC)."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    while hour <= end:
        yield f"{prefix}{hour:%Y/%m/%d/%H}/"
        hour += timedelta(hours=1)


def key_time(key: str) -> datetime | None:
    """The minute a log file's key names (its partition), or None outside the layout."""
    found = _KEY_TIME.search(key)
    if found is None:
        return None
    try:
        year, month, day, hour, minute = (int(part) for part in found.groups())
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None


def in_range(key: str, since: datetime | None, until: datetime | None) -> bool:
    """Whether a key's partition minute is within the range (keys outside the layout pass)."""
    moment = key_time(key)
    if moment is None:
        return True
    if since is not None and moment < since.replace(second=0, microsecond=0):
        return False
    return until is None or moment <= until
